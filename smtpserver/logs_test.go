package smtpserver

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mtad.dev/mta/mappings"
	"mtad.dev/mta/metrics"
	"mtad.dev/mta/status"
)

// sendOne runs one whole transaction on an open, greeted client.
func sendOne(r *rawClient, from, to string) {
	r.t.Helper()
	r.cmd("MAIL FROM:<"+from+">", "250")
	r.cmd("RCPT TO:<"+to+">", "250")
	r.cmd("DATA", "354")
	r.cmd("Subject: t\r\n\r\nhello\r\n.", "250")
}

// waitEOF reads until the server has closed the connection.
func waitEOF(r *rawClient) {
	r.t.Helper()
	r.WaitClosed(3 * time.Second)
}

func TestConnectionRecords(t *testing.T) {
	var portReject atomic.Bool
	e := startServer(t, func(p *Policy, c *Config) {
		p.LogConnection = LogConnSource | LogConnRecords
		c.MaxConns = 1
		e := p.Intake.Access.(*fakeAccess)
		e.decide = func(table, probe string) (mappings.Access, bool) {
			if table == "PORT_ACCESS" && portReject.Load() {
				return mappings.Access{Reject: true, Text: "554 go away"}, true
			}
			return mappings.Access{}, false
		}
	})
	c1 := dialRaw(t, e.addr)
	c1.hello()
	sendOne(c1, "a@example.org", "bob@local.test")
	// the cap is one connection: a second is refused before the banner (X)
	c2 := dialRaw(t, e.addr)
	c2.expect("421 4.3.2 Too many connections")
	c1.cmd("QUIT", "221")
	waitEOF(c1)
	waitIdle(t, e) // the cap is released after the socket closes
	portReject.Store(true)
	c3 := dialRaw(t, e.addr)
	c3.expect("554 go away")
	waitIdle(t, e)
	portReject.Store(false)
	c4 := dialRaw(t, e.addr)
	c4.expect("220")
	c4.Conn().Close() // gone without QUIT
	waitIdle(t, e)
	log := e.mailLog(t)
	tr := `TCP\|127\.0\.0\.1\|\d+\|127\.0\.0\.1\|\d+`
	for _, re := range []string{
		`(?m)^\S+ \S+ tcp_local \+ O ` + tr + ` SMTP/- 0$`,
		`(?m)^\S+ \S+ tcp_local l EE 1 a@example.org rfc822;bob@local.test bob@local.test QA - client.test \(\[127\.0\.0\.1\]\)$`,
		`(?m)^\S+ \S+ tcp_local \+ X ` + tr + ` SMTP/- 0 421 4\.3\.2 Too many connections, try again later$`,
		`(?m)^\S+ \S+ tcp_local \+ C ` + tr + ` SMTP/client\.test 1 QUIT$`,
		`(?m)^\S+ \S+ tcp_local \+ X ` + tr + ` SMTP/- 0 PORT_ACCESS 554 go away$`,
		`(?m)^\S+ \S+ tcp_local \+ C ` + tr + ` SMTP/- 0 client disconnected$`,
	} {
		if !regexp.MustCompile(re).MatchString(log) {
			t.Errorf("mail.log has no line matching %s:\n%s", re, log)
		}
	}
	if n := strings.Count(log, " + O "); n != 2 {
		t.Errorf("%d O records, want 2 (refused connections get X only):\n%s", n, log)
	}
}

func waitIdle(t *testing.T, e *testEnv) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for e.srv.openConns() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("connections still counted after 3s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestConnectionRecordsOff(t *testing.T) {
	e := startServer(t)
	c := dialRaw(t, e.addr)
	c.hello()
	sendOne(c, "a@example.org", "bob@local.test")
	c.cmd("QUIT", "221")
	waitEOF(c)
	log := e.mailLog(t)
	if strings.Contains(log, " + ") || strings.Contains(log, "([127.0.0.1])") {
		t.Errorf("LOG_CONNECTION=0 wrote connection information:\n%s", log)
	}
}

func TestSlaveDebug(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	e := startServer(t, func(p *Policy, c *Config) {
		c.DebugDir = dir
		c.Auth = fakeAuth{"alice": "s3cret"}
		p.Channels["tcp_local"] = ChannelPolicy{Name: "tcp_local", SASL: SASLMay, AllowPlainAuthLoopback: true}
	})
	session := func() {
		c := dialRaw(t, e.addr)
		c.hello()
		c.cmd("AUTH PLAIN "+plainIR("alice", "s3cret"), "235")
		sendOne(c, "a@example.org", "bob@local.test")
		c.cmd("QUIT", "221")
		waitEOF(c)
	}
	session()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("no slave_debug, yet %d transcripts", len(ents))
	}

	// "reload": the next session's snapshot has slave_debug
	p2 := *e.cur.Load()
	p2.Channels = map[string]ChannelPolicy{}
	for k, v := range e.cur.Load().Channels {
		p2.Channels[k] = v
	}
	cp := p2.Channels["tcp_local"]
	cp.SlaveDebug = true
	p2.Channels["tcp_local"] = cp
	e.cur.Store(&p2)
	session()

	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 1 {
		t.Fatalf("want one transcript, got %v (%v)", ents, err)
	}
	if !regexp.MustCompile(`^tcp_local_slave\.log-[0-9A-F]{10}$`).MatchString(ents[0].Name()) {
		t.Errorf("transcript name %q", ents[0].Name())
	}
	b, _ := os.ReadFile(filepath.Join(dir, ents[0].Name()))
	s := string(b)
	at := 0
	for _, w := range []string{
		"# inbound session", "S: 220 mx.test ESMTP", "C: EHLO client.test", "S: 250-mx.test",
		"C: AUTH PLAIN ****", "S: 235", "C: MAIL FROM:<a@example.org>", "S: 250 2.1.0 Ok",
		"C: DATA", "S: 354", "C: hello", "C: .", "S: 250 2.0.0 Ok: queued as", "C: QUIT", "S: 221",
		"# closed: QUIT; 1 messages",
	} {
		i := strings.Index(s[at:], w)
		if i < 0 {
			t.Fatalf("transcript lacks (in order) %q:\n%s", w, s)
		}
		at += i + len(w)
	}
	if strings.Contains(s, plainIR("alice", "s3cret")) {
		t.Errorf("transcript holds the credentials:\n%s", s)
	}
}

// TestHookMetrics sends mail through a server given metrics.Hooks and scrapes
// the endpoint the daemon would serve.
func TestHookMetrics(t *testing.T) {
	hooks := metrics.NewHooks()
	e := startServer(t, func(p *Policy, c *Config) { c.Metrics = hooks })
	reg, err := metrics.Registry(func() metrics.Stats { return metrics.Stats{Now: time.Now()} }, hooks)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := metrics.Listen("127.0.0.1:0", false, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close(t.Context()) })

	c := dialRaw(t, e.addr)
	c.hello()
	sendOne(c, "a@example.org", "bob@local.test")
	sendOne(c, "a@example.org", "carol@local.test")
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<nouser@local.test>", "550 5.1.1")
	c.cmd("RCPT TO:<x@temp.test>", "451")
	c.cmd("FOO", "500")
	open := dialRaw(t, e.addr) // still open at the scrape
	open.hello()
	c.cmd("QUIT", "221")
	waitEOF(c)

	resp, err := http.Get("http://" + ms.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		"mtad_smtp_sessions_open 1\n",
		`mtad_smtp_messages_total{result="accepted"} 2` + "\n",
		`mtad_smtp_rejections_total{class="unknown_recipient"} 1` + "\n",
		`mtad_smtp_rejections_total{class="temporary"} 1` + "\n",
		`mtad_smtp_rejections_total{class="protocol"} 1` + "\n",
		"mtad_queue_commit_duration_seconds_count 2\n",
		"mtad_engine_rewrite_duration_seconds_count 4\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", grepLines(text, "mtad_smtp|mtad_queue|mtad_engine"))
	}
}

func TestRejectClass(t *testing.T) {
	for _, tt := range []struct {
		code      int
		enh, text string
		want      string
	}{
		{550, "5.7.1", "Relaying not allowed", "relay"},
		{550, "5.7.1", "Access denied", "access"},
		{530, "5.7.0", "Authentication required", "access"},
		{550, "5.1.1", "No such user", "unknown_recipient"},
		{552, "5.3.4", "too big", "size"},
		{452, "4.5.3", "Too many recipients", "recipient_limit"},
		{501, "5.5.2", "syntax", "protocol"},
		{451, "4.4.3", "later", "temporary"},
		{554, "5.6.0", "odd", "other"},
	} {
		if got := rejectClass(&statusT{Code: tt.code, Enhanced: tt.enh, Text: tt.text}); got != tt.want {
			t.Errorf("%d %s %q: %q, want %q", tt.code, tt.enh, tt.text, got, tt.want)
		}
	}
}

func grepLines(s, re string) string {
	rx := regexp.MustCompile(re)
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if rx.MatchString(l) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

type statusT = status.Status
