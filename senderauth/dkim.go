package senderauth

import (
	"bytes"
	"context"
	"errors"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"mtad.dev/mta/mailheader"
)

// DKIM results (RFC 8601 §2.7.1).
const (
	DKIMNone      = "none"
	DKIMPass      = "pass"
	DKIMFail      = "fail"
	DKIMPolicy    = "policy"
	DKIMNeutral   = "neutral"
	DKIMTempError = "temperror"
	DKIMPermError = "permerror"
)

// DefaultDKIMMaxSignatures is DKIM_MAX_SIGNATURES when the configuration
// gives none: a message with more signatures has the rest ignored, so that a
// message cannot make us verify (and look up keys) without bound.
const DefaultDKIMMaxSignatures = 10

// DKIMResult is the verification of one DKIM-Signature field.
type DKIMResult struct {
	Domain     string // d=, the signing domain (SDID)
	Selector   string // s=
	Identifier string // i=, "" when absent
	Algorithm  string // a=
	B          string // the first characters of b=, to tell signatures apart (RFC 6008)
	Result     string // DKIMPass ...
	Problem    string // why it did not pass; "" when it did
}

// VerifyDKIM verifies the DKIM-Signature fields of a message (RFC 6376, with
// RFC 8301's rules: rsa-sha1 and RSA keys under 1024 bits never pass, and RFC
// 8463's Ed25519), at most max of them (0: DefaultDKIMMaxSignatures), with
// the keys looked up through r. The verification is go-msgauth's; the
// signature's tags are read here too for the Authentication-Results entry
// (header.s and header.b, which the library does not report).
func VerifyDKIM(ctx context.Context, r Resolver, content []byte, max int) []DKIMResult {
	max = orInt(max, DefaultDKIMMaxSignatures)
	var sigs []map[string]string
	mailheader.Walk(content, func(f mailheader.Field) bool {
		if f.Is("DKIM-Signature") {
			sigs = append(sigs, dkimTags(f.Value()))
		}
		return true
	})
	if len(sigs) == 0 {
		return nil
	}
	sigs = sigs[:min(len(sigs), max)]
	opts := &dkim.VerifyOptions{
		MaxVerifications: max,
		LookupTXT: func(name string) ([]string, error) {
			txts, err := r.LookupTXT(ctx, name)
			return txts, netError(name, err)
		},
	}
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(content), opts)
	out := make([]DKIMResult, len(sigs))
	for i, tags := range sigs {
		out[i] = DKIMResult{Domain: tags["d"], Selector: tags["s"], Identifier: tags["i"], Algorithm: tags["a"], B: prefix(tags["b"], 8)}
		switch {
		case i >= len(verifs) || verifs[i] == nil:
			out[i].Result, out[i].Problem = DKIMPermError, "not verified"
			if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
				out[i].Result, out[i].Problem = DKIMTempError, err.Error()
			}
		default:
			out[i].Result, out[i].Problem = dkimOutcome(verifs[i].Err)
		}
	}
	return out
}

// dkimOutcome classifies a verification error as the library reports it.
func dkimOutcome(err error) (result, problem string) {
	switch {
	case err == nil:
		return DKIMPass, ""
	case dkim.IsTempFail(err):
		return DKIMTempError, strings.TrimPrefix(err.Error(), "dkim: ")
	case dkim.IsPermFail(err):
		return DKIMPermError, strings.TrimPrefix(err.Error(), "dkim: ")
	}
	return DKIMFail, strings.TrimPrefix(err.Error(), "dkim: ")
}

// dkimTags reads a tag=value list (RFC 6376 §3.2), white space removed from
// values; a malformed list gives what could be read (the library reports the
// error).
func dkimTags(v string) map[string]string {
	tags := map[string]string{}
	for _, part := range strings.Split(v, ";") {
		k, val, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		tags[strings.TrimSpace(k)] = strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, val)
	}
	return tags
}
