package engine

import (
	"regexp"
	"strings"
	"testing"
)

var specRE = regexp.MustCompile(`^spec "([^"]*)" \(([^)]*)\)`)

// firstSpec returns the first spec a rewrite extracted, and its location.
func firstSpec(tr []TraceStep) (string, string) {
	for _, s := range tr {
		if m := specRE.FindStringSubmatch(s.Text); m != nil {
			return m[1], m[2]
		}
	}
	return "", ""
}

// TestExtractionTable is the product's documented table of which host of an address is
// matched first.
func TestExtractionTable(t *testing.T) {
	chans := []Channel{ch("l", "mail.example.net"), ch("tcp_local", "tcp_local-daemon")}
	bop := ch("uucp", "uucp-daemon")
	bop.BangOverPercent = true
	chans = append(chans, bop)
	rs := compileRules(t, ".  $U%$H@tcp_local-daemon\n", chans)
	for _, tc := range []struct {
		addr, source, spec, loc string
	}{
		{"u@a.b.c", "", "a.b.c", "right of @"},
		{"u@[0.1.2.3]", "", "[0.1.2.3]", "right of @"},
		{"@a,@[0.1.2.3]:u@b", "", "a", "source route"},
		{"u%A@B", "", "B", "right of @"},
		{"u%A", "", "A", "right of %"},
		{"u%A%B", "", "B", "right of %"},
		{"u%%A%B", "", "B", "right of %"},
		{"A!u", "", "A", "left of !"},
		{"A!u@B", "", "B", "right of @"},
		{"A!u%B@C", "", "C", "right of @"},
		{"A!u%B", "", "B", "right of %"},
		{"A!u%B", "uucp", "A", "left of !"},
		{"A!u@B", "uucp", "B", "right of @"}, // A!B@C is always (A!B)@C
		{`"a%b"@c`, "", "c", "right of @"},
	} {
		res := rs.Rewrite(Request{Address: tc.addr, SourceChannel: tc.source, Trace: true})
		spec, loc := firstSpec(res.Trace)
		if spec != tc.spec || loc != tc.loc {
			t.Errorf("%s (source %q): first spec %q (%s), want %q (%s)", tc.addr, tc.source, spec, loc, tc.spec, tc.loc)
		}
	}
}

// TestLocalPartHosts follows the % and ! hosts through to the result.
func TestLocalPartHosts(t *testing.T) {
	chans := []Channel{ch("l", "mail.example.net"), ch("tcp_local", "tcp_local-daemon"), ch("uucp", "uucp-daemon", "uuhost")}
	rs := compileRules(t, `mail.example.net  $U%$D@mail.example.net
.  $U%$H@tcp_local-daemon
`, chans)
	for _, tc := range []struct{ addr, want, channel string }{
		{"u%a.org", "u@a.org", "tcp_local"},
		{"u%a.org@mail.example.net", "u@a.org", "tcp_local"},
		{"u%%x%a.org", "u%%x@a.org", "tcp_local"}, // %% stays literal
		{"uuhost!joe", "joe@uuhost", "uucp"},
		{"a.org!joe@mail.example.net", "joe@a.org", "tcp_local"},
		{"@mail.example.net:joe@a.org", "joe@a.org", "tcp_local"}, // route through us dropped
		{"@a.org,@b.org:joe@c.org", "@a.org,@b.org:joe@c.org", "tcp_local"},
		{"joe", "joe@mail.example.net", "l"}, // bare local part: local host
		{"JOE@MAIL.example.NET", "JOE@MAIL.example.NET", "l"},
	} {
		res := rs.Rewrite(Request{Address: tc.addr, Trace: true})
		if res.Err != nil || res.Address != tc.want || res.Channel != tc.channel {
			t.Errorf("%s: got %q %q %v, want %q %q\n%s", tc.addr, res.Address, res.Channel, res.Err, tc.want, tc.channel, traceText(res.Trace))
		}
	}
}

// TestPercentBangFallback covers $% / $! and the A%B@localhost fallback when no
// rule (not even ".") takes a local-part host.
func TestPercentBangFallback(t *testing.T) {
	chans := []Channel{ch("l", "mail.example.net"), ch("tcp_local", "tcp_local-daemon")}
	rs := compileRules(t, "mail.example.net  $U%$D@mail.example.net\n", chans)
	for _, tc := range []struct{ addr, want, mbox string }{
		{"u%far.away@mail.example.net", "u%far.away@mail.example.net", "u%far.away"},
		{"far.away!u", "far.away!u@mail.example.net", "far.away!u"},
	} {
		res := rs.Rewrite(Request{Address: tc.addr, Trace: true})
		if res.Err != nil || res.Address != tc.want || res.Channel != "l" || res.Mailbox != tc.mbox {
			t.Errorf("%s: %+v\n%s", tc.addr, res, traceText(res.Trace))
		}
	}
	rs = compileRules(t, `mail.example.net  $U%$D@mail.example.net
$%  $U%$H@tcp_local-daemon
$!  $U%$H.uucp@tcp_local-daemon
`, chans)
	for _, tc := range []struct{ addr, want, rule string }{
		{"u%far.away@mail.example.net", "u@far.away", "imta.cnf:2"},
		{"far.away!u", "u@far.away.uucp", "imta.cnf:3"},
	} {
		res := rs.Rewrite(Request{Address: tc.addr, Trace: true})
		if res.Err != nil || res.Address != tc.want || res.Channel != "tcp_local" || res.Rule != tc.rule {
			t.Errorf("%s: %+v\n%s", tc.addr, res, traceText(res.Trace))
		}
	}
}

func TestTooManySpecs(t *testing.T) {
	rs := compileRules(t, "h $U%$D@h\n.siroe.com $U%$H$D@tcp_siroe-daemon", []Channel{ch("l", "h"), ch("tcp_siroe", "tcp_siroe-daemon")})
	res := rs.Rewrite(Request{Address: "u" + strings.Repeat("%h", 81), Trace: true})
	if res.Err == nil || res.Err.Enhanced != "5.4.6" || res.Err.Temporary() {
		t.Errorf("81 local hops: %v", res.Err)
	}
	res = rs.Rewrite(Request{Address: "u%a.siroe.com" + strings.Repeat("%h", 70)})
	if res.Err != nil || res.Address != "u@a.siroe.com" || res.Channel != "tcp_siroe" {
		t.Errorf("70 local hops: %+v", res)
	}
}

func TestParseAddressErrors(t *testing.T) {
	rs := compileRules(t, ".  $U%$H@tcp_local-daemon\n", []Channel{ch("l", "mail.example.net"), ch("tcp_local", "tcp_local-daemon")})
	for _, a := range []string{
		"", "<>", "@", "u@", "@a.b", "u@a..b", "u@.a", "u@a.", "a b@c", `"unterminated@c`,
		"u@[1.2.3.4", "u@[1.2]3]", "@a,@b", "@a:", "@a,b:u@c", "u@a@", "u@a b", "u@a,b",
		"u\x00@a", "u@a\x00", "(comment)u@a", "%a", "!u", "a!", "u@[x\\y]",
		strings.Repeat("a", 2000) + "@b",
	} {
		res := rs.Rewrite(Request{Address: a})
		if res.Err == nil || res.Err.Enhanced != "5.1.3" {
			t.Errorf("%q: err %v, want 5.1.3", a, res.Err)
		}
		if res.Channel != "" {
			t.Errorf("%q: channel %q on error", a, res.Channel)
		}
	}
}

func TestParseAddressAccepts(t *testing.T) {
	for _, tc := range []struct {
		in           string
		route        []string
		local, dom   string
		canonicalLoc string
	}{
		{"<u@a.b>", nil, "u", "a.b", "u"},
		{`"a b"@x`, nil, `"a b"`, "x", `"a b"`},
		{`a."b"@x`, nil, `a."b"`, "x", `"a.b"`},
		{`"a\"q"@x`, nil, `"a\"q"`, "x", `"a\"q"`},
		{"@a,@[1.2.3.4]:u@b", []string{"a", "[1.2.3.4]"}, "u", "b", "u"},
		{"u@[IPv6:2001:db8::1]", nil, "u", "[IPv6:2001:db8::1]", "u"},
		{"u+tag@a", nil, "u+tag", "a", "u+tag"},
		{"jörg@bücher.de", nil, "jörg", "bücher.de", "jörg"},
	} {
		route, local, dom, err := ParseAddress(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if strings.Join(route, ",") != strings.Join(tc.route, ",") || local != tc.local || dom != tc.dom {
			t.Errorf("%q: %q %q %q", tc.in, route, local, dom)
		}
		if c := canonicalLocal(local); c != tc.canonicalLoc {
			t.Errorf("%q: $U %q, want %q", tc.in, c, tc.canonicalLoc)
		}
	}
}

// FuzzParseAddress: parsing and rewriting never panic, and an accepted address
// routes somewhere or fails with a status.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"u@a.b.c", "@a,@[0.1.2.3]:u@b", "u%A%B", "A!u%B", `a."b"@x`, "u%%A%B", "<u@[10.1.2.3]>", `"a\"b"@c`, "x@y@z"} {
		f.Add(s)
	}
	rs, errs := Compile(Config{Rules: rulesFrom(section8Rules), Channels: section8Channels()})
	if errs != nil {
		f.Fatal(errs)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _, _, err := ParseAddress(s)
		res := rs.Rewrite(Request{Address: s, Trace: true})
		if err != nil && res.Err == nil {
			t.Fatalf("%q: ParseAddress failed (%v) but Rewrite succeeded", s, err)
		}
		if res.Err == nil && res.Channel == "" {
			t.Fatalf("%q: no channel and no error", s)
		}
		rs.Resolve(Request{Address: s})
	})
}
