package senderauth

import (
	"net/netip"
	"testing"
	"time"
)

var clientIP = netip.MustParseAddr("192.0.2.10")

// The product's names: SPF_SMTP_STATUS_FAIL decides a fail an explicit
// mechanism gave, SPF_SMTP_STATUS_FAIL_ALL one the terminal all gave; each
// class 2 accepts, 4 defers, 5 refuses.
func TestSPFStatus(t *testing.T) {
	r, _ := zone(t,
		`listed.test. 300 IN TXT "v=spf1 -ip4:192.0.2.10 +all"`,
		`default.test. 300 IN TXT "v=spf1 ip4:198.51.100.1 -all"`,
		`soft.test. 300 IN TXT "v=spf1 ~all"`,
		`broken.test. 300 IN TXT "v=spf1 bogus -all"`,
		`ok.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`)
	s := &SPFSettings{Status: map[string]int{"FAIL": 5, "FAIL_ALL": 4, "SOFTFAIL_ALL": 2}}
	for _, c := range []struct {
		domain, result, mech string
		code                 int
		enh                  string
	}{
		{"listed.test", SPFFail, "ip4", 550, "5.7.23"},
		{"default.test", SPFFail, "all", 451, "4.7.23"},
		{"soft.test", SPFSoftFail, "all", 0, ""},
		{"broken.test", SPFPermError, "", 550, "5.7.24"},
		{"ok.test", SPFPass, "ip4", 0, ""},
		{"none.test", SPFNone, "", 0, ""},
	} {
		res := s.CheckSPF(testCtx(t), r, clientIP, "helo.test", "a@"+c.domain, "mailfrom")
		if res.Result != c.result || res.Mechanism != c.mech {
			t.Errorf("%s: %s by %q (%s), want %s by %q", c.domain, res.Result, res.Mechanism, res.Problem, c.result, c.mech)
		}
		st := s.Reply(res)
		switch {
		case c.code == 0 && st != nil:
			t.Errorf("%s: refused %v, want accepted", c.domain, st)
		case c.code != 0 && (st == nil || st.Code != c.code || st.Enhanced != c.enh):
			t.Errorf("%s: %v, want %d %s", c.domain, st, c.code, c.enh)
		}
	}
	// The documentation's example: SPF_SMTP_STATUS_FAIL=2 accepts a client
	// the record lists as forbidden.
	lenient := &SPFSettings{Status: map[string]int{"FAIL": 2}}
	if st := lenient.Reply(lenient.CheckSPF(testCtx(t), r, clientIP, "h.test", "a@listed.test", "mailfrom")); st != nil {
		t.Errorf("SPF_SMTP_STATUS_FAIL=2: %v, want accepted", st)
	}
}

// SPF_LOCAL replaces the checked domain's DNS record, and a redirect= in it
// is looked up in DNS; the null sender is checked as postmaster@HELO.
func TestSPFLocal(t *testing.T) {
	r, srv := zone(t,
		`partner.test. 300 IN TXT "v=spf1 -all"`,
		`target.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"`,
		`helo.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"`)
	s := &SPFSettings{Local: func(d string) (string, bool) {
		if d == "partner.test" {
			return "v=spf1 redirect=target.test", true
		}
		return "", false
	}}
	res := s.CheckSPF(testCtx(t), r, clientIP, "helo.test", "a@partner.test", "mailfrom")
	if res.Result != SPFPass || !res.Local {
		t.Errorf("SPF_LOCAL with redirect: %+v, want pass from the table", res)
	}
	for _, q := range srv.Asked() {
		if q == "partner.test.|TXT" {
			t.Error("the DNS record of a domain SPF_LOCAL answers was asked")
		}
	}
	null := s.CheckSPF(testCtx(t), r, clientIP, "helo.test", "", "mailfrom")
	if null.Result != SPFPass || null.Sender != "postmaster@helo.test" {
		t.Errorf("null sender: %+v", null)
	}
}

// SPF_MAX_DNS_QUERIES, SPF_MAX_VOID_LOOKUPS and SPF_MAX_RECURSION end in
// permerror; SPF_MAX_TIME in temperror.
func TestSPFLimits(t *testing.T) {
	r, srv := zone(t,
		`three.test. 300 IN TXT "v=spf1 a:a1.test a:a2.test a:a3.test -all"`,
		`void.test. 300 IN TXT "v=spf1 a:nx1.test a:nx2.test a:nx3.test -all"`,
		`deep.test. 300 IN TXT "v=spf1 include:d1.test -all"`,
		`d1.test. 300 IN TXT "v=spf1 include:d2.test -all"`,
		`d2.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"`,
		`slow.test. 300 IN TXT "v=spf1 a:hang.test -all"`,
		`a1.test. 300 IN A 198.51.100.1`, `a2.test. 300 IN A 198.51.100.2`, `a3.test. 300 IN A 198.51.100.3`)
	srv.Drop("hang.test", "A")
	srv.Drop("hang.test", "AAAA")
	for _, c := range []struct {
		s      SPFSettings
		domain string
		want   string
	}{
		{SPFSettings{MaxDNSQueries: 2}, "three.test", SPFPermError},
		{SPFSettings{}, "three.test", SPFFail},
		{SPFSettings{}, "void.test", SPFPermError},
		{SPFSettings{MaxVoidLookups: 3}, "void.test", SPFFail},
		{SPFSettings{MaxRecursion: 1}, "deep.test", SPFPermError},
		{SPFSettings{}, "deep.test", SPFPass},
		{SPFSettings{MaxTime: 100 * time.Millisecond}, "slow.test", SPFTempError},
	} {
		res := c.s.CheckSPF(testCtx(t), r, clientIP, "h.test", "a@"+c.domain, "mailfrom")
		if res.Result != c.want {
			t.Errorf("%s with %+v: %s (%s), want %s", c.domain, c.s, res.Result, res.Problem, c.want)
		}
	}
}

// ACCESS_SPF's probe field: HELO result, then MAIL FROM result, "-all" on a
// fail the all mechanism gave, empty for a check not made.
func TestProbeField(t *testing.T) {
	r, _ := zone(t, `bank.test. 300 IN TXT "v=spf1 ip4:198.51.100.1 ~all"`, `h.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"`)
	p := &Policy{AccessSPF: true, Resolver: r, Channels: map[string]Channel{"tcp_local": {SPFHelo: true, SPFRcptTo: true}}}
	tx := p.Begin("tcp_local", clientIP, "h.test", "x@bank.test")
	if st := tx.Sender(testCtx(t)); st != nil {
		t.Fatal(st)
	}
	if f, _ := tx.ProbeField(); f != "pass/" {
		t.Errorf("before RCPT: %q", f)
	}
	tx.Recipient(testCtx(t))
	if f, _ := tx.ProbeField(); f != "pass/softfail-all" {
		t.Errorf("after RCPT: %q", f)
	}
	if p.Begin("tcp_intranet", clientIP, "h.test", "x@bank.test") != nil {
		t.Error("a channel without checks got a transaction")
	}
}
