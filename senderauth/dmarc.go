package senderauth

import (
	"context"
	"net/mail"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"

	"mtad.dev/mta/dnsx"
	"mtad.dev/mta/mailheader"
)

// DMARC results (RFC 7489 §11.2) and dispositions.
const (
	DMARCNone        = "none"
	DMARCPass        = "pass"
	DMARCFail        = "fail"
	DMARCTempError   = "temperror"
	DMARCPermError   = "permerror"
	PolicyNone       = "none"
	PolicyQuarantine = "quarantine"
	PolicyReject     = "reject"
)

// DMARCResult is the DMARC evaluation of one author domain.
type DMARCResult struct {
	Domain       string // the author domain: the From: field's
	PolicyDomain string // where the record was found: Domain or its organisational domain; "" none
	Record       string // the record's text
	Result       string // DMARCPass ...
	// Policy is what the record asks for this message: p=, sp= for a
	// subdomain, np= for a subdomain that does not exist (RFC 9091); ""
	// without a record.
	Policy string
	// Disposition is what is done: Policy, weakened when pct= leaves the
	// message out of the sample, none when the result is not fail or a local
	// override applies.
	Disposition string
	// Reason says why the disposition differs from the policy, or what went
	// wrong; "" otherwise.
	Reason                  string
	SPFAligned, DKIMAligned bool
}

// AuthorDomains are the domains of the From: field's addresses (RFC 7489
// §3.1.1), lower-cased and without repeats, in order. A message may have none
// (no From:, or one we cannot read) or several (several From: fields or
// addresses): the caller evaluates each and keeps the strictest outcome, so a
// second From: cannot hide a forged first one.
func AuthorDomains(content []byte) []string {
	var out []string
	seen := map[string]bool{}
	mailheader.Walk(content, func(f mailheader.Field) bool {
		if !f.Is("From") {
			return true
		}
		for _, d := range fromDomains(f.Value()) {
			if d != "" && !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
		return true
	})
	return out
}

// fromDomains reads the domains of a From: field body; when the list does not
// parse, every "@domain" in it counts, so a malformed field still has its
// claimed domains checked.
func fromDomains(v string) []string {
	var out []string
	if list, err := mail.ParseAddressList(v); err == nil {
		for _, a := range list {
			if at := strings.LastIndexByte(a.Address, '@'); at >= 0 {
				out = append(out, normDomain(a.Address[at+1:]))
			}
		}
		return out
	}
	for i := strings.IndexByte(v, '@'); i >= 0; i = strings.IndexByte(v, '@') {
		v = v[i+1:]
		end := strings.IndexAny(v, "> ,;\t\"()")
		if end < 0 {
			end = len(v)
		}
		out = append(out, normDomain(v[:end]))
	}
	return out
}

func normDomain(d string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
}

// OrgDomain is a domain's organisational domain (RFC 7489 §3.2): one label
// below its public suffix, from the public suffix list golang.org/x/net
// carries. A public suffix is its own.
func OrgDomain(d string) string {
	d = normDomain(d)
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return org
}

// aligned: relaxed alignment wants the same organisational domain, strict the
// same domain (RFC 7489 §3.1).
func aligned(a, b string, mode dmarc.AlignmentMode) bool {
	a, b = normDomain(a), normDomain(b)
	if mode == dmarc.AlignmentStrict {
		return a == b
	}
	return OrgDomain(a) == OrgDomain(b)
}

// DMARCInput is what one evaluation looks at: the SPF result of the MAIL FROM
// identity (of postmaster@HELO for the null sender) and the DKIM results.
type DMARCInput struct {
	SPF  *SPFResult
	DKIM []DKIMResult
}

// EvaluateDMARC finds the DMARC record of an author domain and decides the
// result and the policy it asks for. pct= and local overrides are the
// caller's (Disposition is Policy for a fail, none otherwise).
func EvaluateDMARC(ctx context.Context, r Resolver, domain string, in DMARCInput) DMARCResult {
	res := DMARCResult{Domain: domain, Result: DMARCNone, Disposition: PolicyNone}
	rec, where, text, problem := lookupDMARC(ctx, r, domain)
	switch {
	case problem == DMARCTempError:
		res.Result, res.Reason = DMARCTempError, "policy lookup failed"
		return res
	case rec == nil:
		res.Reason = problem
		return res
	}
	res.PolicyDomain, res.Record = where, text
	res.Policy = string(rec.Policy)
	if where != domain {
		switch np := dmarcTag(text, "np"); {
		case np != "" && nonexistent(ctx, r, domain):
			res.Policy = np
		case rec.SubdomainPolicy != "":
			res.Policy = string(rec.SubdomainPolicy)
		}
	}
	if in.SPF != nil && in.SPF.Result == SPFPass && aligned(in.SPF.Domain, domain, rec.SPFAlignment) {
		res.SPFAligned = true
	}
	temp := in.SPF != nil && in.SPF.Result == SPFTempError && aligned(in.SPF.Domain, domain, rec.SPFAlignment)
	for _, d := range in.DKIM {
		if !aligned(d.Domain, domain, rec.DKIMAlignment) {
			continue
		}
		switch d.Result {
		case DKIMPass:
			res.DKIMAligned = true
		case DKIMTempError:
			temp = true
		}
	}
	switch {
	case res.SPFAligned || res.DKIMAligned:
		res.Result = DMARCPass
	case temp:
		// An aligned identifier could not be checked: do not act on a fail
		// that a DNS hiccup may have caused (RFC 7489 §6.6.2 leaves it to us).
		res.Result, res.Reason = DMARCTempError, "an aligned check failed temporarily"
	default:
		res.Result, res.Disposition = DMARCFail, res.Policy
	}
	return res
}

// lookupDMARC asks _dmarc.<domain>, then _dmarc.<organisational domain>
// (RFC 7489 §6.6.3). A name with several DMARC records has none; a record
// whose p= is missing or wrong counts as p=none when it names an aggregate
// report address (§6.6.3's last step), and as none otherwise. problem is
// DMARCTempError when DNS failed, else why no record was found.
func lookupDMARC(ctx context.Context, r Resolver, domain string) (rec *dmarc.Record, where, text, problem string) {
	for _, d := range []string{domain, OrgDomain(domain)} {
		if d == where {
			break
		}
		where = d
		txts, err := r.LookupTXT(ctx, "_dmarc."+d)
		if err != nil && !dnsx.IsNotFound(err) {
			return nil, "", "", DMARCTempError
		}
		var found []string
		for _, t := range txts {
			if strings.HasPrefix(strings.TrimSpace(t), "v=DMARC1") {
				found = append(found, t)
			}
		}
		if len(found) > 1 {
			return nil, "", "", "several DMARC records at _dmarc." + d
		}
		if len(found) == 1 {
			rec, err := parseDMARC(found[0])
			if err != nil {
				return nil, "", "", "unusable DMARC record at _dmarc." + d + ": " + err.Error()
			}
			return rec, d, found[0], ""
		}
	}
	return nil, "", "", "no DMARC record"
}

// parseDMARC reads a record; one whose p= is missing or wrong reads as p=none
// when it names an aggregate report address (RFC 7489 §6.6.3).
func parseDMARC(text string) (*dmarc.Record, error) {
	rec, err := dmarc.Parse(text)
	if err != nil && dmarcTag(text, "rua") != "" {
		rec, err = dmarc.Parse(withPolicyNone(text))
	}
	return rec, err
}

// dmarcTag is one tag's value in a record's text, "" when absent.
func dmarcTag(text, name string) string {
	for _, part := range strings.Split(text, ";") {
		if k, v, ok := strings.Cut(part, "="); ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// withPolicyNone replaces (or adds) p=none in a record's text.
func withPolicyNone(text string) string {
	var parts []string
	for _, part := range strings.Split(text, ";") {
		if k, _, ok := strings.Cut(part, "="); ok && strings.TrimSpace(k) == "p" {
			continue
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ";") + "; p=none"
}

// nonexistent reports whether a domain does not exist (RFC 9091 §2.1):
// NXDOMAIN, which says the name has no records of any type, so one question
// (MX) tells. Any other answer, a temporary failure included, counts as
// existing.
func nonexistent(ctx context.Context, r Resolver, domain string) bool {
	_, err := r.LookupMX(ctx, domain)
	return dnsx.IsNotFound(err)
}
