package senderauth

import (
	"bytes"
	"strings"

	"github.com/emersion/go-msgauth/authres"

	"mtad.dev/mta/mailheader"
)

// Results are the outcomes of the checks one message had, in the order the
// Authentication-Results: field lists them.
type Results struct {
	SPF   []SPFResult // HELO, then MAIL FROM, when checked
	DKIM  []DKIMResult
	DMARC []DMARCResult
	// DKIMChecked is set when DKIM verification ran: a message without
	// signatures then says dkim=none.
	DKIMChecked bool
}

// AuthResults is our Authentication-Results: field (RFC 8601) for the
// results, one entry per check, folded one entry per line, with its line end;
// "" when nothing was checked.
func AuthResults(authservID string, r Results) string {
	var entries []authres.Result
	for _, s := range r.SPF {
		e := &authres.SPFResult{Value: authres.ResultValue(s.Result)}
		if s.Identity == "helo" {
			e.Helo = s.Helo
		} else {
			e.From = s.Sender
		}
		entries = append(entries, e)
	}
	if r.DKIMChecked && len(r.DKIM) == 0 {
		entries = append(entries, &authres.GenericResult{Method: "dkim", Value: authres.ResultNone})
	}
	for _, d := range r.DKIM {
		params := map[string]string{"header.d": d.Domain, "header.s": d.Selector, "header.b": d.B, "header.i": d.Identifier}
		if d.Result != DKIMPass {
			params["reason"] = d.Problem
		}
		entries = append(entries, &authres.GenericResult{Method: "dkim", Value: authres.ResultValue(d.Result), Params: params})
	}
	for _, d := range r.DMARC {
		params := map[string]string{"header.from": d.Domain}
		if d.Result == DMARCFail {
			params["policy.dmarc"] = d.Disposition // what was done: the policy, or less (pct=, an override)
		}
		params["reason"] = d.Reason
		entries = append(entries, &authres.GenericResult{Method: "dmarc", Value: authres.ResultValue(d.Result), Params: params})
	}
	if len(entries) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("Authentication-Results: ")
	b.WriteString(authservID)
	for _, e := range entries {
		// authres.Format writes "id; method=value params": we keep the entry
		// and put each on its own line.
		one := authres.Format(authservID, []authres.Result{e})
		b.WriteString(";\r\n\t")
		b.WriteString(strings.TrimSpace(one[len(authservID)+2:]))
	}
	b.WriteString("\r\n")
	return b.String()
}

// ReceivedSPF is the Received-SPF: field of one SPF check (RFC 7208 §9.1),
// with its line end.
func ReceivedSPF(r SPFResult, receiver string) string {
	var b strings.Builder
	b.WriteString("Received-SPF: ")
	b.WriteString(r.Result)
	b.WriteString(" (")
	b.WriteString(receiver)
	b.WriteString(": ")
	switch {
	case r.Problem != "":
		b.WriteString(commentSafe(r.Problem))
	case r.Mechanism != "":
		b.WriteString("domain of " + r.Domain + " matched " + r.Mechanism)
	default:
		b.WriteString("domain of " + r.Domain)
	}
	b.WriteString(")\r\n\tclient-ip=")
	b.WriteString(r.IP.String())
	b.WriteString("; envelope-from=\"")
	b.WriteString(quoteSafe(r.Sender))
	b.WriteString("\"; helo=")
	b.WriteString(tokenSafe(r.Helo))
	b.WriteString(";\r\n\treceiver=")
	b.WriteString(receiver)
	b.WriteString("; identity=")
	b.WriteString(r.Identity)
	if r.Mechanism != "" {
		b.WriteString("; mechanism=")
		b.WriteString(r.Mechanism)
	}
	b.WriteString(";\r\n")
	return b.String()
}

func commentSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == '(' || r == ')' || r == '\\' || r >= 0x7f {
			return '?'
		}
		return r
	}, s)
}

func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == '"' || r == '\\' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

func tokenSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?=`, r) {
			return '?'
		}
		return r
	}, s)
}

// StripForged removes the Authentication-Results: fields that claim our
// authserv-id (RFC 8601 §5: a field from outside bearing our id is a forgery
// meant to be trusted downstream), and returns the content, the same slice
// when there is none. The id compares without case; fields of other ADMDs
// stay.
func StripForged(content []byte, authservID string) []byte {
	var cut [][2]int
	mailheader.Walk(content, func(f mailheader.Field) bool {
		if f.Is("Authentication-Results") && strings.EqualFold(authservIDOf(f.Value()), authservID) {
			cut = append(cut, [2]int{f.Start, f.End()})
		}
		return true
	})
	if len(cut) == 0 {
		return content
	}
	out := make([]byte, 0, len(content))
	prev := 0
	for _, c := range cut {
		out = append(out, content[prev:c[0]]...)
		prev = c[1]
	}
	return append(out, content[prev:]...)
}

// authservIDOf is the authserv-id a field body starts with: comments
// skipped, up to the first ';' or white space (the optional version follows
// it).
func authservIDOf(v string) string {
	var b bytes.Buffer
	depth := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' && depth > 0:
			i++
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth > 0, c == '"':
		case c == ';':
			return strings.TrimSpace(b.String())
		case c == ' ' || c == '\t':
			if b.Len() > 0 {
				return b.String()
			}
		default:
			b.WriteByte(c)
		}
	}
	return strings.TrimSpace(b.String())
}
