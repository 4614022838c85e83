package smtpserver

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"mtad.dev/mta/internal/smtptest"
	"mtad.dev/mta/metrics"
)

// dialRawFrom is dialRaw from a chosen loopback source address.
func dialRawFrom(t *testing.T, addr, local string) *rawClient {
	t.Helper()
	c := smtptest.Open(t, addr, smtptest.DialTimeout(2*time.Second), smtptest.Deadline(5*time.Second),
		smtptest.Format(replyText), smtptest.From(local))
	return &rawClient{Client: c, t: t}
}

// rejections is the mtad_smtp_rejections_total count of one class.
func rejections(t *testing.T, hooks *metrics.Hooks, class string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(hooks.SMTPRejections); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "class" && l.GetValue() == class {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// dialData connects and starts a transaction up to DATA's 354.
func dialData(t *testing.T, addr string) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	c.hello()
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<bob@local.test>", "250")
	c.cmd("DATA", "354")
	return c
}

// dribble writes one byte of message every gap from its own goroutine until
// stop is closed or the server closes the connection.
func dribble(c *rawClient, gap time.Duration, stop <-chan struct{}) {
	conn := c.Conn()
	go func() {
		tick := time.NewTicker(gap)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
}

// trickle sends size bytes of message body in chunks of chunk bytes every gap:
// a client on a slow link that keeps up a steady rate.
func trickle(c *rawClient, size, chunk int, gap time.Duration) {
	c.t.Helper()
	line := strings.Repeat("y", chunk-2) + "\r\n"
	for sent := 0; sent < size; sent += chunk {
		c.send(line)
		time.Sleep(gap)
	}
}

// TestMinDataRateCutsDribbler: a client that sends its message one byte at a
// time, each byte well inside the DATA block timeout, is cut off with 421 4.4.2
// once the DATA phase outlives the block timeout plus what its few bytes are
// worth at the minimum rate: it gets no more than about DataBlock, where the
// block timeout alone would let it stay for ever. The cut is a J record per
// recipient, the C record's reason, and a too_slow rejection.
func TestMinDataRateCutsDribbler(t *testing.T) {
	hooks := metrics.NewHooks()
	e := startServer(t, func(p *Policy, c *Config) {
		p.LogConnection = LogConnRecords
		p.Timeouts = Timeouts{DataBlock: 400 * time.Millisecond, MinDataRate: 1000}
		c.Metrics = hooks
	})
	c := dialData(t, e.addr)
	began := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	dribble(c, 50*time.Millisecond, stop)
	const want = "421 4.4.2 mx.test Error: message data below the minimum rate of 1000 bytes per second, closing connection"
	if got := c.reply(); got != want {
		t.Fatalf("after %v of dribbling: %q, want %q", time.Since(began).Round(time.Millisecond), got, want)
	}
	// 400ms plus some 8 bytes at 1000 bytes/s; far less than the 5 s the client waits
	if took := time.Since(began); took < 400*time.Millisecond || took > 2*time.Second {
		t.Errorf("cut off after %v, want about 400ms", took)
	}
	waitEOF(c)
	if e.q.count() != 0 {
		t.Errorf("%d messages queued", e.q.count())
	}
	if n := rejections(t, hooks, "too_slow"); n != 1 {
		t.Errorf("too_slow rejections: %v, want 1", n)
	}
	log := e.mailLog(t)
	for _, w := range []string{
		" tcp_local l J 1 a@example.org rfc822;bob@local.test bob@local.test - - " + want + "\n",
		" tcp_local + C TCP|127.0.0.1|",
	} {
		if !strings.Contains(log, w) {
			t.Errorf("mail.log lacks %q:\n%s", w, log)
		}
	}
	if !strings.Contains(log, "SMTP/client.test 0 "+want+"\n") {
		t.Errorf("the C record does not give the cut as its reason:\n%s", log)
	}
}

// TestMinDataRateKeptUp: a slow client that keeps up the minimum rate is never
// cut off, however much longer than the DATA block timeout its message takes.
func TestMinDataRateKeptUp(t *testing.T) {
	e := startServer(t, func(p *Policy, _ *Config) {
		p.Timeouts = Timeouts{DataBlock: 300 * time.Millisecond, MinDataRate: 1000}
	})
	c := dialData(t, e.addr)
	began := time.Now()
	trickle(c, 2500, 100, 50*time.Millisecond) // 2000 bytes/s for about 1.25 s
	c.cmd(".", "250 2.0.0 Ok: queued")
	if took := time.Since(began); took < 4*300*time.Millisecond {
		t.Fatalf("the message took %v: not long enough to prove anything", took)
	}
}

// TestSessionTimeLimit: a client that keeps its session alive with a command
// now and then, each well inside the command timeout, is cut off with 421 4.4.2
// when the session's time is up.
func TestSessionTimeLimit(t *testing.T) {
	hooks := metrics.NewHooks()
	e := startServer(t, func(p *Policy, c *Config) {
		p.LogConnection = LogConnRecords
		p.Timeouts = Timeouts{Command: 300 * time.Millisecond, Session: 600 * time.Millisecond}
		c.Metrics = hooks
	})
	began := time.Now()
	c := dialRaw(t, e.addr)
	c.hello()
	const want = "421 4.4.2 mx.test Error: session time limit exceeded, closing connection"
	for {
		time.Sleep(100 * time.Millisecond)
		c.send("NOOP\r\n")
		got := c.reply()
		if got == want {
			break
		}
		if !strings.HasPrefix(got, "250") || time.Since(began) > 2*time.Second {
			t.Fatalf("after %v: %q, want %q", time.Since(began).Round(time.Millisecond), got, want)
		}
	}
	if took := time.Since(began); took < 600*time.Millisecond {
		t.Errorf("cut off after %v, before the session's 600ms", took)
	}
	waitEOF(c)
	if n := rejections(t, hooks, "too_slow"); n != 1 {
		t.Errorf("too_slow rejections: %v, want 1", n)
	}
	if log := e.mailLog(t); !strings.Contains(log, "SMTP/client.test 0 "+want+"\n") {
		t.Errorf("the C record does not give the cut as its reason:\n%s", log)
	}
}

// TestSessionTimeEarnedByData: message bytes sent at the minimum rate earn
// session time, so a client that sends mail steadily outlives the session bound
// (a bad link's long message is not cut off by it), while an idle one does not.
func TestSessionTimeEarnedByData(t *testing.T) {
	e := startServer(t, func(p *Policy, _ *Config) {
		p.Timeouts = Timeouts{Command: 300 * time.Millisecond, DataBlock: 300 * time.Millisecond,
			MinDataRate: 1000, Session: 400 * time.Millisecond}
	})
	c := dialData(t, e.addr)
	trickle(c, 2000, 100, 50*time.Millisecond) // about 1 s, earning 2 s
	c.cmd(".", "250 2.0.0 Ok: queued")
	c.cmd("NOOP", "250")
}

// TestChannelTimeouts: the limits of the session's source channel apply from the
// moment it is the source: after switchchannel at admission, after AUTH's
// saslswitchchannel, and its recipient limit too.
func TestChannelTimeouts(t *testing.T) {
	short := Timeouts{Command: 200 * time.Millisecond}
	tests := []struct {
		name    string
		literal string // switchchannel target of the client's address; "" none
		auth    bool   // AUTH, switching to tcp_intranet
	}{
		{"switchchannel", "tcp_intranet", false},
		{"saslswitchchannel", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startServer(t, func(p *Policy, c *Config) {
				p.Timeouts = Timeouts{Command: 5 * time.Second}
				p.Channels["tcp_local"] = ChannelPolicy{Name: "tcp_local", SwitchChannel: true, SASL: SASLMay,
					AllowPlainAuthLoopback: true, SASLSwitchChannel: "tcp_intranet"}
				p.Channels["tcp_intranet"] = ChannelPolicy{Name: "tcp_intranet", AllowSwitchChannel: true,
					Timeouts: short, MaxRecipients: 1}
				c.Auth = fakeAuth{"alice": "pw"}
			})
			e.rules.mu.Lock()
			e.rules.literal = tt.literal
			e.rules.mu.Unlock()
			c := dialRaw(t, e.addr)
			c.hello()
			if tt.auth {
				c.cmd("AUTH PLAIN "+plainIR("alice", "pw"), "235")
			}
			c.cmd("MAIL FROM:<a@example.org>", "250")
			c.cmd("RCPT TO:<bob@local.test>", "250")
			c.cmd("RCPT TO:<carol@local.test>", "452 4.5.3 Too many recipients")
			began := time.Now()
			c.expect("421 4.4.2 mx.test Error: timeout exceeded")
			if took := time.Since(began); took > 2*time.Second {
				t.Errorf("timed out after %v: not the channel's 200ms", took)
			}
		})
	}
}

// earlyTalkerServer delays the banner 300ms for every client but 127.0.0.1.
func earlyTalkerServer(t *testing.T, hooks *metrics.Hooks) *testEnv {
	return startServer(t, func(p *Policy, c *Config) {
		p.LogConnection = LogConnRecords
		p.Timeouts = Timeouts{BannerDelay: 300 * time.Millisecond}
		p.BannerDelayExempt = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.Metrics = hooks
	})
}

// TestEarlyTalker: a client that talks before the banner is refused with 554,
// logged as a J record with its address, and closed.
func TestEarlyTalker(t *testing.T) {
	hooks := metrics.NewHooks()
	e := earlyTalkerServer(t, hooks)
	c := dialRawFrom(t, e.addr, "127.0.0.2")
	c.send("EHLO early.test\r\n")
	const want = "554 5.5.0 mx.test Error: SMTP synchronization error: input before the greeting"
	if got := c.reply(); got != want {
		t.Fatalf("early talker got %q, want %q", got, want)
	}
	waitEOF(c)
	if n := rejections(t, hooks, "early_talker"); n != 1 {
		t.Errorf("early_talker rejections: %v, want 1", n)
	}
	log := e.mailLog(t)
	if w := " tcp_local J 0 <> - - - - ([127.0.0.2]) " + want + "\n"; !strings.Contains(log, w) {
		t.Errorf("mail.log lacks %q:\n%s", w, log)
	}
	if !strings.Contains(log, "|127.0.0.2|") || !strings.Contains(log, " SMTP/- 0 "+want+"\n") {
		t.Errorf("the C record does not give the refusal as its reason:\n%s", log)
	}
}

// TestBannerDelayPatientClient: a client that waits for the banner gets it after
// the delay and is served as usual.
func TestBannerDelayPatientClient(t *testing.T) {
	e := earlyTalkerServer(t, nil)
	began := time.Now()
	c := dialRawFrom(t, e.addr, "127.0.0.2")
	c.expect("220 mx.test ESMTP")
	if took := time.Since(began); took < 300*time.Millisecond {
		t.Errorf("banner after %v, before the 300ms delay", took)
	}
	c.cmd("EHLO client.test", "250")
	sendOne(c, "a@example.org", "bob@local.test")
	c.cmd("QUIT", "221")
	if e.q.count() != 1 {
		t.Errorf("%d messages queued, want 1", e.q.count())
	}
}

// TestBannerDelayExempt: an exempt client, and one whose source channel after
// switchchannel has no delay, get the banner at once and may even talk first.
func TestBannerDelayExempt(t *testing.T) {
	tests := []struct {
		name, from, literal string
	}{
		{"exempt address", "127.0.0.1", ""},
		{"channel without delay", "127.0.0.2", "tcp_intranet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := earlyTalkerServer(t, nil)
			pol := *e.cur.Load()
			pol.Channels = map[string]ChannelPolicy{}
			for k, v := range e.cur.Load().Channels {
				pol.Channels[k] = v
			}
			pol.Channels["tcp_intranet"] = ChannelPolicy{Name: "tcp_intranet", AllowSwitchChannel: true,
				Timeouts: Timeouts{Command: time.Minute}}
			e.cur.Store(&pol)
			e.rules.mu.Lock()
			e.rules.literal = tt.literal
			e.rules.mu.Unlock()
			began := time.Now()
			c := dialRawFrom(t, e.addr, tt.from)
			c.send("EHLO early.test\r\n")
			c.expect("220 mx.test ESMTP")
			if took := time.Since(began); took >= 300*time.Millisecond {
				t.Errorf("banner after %v: delayed", took)
			}
			c.expect("250")
		})
	}
}
