package engine

import (
	"strings"
	"testing"

	"mtad.dev/mta/mappings"
)

func testChannels() []Channel {
	l := ch("l", "mail.example.net", "localhost")
	norules := ch("norules_in", "norules-daemon")
	norules.Rules = false
	rl := ch("gw", "gw-route")
	rl.RouteLocal = true
	return []Channel{
		l,
		ch("tcp_local", "tcp_local-daemon"),
		ch("out", "out-daemon", "relay-daemon", "OTHER.example"),
		ch("verify", "verify-daemon"),
		ch("reprocess", "reprocess-daemon"),
		ch("uucp", "uucp-daemon", "uuhost uuhost.example.org"),
		ch("siroenet", "siroenet"),
		norules,
		rl,
	}
}

type rwCase struct {
	name    string
	rules   string // the rule section; line 1 is imta.cnf:1
	addr    string
	kind    Kind
	source  string
	dest    string
	want    string // result address; "" when an error is expected
	channel string
	errCode string // enhanced status expected
	errText string // prefix of the expected error text
	trace   string // a substring the trace must contain
}

func runCases(t *testing.T, cfg Config, cases []rwCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			c.Rules = rulesFrom(tc.rules)
			if c.Channels == nil {
				c.Channels = testChannels()
			}
			rs := mustCompile(t, c)
			res := rs.Rewrite(Request{Address: tc.addr, Kind: tc.kind, SourceChannel: tc.source, DestChannel: tc.dest, Trace: true})
			tr := traceText(res.Trace)
			if tc.trace != "" && !strings.Contains(tr, tc.trace) {
				t.Errorf("trace lacks %q:\n%s", tc.trace, tr)
			}
			if tc.errCode != "" {
				if res.Err == nil || res.Err.Enhanced != tc.errCode || !strings.HasPrefix(res.Err.Text, tc.errText) {
					t.Fatalf("err %v, want %s %q...\n%s", res.Err, tc.errCode, tc.errText, tr)
				}
				return
			}
			if res.Err != nil {
				t.Fatalf("unexpected error %v\n%s", res.Err, tr)
			}
			if res.Address != tc.want || (tc.channel != "" && res.Channel != tc.channel) {
				t.Errorf("got %q channel %q, want %q channel %q\n%s", res.Address, res.Channel, tc.want, tc.channel, tr)
			}
		})
	}
}

const fallback = "\n.  $U%$H@tcp_local-daemon\n"

func TestSubstitutions(t *testing.T) {
	runCases(t, Config{}, []rwCase{
		{name: "$U quoted dot", rules: "x.org $U%$D@out-daemon", addr: `a."b"@x.org`, want: `"a.b"@x.org`},
		{name: "$U quoted space", rules: "x.org $U%$D@out-daemon", addr: `"a b"@x.org`, want: `"a b"@x.org`},
		{name: "$0U $1U", rules: "x.org $0U%$D@out-daemon", addr: "jdoe+news@x.org", want: "jdoe@x.org"},
		{name: "$1U", rules: "x.org $0U$1U.sub%$D@out-daemon", addr: "jdoe+news@x.org", want: "jdoe+news.sub@x.org"},
		{name: "$1U empty", rules: "x.org $U%$1U$D@out-daemon", addr: "jdoe@x.org", want: "jdoe@x.org"},
		{name: "$D $H dot pattern", rules: ".siroe.com $U%$D.$H@out-daemon", addr: "u@a.b.siroe.com", want: "u@.siroe.com.a.b"},
		{name: "$H exact empty", rules: "a.org $U%x$H$D@out-daemon", addr: "u@a.org", want: "u@xa.org"},
		{name: "$1D exact", rules: "host.sesta.com $U%$1D@out-daemon", addr: "u@host.sesta.com", want: "u@sesta.com"},
		{name: "$1D dot", rules: ".siroe.com $U%$1D@out-daemon", addr: "u@a.siroe.com", want: "u@.com"},
		{name: "$1H", rules: ".c $U%$1H@out-daemon", addr: "u@a.b.c", want: "u@b"},
		{name: "$2H missing is empty", rules: ".c $U%z$2H@out-daemon", addr: "u@a.b.c", want: "u@z"},
		{name: "$&n $!n", rules: ".c $U%$&0-$&1-$!0-$!1@out-daemon", addr: "u@a.b.c", want: "u@a-b-b-a"},
		{name: "$*n $#n", rules: ".siroe.com $U%$*0-$*1-$#0@out-daemon", addr: "u@a.siroe.com", want: "u@siroe-com-com"},
		{name: "star pattern $H $D", rules: "*.siroe.com $U%$H$D@out-daemon", addr: "u@a.siroe.com", want: "u@a.siroe.com"},
		{name: "$&n missing fails", rules: ".c $U%$&5@out-daemon" + fallback, addr: "u@a.b.c", want: "u@a.b.c", channel: "tcp_local", trace: "$&5: no such label"},
		{name: "$#n missing fails", rules: ".c $U%$#3@out-daemon" + fallback, addr: "u@a.b.c", want: "u@a.b.c", channel: "tcp_local", trace: "failed"},
		{name: "$nA", rules: "x.org $U%$0A$2A@out-daemon", addr: "u@x.org", want: "u@ux"},
		{name: "$nA beyond fails", rules: "x.org $U%$99A@out-daemon" + fallback, addr: "u@x.org", want: "u@x.org", channel: "tcp_local"},
		{name: "$nX", rules: ".c $U%$1X.$0X@out-daemon", addr: "u@a.b.c", want: "u@b.a"},
		{name: "literals $$ $% $@", rules: "x.org $U%a$$b$%c$@d@out-daemon", addr: "u@x.org", want: "u@a$b%c@d"},
		{name: "case", rules: ".c $U%$\\$H$_.$^x$D@out-daemon", addr: "u@AB.Cd.c", want: "u@ab.cd.X.C"},
		{name: "$= no-op", rules: "x.org $U%$=$D@out-daemon", addr: "u@x.org", want: "u@x.org"},
		{name: "$L literal", rules: "[10.] $U%[$L]@out-daemon", addr: "u@[10.1.2.3]", want: "u@[1.2.3]"},
		{name: "$L []", rules: "[] $U%[$L]@out-daemon", addr: "u@[10.1.2.3]", want: "u@[10.1.2.3]"},
		{name: "[*.*.*.*]", rules: "[*.*.*.*] $U%$D@out-daemon", addr: "u@[10.1.2.3]", want: "u@[10.1.2.3]"},
		{name: "lowercase letters", rules: "x.org $u%$d@out-daemon", addr: "u@x.org", want: "u@x.org"},
	})
}

func TestAnyRuleOncePerSpec(t *testing.T) {
	rs := compileRules(t, "x.org $U%$D@out-daemon\n$* $U%$H", testChannels())
	res := rs.Rewrite(Request{Address: "u@x.org", Trace: true})
	n := 0
	for _, p := range probes(res.Trace) {
		if p == "$*" {
			n++
		}
	}
	if n != 1 || res.Channel != "out" {
		t.Errorf("$* probed %d times, channel %q\n%s", n, res.Channel, traceText(res.Trace))
	}
	// A new spec of the same address (after a local route) gets $* again.
	rs = compileRules(t, "mail.example.net $U%$D@mail.example.net\n$* $U%$H\n. $U%$H@out-daemon", testChannels())
	res = rs.Rewrite(Request{Address: "u%x.org@mail.example.net", Trace: true})
	n = 0
	for _, p := range probes(res.Trace) {
		if p == "$*" {
			n++
		}
	}
	if n != 2 || res.Address != "u@x.org" || res.Channel != "out" {
		t.Errorf("$* probed %d times, %+v\n%s", n, res, traceText(res.Trace))
	}
}

func TestSubaddressChar(t *testing.T) {
	rs := mustCompile(t, Config{Rules: rulesFrom("x.org $0U%$D@out-daemon"), Channels: testChannels(), Options: Options{SubaddressChar: '-'}})
	if res := rs.Rewrite(Request{Address: "jdoe-news+x@x.org"}); res.Address != "jdoe@x.org" {
		t.Errorf("SubaddressChar '-': %+v", res)
	}
}

func TestRandom(t *testing.T) {
	rs := compileRules(t, "x.org $U%$W.$D@out-daemon", testChannels())
	a := rs.Rewrite(Request{Address: "u@x.org"})
	b := rs.Rewrite(Request{Address: "u@x.org"})
	if a.Err != nil || b.Err != nil || a.Address == b.Address || !strings.HasSuffix(a.Address, ".x.org") || len(a.Address) < len("u@a.x.org") {
		t.Errorf("$W: %q %q", a.Address, b.Address)
	}
}

func TestTemplateForms(t *testing.T) {
	runCases(t, Config{}, []rwCase{
		{name: "A%B@C", rules: "x.org $U%y.org@out-daemon", addr: "u@x.org", want: "u@y.org", channel: "out"},
		{name: "A@B", rules: "x.org $U@relay-daemon", addr: "u@x.org", want: "u@relay-daemon", channel: "out"},
		{name: "A@B@C", rules: "x.org $U@$D@relay-daemon", addr: "u@x.org", want: "@relay-daemon:u@x.org", channel: "out"},
		{name: "A@B@C@D", rules: "com1 $U@com1@gw.example.net@out-daemon", addr: "jdoe@com1", want: "@gw.example.net:jdoe@com1", channel: "out"},
		{name: "A%B again", rules: ".strip $U%$H\nx.org $U%$D@out-daemon", addr: "u@x.org.strip", want: "u@x.org", channel: "out", trace: "A%B pass 1"},
		{name: "dot: $D is a dot", rules: ". $U%$H$D@tcp_local-daemon", addr: "pat@foo.bar", want: "pat@foo.bar.", channel: "tcp_local"},
		{name: "$* first wherever it is, once", rules: "x.org $U%$D@out-daemon\n$* $U%$H", addr: "u@x.org", want: "u@x.org", channel: "out", trace: "A%B pass 1"},
		{name: "$* conditions", rules: "x.org $U%$D@out-daemon\n$* $E$R$U%$H@tcp_local-daemon", addr: "u@x.org", kind: EnvelopeFrom, want: "u@x.org", channel: "tcp_local"},
		{name: "$* conditions fail", rules: "x.org $U%$D@out-daemon\n$* $E$R$U%$H@tcp_local-daemon", addr: "u@x.org", want: "u@x.org", channel: "out"},
		{name: "A%B no $* rerun", rules: "$* $U%$H.x@out-daemon$Nnever\n.strip $U%$H\nx.org $U%$D@out-daemon", addr: "u@x.org.strip", want: "u@x.org.strip.x", channel: "out"},
		{name: "channel host case-insensitive", rules: "x.org $U%$D@OUT-Daemon", addr: "u@x.org", want: "u@x.org", channel: "out"},
		{name: "extra host name", rules: "x.org $U%$D@other.EXAMPLE", addr: "u@x.org", want: "u@x.org", channel: "out"},
		{name: "channel table before loop", rules: ". $U%$H@tcp_local-daemon", addr: "u@relay-daemon", want: "u@relay-daemon", channel: "out"},
		{name: "exact rule before channel table", rules: "relay-daemon $U%$D@tcp_local-daemon", addr: "u@relay-daemon", want: "u@relay-daemon", channel: "tcp_local"},
		{name: "channel table consulted under a tag", rules: "x $U%$D@localhost$Tt|\nt|. $U%$H@tcp_local-daemon", addr: "u%relay-daemon@x", want: "u@relay-daemon", channel: "out"},
		{name: "tag rules for other hosts", rules: "x $U%$D@localhost$Tt|\nt|. $U%$H@tcp_local-daemon", addr: "u%a.org@x", want: "u@a.org", channel: "tcp_local"},
		{name: "nothing matched, spec is routing host", rules: "x.org $U%$D@out-daemon", addr: "u@RELAY-daemon", want: "u@RELAY-daemon", channel: "out"},
		{name: "nothing matched, unknown host", rules: "x.org $U%$D@out-daemon", addr: "u@y.org", errCode: "5.1.2", errText: "unknown host or domain"},
		{name: "routing host not a channel", rules: "x.org $U%$D@nowhere", addr: "u@x.org", errCode: "5.1.2", errText: "unknown host or domain"},
		{name: "proper name on envelope To", rules: ". $U%$H@tcp_local-daemon", addr: "joe@UUHOST", want: "joe@uuhost.example.org", channel: "uucp"},
		{name: "proper name not on header", rules: ". $U%$H@tcp_local-daemon", addr: "joe@uuhost", kind: HeaderTo, want: "joe@uuhost", channel: "uucp"},
		{name: "routelocal drops route", rules: ". $U%$H@tcp_local-daemon", addr: "@gw-route:u@x.org", want: "u@x.org", channel: "tcp_local"},
		{name: "local re-extraction of route", rules: ". $U%$H@tcp_local-daemon", addr: "@mail.example.net,@a.org:u@x.org", want: "@a.org:u@x.org", channel: "tcp_local", trace: "dropped, re-extracting"},
		{name: "unmatched literal hop dropped", rules: "x.org $U%$D@out-daemon", addr: "@[192.0.2.1]:u@x.org", want: "u@x.org", channel: "out", trace: "matched nothing: dropped"},
		{name: "unmatched literal, nothing left", rules: "x.org $U%$D@out-daemon", addr: "u@[192.0.2.1]", errCode: "5.1.2"},
		{name: "route hop rewritten", rules: "a.org $U%b.org@out-daemon", addr: "@a.org:u@x.org", want: "@b.org:u@x.org", channel: "out"},
		{name: "local keeps rewrite without more specs", rules: "mail.example.net $U%$D@mail.example.net", addr: "u@mail.example.net", want: "u@mail.example.net", channel: "l"},
	})
}

func TestConditions(t *testing.T) {
	two := "x.org $U%$D@out-daemon%s" + fallback
	r := func(cond string) string { return strings.Replace(two, "%s", cond, 1) }
	runCases(t, Config{}, []rwCase{
		{name: "$E envelope To", rules: r("$E"), addr: "u@x.org", kind: EnvelopeTo, want: "u@x.org", channel: "out"},
		{name: "$E envelope From", rules: r("$E"), addr: "u@x.org", kind: EnvelopeFrom, want: "u@x.org", channel: "out"},
		{name: "$E header", rules: r("$E"), addr: "u@x.org", kind: HeaderTo, want: "u@x.org", channel: "tcp_local", trace: "$E: not an envelope address"},
		{name: "$B header", rules: r("$B"), addr: "u@x.org", kind: HeaderFrom, want: "u@x.org", channel: "out"},
		{name: "$B envelope", rules: r("$B"), addr: "u@x.org", kind: EnvelopeTo, want: "u@x.org", channel: "tcp_local"},
		{name: "$F header To", rules: r("$F"), addr: "u@x.org", kind: HeaderTo, want: "u@x.org", channel: "out"},
		{name: "$F envelope From", rules: r("$F"), addr: "u@x.org", kind: EnvelopeFrom, want: "u@x.org", channel: "tcp_local"},
		{name: "$R envelope From", rules: r("$R"), addr: "u@x.org", kind: EnvelopeFrom, want: "u@x.org", channel: "out"},
		{name: "$R envelope To", rules: r("$R"), addr: "u@x.org", kind: EnvelopeTo, want: "u@x.org", channel: "tcp_local"},
		{name: "$E$F", rules: r("$E$F"), addr: "u@x.org", kind: HeaderTo, want: "u@x.org", channel: "tcp_local"},
		{name: "$A right of @", rules: r("$A"), addr: "u@x.org", want: "u@x.org", channel: "out"},
		{name: "$P not right of @", rules: r("$P"), addr: "u@x.org", want: "u@x.org", channel: "tcp_local", trace: "location condition"},
		{name: "$P right of %", rules: r("$P"), addr: "u%x.org@localhost", want: "u@x.org", channel: "out"},
		{name: "$S$P either", rules: r("$S$P"), addr: "@x.org:u@y.org", want: "@x.org:u@y.org", channel: "out"},
		{name: "$X left of !", rules: r("$X"), addr: "x.org!u", want: "u@x.org", channel: "out"},
		{name: "$M hit", rules: r("$Mtcp_local"), addr: "u@x.org", source: "tcp_local", want: "u@x.org", channel: "out"},
		{name: "$M miss", rules: r("$Mtcp_local"), addr: "u@x.org", source: "verify", want: "u@x.org", channel: "tcp_local", trace: "$Mtcp_local (source channel is verify)"},
		{name: "$M several any", rules: r("$Mtcp_local$Mverify"), addr: "u@x.org", source: "verify", want: "u@x.org", channel: "out"},
		{name: "$M default source is local", rules: r("$Ml"), addr: "u@x.org", want: "u@x.org", channel: "out"},
		{name: "$N hit fails", rules: r("$Nverify"), addr: "u@x.org", source: "VERIFY", want: "u@x.org", channel: "tcp_local"},
		{name: "$N other ok", rules: r("$Nverify"), addr: "u@x.org", source: "tcp_local", want: "u@x.org", channel: "out"},
		{name: "norules source ignores $N", rules: r("$Nnorules_in"), addr: "u@x.org", source: "norules_in", want: "u@x.org", channel: "out"},
		{name: "$Q ignored for envelope To", rules: r("$Qverify"), addr: "u@x.org", dest: "tcp_local", want: "u@x.org", channel: "out"},
		{name: "$Q header hit", rules: r("$Qverify"), addr: "u@x.org", kind: HeaderTo, dest: "verify", want: "u@x.org", channel: "out"},
		{name: "$Q header miss", rules: r("$Qverify"), addr: "u@x.org", kind: HeaderTo, dest: "tcp_local", want: "u@x.org", channel: "tcp_local"},
		{name: "$C ignored for envelope To", rules: r("$Cverify"), addr: "u@x.org", dest: "verify", want: "u@x.org", channel: "out"},
		{name: "$C header hit fails", rules: r("$Cverify"), addr: "u@x.org", kind: EnvelopeFrom, dest: "verify", want: "u@x.org", channel: "tcp_local"},
		{name: "$C norules destination", rules: r("$Cnorules_in"), addr: "u@x.org", kind: EnvelopeFrom, dest: "norules_in", want: "u@x.org", channel: "out"},
		{name: "$1M reprocess", rules: r("$1M"), addr: "u@x.org", source: "reprocess", want: "u@x.org", channel: "out"},
		{name: "$1M other", rules: r("$1M"), addr: "u@x.org", source: "tcp_local", want: "u@x.org", channel: "tcp_local"},
		{name: "$1N reprocess", rules: r("$1N"), addr: "u@x.org", source: "reprocess", want: "u@x.org", channel: "tcp_local"},
		{name: "$1N other", rules: r("$1N"), addr: "u@x.org", source: "tcp_local", want: "u@x.org", channel: "out"},
		// The doc's pitfall: the argument of $N runs to the %, so the name is "verify$U"
		// and $U is swallowed.
		{name: "channel name scoping", rules: "x.org $Nverify$U%$D@out-daemon" + fallback, addr: "u@x.org", source: "verify", want: "@x.org", channel: "out"},
		{name: "$1~ checks fail: template ends", rules: "x.org $U%$D@reprocess-daemon$Mtcp_local$1~-error$4000000?Temporary lookup failure", addr: "u@x.org", source: "verify", want: "u@x.org", channel: "reprocess"},
		{name: "$1~ checks pass: continue", rules: "x.org $U%$D@reprocess-daemon$Mtcp_local$1~-error$4000000?Temporary lookup failure", addr: "u@x.org", source: "tcp_local", errCode: "4.0.0", errText: "Temporary lookup failure"},
		{name: "identical patterns fall through", rules: "x.org $U%$D@verify-daemon$Mnone\nx.org $U%$D@out-daemon$Mnone2\nx.org $U%$D@reprocess-daemon", addr: "u@x.org", want: "u@x.org", channel: "reprocess"},
	})
}

func TestActions(t *testing.T) {
	tags := "internet $S$U@localhost$Ttcp-force|\ntcp-force|. $U%$H@tcp_local-daemon\n. $U%$H@out-daemon"
	runCases(t, Config{}, []rwCase{
		{name: "tag forces rule set", rules: tags, addr: "@internet:u@b.org", want: "u@b.org", channel: "tcp_local", trace: `probe "tcp-force|b.org"`},
		{name: "no tag", rules: tags, addr: "u@b.org", want: "u@b.org", channel: "out"},
		{name: "tag with no rules: nothing matches", rules: "x.org $U%$D@localhost$Tnone|\n. $U%$H@out-daemon", addr: "@x.org:u@y.org", errCode: "5.1.2", trace: `probe "none|."`},
		{name: "$? sticky text", rules: ".org $U%$H$D@nowhere$?Org hosts are blocked", addr: "u@a.org", errCode: "5.1.2", errText: "Org hosts are blocked"},
		{name: "$? text with spaces and @", rules: ".org $?Write to postmaster@example.net, please", addr: "u@a.org", errCode: "5.1.2", errText: "Write to postmaster@example.net, please"},
		{name: "$? only, host is a channel", rules: "relay-daemon $?never shown", addr: "u@relay-daemon", want: "u@relay-daemon", channel: "out"},
		{name: "$nnnnnnn?", rules: ".org $4001002?Try later", addr: "u@a.org", errCode: "4.1.2", errText: "Try later"},
		{name: "$? sticky across specs", rules: "x.org $U%$D@localhost$?Nope\n.org $U%$H$D@nowhere", addr: "u%y.org@x.org", errCode: "5.1.2", errText: "Nope"},
		{name: "A%B loop guard", rules: ".loop $U%$H$D", addr: "u@a.loop", errCode: "4.4.6", errText: "rewrite loop", trace: "rewrite loop"},
		{name: "unknown host text option", rules: "x.org $U%$D@out-daemon", addr: "u@nowhere.org", errCode: "5.1.2", errText: "unknown host or domain"},
	})
	rs := mustCompile(t, Config{Rules: rulesFrom(".org $4001002?Try later"), Channels: testChannels()})
	if res := rs.Rewrite(Request{Address: "u@a.org"}); res.Err == nil || !res.Err.Temporary() || res.Err.Code != 450 {
		t.Errorf("$4001002?: %v, want temporary 450", res.Err)
	}
	rs = mustCompile(t, Config{Rules: rulesFrom(".loop $U%$H$D"), Channels: testChannels()})
	if res := rs.Rewrite(Request{Address: "u@a.loop"}); res.Err == nil || !res.Err.Temporary() {
		t.Errorf("loop: %v, want temporary", res.Err)
	}
	rs = mustCompile(t, Config{Rules: rulesFrom("x.org $U%$D@out-daemon"), Channels: testChannels(), Options: Options{UnknownHostText: "no such place"}})
	if res := rs.Rewrite(Request{Address: "u@y.org"}); res.Err == nil || res.Err.Text != "no such place" {
		t.Errorf("ERROR_TEXT_UNKNOWN_HOST: %v", res.Err)
	}
}

func TestGeneralDatabase(t *testing.T) {
	cfg := Config{General: map[string]string{
		"ENG":     "$u%eng.siroe.com@siroenet",
		"nested":  "$U%$(eng)@siroenet",
		"counted": "$U%$H.counted@out-daemon",
	}}
	runCases(t, cfg, []rwCase{
		{name: "doc example", rules: ".SIROENET $($H)", addr: "jdoe@eng.siroenet", want: "jdoe@eng.siroe.com", channel: "siroenet"},
		{name: "miss fails the rule", rules: ".siroenet $($H)" + fallback, addr: "jdoe@other.siroenet", want: "jdoe@other.siroenet", channel: "tcp_local", trace: "not in the general database"},
		{name: "no further $(..)", rules: ".siroenet $($H)" + fallback, addr: "jdoe@nested.siroenet", want: "jdoe@$(eng)", channel: "siroenet"},
		{name: "part of template", rules: ".x $(counted)", addr: "jdoe@a.x", want: "jdoe@a.counted", channel: "out"},
	})
}

func TestMappingCallout(t *testing.T) {
	needMappings(t)
	set := compileTables(t, mappings.TableSource{Name: "ROUTES", Src: "mappings:1", Entries: []mappings.EntrySource{
		{Pattern: "x.org", Template: "relay-daemon$Y", Src: "mappings:2"},
		{Pattern: "y.org", Template: "relay-daemon", Src: "mappings:3"},
		{Pattern: "z.org", Template: "$$U%z.example@out-daemon$Y", Src: "mappings:4"},
	}})
	cfg := Config{Mappings: set}
	runCases(t, cfg, []rwCase{
		{name: "result with $Y", rules: ".org $U%$H$D@${routes,$H$D}" + fallback, addr: "u@x.org", want: "u@x.org", channel: "out", trace: "${routes,x.org}"},
		{name: "no $Y fails", rules: ".org $U%$H$D@${routes,$H$D}" + fallback, addr: "u@y.org", want: "u@y.org", channel: "tcp_local", trace: "did not set $Y"},
		{name: "no match fails", rules: ".org $U%$H$D@${routes,$H$D}" + fallback, addr: "u@w.org", want: "u@w.org", channel: "tcp_local"},
		{name: "no table fails", rules: ".org $U%$H$D@${nosuch,$H$D}" + fallback, addr: "u@x.org", want: "u@x.org", channel: "tcp_local", trace: "no mapping table"},
		{name: "output re-expanded", rules: ".org ${routes,$H$D}" + fallback, addr: "u@z.org", want: "u@z.example", channel: "out"},
	})
	rs := mustCompile(t, Config{Rules: rulesFrom(".org $U%$H$D@${routes,$H$D}" + fallback), Channels: testChannels()})
	if res := rs.Rewrite(Request{Address: "u@x.org"}); res.Channel != "tcp_local" {
		t.Errorf("no mappings attached: %+v", res)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct{ tmpl, want string }{
		{"$U%$D@${map,$H", "imta.cnf:1: unterminated ${"},
		{"$U%$D@$(key", "imta.cnf:1: unterminated $("},
		{"$U%$D@$[lib,rtn", "imta.cnf:1: unterminated $["},
		{"$U%$D@$]ldap:///o=x", "imta.cnf:1: unterminated $]"},
		{"$U%$D@$[lib,rtn,$H]", "imta.cnf:1: $[...] site callouts are not supported"},
		{"$U%$D@$]ldap:///o=x?mailRoutingSystem?sub?(mailDomain=$D)[", "imta.cnf:1: $]...[ LDAP lookups are not supported"},
		{"$U%$D@x$V$D", "imta.cnf:1: $V directory domain checks are not supported"},
		{"$U%$D@x$Z$D", "imta.cnf:1: $Z directory domain checks are not supported"},
		{"$U%$D@x$.failed", "imta.cnf:1: $. LDAP failure text is not supported"},
		{"$5U%$D@x", "imta.cnf:1: $5U: only $0U and $1U exist"},
		{"$U%$D@x$123?text", "imta.cnf:1: $123?: the status must have seven digits (x00y00z)"},
		{"$U$D", "imta.cnf:1: template has no % or @ separator"},
		{"$U@a@b@c@d", "imta.cnf:1: template has more than three @ separators"},
		{"$U%$D@x $N", "imta.cnf:1: whitespace in template"},
		{"$U%$D@x$K", "imta.cnf:1: unknown substitution $K"},
		{"$U%$D@x$", "imta.cnf:1: template ends with a lone $"},
		{"$U%$D@x$M", "imta.cnf:1: $M needs a channel name"},
		{"$U%$&@x", "imta.cnf:1: $& needs a label number 0-9"},
		{"$U%${nocomma}@x", "imta.cnf:1: ${nocomma}: expected ${mapping,argument}"},
		{"", "imta.cnf:1: rewrite rule \"x.org\" has no template"},
	} {
		_, errs := Compile(Config{Rules: []RuleSource{{Pattern: "x.org", Template: tc.tmpl, Src: "imta.cnf:1"}}, Channels: testChannels()})
		if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), tc.want) {
			t.Errorf("%q: errors %v, want %q", tc.tmpl, errs, tc.want)
			continue
		}
		if _, ok := errs[0].(*SourceError); !ok {
			t.Errorf("%q: %T, want *SourceError", tc.tmpl, errs[0])
		}
	}
	// Several bad rules: all reported, good rules kept.
	_, errs := Compile(Config{Rules: rulesFrom("a $U%$D@x$V\nb $U%$D@out-daemon\nc $U%$D@$(k"), Channels: testChannels()})
	if len(errs) != 2 || !strings.HasPrefix(errs[0].Error(), "imta.cnf:1:") || !strings.HasPrefix(errs[1].Error(), "imta.cnf:3:") {
		t.Errorf("errors %v", errs)
	}
	// Duplicate host names in the channel table.
	chans := append(testChannels(), ch("dup", "OUT-daemon"))
	_, errs = Compile(Config{Channels: chans})
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `duplicate host in channel table: "OUT-daemon" (first at imta.cnf:100)`) {
		t.Errorf("duplicate host: %v", errs)
	}
}

// FuzzCompileRule: any pattern/template either compiles to a rule that rewrites
// without panicking, or yields a *SourceError at the rule's position.
func FuzzCompileRule(f *testing.F) {
	for _, r := range rulesFrom(section8Rules) {
		f.Add(r.Pattern, r.Template, "u@a.b.c")
	}
	f.Add(".org", "$U%$H$D@${routes,$H$D}$Mx$Ny$Qz$Cw$1M$1N$1~$Tt|$?text", "u%x.org@y")
	f.Add("x", "$($H)$\\$^$_$W$0A$1X$&0$!1$*2$#3$L$=", "u@x")
	f.Add("[1.]", "$U%[$L]@$4001002?busy", "u@[1.2.3.4]")
	cfg := Config{Channels: testChannels(), General: map[string]string{"x": "$U%$D@out-daemon", "y": "$(x)", "z": "$U%$H"}}
	f.Fuzz(func(t *testing.T, pattern, tmpl, addr string) {
		c := cfg
		c.Rules = []RuleSource{{Pattern: pattern, Template: tmpl, Src: "imta.cnf:7"}, {Pattern: ".", Template: "$U%$H@tcp_local-daemon", Src: "imta.cnf:8"}}
		rs, errs := Compile(c)
		for _, err := range errs {
			if se, ok := err.(*SourceError); !ok || se.Src != "imta.cnf:7" {
				t.Fatalf("error %v is not a SourceError at imta.cnf:7", err)
			}
		}
		if len(errs) > 0 {
			return
		}
		res := rs.Rewrite(Request{Address: addr, Trace: true})
		if res.Err == nil && res.Channel == "" {
			t.Fatalf("no channel and no error")
		}
		rs.Resolve(Request{Address: addr})
		data, err := rs.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var d RuleSet
		if err := d.UnmarshalBinary(data); err != nil {
			t.Fatalf("round trip: %v", err)
		}
	})
}
