package channels

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Stall points of stallServer: the server behaves until it reaches one, then
// stops answering (it keeps reading, or for stallContent stops reading too).
const (
	stallGreeting = "greeting"
	stallEhlo     = "EHLO"
	stallMail     = "MAIL"
	stallRcpt     = "RCPT"
	stallData     = "DATA"    // no 354
	stallContent  = "content" // 354, then reads nothing more
	stallDot      = "dot"     // reads the content, never answers the final dot
	stallRset     = "RSET"    // only the RSET that checks a cached connection
	stallQuit     = "QUIT"
)

// stallServer runs a loopback SMTP server that stalls at stage. It counts
// connections and completed transactions. Without pipelining every stage is
// its own round trip, so each stall hits exactly one client timeout.
type stallServer struct {
	port      int
	conns     atomic.Int32
	delivered atomic.Int32
}

func newStallServer(t *testing.T, stage string, pipelining bool) *stallServer {
	t.Helper()
	s := &stallServer{}
	done := make(chan struct{})
	s.port = scripted(t, func(c net.Conn, r *bufio.Reader) {
		s.conns.Add(1)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetReadBuffer(4096) // so that a client writing content blocks soon
		}
		stall := func() {
			// Keep the connection open, silent, until the client gives up
			// (EOF) or the test ends.
			go func() { io.Copy(io.Discard, r); c.Close() }()
			<-done
		}
		if stage == stallGreeting {
			stall()
			return
		}
		io.WriteString(c, "220 stall.test ESMTP\r\n")
		txns := 0
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			verb := strings.ToUpper(strings.TrimSpace(line))
			if i := strings.IndexAny(verb, " :"); i >= 0 {
				verb = verb[:i]
			}
			switch {
			case verb == stage && (verb != stallRset || txns > 0):
				stall()
				return
			case verb == "EHLO":
				ext := "250-stall.test\r\n"
				if pipelining {
					ext += "250-PIPELINING\r\n"
				}
				io.WriteString(c, ext+"250 8BITMIME\r\n")
			case verb == "MAIL" || verb == "RCPT" || verb == "RSET":
				io.WriteString(c, "250 2.0.0 ok\r\n")
			case verb == "DATA":
				if stage == stallData {
					stall()
					return
				}
				io.WriteString(c, "354 go ahead\r\n")
				if stage == stallContent {
					<-done // reads nothing: the client's writes block
					return
				}
				if err := skipContent(r); err != nil {
					return
				}
				if stage == stallDot {
					stall()
					return
				}
				txns++
				s.delivered.Add(1)
				io.WriteString(c, "250 2.0.0 queued\r\n")
			case verb == "QUIT":
				io.WriteString(c, "221 2.0.0 bye\r\n")
				return
			default:
				io.WriteString(c, "502 5.5.2 unknown command\r\n")
			}
		}
	})
	// Registered after scripted's cleanup, so it runs first and frees the
	// handlers that scripted's cleanup waits for.
	t.Cleanup(func() { close(done) })
	return s
}

// slowTimeouts are far longer than any stage under test needs: a stall that
// ends well before them was ended by the stage's own short timeout.
func slowTimeouts() Timeouts {
	const slow = 10 * time.Second
	return Timeouts{Connect: slow, Greeting: slow, Ehlo: slow, Mail: slow, Rcpt: slow, DataInit: slow,
		DataBlock: slow, DataEnd: slow, Rset: slow, Quit: slow}
}

// TestSMTPStageTimeouts stalls a server at each stage with a short timeout for
// that stage only: the attempt must end with a temporary failure naming the
// stage (or, for the reuse check and QUIT, deliver anyway) long before any
// other timeout could have fired.
func TestSMTPStageTimeouts(t *testing.T) {
	const short = 100 * time.Millisecond
	const bound = 5 * time.Second // half of slowTimeouts: only the short one can have fired
	cases := []struct {
		stage      string
		pipelining bool
		set        func(*Timeouts)
		size       int    // content bytes
		want       string // "" = delivered; else the failure text
	}{
		{stage: "connect", set: func(t *Timeouts) { t.Connect = short }, want: "timeout connecting to"},
		{stage: stallGreeting, set: func(t *Timeouts) { t.Greeting = short }, want: "timeout waiting for greeting reply"},
		{stage: stallEhlo, set: func(t *Timeouts) { t.Ehlo = short }, want: "timeout waiting for EHLO reply"},
		{stage: stallMail, set: func(t *Timeouts) { t.Mail = short }, want: "timeout waiting for MAIL reply"},
		{stage: stallMail, pipelining: true, set: func(t *Timeouts) { t.Mail = short }, want: "timeout waiting for MAIL reply"},
		{stage: stallRcpt, set: func(t *Timeouts) { t.Rcpt = short }, want: "timeout waiting for RCPT reply"},
		{stage: stallData, set: func(t *Timeouts) { t.DataInit = short }, want: "timeout waiting for DATA reply"},
		{stage: stallContent, set: func(t *Timeouts) { t.DataBlock = short }, size: 16 << 20, want: "timeout sending DATA content"},
		{stage: stallDot, set: func(t *Timeouts) { t.DataEnd = short }, want: "timeout waiting for end of DATA reply"},
		// A cached connection that does not answer its check is replaced: the
		// message goes over a fresh one.
		{stage: stallRset, set: func(t *Timeouts) { t.Rset = short }},
		// A server silent after the final reply cannot hold the delivery.
		{stage: stallQuit, set: func(t *Timeouts) { t.Quit = short }},
	}
	for _, tc := range cases {
		name := tc.stage
		if tc.pipelining {
			name += "/pipelined"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := newStallServer(t, tc.stage, tc.pipelining)
			to := slowTimeouts()
			tc.set(&to)
			c := newClient(t, srv.port, func(o *SMTPOptions) {
				o.Timeouts = to
				switch tc.stage {
				case "connect":
					// A destination that drops SYNs: the dial never completes
					// until the client's own limit ends it.
					o.Dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
						<-ctx.Done()
						return nil, ctx.Err()
					}
				case stallContent:
					o.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
						var d net.Dialer
						nc, err := d.DialContext(ctx, network, addr)
						if tcp, ok := nc.(*net.TCPConn); ok {
							tcp.SetWriteBuffer(4096)
						}
						return nc, err
					}
				case stallQuit:
					o.MaxIdlePerHost = -1 // no cache: QUIT after every message
				}
			})
			content := []byte("Subject: stall\r\n\r\nbody\r\n")
			if tc.size > 0 {
				content = bytes.Repeat([]byte(strings.Repeat("x", 78)+"\r\n"), tc.size/80)
			}
			if tc.stage == stallRset {
				// The first message leaves a cached connection behind.
				wantDelivered(t, c.Deliver(testCtx(t), msgOf(content, "s@d", "a@d")), 1)
			}
			start := time.Now()
			res := c.Deliver(testCtx(t), msgOf(content, "s@d", "a@d", "b@d"))
			took := time.Since(start)
			if took > bound {
				t.Errorf("took %v: a timeout other than the stage's fired", took)
			}
			if tc.want == "" {
				wantDelivered(t, res, 2)
				if tc.stage == stallRset && srv.conns.Load() != 2 {
					t.Errorf("%d connections, want 2 (the stale one and a fresh one)", srv.conns.Load())
				}
				return
			}
			for i, r := range res {
				if r.Err == nil || !r.Err.Temporary() || !strings.Contains(r.Err.Text, tc.want) {
					t.Errorf("rcpt %d: %v, want a temporary failure with %q", i, r.Err, tc.want)
				}
			}
			if n := srv.delivered.Load(); n != 0 {
				t.Errorf("server completed %d transactions", n)
			}
		})
	}
}

// TestSMTPStalledHostCostsOneTimeout: a host that stalls holds only its own
// delivery, for one timeout. A message for it and another host delivers to the
// other host; a concurrent delivery through the same program to a healthy host
// is not queued behind the stalled one.
func TestSMTPStalledHostCostsOneTimeout(t *testing.T) {
	t.Parallel()
	stalled := newStallServer(t, stallGreeting, false)
	be := &sink{}
	good := startSink(t, be, nil)
	a := netip.MustParseAddr
	res := &fakeResolver{hosts: map[string][]netip.Addr{
		"stalled.test": {a("192.0.2.1")},
		"good.test":    {a("192.0.2.2")},
	}}
	var dials []string
	var mu sync.Mutex
	to := slowTimeouts()
	to.Greeting = time.Second // ample for the healthy delivery to finish first
	c := newClient(t, 25, func(o *SMTPOptions) {
		o.Daemon = ""
		o.Resolver = res
		o.Timeouts = to
		o.Dial = dialMap(map[string]int{"192.0.2.1": stalled.port, "192.0.2.2": good}, &dials, &mu)
	})
	content := []byte("Subject: one timeout\r\n\r\nbody\r\n")

	t.Run("concurrent deliveries", func(t *testing.T) {
		stuck := make(chan []Result, 1)
		ctx := testCtx(t)
		go func() { stuck <- c.Deliver(ctx, msgOf(content, "s@d", "u@stalled.test")) }()
		// Let the stalled delivery connect first.
		for i := 0; i < 200 && stalled.conns.Load() == 0; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		wantDelivered(t, c.Deliver(testCtx(t), msgOf(content, "s@d", "u@good.test")), 1)
		select {
		case r := <-stuck:
			t.Fatalf("the stalled delivery ended before the healthy one: %+v", r[0])
		default:
		}
		r := (<-stuck)[0]
		if r.Err == nil || !r.Err.Temporary() || !strings.Contains(r.Err.Text, "timeout waiting for greeting") {
			t.Fatalf("stalled host: %v", r.Err)
		}
	})
	t.Run("one message, two hosts", func(t *testing.T) {
		before := len(be.received())
		r := c.Deliver(testCtx(t), msgOf(content, "s@d", "u@stalled.test", "v@good.test"))
		if r[0].Err == nil || !r[0].Err.Temporary() || !strings.Contains(r[0].Err.Text, "timeout waiting for greeting") {
			t.Errorf("stalled host: %v", r[0].Err)
		}
		if r[1].Err != nil {
			t.Errorf("healthy host: %v", r[1].Err)
		}
		if got := len(be.received()) - before; got != 1 {
			t.Errorf("healthy host received %d messages, want 1", got)
		}
	})
}
