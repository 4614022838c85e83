package engine

import "testing"

// TestShapeReusesStrings covers the template-result forms with parts that are
// text the address already had (user, spec), channel-table spellings, and new
// text: shape reuses the first two and copies the rest, and every form must still
// give the same Address, Official, Mailbox and Host.
func TestShapeReusesStrings(t *testing.T) {
	rules := `same.example      $U%$D@tcp_a-daemon
case.example      $U%$D@TCP_A-DAEMON
alias.example     $U%$D@a-host
new.example       x$U%new.$D@tcp_a-daemon
route.example     $U@$D@gw.example@tcp_a-daemon
pctroute.example  $U%$D@gw.example@tcp_a-daemon
a-host            $U@$D
unknown.example   $U%$D@nowhere.example
gw.example        $U%$D@tcp_a-daemon
`
	a := ch("tcp_a", "tcp_a-daemon", "a-host")
	rs := compileRules(t, rules, []Channel{ch("l", "local.example"), a})
	tests := []struct {
		in, addr, official, mbox, host string
		fail                           bool
	}{
		{in: "u@same.example", addr: "u@same.example", official: "tcp_a-daemon", mbox: "u", host: "same.example"},
		// Official keeps the template's spelling, not the channel table's.
		{in: "u@case.example", addr: "u@case.example", official: "TCP_A-DAEMON", mbox: "u", host: "case.example"},
		{in: "u@alias.example", addr: "u@alias.example", official: "a-host", mbox: "u", host: "alias.example"},
		{in: "Ann@New.Example", addr: "xAnn@new.New.Example", official: "tcp_a-daemon", mbox: "xAnn", host: "new.New.Example"},
		{in: "u@route.example", addr: "@gw.example:u@route.example", official: "tcp_a-daemon", mbox: "u", host: "route.example"},
		{in: "u@pctroute.example", addr: "@gw.example:u@pctroute.example", official: "tcp_a-daemon", mbox: "u", host: "pctroute.example"},
		// The routing host is the host itself, found under a Hosts spelling.
		{in: "u@A-Host", addr: "u@A-Host", official: "A-Host", mbox: "u", host: "A-Host"},
		{in: "u@unknown.example", fail: true},
	}
	for _, tc := range tests {
		for pass := 0; pass < 2; pass++ { // the second pass runs on a pooled state
			res := rs.Rewrite(Request{Address: tc.in})
			if tc.fail {
				if res.Err == nil {
					t.Errorf("%s: no error, got %+v", tc.in, res)
				}
				continue
			}
			if res.Err != nil || res.Address != tc.addr || res.Official != tc.official || res.Mailbox != tc.mbox ||
				res.Host != tc.host || res.Channel != "tcp_a" {
				t.Errorf("%s: %q %q %q %q %q %v; want %q %q %q %q tcp_a", tc.in, res.Address, res.Official,
					res.Mailbox, res.Host, res.Channel, res.Err, tc.addr, tc.official, tc.mbox, tc.host)
			}
		}
	}
}
