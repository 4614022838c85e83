package engine

import (
	"reflect"
	"strings"
	"testing"

	"mtad.dev/mta/mappings"
)

// ownerConfig is a local host mail.example.net with lists that have owners, and a
// tcp_local source channel whose expandlimit the caller sets.
func ownerConfig(t *testing.T, tcpLocal func(*Channel)) *RuleSet {
	t.Helper()
	needMappings(t)
	al := compileAliases(t,
		mappings.AliasSource{Name: "list", Targets: []string{"alice", "bob@remote.org", "sub"}, Src: "aliases:1"},
		mappings.AliasSource{Name: "owner-list", Targets: []string{"listadmin"}, Src: "aliases:2"},
		mappings.AliasSource{Name: "sub", Targets: []string{"carol", "dan@remote.org"}, Src: "aliases:3"},
		mappings.AliasSource{Name: "Owner-Sub", Targets: []string{"subadmin"}, Src: "aliases:4"},
		mappings.AliasSource{Name: "plain", Targets: []string{"erin", "sub"}, Src: "aliases:5"},
		mappings.AliasSource{Name: "team@hosted.example", Targets: []string{"frank@remote.org"}, Src: "aliases:6"},
		mappings.AliasSource{Name: "owner-team@hosted.example", Targets: []string{"boss@remote.org"}, Src: "aliases:7"},
		mappings.AliasSource{Name: "one", Targets: []string{"gina"}, Src: "aliases:8"},
		mappings.AliasSource{Name: "bad", Targets: []string{"u@a..b", "ok@remote.org", "u@later.example", "loop1"}, Src: "aliases:9"},
		mappings.AliasSource{Name: "loop1", Targets: []string{"loop2"}, Src: "aliases:10"},
		mappings.AliasSource{Name: "loop2", Targets: []string{"loop1"}, Src: "aliases:11"},
	)
	chans := []Channel{ch("l", "mail.example.net", "hosted.example"), ch("tcp_local", "tcp_local-daemon"),
		ch("tcp_intranet", "tcp_intranet-daemon"), ch("reprocess", "reprocess-daemon")}
	if tcpLocal != nil {
		tcpLocal(&chans[1])
	}
	return mustCompile(t, Config{
		Rules: rulesFrom(`mail.example.net  $U%$D@mail.example.net
hosted.example    $U%$D@mail.example.net
later.example     $4002000?Mailbox system busy
.                 $U%$H@tcp_local-daemon
`),
		Channels: chans,
		Aliases:  al,
	})
}

func TestResolveOwner(t *testing.T) {
	rs := ownerConfig(t, nil)
	type rs2 struct{ addr, sender string }
	for _, tc := range []struct {
		addr string
		want []rs2
	}{
		// owner-list is the sender of list's copies; sub has its own owner, which
		// wins for sub's members (the innermost owned list).
		{"list@mail.example.net", []rs2{
			{"alice@mail.example.net", "owner-list@mail.example.net"},
			{"bob@remote.org", "owner-list@mail.example.net"},
			{"carol@mail.example.net", "owner-sub@mail.example.net"},
			{"dan@remote.org", "owner-sub@mail.example.net"},
		}},
		// Through an unowned list, sub still has its owner; erin has none.
		{"plain@mail.example.net", []rs2{
			{"erin@mail.example.net", ""},
			{"carol@mail.example.net", "owner-sub@mail.example.net"},
			{"dan@remote.org", "owner-sub@mail.example.net"},
		}},
		// The owner address keeps the domain the list was addressed at; sub is
		// reached as a bare name, so at the local host.
		{"LIST@hosted.example", []rs2{
			{"alice@mail.example.net", "owner-list@hosted.example"},
			{"bob@remote.org", "owner-list@hosted.example"},
			{"carol@mail.example.net", "owner-sub@mail.example.net"},
			{"dan@remote.org", "owner-sub@mail.example.net"},
		}},
		// A hosted list's owner is the hosted owner alias, as written.
		{"team@hosted.example", []rs2{{"frank@remote.org", "owner-team@hosted.example"}}},
		// Mailing the owner itself: an ordinary alias without an owner of its own.
		{"owner-list@mail.example.net", []rs2{{"listadmin@mail.example.net", ""}}},
		{"nobody@mail.example.net", []rs2{{"nobody@mail.example.net", ""}}},
		{"x@remote.org", []rs2{{"x@remote.org", ""}}},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			res := rs.Resolve(Request{Address: tc.addr, Trace: true})
			if res.Err != nil {
				t.Fatalf("%v\n%s", res.Err, traceText(res.Trace))
			}
			var got []rs2
			for _, r := range res.Recipients {
				got = append(got, rs2{r.Address, r.Sender})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %v\nwant %v\n%s", got, tc.want, traceText(res.Trace))
			}
		})
	}
}

func TestResolveExpandLimit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		set     func(*Channel)
		source  string
		addr    string
		defer_  bool
		channel string
	}{
		{"no keyword", nil, "tcp_local", "list@mail.example.net", false, ""},
		{"under the limit", func(c *Channel) { c.ExpandLimitSet, c.ExpandLimit = true, 4 }, "tcp_local", "list@mail.example.net", false, ""},
		{"over the limit", func(c *Channel) { c.ExpandLimitSet, c.ExpandLimit = true, 3 }, "tcp_local", "list@mail.example.net", true, "reprocess"},
		{"expandchannel", func(c *Channel) { c.ExpandLimitSet, c.ExpandLimit, c.ExpandChannel = true, 3, "process" }, "tcp_local", "list@mail.example.net", true, "process"},
		{"zero defers every alias", func(c *Channel) { c.ExpandLimitSet, c.ExpandLimit = true, 0 }, "tcp_local", "one@mail.example.net", true, "reprocess"},
		{"zero: not an alias", func(c *Channel) { c.ExpandLimitSet, c.ExpandLimit = true, 0 }, "tcp_local", "gina@mail.example.net", false, ""},
		{"zero: remote address", func(c *Channel) { c.ExpandLimitSet, c.ExpandLimit = true, 0 }, "tcp_local", "x@remote.org", false, ""},
		{"other source channel", func(c *Channel) { c.ExpandLimitSet, c.ExpandLimit = true, 0 }, "tcp_intranet", "list@mail.example.net", false, ""},
		{"local source never defers", func(c *Channel) { c.ExpandLimitSet, c.ExpandLimit = true, 0 }, "", "list@mail.example.net", false, ""},
		{"reprocess never defers", func(c *Channel) { c.ExpandLimitSet, c.ExpandLimit = true, 0 }, "reprocess", "list@mail.example.net", false, ""},
		{"negative means none", func(c *Channel) { c.ExpandLimitSet, c.ExpandLimit = true, -1 }, "tcp_local", "list@mail.example.net", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := ownerConfig(t, tc.set)
			res := rs.Resolve(Request{Address: tc.addr, SourceChannel: tc.source, Trace: true})
			if res.Err != nil {
				t.Fatalf("%v\n%s", res.Err, traceText(res.Trace))
			}
			if res.Deferred != tc.defer_ || res.ExpandChannel != tc.channel {
				t.Errorf("Deferred %v ExpandChannel %q, want %v %q\n%s", res.Deferred, res.ExpandChannel, tc.defer_, tc.channel, traceText(res.Trace))
			}
			if len(res.Recipients) == 0 {
				t.Errorf("no recipients listed")
			}
			// The keyword survives the image's binary form.
			data, err := rs.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var back RuleSet
			if err := back.UnmarshalBinary(data); err != nil {
				t.Fatal(err)
			}
			back.Attach(nil, rs.aliases)
			if got := back.Resolve(Request{Address: tc.addr, SourceChannel: tc.source}); got.Deferred != res.Deferred || got.ExpandChannel != res.ExpandChannel {
				t.Errorf("after binary round trip: %v %q", got.Deferred, got.ExpandChannel)
			}
		})
	}
}

func TestResolveCheckExpansions(t *testing.T) {
	rs := ownerConfig(t, nil)
	// Normal mode stops at the first failing target.
	res := rs.Resolve(Request{Address: "bad@mail.example.net"})
	if res.Err == nil || res.Err.Enhanced != "5.1.3" || res.Failures != nil || res.Recipients != nil {
		t.Fatalf("normal: err %v failures %v recipients %v", res.Err, res.Failures, res.Recipients)
	}
	res = rs.Resolve(Request{Address: "bad@mail.example.net", CheckExpansions: true, Trace: true})
	type f struct{ alias, target, code string }
	var got []f
	for _, x := range res.Failures {
		got = append(got, f{x.Alias, x.Target, x.Err.Enhanced})
		if x.Src != "aliases:9" && x.Src != "aliases:11" {
			t.Errorf("failure %+v: src %q", x, x.Src)
		}
	}
	want := []f{{"bad", "u@a..b", "5.1.3"}, {"bad", "u@later.example", "4.2.0"}, {"loop2", "loop1", "5.4.6"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("failures\n got %v\nwant %v\n%s", got, want, traceText(res.Trace))
	}
	if res.Err == nil || res.Err != res.Failures[0].Err || len(res.Recipients) != 0 {
		t.Errorf("Err %v (want the first failure), recipients %v", res.Err, res.Recipients)
	}
	// A sound alias has no failures in check mode.
	res = rs.Resolve(Request{Address: "list@mail.example.net", CheckExpansions: true})
	if res.Err != nil || len(res.Failures) != 0 || len(res.Recipients) != 4 {
		t.Errorf("sound alias: %v %v %v", res.Err, res.Failures, res.Recipients)
	}
}

// TestResolveSelfAndNothing checks the product's self-reference rule ("list: list, x"
// expands to the mailbox list plus x) and the error of an alias that produces no
// address.
func TestResolveSelfAndNothing(t *testing.T) {
	needMappings(t)
	al := compileAliases(t,
		mappings.AliasSource{Name: "list", Targets: []string{"list", "x@remote.org", "y"}, Src: "aliases:1"},
		mappings.AliasSource{Name: "outer", Targets: []string{"list"}, Src: "aliases:2"},
	)
	rs := mustCompile(t, Config{
		Rules:    rulesFrom("mail.example.net  $U%$D@mail.example.net\n.  $U%$H@tcp_local-daemon\n"),
		Channels: []Channel{ch("l", "mail.example.net"), ch("tcp_local", "tcp_local-daemon")},
		Aliases:  al,
	})
	for addr, want := range map[string]string{
		"list@mail.example.net":  "list@mail.example.net|list x@remote.org|list y@mail.example.net|list",
		"outer@mail.example.net": "list@mail.example.net|outer,list x@remote.org|outer,list y@mail.example.net|outer,list",
	} {
		res := rs.Resolve(Request{Address: addr})
		var got []string
		for _, r := range res.Recipients {
			got = append(got, r.Address+"|"+strings.Join(r.Via, ","))
		}
		if res.Err != nil || strings.Join(got, " ") != want {
			t.Errorf("%s: %v %q, want %q", addr, res.Err, strings.Join(got, " "), want)
		}
	}
	if st := noAddress("staff"); st.Code != 550 || st.Enhanced != "5.1.1" || !strings.HasSuffix(st.Text, "alias staff expands to no address") {
		t.Errorf("noAddress: %v", st)
	}
}

// TestResolveQuotedRoutingMailbox: a quoted local part carrying routing characters
// never becomes a local mailbox (it would be a relay once parsed unquoted).
func TestResolveQuotedRoutingMailbox(t *testing.T) {
	rs := compileRules(t, "mail.example.net $U%$D@mail.example.net\n. $U%$H@tcp_local-daemon",
		[]Channel{ch("l", "mail.example.net"), ch("tcp_local", "tcp_local-daemon")})
	for _, addr := range []string{
		`"user@remote.example"@mail.example.net`,
		`"user%remote.example"@mail.example.net`,
		`"remote.example!user"@mail.example.net`,
	} {
		res := rs.Resolve(Request{Address: addr})
		if res.Err == nil || res.Err.Code != 550 || res.Err.Enhanced != "5.1.1" {
			t.Errorf("%s: %v %v, want 550 5.1.1", addr, res.Err, res.Recipients)
		}
	}
	if res := rs.Resolve(Request{Address: `"john smith"@mail.example.net`}); res.Err != nil || len(res.Recipients) != 1 {
		t.Errorf("ordinary quoted local part: %v", res.Err)
	}
}
