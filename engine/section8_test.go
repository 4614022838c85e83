package engine

import (
	"reflect"
	"strings"
	"testing"
)

// TestSection8 runs every row of the product's worked rewriting examples against their
// configuration (section8Rules).
func TestSection8(t *testing.T) {
	rs := compileRules(t, section8Rules, section8Channels())
	row16 := compileRules(t, strings.Replace(strings.Replace(section8Rules,
		"example.net        $U%example.net@verify-daemon$Nverify\n", "", 1),
		"example.net        $U%$D@mail.example.net", "example.net        $0U%$D@mail.example.net", 1),
		section8Channels())
	tests := []struct {
		row     int
		rs      *RuleSet
		addr    string
		source  string
		probes  []string // nil: not checked
		want    string
		channel string
		rule    string
		errText string
		errCode string
	}{
		{row: 1, addr: "jdoe@siroe.com", probes: []string{"siroe.com"}, want: "jdoe@siroe.com", channel: "tcp_siroe", rule: "imta.cnf:4"},
		{row: 2, addr: "jdoe@host1.siroe.com", probes: []string{"host1.siroe.com", "*.siroe.com", ".siroe.com"}, want: "jdoe@host1.siroe.com", channel: "tcp_siroe", rule: "imta.cnf:5"},
		{row: 3, addr: "jdoe@hostA.host1.siroe.com", probes: []string{"hosta.host1.siroe.com", "*.host1.siroe.com", ".host1.siroe.com", "*.*.siroe.com", ".siroe.com"}, want: "jdoe@hostA.host1.siroe.com", channel: "tcp_siroe", rule: "imta.cnf:5"},
		{row: 4, addr: "jdoe@host.sesta.com", probes: []string{"host.sesta.com"}, want: "jdoe@sesta.com", channel: "tcp_local", rule: "imta.cnf:6"},
		{row: 5, addr: "pat@foo", probes: []string{"foo", "*"}, want: "pat@foo.example.net", channel: "tcp_intranet", rule: "imta.cnf:8"},
		{row: 6, addr: "pat@foo.bar", probes: []string{"foo.bar", "*.bar", ".bar", "*.*", "."}, want: "pat@foo.bar", channel: "tcp_local", rule: "imta.cnf:13"},
		{row: 7, addr: "jdoe@host1.siroe.com.removable", want: "jdoe@host1.siroe.com", channel: "tcp_siroe", rule: "imta.cnf:5"},
		{row: 8, addr: "jdoe@x.removable.removable", want: "jdoe@x.example.net", channel: "tcp_intranet", rule: "imta.cnf:8"},
		{row: 9, addr: "dan@[192.0.2.7]", probes: []string{"[192.0.2.7]", "[192.0.2.]", "[192.0.]", "[192.]", "[]"}, want: "dan@[192.0.2.7]", channel: "tcp_intranet", rule: "imta.cnf:10"},
		{row: 10, addr: "dan@[10.1.2.3]", probes: []string{"[10.1.2.3]", "[10.1.2.]", "[10.1.]"}, want: "dan@[10.1.2.3]", channel: "tcp_intranet", rule: "imta.cnf:11"},
		{row: 11, addr: "jdoe@com1", probes: []string{"com1"}, want: "@gw.example.net:jdoe@com1", channel: "tcp_gw", rule: "imta.cnf:9"},
		{row: 12, addr: "jdoe%host1.siroe.com@mail.example.net", probes: []string{"mail.example.net", "host1.siroe.com", "*.siroe.com", ".siroe.com"}, want: "jdoe@host1.siroe.com", channel: "tcp_siroe", rule: "imta.cnf:5"},
		{row: 13, addr: "ann@example.net", source: "tcp_local", probes: []string{"example.net"}, want: "ann@example.net", channel: "verify", rule: "imta.cnf:2"},
		{row: 14, addr: "ann@example.net", source: "verify", probes: []string{"example.net"}, want: "ann@example.net", channel: "l", rule: "imta.cnf:3"},
		{row: 15, addr: "ann@jdoe.bad", errText: "No mail for .bad hosts", errCode: "5.1.2", rule: "imta.cnf:12"},
		{row: 16, rs: row16, addr: "jdoe+news@example.net", want: "jdoe@example.net", channel: "l", rule: "imta.cnf:2"},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			r := tc.rs
			if r == nil {
				r = rs
			}
			res := r.Rewrite(Request{Address: tc.addr, SourceChannel: tc.source, Trace: true})
			if tc.errText != "" {
				if res.Err == nil || res.Err.Text != tc.errText || res.Err.Enhanced != tc.errCode || res.Err.Code != 550 {
					t.Fatalf("row %d: err = %v, want 550 %s %s\n%s", tc.row, res.Err, tc.errCode, tc.errText, traceText(res.Trace))
				}
				if res.Rule != tc.rule {
					t.Errorf("row %d: rule %q, want %q", tc.row, res.Rule, tc.rule)
				}
				return
			}
			if res.Err != nil {
				t.Fatalf("row %d: unexpected error %v\n%s", tc.row, res.Err, traceText(res.Trace))
			}
			if res.Address != tc.want || res.Channel != tc.channel || res.Rule != tc.rule {
				t.Errorf("row %d: got %q channel %q rule %q, want %q %q %q\n%s", tc.row, res.Address, res.Channel, res.Rule, tc.want, tc.channel, tc.rule, traceText(res.Trace))
			}
			if tc.probes != nil {
				if got := probes(res.Trace); !reflect.DeepEqual(got, tc.probes) {
					t.Errorf("row %d: probes %q, want %q", tc.row, got, tc.probes)
				}
			}
		})
	}
}

// TestSection8Details checks the finer points the rows state: $H/$D of row 2, the
// A%B passes of rows 7-8, $L of rows 9-10, the routing host of row 11.
func TestSection8Details(t *testing.T) {
	rs := compileRules(t, section8Rules, section8Channels())
	res := rs.Rewrite(Request{Address: "jdoe@x.removable.removable", Trace: true})
	passes := 0
	for _, s := range res.Trace {
		if strings.Contains(s.Text, "A%B pass") {
			passes++
		}
	}
	if passes != 2 {
		t.Errorf("row 8: %d A%%B passes, want 2\n%s", passes, traceText(res.Trace))
	}
	res = rs.Rewrite(Request{Address: "jdoe@com1"})
	if res.Official != "tcp_gw-daemon" || res.Mailbox != "jdoe" || res.Host != "com1" {
		t.Errorf("row 11: official %q mailbox %q host %q", res.Official, res.Mailbox, res.Host)
	}
	res = rs.Rewrite(Request{Address: "jdoe@host1.siroe.com"})
	if res.Official != "tcp_siroe-daemon" || res.Mailbox != "jdoe" || res.Host != "host1.siroe.com" {
		t.Errorf("row 2: %+v", res)
	}
	// Row 1 note: $E$F restrict a rule to the envelope To; a header From then falls
	// through to the "." rule.
	ef := compileRules(t, strings.Replace(section8Rules, "siroe.com          $U%$D@tcp_siroe-daemon", "siroe.com          $U%$D@tcp_siroe-daemon$E$F", 1), section8Channels())
	if r := ef.Rewrite(Request{Address: "jdoe@siroe.com", Kind: HeaderFrom}); r.Channel != "tcp_local" || r.Address != "jdoe@siroe.com" {
		t.Errorf("$E$F header From: %+v", r)
	}
	if r := ef.Rewrite(Request{Address: "jdoe@siroe.com", Kind: EnvelopeTo}); r.Channel != "tcp_siroe" {
		t.Errorf("$E$F envelope To: %+v", r)
	}
}

// TestProbeOrder checks the probe order the product's documentation gives for
// dan@sc.cs.siroe.edu and for a domain literal, on a configuration where nothing
// matches early.
func TestProbeOrder(t *testing.T) {
	rs := compileRules(t, "nomatch.example $U%$D@tcp_local-daemon\n", []Channel{ch("l", "mail.example.net"), ch("tcp_local", "tcp_local-daemon")})
	for _, tc := range []struct {
		addr string
		want []string
	}{
		{"dan@sc.cs.siroe.edu", []string{"sc.cs.siroe.edu", "*.cs.siroe.edu", ".cs.siroe.edu", "*.*.siroe.edu", ".siroe.edu", "*.*.*.edu", ".edu", "*.*.*.*", "."}},
		{"dan@[128.6.3.40]", []string{"[128.6.3.40]", "[128.6.3.]", "[128.6.]", "[128.]", "[]", "[*.*.*.*]", "."}},
		{"dan@[IPv6:2001:db8::1]", []string{"[ipv6:2001:db8::1]", "[]", "[*]", "."}},
	} {
		res := rs.Rewrite(Request{Address: tc.addr, Trace: true})
		if got := probes(res.Trace); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: probes\n got %q\nwant %q", tc.addr, got, tc.want)
		}
		// Nothing matched and no "." rule: the spec is the routing host, which is
		// no channel's: unknown host.
		if res.Err == nil || res.Err.Enhanced != "5.1.2" || res.Err.Text != DefaultUnknownHostText {
			t.Errorf("%s: err %v, want 5.1.2 unknown host", tc.addr, res.Err)
		}
	}
}
