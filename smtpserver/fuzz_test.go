package smtpserver

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mtad.dev/mta/queue"
)

// panicCatcher is a slog handler that remembers any record mentioning a panic:
// the server recovers a panic in a session (conn.recoverPanic) and only logs it.
type panicCatcher struct {
	mu   sync.Mutex
	msgs []string
}

func (p *panicCatcher) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicCatcher) Handle(_ context.Context, r slog.Record) error {
	text := r.Message
	r.Attrs(func(a slog.Attr) bool { text += " " + a.String(); return true })
	if strings.Contains(text, "panic") {
		p.mu.Lock()
		p.msgs = append(p.msgs, text)
		p.mu.Unlock()
	}
	return nil
}
func (p *panicCatcher) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *panicCatcher) WithGroup(string) slog.Handler      { return p }

// FuzzSession feeds arbitrary bytes as a client over net.Pipe: the server must not
// panic, must not hang, and whatever it queues must be a clean message.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"EHLO a\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
		"EHLO a\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nx\n.\nMAIL FROM:<e@f.example>\r\nRCPT TO:<g@h.example>\r\nDATA\r\ny\r\n.\r\n",
		"HELO a\r\nMAIL FROM:<> BODY=8BITMIME SIZE=10\r\nRCPT TO:<list@local.test> NOTIFY=NEVER ORCPT=rfc822;x+2By@z\r\nDATA\r\n.\r\n",
		"EHLO a\r\nSTARTTLS\r\nBDAT 5 LAST\r\nhello",
		"EHLO " + strings.Repeat("a", 600) + "\r\nNOOP\r\n",
		"\x00\r\n\r\n\n\n\r\rRSET\r\nVRFY x\r\nAUTH PLAIN\r\n",
		"EHLO a\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<nouser@local.test>\r\nRCPT TO:<x@y.invalid>\r\nDATA\r\n",
		"EHLO a\r\nAUTH PLAIN AGFsaWNlAHB3\r\nMAIL FROM:<a@b.example> AUTH=a@b.example\r\nRCPT TO:<c@d.example>\r\nDATA\r\nx\r\n.\r\n",
		"EHLO a\r\nAUTH LOGIN\r\nYWxpY2U=\r\nx\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN =\r\nAUTH LOGIN YQ==\r\n%%\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		q := &fakeQueue{}
		pc := &panicCatcher{}
		pol := basePolicy(&fakeRules{}, &fakeAccess{})
		pol.MaxMessageBytes = 4096
		pol.Timeouts = Timeouts{Greeting: time.Second, Command: time.Second, DataBlock: time.Second}
		// AUTH on, in clear text from "loopback", so the exchange is reachable.
		pol.Channels["tcp_local"] = ChannelPolicy{Name: "tcp_local", SwitchChannel: true, SASL: SASLMay,
			AllowPlainAuthLoopback: true, SASLSwitchChannel: "tcp_intranet"}
		srv := New(Config{Policy: func() *Policy { return pol }, Queue: q, Logger: slog.New(pc),
			Auth: fakeAuth{"alice": "pw"}})
		client, server := net.Pipe()
		go srv.admit(loopbackPipe{server})
		go io.Copy(io.Discard, client)
		client.SetWriteDeadline(time.Now().Add(3 * time.Second))
		client.Write(in)
		client.Close()

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("session did not end: %v", err)
		}
		pc.mu.Lock()
		defer pc.mu.Unlock()
		if len(pc.msgs) > 0 {
			t.Fatalf("panic: %s", pc.msgs)
		}
		for i := 0; i < q.count(); i++ {
			_, m := q.get(i)
			if !bytes.HasPrefix(m, []byte("Received: from ")) || bareLineEnd(m) {
				t.Fatalf("queued %q", m)
			}
		}
	})
}

// loopbackPipe gives a net.Pipe end loopback addresses (a pipe has none), so that
// the plaintext-AUTH-on-loopback path is fuzzed too.
type loopbackPipe struct{ net.Conn }

func (loopbackPipe) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25} }
func (loopbackPipe) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}

// FuzzParsePlain: the PLAIN response parser on arbitrary bytes never panics and
// never accepts an empty user or another user's authorization identity.
func FuzzParsePlain(f *testing.F) {
	for _, s := range []string{"\x00alice\x00pw", "a\x00a\x00p", "b\x00a\x00p", "", "\x00\x00", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if b, ok := decodeSASL(in); ok && in != "=" && len(b) > len(in) {
			t.Fatalf("decodeSASL(%q) grew to %d bytes", in, len(b))
		}
		user, _, ok := parsePlain([]byte(in))
		if ok && user == "" {
			t.Fatalf("parsePlain(%q) accepted an empty user", in)
		}
		if authz, _, _ := strings.Cut(in, "\x00"); ok && authz != "" && authz != user {
			t.Fatalf("parsePlain(%q) accepted authzid %q for %q", in, authz, user)
		}
	})
}

// panicQueue panics in Enqueue, standing for a bug anywhere below a session.
type panicQueue struct{ fakeQueue }

func (q *panicQueue) Enqueue(ctx context.Context, env *queue.Envelope, content []byte) (string, error) {
	if strings.Contains(string(content), "Subject: boom") {
		panic("boom")
	}
	return q.fakeQueue.Enqueue(ctx, env, content)
}

// TestPanicInSession: a panic in a session is answered 421 and logged with its
// stack, the connection closed, and the server serves the next one.
func TestPanicInSession(t *testing.T) {
	pc := &panicCatcher{}
	q := &panicQueue{}
	e := startServer(t, func(_ *Policy, c *Config) {
		c.Queue = q
		c.Logger = slog.New(pc)
	})
	c := dialRaw(t, e.addr)
	c.hello()
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.cmd("DATA", "354")
	c.send("Subject: boom\r\n\r\nx\r\n.\r\n")
	c.expect("421 4.0.0 Internal server error")
	if got := c.reply(); got != "EOF" {
		t.Errorf("after 421: %q", got)
	}
	pc.mu.Lock()
	logged := strings.Join(pc.msgs, "\n")
	pc.mu.Unlock()
	if !strings.Contains(logged, "boom") || !strings.Contains(logged, "goroutine") {
		t.Errorf("panic not logged with its stack: %q", logged)
	}
	c2 := dialRaw(t, e.addr)
	c2.hello()
	c2.cmd("MAIL FROM:<a@example.org>", "250")
	c2.cmd("RCPT TO:<b@example.net>", "250")
	c2.cmd("DATA", "354")
	c2.send("Subject: fine\r\n\r\nx\r\n.\r\n")
	c2.expect("250 2.0.0 Ok: queued")
}
