package engine

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"mtad.dev/mta/mappings"
)

func aliasConfig(t *testing.T, viaAliasRequired bool) *RuleSet {
	t.Helper()
	needMappings(t)
	src := []mappings.AliasSource{
		{Name: "list", Targets: []string{"alice", "bob@remote.org", "sub"}, Src: "aliases:1"},
		{Name: "sub", Targets: []string{"carol", "Alice@mail.example.net"}, Src: "aliases:2"},
		{Name: "loopa", Targets: []string{"loopb"}, Src: "aliases:3"},
		{Name: "loopb", Targets: []string{"x@remote.org", "loopa"}, Src: "aliases:4"},
		{Name: "self", Targets: []string{"self", "x@remote.org"}, Src: "aliases:5"},
		{Name: "hosted@mail.example.net", Targets: []string{"hosted-target@remote.org"}, Src: "aliases:6"},
		{Name: "hosted", Targets: []string{"wrong@remote.org"}, Src: "aliases:7"},
		{Name: "bad", Targets: []string{"ok@remote.org", "u@a..b"}, Src: "aliases:8"},
		{Name: "unsafe", Targets: []string{"../x"}, Src: "aliases:9"},
		{Name: "temp", Targets: []string{"u@later.example"}, Src: "aliases:10"},
	}
	for i := 1; i <= 12; i++ {
		src = append(src, mappings.AliasSource{Name: fmt.Sprintf("deep%d", i), Targets: []string{fmt.Sprintf("deep%d", i+1)}, Src: fmt.Sprintf("aliases:%d", 20+i)})
	}
	src = append(src, mappings.AliasSource{Name: "deep13", Targets: []string{"end@remote.org"}, Src: "aliases:40"})
	al := compileAliases(t, src...)
	chans := []Channel{ch("l", "mail.example.net"), ch("tcp_local", "tcp_local-daemon")}
	chans[0].ViaAliasRequired = viaAliasRequired
	return mustCompile(t, Config{
		Rules: rulesFrom(`mail.example.net  $U%$D@mail.example.net
later.example     $4002000?Mailbox system busy
.                 $U%$H@tcp_local-daemon
`),
		Channels: chans,
		Aliases:  al,
	})
}

type rcpt struct {
	addr, channel string
	via           string
}

func TestResolve(t *testing.T) {
	rs := aliasConfig(t, false)
	for _, tc := range []struct {
		addr    string
		want    []rcpt
		errCode string
		errText string
	}{
		{addr: "u@remote.org", want: []rcpt{{"u@remote.org", "tcp_local", ""}}},
		{addr: "zed@mail.example.net", want: []rcpt{{"zed@mail.example.net", "l", ""}}},
		{addr: "zed", want: []rcpt{{"zed@mail.example.net", "l", ""}}},
		{addr: "list@mail.example.net", want: []rcpt{
			{"alice@mail.example.net", "l", "list"},
			{"bob@remote.org", "tcp_local", "list"},
			{"carol@mail.example.net", "l", "list,sub"},
			// Alice@mail.example.net is alice again: listed once.
		}},
		{addr: "LIST@Mail.Example.Net", want: []rcpt{
			{"alice@mail.example.net", "l", "list"},
			{"bob@remote.org", "tcp_local", "list"},
			{"carol@mail.example.net", "l", "list,sub"},
		}},
		{addr: "list+tag@mail.example.net", want: []rcpt{
			{"alice@mail.example.net", "l", "list"},
			{"bob@remote.org", "tcp_local", "list"},
			{"carol@mail.example.net", "l", "list,sub"},
		}},
		{addr: "self@mail.example.net", want: []rcpt{
			{"self@mail.example.net", "l", "self"},
			{"x@remote.org", "tcp_local", "self"},
		}},
		{addr: "hosted@mail.example.net", want: []rcpt{{"hosted-target@remote.org", "tcp_local", "hosted@mail.example.net"}}},
		{addr: "loopa@mail.example.net", errCode: "5.4.6", errText: "alias loop: loopa -> loopb -> loopa"},
		{addr: "deep1@mail.example.net", errCode: "5.4.6", errText: "alias loop: more than 10 alias levels"},
		{addr: "deep4@mail.example.net", want: []rcpt{{"end@remote.org", "tcp_local", "deep4,deep5,deep6,deep7,deep8,deep9,deep10,deep11,deep12,deep13"}}},
		{addr: "bad@mail.example.net", errCode: "5.1.3", errText: "bad address syntax"},
		{addr: "unsafe@mail.example.net", errCode: "5.1.1", errText: "unknown or illegal user"},
		{addr: ".hidden@mail.example.net", errCode: "5.1.1", errText: "unknown or illegal user"},
		{addr: `"a/b"@mail.example.net`, errCode: "5.1.1", errText: "unknown or illegal user"},
		{addr: "temp@mail.example.net", errCode: "4.2.0", errText: "Mailbox system busy"},
		{addr: "u@later.example", errCode: "4.2.0", errText: "Mailbox system busy"},
		{addr: "u@@x", errCode: "5.1.3"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			res := rs.Resolve(Request{Address: tc.addr, Trace: true})
			if tc.errCode != "" {
				if res.Err == nil || res.Err.Enhanced != tc.errCode || !strings.HasPrefix(res.Err.Text, tc.errText) {
					t.Fatalf("err %v, want %s %q\n%s", res.Err, tc.errCode, tc.errText, traceText(res.Trace))
				}
				if len(res.Recipients) != 0 {
					t.Errorf("recipients %v with error", res.Recipients)
				}
				return
			}
			if res.Err != nil {
				t.Fatalf("unexpected %v\n%s", res.Err, traceText(res.Trace))
			}
			var got []rcpt
			for _, r := range res.Recipients {
				got = append(got, rcpt{r.Address, r.Channel, strings.Join(r.Via, ",")})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("recipients\n got %v\nwant %v\n%s", got, tc.want, traceText(res.Trace))
			}
		})
	}
}

func TestResolveViaAliasRequired(t *testing.T) {
	rs := aliasConfig(t, true)
	res := rs.Resolve(Request{Address: "alice@mail.example.net"})
	if res.Err == nil || res.Err.Code != 550 || res.Err.Enhanced != "5.1.1" || !strings.HasPrefix(res.Err.Text, "unknown or illegal user") {
		t.Errorf("direct local recipient: %v", res.Err)
	}
	res = rs.Resolve(Request{Address: "list@mail.example.net"})
	if res.Err != nil || len(res.Recipients) != 3 {
		t.Errorf("through an alias: %v %v", res.Err, res.Recipients)
	}
	for _, pm := range []string{"postmaster@mail.example.net", "PostMaster", "postmaster@MAIL.EXAMPLE.NET"} {
		res = rs.Resolve(Request{Address: pm})
		if res.Err != nil || len(res.Recipients) != 1 || res.Recipients[0].Channel != "l" {
			t.Errorf("%s: %v %v", pm, res.Err, res.Recipients)
		}
	}
	// Remote recipients are not concerned.
	if res = rs.Resolve(Request{Address: "u@remote.org"}); res.Err != nil {
		t.Errorf("remote: %v", res.Err)
	}
}

func TestResolveWithoutAliases(t *testing.T) {
	rs := compileRules(t, "mail.example.net $U%$D@mail.example.net", []Channel{ch("l", "mail.example.net")})
	res := rs.Resolve(Request{Address: "joe@mail.example.net"})
	if res.Err != nil || len(res.Recipients) != 1 || res.Recipients[0].Mailbox != "joe" || res.Recipients[0].Via != nil {
		t.Errorf("%+v", res)
	}
	if res.Rewrite.Address != "joe@mail.example.net" || res.Rewrite.Rule != "imta.cnf:1" {
		t.Errorf("rewrite %+v", res.Rewrite)
	}
}
