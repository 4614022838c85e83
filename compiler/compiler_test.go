package compiler

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"mtad.dev/mta/cnf"
	"mtad.dev/mta/engine"
)

// build parses an in-memory configuration and checks it.
func build(t *testing.T, files map[string]string) Report {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	r, err := CheckFS(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const baseIMTA = `example.com   $U%$D@mail.example.com
.             $U%$H@tcp-daemon

l
mail.example.com

tcp_local smtp mx
tcp-daemon
`

const basePools = "[POOL=DEFAULT]\nJOB_LIMIT=10\n[POOL=SMTP_POOL]\nJOB_LIMIT=5\n[POOL=SLOW]\nJOB_LIMIT=3\n"

func messages(l cnf.ErrorList) []string {
	var out []string
	for _, e := range l {
		out = append(out, e.Error())
	}
	return out
}

func TestParsePeriod(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"pt30m", 30 * time.Minute, true},
		{"PT1H30M", 90 * time.Minute, true},
		{"p1d", 24 * time.Hour, true},
		{"P1DT2H", 26 * time.Hour, true},
		{"pt45s", 45 * time.Second, true},
		{"p1w", 7 * 24 * time.Hour, true},
		{"pt5x", 0, false},
		{"p", 0, false},
		{"pt", 0, false},
		{"30m", 0, false},
		{"p1h", 0, false}, // hours need the T
		{"pt0m", 0, false},
		{"pt1m2", 0, false},
	}
	for _, tc := range cases {
		got, err := ParsePeriod(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParsePeriod(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseInt(t *testing.T) {
	cases := []struct {
		in   string
		want int
		ok   bool
	}{
		{"42", 42, true}, {"16%FF", 255, true}, {"8%17", 15, true}, {"2%101", 5, true},
		{" 7 ", 7, true}, {"x", 0, false}, {"1%1", 0, false}, {"16%GG", 0, false},
	}
	for _, tc := range cases {
		got, err := ParseInt(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseInt(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestWindow(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2026, 1, 1, h, m, 0, 0, time.UTC) }
	cases := []struct {
		win  string
		t    time.Time
		want bool
	}{
		{"08:00-20:00", at(8, 0), true},
		{"08:00-20:00", at(19, 59), true},
		{"08:00-20:00", at(20, 0), false},
		{"22:00-06:00", at(23, 0), true},
		{"22:00-06:00", at(5, 59), true},
		{"22:00-06:00", at(12, 0), false},
		{"20:00-24:00", at(23, 59), true},
	}
	for _, tc := range cases {
		w, err := ParseWindow(tc.win)
		if err != nil {
			t.Fatalf("ParseWindow(%q): %v", tc.win, err)
		}
		if got := w.Contains(tc.t); got != tc.want {
			t.Errorf("%s contains %s = %v, want %v", tc.win, tc.t.Format("15:04"), got, tc.want)
		}
	}
	for _, bad := range []string{"8-20", "25:00-26:00", "08:00", "08:60-09:00", "aa:bb-cc:dd"} {
		if _, err := ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q) accepted", bad)
		}
	}
	if !(Window{}).Contains(at(3, 0)) {
		t.Error("the zero window must be always open")
	}
}

func TestKeywordLookup(t *testing.T) {
	cases := []struct {
		in   string
		want string
		ok   bool
	}{
		{"MaxJobs", "maxjobs", true},
		{"SINGLE_SYS", "single_sys", true},
		{"disconnecttransactionlimit", "disconnecttransactionlimit", true},
		{"dentnonenumeric", "", false},
	}
	for _, tc := range cases {
		got, _, ok := lookupKeyword(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("lookupKeyword(%q) = %q, %v", tc.in, got, ok)
		}
	}
	// Only 32 characters are significant: a longer spelling of a 32-character
	// prefix of nothing is still unknown, but extra characters after a keyword of
	// 32 or more characters would match. None of ours is that long; check the cut.
	if significant(strings.Repeat("a", 40)) != strings.Repeat("a", 32) {
		t.Error("significant() does not cut at 32 characters")
	}
	if s := suggestKeyword("dentnonenumeric"); s != "identnonenumeric" {
		t.Errorf("suggestion for dentnonenumeric = %q", s)
	}
	if s := suggestKeyword("zzzzzz"); s != "" {
		t.Errorf("suggestion for zzzzzz = %q, want none", s)
	}
	// Every keyword of the table has its argument shape; none is shadowed.
	for _, k := range KeywordNames() {
		if _, _, ok := lookupKeyword(k); !ok {
			t.Errorf("keyword %q not found by lookup", k)
		}
	}
}

func TestChannelKeywords(t *testing.T) {
	r := build(t, map[string]string{
		"imta.cnf": `.             $U%$H@tcp-daemon

defaults noswitchchannel notices 1 3 5

l maxjobs 2
mail.example.com

defaults logging maxjobs 4

tcp_local smtp mx nomx randommx pool SMTP_POOL maxjobs 9 maytls musttlsclient \
 backoff "pt5m" pt10m normalbackoff pt1h switchchannel saslswitchchannel tcp_auth
tcp-daemon

nodefaults

tcp_auth smtp mustsaslserver pool SLOW urgentnotices 2 4
tcp_auth-daemon

tcp_slow smtp daemon router threaddepth 5 addrsperfile 20 single single_sys
tcp_slow-daemon
tcp-slow.example.com slow.example.com
`,
		"job_controller.cnf": basePools,
	})
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %v", messages(r.Errors))
	}
	img := r.Image
	l, _ := img.Channel("l")
	tl, _ := img.Channel("tcp_local")
	ta, _ := img.Channel("tcp_auth")
	ts, _ := img.Channel("tcp_slow")

	if l.Switch != NoSwitch || l.MaxJobs != 2 {
		t.Errorf("l: switch %v maxjobs %d", l.Switch, l.MaxJobs)
	}
	// defaults accumulate; the channel's own keywords come after and win.
	if tl.MaxJobs != 9 || tl.Switch != Switch || tl.MX != RandomMX || tl.Pool != "SMTP_POOL" {
		t.Errorf("tcp_local: maxjobs %d switch %v mx %v pool %q", tl.MaxJobs, tl.Switch, tl.MX, tl.Pool)
	}
	if tl.TLSServer != TLSMay || tl.TLSClient != TLSMust {
		t.Errorf("tcp_local TLS: client %v server %v", tl.TLSClient, tl.TLSServer)
	}
	if !tl.SMTP || tl.AddrsPerFile != 99 || tl.SASLSwitchChannel != "tcp_auth" {
		t.Errorf("tcp_local: smtp %v addrsperfile %d sasl %q", tl.SMTP, tl.AddrsPerFile, tl.SASLSwitchChannel)
	}
	wantUrgent := []time.Duration{5 * time.Minute, 10 * time.Minute}
	if !reflect.DeepEqual(tl.Backoff[Urgent], wantUrgent) || !reflect.DeepEqual(tl.Backoff[Normal], []time.Duration{time.Hour}) {
		t.Errorf("tcp_local backoff %v", tl.Backoff)
	}
	if tl.RetryAfter(Urgent, 1) != 5*time.Minute || tl.RetryAfter(Urgent, 7) != 10*time.Minute {
		t.Error("RetryAfter does not repeat the last interval")
	}
	if got := tl.Notices[Normal]; !reflect.DeepEqual(got, []int{1, 3, 5}) {
		t.Errorf("tcp_local notices from defaults = %v", got)
	}
	// nodefaults cleared noswitchchannel and notices: tcp_auth inherits l's notices
	// for the classes it did not set.
	if ta.Switch != AllowSwitch || ta.SASLServer != SASLMust {
		t.Errorf("tcp_auth: switch %v sasl %v", ta.Switch, ta.SASLServer)
	}
	if !reflect.DeepEqual(ta.Notices[Urgent], []int{2, 4}) || !reflect.DeepEqual(ta.Notices[Normal], []int{1, 3, 5}) {
		t.Errorf("tcp_auth notices %v", ta.Notices)
	}
	if !reflect.DeepEqual(ta.Backoff[Normal], DefaultBackoff(Normal)) {
		t.Errorf("tcp_auth default backoff %v", ta.Backoff[Normal])
	}
	if ts.DaemonHost() != "tcp_slow-daemon" || ts.ThreadDepth != 5 || ts.Copies != SingleSys || ts.AddrsPerFile != 20 {
		t.Errorf("tcp_slow: daemon %q threaddepth %d copies %v addrsperfile %d", ts.DaemonHost(), ts.ThreadDepth, ts.Copies, ts.AddrsPerFile)
	}
	if len(ts.Hosts) != 1 || ts.Hosts[0].Proper != "slow.example.com" {
		t.Errorf("tcp_slow hosts %+v", ts.Hosts)
	}
	// Pools and limits.
	if p := img.PoolFor("l"); p.Name != "DEFAULT" {
		t.Errorf("PoolFor(l) = %v", p)
	}
	if img.MaxJobs("tcp_local") != 5 || img.MaxJobs("l") != 2 || img.MaxJobs("tcp_auth") != 3 {
		t.Errorf("MaxJobs: tcp_local %d l %d tcp_auth %d", img.MaxJobs("tcp_local"), img.MaxJobs("l"), img.MaxJobs("tcp_auth"))
	}
	// The engine got the table.
	if _, ok := img.Rules.Channel("tcp_slow"); !ok {
		t.Error("engine does not know tcp_slow")
	}
	if res := img.Rules.Rewrite(engine.Request{Address: "a@tcp-slow.example.com"}); res.Channel != "tcp_slow" {
		t.Errorf("a@tcp-slow.example.com -> %q (%v)", res.Channel, res.Err)
	}
}

func TestNoticesDefault(t *testing.T) {
	r := build(t, map[string]string{"imta.cnf": baseIMTA})
	if len(r.Errors) > 0 {
		t.Fatal(messages(r.Errors))
	}
	c, _ := r.Image.Channel("tcp_local")
	if !reflect.DeepEqual(c.Notices[Normal], []int{3, 6, 9, 12}) {
		t.Errorf("notices without l's = %v", c.Notices[Normal])
	}
	// No job_controller.cnf: one DEFAULT pool.
	if p := r.Image.PoolFor("tcp_local"); p.Name != "DEFAULT" || p.JobLimit != 10 {
		t.Errorf("default pool %+v", p)
	}
}

func TestCheckErrors(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		errs  []string
		warns []string
	}{
		{
			name:  "unknown keyword is a warning with a suggestion",
			files: map[string]string{"imta.cnf": strings.Replace(baseIMTA, "tcp_local smtp mx", "tcp_local smtp mx dentnonenumeric frob", 1)},
			warns: []string{
				`imta.cnf:7: unknown channel keyword "dentnonenumeric" (taken as a group id); did you mean "identnonenumeric"?`,
				`imta.cnf:7: unknown channel keyword "frob" (taken as a group id)`,
			},
		},
		{
			name:  "duplicate host across blocks",
			files: map[string]string{"imta.cnf": baseIMTA + "\ntcp_other smtp\nTCP-DAEMON\n"},
			errs:  []string{`imta.cnf:11: duplicate host in channel table: "TCP-DAEMON" (first at imta.cnf:8)`},
		},
		{
			name:  "l not first",
			files: map[string]string{"imta.cnf": ".  $U%$H@tcp-daemon\n\ntcp_local smtp\ntcp-daemon\n\nl\nmail.example.com\n"},
			warns: []string{`imta.cnf:6: local channel "l" is not the first channel block (only defaults may precede it)`},
		},
		{
			name:  "routing host without channel",
			files: map[string]string{"imta.cnf": "a.example  $U%$D@nowhere-daemon$Nfoo\nb.example  $?refused\nc.example  $U%$D@$D\n" + baseIMTA},
			errs:  []string{`imta.cnf:1: routing host "nowhere-daemon" of rule "a.example" belongs to no channel`},
		},
		{
			name:  "undefined pool",
			files: map[string]string{"imta.cnf": strings.Replace(baseIMTA, "tcp_local smtp mx", "tcp_local smtp mx pool NOPE", 1), "job_controller.cnf": basePools},
			errs:  []string{`imta.cnf:7: pool "NOPE" is not defined in job_controller.cnf`},
		},
		{
			name: "options and jobs",
			files: map[string]string{"imta.cnf": baseIMTA,
				"option.dat":         "RETURN_UNITS=3\nFROBNICATE=1\nBLOCK_SIZE=abc\n",
				"job_controller.cnf": "[POOL=DEFAULT]\nJOB_LIMIT=0\n[CHANNEL=tcp_*]\nNORMAL_DELIVERY=25:00-26:00\n",
				"dispatcher.cnf":     "[SERVICE=SMTP]\nPORT=99999\nINTERFACE_ADDRESS=nothere\n"},
			errs: []string{
				"dispatcher.cnf:2: bad value for option PORT: \"99999\" is not a port number",
				"dispatcher.cnf:3: bad value for option INTERFACE_ADDRESS: \"nothere\" is not an IP address",
				"job_controller.cnf:2: bad value for option JOB_LIMIT: pool DEFAULT needs a job_limit of at least 1",
				"job_controller.cnf:4: bad value for option NORMAL_DELIVERY: \"25:00-26:00\" is not a window HH:MM-HH:MM",
				"option.dat:1: bad value for option RETURN_UNITS: 3 (0 = days, 1 = hours)",
				"option.dat:3: bad value for option BLOCK_SIZE: \"abc\" is not an integer",
			},
			warns: []string{`option.dat:2: unknown option "FROBNICATE" in option.dat (ignored)`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := build(t, tc.files)
			if got := messages(r.Errors); !reflect.DeepEqual(got, tc.errs) {
				t.Errorf("errors:\n got %q\nwant %q", got, tc.errs)
			}
			if got := messages(r.Warnings); !reflect.DeepEqual(got, tc.warns) {
				t.Errorf("warnings:\n got %q\nwant %q", got, tc.warns)
			}
			if (r.Image == nil) != (len(tc.errs) > 0) {
				t.Errorf("image %v with %d errors", r.Image != nil, len(tc.errs))
			}
		})
	}
}

func TestBuildReturnsErrorList(t *testing.T) {
	cfg, err := cnf.ParseFS(fstest.MapFS{"imta.cnf": {Data: []byte(baseIMTA + "\ntcp_x smtp pool X\ntcp_x-daemon\n")}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := Build(cfg)
	var list cnf.ErrorList
	if img != nil || !errors.As(err, &list) || len(list) != 1 {
		t.Fatalf("Build = %v, %v; want nil and one error", img, err)
	}
}

func TestRoutingHost(t *testing.T) {
	cases := []struct {
		tmpl string
		host string
		ok   bool
	}{
		{"$U%$D@tcp_siroe-daemon", "tcp_siroe-daemon", true},
		{"$U%$H@tcp-daemon$Nverify", "tcp-daemon", true},
		{"$U@com1@gw.example.net@tcp_gw-daemon", "tcp_gw-daemon", true},
		{"$U%$H", "", false},
		{"$?No mail here", "", false},
		{"$U%$D@$D", "", false},
		{"$U%$D@${ROUTES,$D}", "", false},
		{"$U%$D@$]ldap:///o=x?mailRoutingSystem[", "", false},
		{"$U$@x%$D@tcp-daemon", "tcp-daemon", true},
		{"$U%${T,a@b}@tcp-daemon", "tcp-daemon", true},
		{"$U%[$L]@tcp_intranet-daemon$E$F", "tcp_intranet-daemon", true},
	}
	for _, tc := range cases {
		host, ok := RoutingHost(tc.tmpl)
		if host != tc.host || ok != tc.ok {
			t.Errorf("RoutingHost(%q) = %q, %v; want %q, %v", tc.tmpl, host, ok, tc.host, tc.ok)
		}
	}
}

func TestSourceHashOrderIndependent(t *testing.T) {
	a := []cnf.Source{{Path: "imta.cnf", SHA256: [32]byte{1}}, {Path: "mappings", SHA256: [32]byte{2}}}
	b := []cnf.Source{a[1], a[0]}
	if SourceHash(a) != SourceHash(b) {
		t.Error("source hash depends on reading order")
	}
	c := []cnf.Source{a[0], {Path: "mappings", SHA256: [32]byte{3}}}
	if SourceHash(a) == SourceHash(c) {
		t.Error("source hash ignores a content change")
	}
}

func siteImage(t *testing.T) *Image {
	t.Helper()
	img, err := BuildDir(filepath.Join("..", "examples", "site"))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestImageRoundTrip(t *testing.T) {
	img := siteImage(t)
	path := filepath.Join(t.TempDir(), ImageName)
	if err := Write(path, img); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.SourceHash != img.Header.SourceHash || !got.Header.BuildTime.Equal(img.Header.BuildTime) || got.Header.BuiltBy != Version {
		t.Errorf("header %+v, want %+v", got.Header, img.Header)
	}
	if !reflect.DeepEqual(got.Channels, img.Channels) || !reflect.DeepEqual(got.Jobs, img.Jobs) ||
		!reflect.DeepEqual(got.Dispatcher, img.Dispatcher) || !reflect.DeepEqual(got.Options, img.Options) {
		t.Error("typed parts differ after a round trip")
	}
	// The decoded engine is attached to the decoded mappings and aliases.
	res := got.Rules.Resolve(engine.Request{Address: "staff@example.com"})
	if res.Err != nil || len(res.Recipients) != 3 {
		t.Errorf("alias expansion after load: %+v", res)
	}
	h, err := ReadHeader(path)
	if err != nil || h.SourceHash != img.Header.SourceHash {
		t.Errorf("ReadHeader = %+v, %v", h, err)
	}
	// No temporary file is left beside the image.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after Write, want 1", len(entries))
	}
}

func TestLoadRejectsDamage(t *testing.T) {
	good, err := Encode(siteImage(t))
	if err != nil {
		t.Fatal(err)
	}
	version := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(version[len(Magic):], FormatVersion+1)
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 1
	magic := append([]byte(nil), good...)
	magic[0] = 'X'
	cases := []struct {
		name string
		data []byte
		is   error
		want string
	}{
		{"version", version, ErrVersionMismatch, "run mtactl cnbuild"},
		{"checksum", flipped, ErrCorrupt, "checksum mismatch"},
		{"magic", magic, ErrCorrupt, "bad magic"},
		{"truncated", good[:len(good)-10], ErrCorrupt, ""},
		{"short", good[:5], ErrCorrupt, ""},
		{"empty", nil, ErrCorrupt, ""},
	}
	for _, tc := range cases {
		img, err := Decode(tc.data)
		if img != nil || !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Decode = %v, %v; want %v containing %q", tc.name, img, err, tc.is, tc.want)
		}
	}
	if !strings.Contains(ErrVersionMismatch.Error(), "compiled configuration version mismatch") {
		t.Error("version mismatch text changed")
	}
}

func TestLoadOrBuild(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "imta.cnf"), []byte(baseIMTA), 0o644); err != nil {
		t.Fatal(err)
	}
	img, fromImage, err := LoadOrBuild(dir)
	if err != nil || fromImage || img == nil {
		t.Fatalf("LoadOrBuild without image = %v, %v, %v", img, fromImage, err)
	}
	if err := Write(filepath.Join(dir, ImageName), img); err != nil {
		t.Fatal(err)
	}
	img2, fromImage, err := LoadOrBuild(dir)
	if err != nil || !fromImage || len(img2.Channels) != 2 {
		t.Fatalf("LoadOrBuild with image = %v, %v, %v", img2, fromImage, err)
	}
}

func TestDispatcherAndJobs(t *testing.T) {
	r := build(t, map[string]string{
		"imta.cnf": baseIMTA,
		"dispatcher.cnf": "MAX_CONNS=50\nDNS_VERIFY_DOMAIN=bl.example.net\n[SERVICE=SMTP]\nPORT=25,2525\n" +
			"INTERFACE_ADDRESS=127.0.0.1\n[SERVICE=SUBMIT]\nPORT=587\nMAX_PROCS=2\n",
		"job_controller.cnf": "JOB_LIMIT=4\nMASTER_COMMAND=generic\n[POOL=A]\n[POOL=B]\nJOB_LIMIT=16%A\n" +
			"[CHANNEL=tcp_*]\nMASTER_COMMAND=smtp\nURGENT_DELIVERY=08:00-20:00\n[CHANNEL=tcp_local]\nJOB_LIMIT=2\n",
		"tcp_local_option": "DATA_RECEIVE_TIME=5\nALLOW_RECIPIENTS_PER_TRANSACTION=16%10\n",
	})
	if len(r.Errors) > 0 || len(r.Warnings) > 0 {
		t.Fatalf("errors %v warnings %v", messages(r.Errors), messages(r.Warnings))
	}
	img := r.Image
	smtp, _ := img.Dispatcher.Service("smtp")
	if !reflect.DeepEqual(smtp.Port, []int{25, 2525}) || smtp.InterfaceAddress != "127.0.0.1" || smtp.MaxConns != 50 ||
		smtp.MaxProcs != 5 || smtp.Backlog != 250 || !reflect.DeepEqual(smtp.DNSVerifyDomain, []string{"bl.example.net"}) {
		t.Errorf("SMTP service %+v", smtp)
	}
	sub, _ := img.Dispatcher.Service("SUBMIT")
	if sub.MaxConnections() != 100 || sub.InterfaceAddress != "" {
		t.Errorf("SUBMIT service %+v", sub)
	}
	if a, _ := img.Jobs.Pool("a"); a.JobLimit != 4 {
		t.Errorf("pool A inherits the global JOB_LIMIT: %+v", a)
	}
	if b, _ := img.Jobs.Pool("B"); b.JobLimit != 10 {
		t.Errorf("pool B JOB_LIMIT=16%%A: %+v", b)
	}
	s, _ := img.Jobs.ChannelSection("tcp_local")
	if s.Pattern != "tcp_local" || s.JobLimit != 2 || s.MasterCommand != "generic" {
		t.Errorf("exact section must win: %+v", s)
	}
	s, _ = img.Jobs.ChannelSection("tcp_other")
	if s.Pattern != "tcp_*" || s.MasterCommand != "smtp" || !s.Windows[Urgent].Set || s.Windows[Normal].Set {
		t.Errorf("wildcard section: %+v", s)
	}
	if _, ok := img.Jobs.ChannelSection("l"); ok {
		t.Error("l matched a section")
	}
	o := img.ChannelOptionsFor("tcp_local")
	if o.DataReceiveTime != 5*time.Minute || o.AllowRecipientsPerTransaction != 16 || o.DataTransmitTime != 0 {
		t.Errorf("tcp_local options %+v", o)
	}
	if d := img.ChannelOptionsFor("l"); d.AllowRecipientsPerTransaction != 128 {
		t.Errorf("default channel options %+v", d)
	}
}

func TestOptionsDefaults(t *testing.T) {
	r := build(t, map[string]string{"imta.cnf": baseIMTA, "option.dat": "LOG_MESSAGE_ID=1\nMETRICS_LISTEN=127.0.0.1:9100\n"})
	o := r.Image.Options
	if !o.LogMessageID || o.MaxReceivedLines != 50 || o.BlockSize != 1024 || o.MaxAliasLevels != 10 ||
		o.ErrorTextUnknownHost != "unknown host or domain" || o.MetricsListen != "127.0.0.1:9100" || o.Raw["LOG_MESSAGE_ID"] != "1" {
		t.Errorf("options %+v", o)
	}
}

func FuzzParsePeriod(f *testing.F) {
	for _, s := range []string{"pt30m", "P1DT2H3M4S", "p", "pt5x", "P99999999999999999999D"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParsePeriod(s)
		if err == nil && d <= 0 {
			t.Errorf("ParsePeriod(%q) = %v without error", s, d)
		}
	})
}

func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"08:00-20:00", "22:00-06:00", "x", "24:00-00:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWindow(s)
		if err == nil && (w.Start < 0 || w.Start >= 1440 || w.End < 0 || w.End >= 1440) {
			t.Errorf("ParseWindow(%q) = %+v", s, w)
		}
	})
}

// FuzzDecode: an image file is outside input (a disk can corrupt it); Decode must
// return an error, never panic or return a half-built image.
func FuzzDecode(f *testing.F) {
	img, err := BuildDir(filepath.Join("..", "examples", "default"))
	if err != nil {
		f.Fatal(err)
	}
	good, err := Encode(img)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:40])
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := Decode(b)
		if (img == nil) == (err == nil) {
			t.Errorf("Decode: image %v with error %v", img != nil, err)
		}
		if err == nil && !bytes.Equal(b, good) && img.Header.Magic != Magic {
			t.Error("decoded image without magic")
		}
	})
}

func FuzzSplitKeywords(f *testing.F) {
	f.Add("smtp mx pool SMTP_POOL backoff pt5m \"pt10m\" notices 1 2 3 maxjobs seven")
	f.Fuzz(func(t *testing.T, line string) {
		var words []cnf.Word
		for _, w := range strings.Fields(line) {
			words = append(words, cnf.Word{Text: w})
		}
		var errs, warns cnf.ErrorList
		kws := splitKeywords(words, &errs, &warns)
		n := 0
		for _, k := range kws {
			n += 1 + len(k.Args)
		}
		// notices "1,2" splits one word into several arguments, so n may exceed.
		if n < len(words) && !strings.Contains(line, ",") {
			t.Errorf("%q: %d words grouped into keywords covering %d", line, len(words), n)
		}
		c := &ChannelConfig{}
		c.apply(kws)
	})
}
