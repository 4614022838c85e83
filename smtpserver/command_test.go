package smtpserver

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestParseMail(t *testing.T) {
	for _, tt := range []struct {
		arg  string
		from string
		opts mailOptions
		rep  string // the reply's last line when refused
	}{
		{arg: "FROM:<a@example.org>", from: "a@example.org"},
		{arg: "from: <a@example.org>", from: "a@example.org"},
		{arg: " FROM:a@example.org", from: "a@example.org"},
		{arg: "FROM:<>", from: ""},
		{arg: "FROM:<@relay.example,@b.example:a@example.org>", from: "a@example.org"},
		{arg: `FROM:<"john doe"@example.org>`, from: `"john doe"@example.org`},
		{arg: `FROM:<"john\ doe"@example.org>`, from: `"john doe"@example.org`},
		{arg: `FROM:<"user%host"@example.org>`, from: "user%host@example.org"},
		{arg: `FROM:<"a\"b"@example.org>`, from: `"a\"b"@example.org`},
		{arg: "FROM:<a..b@example.org>", from: `"a..b"@example.org`},
		{arg: "FROM:<a@[IPv6:::1]>", from: "a@[IPv6:::1]"},
		{arg: "FROM:<a@example.org> SIZE=120 BODY=8bitmime SMTPUTF8 RET=hdrs ENVID=x+2By AUTH=<>",
			from: "a@example.org", opts: mailOptions{Size: 120, Body: body8BitMIME, UTF8: true, Return: "HDRS", EnvelopeID: "x+y"}},
		{arg: "FROM:<a@example.org>\tBODY=7BIT", from: "a@example.org", opts: mailOptions{Body: body7Bit}},
		{arg: "FROM:<a@example.org> SIZE=99999999999", from: "a@example.org", opts: mailOptions{Size: 99999999999}},
		{arg: "FROM:<a@example.org> SIZE=99999999999999999999", from: "a@example.org", opts: mailOptions{Size: math.MaxInt64}},
		{arg: "FROM:<a@example.org> AUTH=alice+40example.org", from: "a@example.org"},
		{arg: "TO:<a@example.org>", rep: "501 5.5.2 Was expecting MAIL arg syntax of FROM:<address>"},
		{arg: "FROM:<a@example.org", rep: "501 5.5.2 Was expecting MAIL arg syntax of FROM:<address>"},
		{arg: "FROM:<postmaster>", rep: "501 5.5.2 Was expecting MAIL arg syntax of FROM:<address>"},
		{arg: `FROM:<""@example.org>`, rep: "501 5.5.2 Was expecting MAIL arg syntax of FROM:<address>"},
		{arg: `FROM:<"a@example.org>`, rep: "501 5.5.2 Was expecting MAIL arg syntax of FROM:<address>"},
		{arg: "FROM:<a b@example.org>", rep: "501 5.5.2 Was expecting MAIL arg syntax of FROM:<address>"},
		{arg: "FROM:<a@>", rep: "501 5.5.2 Was expecting MAIL arg syntax of FROM:<address>"},
		{arg: "FROM:<a@example.org> SIZE=1=2", rep: "501 5.5.4 Unable to parse MAIL ESMTP parameters"},
		{arg: "FROM:<a@example.org> FOO SIZE=1=2", rep: "501 5.5.4 Unable to parse MAIL ESMTP parameters"},
		{arg: "FROM:<a@example.org> SIZE=12x", rep: "501 5.5.4 Unable to parse SIZE as an integer"},
		{arg: "FROM:<a@example.org> SIZE=", rep: "501 5.5.4 Unable to parse SIZE as an integer"},
		{arg: "FROM:<a@example.org> SIZE=123456789012345678901", rep: "501 5.5.4 Unable to parse SIZE as an integer"},
		{arg: "FROM:<a@example.org> BODY=BINARYMIME", rep: "504 5.5.4 BINARYMIME is not implemented"},
		{arg: "FROM:<a@example.org> BODY=9BIT", rep: "501 5.5.4 Unknown BODY value"},
		{arg: "FROM:<a@example.org> RET=SOME", rep: "501 5.5.4 Unknown RET value"},
		{arg: "FROM:<a@example.org> ENVID=a+2", rep: "501 5.5.4 Malformed ENVID parameter value"},
		{arg: "FROM:<a@example.org> ENVID=a+2b", rep: "501 5.5.4 Malformed ENVID parameter value"},
		{arg: "FROM:<a@example.org> ENVID=a+80", rep: "501 5.5.4 Malformed ENVID parameter value"},
		{arg: "FROM:<a@example.org> ENVID=", rep: "501 5.5.4 Malformed ENVID parameter value"},
		{arg: "FROM:<a@example.org> AUTH=", rep: "500 5.5.4 Malformed AUTH parameter value"},
		{arg: "FROM:<a@example.org> AUTH=alice", rep: "500 5.5.4 Malformed AUTH parameter mailbox"},
		{arg: "FROM:<a@example.org> REQUIRETLS", rep: "504 5.5.4 REQUIRETLS is not implemented"},
		{arg: "FROM:<a@example.org> XFOO=1", rep: "500 5.5.4 Unknown MAIL FROM argument"},
		{arg: "FROM:<a@example.org>x", rep: "500 5.5.4 Unknown MAIL FROM argument"},
	} {
		from, opts, rep := parseMail(tt.arg)
		switch {
		case tt.rep != "":
			if rep == nil || rep.String() != tt.rep {
				t.Errorf("MAIL %s: %v, want %q", tt.arg, rep, tt.rep)
			}
		case rep != nil:
			t.Errorf("MAIL %s: refused %v", tt.arg, rep)
		case from != tt.from || opts != tt.opts:
			t.Errorf("MAIL %s: %q %+v, want %q %+v", tt.arg, from, opts, tt.from, tt.opts)
		}
	}
}

func TestParseRcpt(t *testing.T) {
	for _, tt := range []struct {
		arg  string
		to   string
		opts rcptOptions
		rep  string
	}{
		{arg: "TO:<b@example.net>", to: "b@example.net"},
		{arg: "TO:<b@example.net> NOTIFY=success,FAILURE ORCPT=rfc822;B+2Bx@example.net", to: "b@example.net",
			opts: rcptOptions{Notify: []dsnNotify{notifySuccess, notifyFailure}, OriginalRecipientType: "RFC822", OriginalRecipient: "B+x@example.net"}},
		{arg: `TO:<b@example.net> ORCPT=utf-8;caf\x{E9}@example.net`, to: "b@example.net",
			opts: rcptOptions{OriginalRecipientType: "UTF-8", OriginalRecipient: "café@example.net"}},
		{arg: "TO:<b@example.net> ORCPT=UTF-8;δ@example.net", to: "b@example.net",
			opts: rcptOptions{OriginalRecipientType: "UTF-8", OriginalRecipient: "δ@example.net"}},
		{arg: "TO:<b@example.net> NOTIFY=NEVER", to: "b@example.net", opts: rcptOptions{Notify: []dsnNotify{notifyNever}}},
		{arg: "TO:<>", rep: "501 5.5.2 Was expecting RCPT arg syntax of TO:<address>"},
		{arg: "FROM:<b@example.net>", rep: "501 5.5.2 Was expecting RCPT arg syntax of TO:<address>"},
		{arg: "TO:<b@example.net> A=1=2", rep: "501 5.5.4 Unable to parse RCPT ESMTP parameters"},
		{arg: "TO:<b@example.net> NOTIFY=NEVER,SUCCESS", rep: "501 5.5.4 Malformed NOTIFY parameter value"},
		{arg: "TO:<b@example.net> NOTIFY=DELAY,DELAY", rep: "501 5.5.4 Malformed NOTIFY parameter value"},
		{arg: "TO:<b@example.net> NOTIFY=", rep: "501 5.5.4 Malformed NOTIFY parameter value"},
		{arg: "TO:<b@example.net> ORCPT=rfc822;a+0Db", rep: "501 5.5.4 Malformed ORCPT parameter value"},
		{arg: "TO:<b@example.net> ORCPT=x400;a", rep: "501 5.5.4 Malformed ORCPT parameter value"},
		{arg: "TO:<b@example.net> ORCPT=rfc822;", rep: "501 5.5.4 Malformed ORCPT parameter value"},
		{arg: `TO:<b@example.net> ORCPT=utf-8;a\x{41}b`, rep: "501 5.5.4 Malformed ORCPT parameter value"},
		{arg: `TO:<b@example.net> ORCPT=utf-8;a\b`, rep: "501 5.5.4 Malformed ORCPT parameter value"},
		{arg: "TO:<b@example.net> BY=120;R", rep: "504 5.5.4 DELIVERBY is not implemented"},
		{arg: "TO:<b@example.net> SIZE=1", rep: "500 5.5.4 Unknown RCPT TO argument"},
	} {
		to, opts, rep := parseRcpt(tt.arg)
		switch {
		case tt.rep != "":
			if rep == nil || rep.String() != tt.rep {
				t.Errorf("RCPT %s: %v, want %q", tt.arg, rep, tt.rep)
			}
		case rep != nil:
			t.Errorf("RCPT %s: refused %v", tt.arg, rep)
		case to != tt.to || !reflect.DeepEqual(opts, tt.opts):
			t.Errorf("RCPT %s: %q %+v, want %q %+v", tt.arg, to, opts, tt.to, tt.opts)
		}
	}
}

// encodeXtext is RFC 3461's xtext encoding, the inverse of decodeXtext.
func encodeXtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c > ' ' && c < 0x7f && c != '+' && c != '=' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "+%02X", c)
		}
	}
	return b.String()
}

// FuzzParseCommand: the MAIL and RCPT parsers never panic; what they refuse is a
// protocol error (counted toward the bad command limit); what they accept is a
// well-formed mailbox (or <> for MAIL) in canonical form, and written back as a
// client would, it parses to the same address and parameters.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"FROM:<a@example.org> SIZE=120 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x+2By AUTH=<>",
		`FROM:<"john\ doe"@example.org>`, "FROM:<@r.example:a..b@example.org>", "FROM:<>",
		"TO:<b@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B+2Bx@example.net",
		`TO:<"a\"b"@[IPv6:::1]> ORCPT=utf-8;caf\x{E9}@example.net`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		if from, opts, rep := parseMail(arg); rep != nil {
			if !rep.protocolError() {
				t.Fatalf("MAIL %q: %v is no protocol error", arg, rep)
			}
		} else {
			checkMailbox(t, arg, from, true)
			again := "FROM:<" + from + ">"
			if opts.Size > 0 {
				again += fmt.Sprintf(" SIZE=%d", opts.Size)
			}
			if opts.Body != "" {
				again += " BODY=" + string(opts.Body)
			}
			if opts.UTF8 {
				again += " SMTPUTF8"
			}
			if opts.Return != "" {
				again += " RET=" + opts.Return
			}
			if opts.EnvelopeID != "" {
				again += " ENVID=" + encodeXtext(opts.EnvelopeID)
			}
			from2, opts2, rep := parseMail(again)
			if rep != nil || from2 != from || opts2 != opts {
				t.Fatalf("MAIL %q: %q %+v; written back as %q: %q %+v %v", arg, from, opts, again, from2, opts2, rep)
			}
		}
		if to, opts, rep := parseRcpt(arg); rep != nil {
			if !rep.protocolError() {
				t.Fatalf("RCPT %q: %v is no protocol error", arg, rep)
			}
		} else {
			checkMailbox(t, arg, to, false)
			for _, n := range opts.Notify {
				if n != notifyNever && n != notifySuccess && n != notifyFailure && n != notifyDelay {
					t.Fatalf("RCPT %q: NOTIFY %q", arg, n)
				}
			}
			if typ := opts.OriginalRecipientType; typ != "" && typ != "RFC822" && typ != "UTF-8" {
				t.Fatalf("RCPT %q: ORCPT type %q", arg, typ)
			}
			if to2, _, rep := parseRcpt("TO:<" + to + ">"); rep != nil || to2 != to {
				t.Fatalf("RCPT %q: %q written back parses as %q %v", arg, to, to2, rep)
			}
		}
	})
}

// checkMailbox: local part and domain present, the domain free of blanks and
// ">", the local part canonical.
func checkMailbox(t *testing.T, arg, addr string, nullOK bool) {
	t.Helper()
	if addr == "" && nullOK {
		return
	}
	at := strings.IndexByte(addr, '@')
	if strings.HasPrefix(addr, `"`) {
		// the "@" after the closing quote
		for i := 1; i < len(addr); i++ {
			if addr[i] == '\\' {
				i++
			} else if addr[i] == '"' {
				at = i + 1
				break
			}
		}
	}
	if at <= 0 || at >= len(addr)-1 || addr[at] != '@' {
		t.Fatalf("%q: accepted %q", arg, addr)
	}
	local, domain := addr[:at], addr[at+1:]
	if strings.ContainsAny(domain, " \t>") {
		t.Fatalf("%q: domain %q", arg, domain)
	}
	if quoted := strings.HasPrefix(local, `"`); canonicalLocal(local, quoted) != local {
		t.Fatalf("%q: local part %q is not canonical", arg, local)
	}
}
