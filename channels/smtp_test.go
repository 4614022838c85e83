package channels

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	smtp "github.com/emersion/go-smtp"

	"mtad.dev/mta/dnsx"
)

// sink is an in-process go-smtp backend that records what it receives and can
// be told to fail at each stage.
type sink struct {
	mu       sync.Mutex
	msgs     []sunk
	conns    []*smtp.Conn
	sessions atomic.Int32
	mails    atomic.Int32

	mailErr func(from string) error
	rcptErr func(to string) error
	dataErr func(c *smtp.Conn, data []byte) error
}

type sunk struct {
	from  string
	opts  smtp.MailOptions
	rcpts []string
	ropts []smtp.RcptOptions
	data  []byte
}

func (s *sink) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s.sessions.Add(1)
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.mu.Unlock()
	return &sinkSession{s: s, c: c}, nil
}

func (s *sink) received() []sunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sunk(nil), s.msgs...)
}

// dropAll closes every server-side connection, as a server does when its idle
// timeout fires.
func (s *sink) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Conn().Close()
	}
	s.conns = nil
}

type sinkSession struct {
	s   *sink
	c   *smtp.Conn
	cur sunk
}

func (ss *sinkSession) Reset()        { ss.cur = sunk{} }
func (ss *sinkSession) Logout() error { return nil }
func (ss *sinkSession) Mail(from string, opts *smtp.MailOptions) error {
	ss.s.mails.Add(1)
	if ss.s.mailErr != nil {
		if err := ss.s.mailErr(from); err != nil {
			return err
		}
	}
	ss.cur = sunk{from: from}
	if opts != nil {
		ss.cur.opts = *opts
	}
	return nil
}
func (ss *sinkSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	if ss.s.rcptErr != nil {
		if err := ss.s.rcptErr(to); err != nil {
			return err
		}
	}
	ss.cur.rcpts = append(ss.cur.rcpts, to)
	if opts != nil {
		ss.cur.ropts = append(ss.cur.ropts, *opts)
	}
	return nil
}
func (ss *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if ss.s.dataErr != nil {
		if err := ss.s.dataErr(ss.c, data); err != nil {
			return err
		}
	}
	ss.cur.data = data
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, ss.cur)
	ss.s.mu.Unlock()
	return nil
}

// startSink runs a go-smtp server on 127.0.0.1:0 and returns its port.
func startSink(t testing.TB, be *sink, tweak func(*smtp.Server)) int {
	t.Helper()
	srv := smtp.NewServer(be)
	srv.Domain = "sink.test"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.MaxMessageBytes = 10 << 20
	if tweak != nil {
		tweak(srv)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

func newClient(t testing.TB, port int, tweak func(*SMTPOptions)) *SMTP {
	t.Helper()
	o := SMTPOptions{SMTPSettings: SMTPSettings{Daemon: "[127.0.0.1]", Port: port, HeloName: "client.test"}}
	o.Timeouts = Timeouts{Connect: 5 * time.Second, Greeting: 5 * time.Second, Ehlo: 5 * time.Second,
		Mail: 5 * time.Second, Rcpt: 5 * time.Second, DataInit: 5 * time.Second, DataBlock: 5 * time.Second,
		DataEnd: 5 * time.Second, Rset: 2 * time.Second, Quit: time.Second}
	if tweak != nil {
		tweak(&o)
	}
	c := NewSMTP(o)
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// crlfContent is tricky content already in wire form (CRLF lines), which must
// arrive byte-exact.
func crlfContent() []byte {
	var b bytes.Buffer
	b.WriteString("Received: from x by y; Mon, 23 Nov 2026 10:00:00 +0000\r\n")
	b.WriteString("Subject: caf\xc3\xa9\r\n\r\n")
	b.WriteString(".\r\n..two dots\r\n.single\r\n")
	b.WriteString(strings.Repeat("y", 998) + "\r\n")
	b.WriteString("binary \x00\x01\xff\xfe and a bare \r in a line\r\n")
	b.WriteString(strings.Repeat(strings.Repeat("z", 70)+"\r\n.\r\n", 1000)) // crosses every buffer
	b.WriteString("\r\n.\r\n")
	return b.Bytes()
}

func wantDelivered(t *testing.T, res []Result, n int) {
	t.Helper()
	if len(res) != n {
		t.Fatalf("%d results, want %d", len(res), n)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("rcpt %d: %v (reply %q)", i, r.Err, r.Reply)
		}
		if !strings.HasPrefix(r.Reply, "smtp;250") {
			t.Errorf("rcpt %d: reply %q", i, r.Reply)
		}
	}
}

func TestSMTPByteExact(t *testing.T) {
	be := &sink{}
	port := startSink(t, be, nil)
	c := newClient(t, port, nil)
	content := crlfContent()
	res := c.Deliver(testCtx(t), msgOf(content, "s@example.org", "a@example.com"))
	wantDelivered(t, res, 1)
	got := be.received()
	if len(got) != 1 {
		t.Fatalf("server got %d messages", len(got))
	}
	if !bytes.Equal(got[0].data, content) {
		t.Errorf("content differs (got %d bytes, want %d)", len(got[0].data), len(content))
	}
	wantRemote := fmt.Sprintf(`^\[127\.0\.0\.1\] \(TCP\|127\.0\.0\.1\|\d+\|127\.0\.0\.1\|%d\)$`, port)
	if !regexpMatch(wantRemote, res[0].Remote) {
		t.Errorf("Remote %q does not match %s", res[0].Remote, wantRemote)
	}
}

func TestSMTPLineEndings(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\r\nb\r\n", "a\r\nb\r\n"},
		{"no final crlf", "no final crlf\r\n"},
		{"bare\nlf\n.\nx\r\n", "bare\r\nlf\r\n.\r\nx\r\n"},
		{"ends in cr\r", "ends in cr\r\n"},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			be := &sink{}
			port := startSink(t, be, nil)
			res := newClient(t, port, nil).Deliver(testCtx(t), msgOf([]byte(tt.in), "s@d", "r@d"))
			wantDelivered(t, res, 1)
			if got := string(be.received()[0].data); got != tt.want {
				t.Errorf("server got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSMTPPipelinedOne452(t *testing.T) {
	be := &sink{rcptErr: func(to string) error {
		if strings.HasPrefix(to, "b@") {
			return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "too many recipients"}
		}
		return nil
	}}
	port := startSink(t, be, nil)
	res := newClient(t, port, nil).Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d", "b@d", "c@d"))
	if res[0].Err != nil || res[2].Err != nil {
		t.Fatalf("a, c: %v, %v", res[0].Err, res[2].Err)
	}
	if st := res[1].Err; st == nil || !st.Temporary() || st.Code != 452 || st.Enhanced != "4.5.3" {
		t.Fatalf("b: %v", st)
	}
	if res[1].Reply != "smtp;452 4.5.3 too many recipients" {
		t.Errorf("b reply %q", res[1].Reply)
	}
	got := be.received()
	if len(got) != 1 || strings.Join(got[0].rcpts, ",") != "a@d,c@d" {
		t.Fatalf("server got %+v", got)
	}
}

func TestSMTPRcptRejections(t *testing.T) {
	var reject atomic.Bool
	reject.Store(true)
	be := &sink{rcptErr: func(to string) error {
		if !reject.Load() {
			return nil
		}
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}}
	port := startSink(t, be, nil)
	c := newClient(t, port, nil)
	res := c.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d", "b@d"))
	for i, r := range res {
		if r.Err == nil || r.Err.Temporary() || r.Reply != "smtp;550 5.1.1 no such user" {
			t.Errorf("rcpt %d: %v %q", i, r.Err, r.Reply)
		}
	}
	if len(be.received()) != 0 {
		t.Error("DATA sent although every recipient was refused")
	}
	// The connection stays usable.
	reject.Store(false)
	wantDelivered(t, c.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d")), 1)
	if n := be.sessions.Load(); n != 1 {
		t.Errorf("%d sessions, want 1", n)
	}
}

func TestSMTPMailRejected(t *testing.T) {
	be := &sink{mailErr: func(string) error {
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "sender refused"}
	}}
	port := startSink(t, be, nil)
	res := newClient(t, port, nil).Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d", "b@d"))
	for i, r := range res {
		if r.Err == nil || r.Err.Temporary() || r.Err.Code != 553 {
			t.Errorf("rcpt %d: %v", i, r.Err)
		}
	}
}

func TestSMTP552OnData(t *testing.T) {
	be := &sink{dataErr: func(*smtp.Conn, []byte) error {
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "too big"}
	}}
	port := startSink(t, be, nil)
	res := newClient(t, port, nil).Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d", "b@d"))
	for i, r := range res {
		if r.Err == nil || r.Err.Temporary() || r.Reply != "smtp;552 5.3.4 too big" {
			t.Errorf("rcpt %d: %v %q", i, r.Err, r.Reply)
		}
	}
}

// SIZE advertised and exceeded: refuse before sending anything (RFC 1870).
func TestSMTPSizeLimit(t *testing.T) {
	be := &sink{}
	port := startSink(t, be, func(s *smtp.Server) { s.MaxMessageBytes = 100 })
	res := newClient(t, port, nil).Deliver(testCtx(t), msgOf(bytes.Repeat([]byte("x"), 200), "s@d", "a@d"))
	if st := res[0].Err; st == nil || st.Temporary() || st.Code != 552 || st.Enhanced != "5.3.4" {
		t.Fatalf("got %v", st)
	}
	if be.mails.Load() != 0 {
		t.Error("MAIL sent for an oversized message")
	}
}

func TestSMTPDropAfter354(t *testing.T) {
	be := &sink{dataErr: func(c *smtp.Conn, _ []byte) error {
		c.Conn().Close()
		return errors.New("dropped")
	}}
	port := startSink(t, be, nil)
	res := newClient(t, port, nil).Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d", "b@d"))
	for i, r := range res {
		if r.Err == nil || !r.Err.Temporary() {
			t.Errorf("rcpt %d: %v, want temporary", i, r.Err)
		}
	}
}

// Seed 000: a cached connection the server closed meanwhile must not fail the
// next message.
func TestSMTPStaleCachedConnection(t *testing.T) {
	be := &sink{}
	port := startSink(t, be, nil)
	c := newClient(t, port, nil)
	wantDelivered(t, c.Deliver(testCtx(t), msgOf([]byte("one\r\n"), "s@d", "a@d")), 1)
	be.dropAll()
	time.Sleep(20 * time.Millisecond) // let the FIN arrive
	wantDelivered(t, c.Deliver(testCtx(t), msgOf([]byte("two\r\n"), "s@d", "a@d")), 1)
	if n := len(be.received()); n != 2 {
		t.Fatalf("server got %d messages", n)
	}
	if n := be.sessions.Load(); n != 2 {
		t.Errorf("%d sessions, want 2 (one reconnect)", n)
	}
}

func TestSMTPConnectionReuse(t *testing.T) {
	tests := []struct {
		name         string
		perConn      int
		wantSessions int32
	}{
		{"unlimited", 0, 1},
		{"transactionlimit 2", 2, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := &sink{}
			port := startSink(t, be, nil)
			c := newClient(t, port, func(o *SMTPOptions) { o.MaxMessagesPerConn = tt.perConn })
			for i := 0; i < 5; i++ {
				wantDelivered(t, c.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d")), 1)
			}
			if n := be.sessions.Load(); n != tt.wantSessions {
				t.Errorf("%d sessions, want %d", n, tt.wantSessions)
			}
		})
	}
}

func TestSMTPIdleConnectionExpires(t *testing.T) {
	be := &sink{}
	port := startSink(t, be, nil)
	c := newClient(t, port, func(o *SMTPOptions) { o.IdleTimeout = 50 * time.Millisecond })
	wantDelivered(t, c.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d")), 1)
	time.Sleep(200 * time.Millisecond)
	wantDelivered(t, c.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d")), 1)
	if n := be.sessions.Load(); n != 2 {
		t.Errorf("%d sessions, want 2", n)
	}
}

func TestSMTPConnectRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	res := newClient(t, port, nil).Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d", "b@d"))
	for i, r := range res {
		if r.Err == nil || !r.Err.Temporary() || r.Err.Enhanced != "4.4.1" {
			t.Errorf("rcpt %d: %v, want temporary 4.4.1", i, r.Err)
		}
	}
}

// scripted runs a raw TCP server on 127.0.0.1:0 whose every connection is
// handled by fn.
func scripted(t testing.TB, fn func(c net.Conn, r *bufio.Reader)) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				fn(c, bufio.NewReader(c))
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// skipContent reads message content up to and including the lone dot.
func skipContent(r *bufio.Reader) error {
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if l == ".\r\n" {
			return nil
		}
	}
}

func TestSMTP421AtGreeting(t *testing.T) {
	port := scripted(t, func(c net.Conn, r *bufio.Reader) {
		io.WriteString(c, "421 4.3.2 try later\r\n")
	})
	res := newClient(t, port, nil).Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d", "b@d"))
	for i, r := range res {
		if r.Err == nil || !r.Err.Temporary() || r.Err.Code != 421 {
			t.Errorf("rcpt %d: %v", i, r.Err)
		}
	}
}

func TestSMTP554AtGreetingIsTemporary(t *testing.T) {
	port := scripted(t, func(c net.Conn, r *bufio.Reader) {
		io.WriteString(c, "554 5.7.1 no service for you\r\n")
		r.ReadString('\n')
		io.WriteString(c, "221 bye\r\n")
	})
	res := newClient(t, port, nil).Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d"))
	if st := res[0].Err; st == nil || !st.Temporary() {
		t.Fatalf("got %v, want temporary", st)
	}
}

func TestSMTPGreetingTimeout(t *testing.T) {
	port := scripted(t, func(c net.Conn, r *bufio.Reader) {
		r.ReadString('\n') // never greets
	})
	c := newClient(t, port, func(o *SMTPOptions) { o.Timeouts.Greeting = 100 * time.Millisecond })
	start := time.Now()
	res := c.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d"))
	if st := res[0].Err; st == nil || !st.Temporary() || !strings.Contains(st.Text, "timeout") {
		t.Fatalf("got %v", st)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestSMTPContextCancel(t *testing.T) {
	port := scripted(t, func(c net.Conn, r *bufio.Reader) {
		r.ReadString('\n')
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	res := newClient(t, port, nil).Deliver(ctx, msgOf([]byte("x\r\n"), "s@d", "a@d"))
	if st := res[0].Err; st == nil || !st.Temporary() {
		t.Fatalf("got %v", st)
	}
}

// A cached connection that passes the RSET check but then dies, or answers
// MAIL with 421 (the server's idle timeout): the message must still go out on
// a fresh connection, since a stale cached connection must never fail a
// message.
func TestSMTPCachedConnectionDiesLate(t *testing.T) {
	for _, mode := range []string{"dies after RSET", "421 to MAIL"} {
		t.Run(mode, func(t *testing.T) { testCachedDiesLate(t, mode) })
	}
}

func testCachedDiesLate(t *testing.T, mode string) {
	var conns atomic.Int32
	var delivered atomic.Int32
	port := scripted(t, func(c net.Conn, r *bufio.Reader) {
		n := conns.Add(1)
		mails := 0
		io.WriteString(c, "220 scripted ESMTP\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			cmd := strings.ToUpper(strings.TrimSpace(line))
			switch {
			case strings.HasPrefix(cmd, "EHLO"):
				io.WriteString(c, "250-scripted\r\n250 PIPELINING\r\n")
			case cmd == "RSET":
				io.WriteString(c, "250 2.0.0 ok\r\n")
				if n == 1 && mode == "dies after RSET" {
					return
				}
			case strings.HasPrefix(cmd, "MAIL"):
				mails++
				if n == 1 && mails == 2 && mode == "421 to MAIL" {
					io.WriteString(c, "421 4.4.2 idle timeout\r\n")
					return
				}
				io.WriteString(c, "250 2.0.0 ok\r\n")
			case strings.HasPrefix(cmd, "RCPT"):
				io.WriteString(c, "250 2.0.0 ok\r\n")
			case cmd == "DATA":
				io.WriteString(c, "354 go\r\n")
				if err := skipContent(r); err != nil {
					return
				}
				delivered.Add(1)
				io.WriteString(c, "250 2.0.0 queued\r\n")
			case cmd == "QUIT":
				io.WriteString(c, "221 bye\r\n")
				return
			default:
				io.WriteString(c, "502 5.5.2 what\r\n")
			}
		}
	})
	c := newClient(t, port, nil)
	wantDelivered(t, c.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d")), 1)
	wantDelivered(t, c.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d")), 1)
	if delivered.Load() != 2 || conns.Load() != 2 {
		t.Errorf("delivered %d on %d connections, want 2 on 2", delivered.Load(), conns.Load())
	}
}

func TestSMTPHeloFallback(t *testing.T) {
	var got []string
	var mu sync.Mutex
	port := scripted(t, func(c net.Conn, r *bufio.Reader) {
		io.WriteString(c, "220 old\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			cmd := strings.TrimSpace(line)
			mu.Lock()
			got = append(got, cmd)
			mu.Unlock()
			switch {
			case strings.HasPrefix(cmd, "EHLO"):
				io.WriteString(c, "500 5.5.1 unknown command\r\n")
			case cmd == "DATA":
				io.WriteString(c, "354 go\r\n")
				for {
					if l, err := r.ReadString('\n'); err != nil || l == ".\r\n" {
						break
					}
				}
				io.WriteString(c, "250 ok\r\n")
			case cmd == "QUIT":
				io.WriteString(c, "221 bye\r\n")
				return
			default:
				io.WriteString(c, "250 ok\r\n")
			}
		}
	})
	c := newClient(t, port, nil)
	m := msgOf([]byte("x\r\n"), "s@d", "a@d")
	m.EightBit = true
	wantDelivered(t, c.Deliver(testCtx(t), m), 1)
	c.Close()
	mu.Lock()
	defer mu.Unlock()
	want := "EHLO client.test|HELO client.test|MAIL FROM:<s@d>|RCPT TO:<a@d>|DATA|QUIT"
	if strings.Join(got, "|") != want {
		t.Errorf("commands\n got %s\nwant %s", strings.Join(got, "|"), want)
	}
}

func TestSMTPExtensions(t *testing.T) {
	be := &sink{}
	port := startSink(t, be, func(s *smtp.Server) { s.EnableDSN = true; s.EnableSMTPUTF8 = true })
	m := msgOf([]byte("x\r\n"), "s@d", "a@d")
	m.EightBit, m.SMTPUTF8, m.RET, m.EnvID = true, true, "HDRS", "id+1 x"
	m.Rcpts[0].Notify, m.Rcpts[0].ORCPT = "SUCCESS,FAILURE", "rfc822;orig@d"
	wantDelivered(t, newClient(t, port, nil).Deliver(testCtx(t), m), 1)
	got := be.received()[0]
	if got.opts.Body != smtp.Body8BitMIME || !got.opts.UTF8 || got.opts.Return != smtp.DSNReturnHeaders ||
		got.opts.EnvelopeID != "id+1 x" || got.opts.Size != 3 {
		t.Errorf("MAIL options %+v", got.opts)
	}
	if len(got.ropts) != 1 || len(got.ropts[0].Notify) != 2 || got.ropts[0].OriginalRecipient != "orig@d" {
		t.Errorf("RCPT options %+v", got.ropts)
	}
}

func TestSMTPUTF8Unsupported(t *testing.T) {
	be := &sink{}
	port := startSink(t, be, nil) // no SMTPUTF8
	m := msgOf([]byte("x\r\n"), "s@d", "jos\xc3\xa9@d")
	m.SMTPUTF8 = true
	res := newClient(t, port, nil).Deliver(testCtx(t), m)
	if st := res[0].Err; st == nil || st.Temporary() || st.Enhanced != "5.6.7" {
		t.Fatalf("got %v", st)
	}
}

// fakeResolver answers from maps; hosts resolve to TEST-NET addresses that the
// dial hook maps onto loopback servers, so nothing leaves the machine.
type fakeResolver struct {
	mx    map[string][]dnsx.MX
	hosts map[string][]netip.Addr
	tempf map[string]bool
}

func (f *fakeResolver) LookupMX(_ context.Context, d string) ([]dnsx.MX, error) {
	if f.tempf[d] {
		return nil, &dnsx.Error{Name: d, Type: "MX", Err: "SERVFAIL", Temp: true}
	}
	mx, ok := f.mx[d]
	if !ok {
		if _, ok := f.hosts[d]; ok {
			return nil, nil
		}
		return nil, &dnsx.Error{Name: d, Type: "MX", Err: "NXDOMAIN", NotFound: true}
	}
	return mx, nil
}

func (f *fakeResolver) LookupHost(_ context.Context, h string) ([]netip.Addr, error) {
	if f.tempf[h] {
		return nil, &dnsx.Error{Name: h, Type: "A", Err: "SERVFAIL", Temp: true}
	}
	a, ok := f.hosts[h]
	if !ok {
		return nil, &dnsx.Error{Name: h, Type: "A", Err: "NXDOMAIN", NotFound: true}
	}
	return a, nil
}

// dialMap sends TEST-NET addresses to loopback ports; unmapped ones are refused.
func dialMap(m map[string]int, log *[]string, mu *sync.Mutex) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		mu.Lock()
		*log = append(*log, host)
		mu.Unlock()
		port, ok := m[host]
		if !ok {
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		}
		var d net.Dialer
		return d.DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", port))
	}
}

func TestSMTPMXRouting(t *testing.T) {
	a := netip.MustParseAddr
	res := &fakeResolver{
		mx: map[string][]dnsx.MX{
			"two.test":  {{Host: "mx2.two.test", Pref: 20}, {Host: "mx1.two.test", Pref: 10}},
			"null.test": {{Host: "", Pref: 0}},
			"dead.test": {{Host: "gone.dead.test", Pref: 10}},
			"slow.test": {{Host: "flaky.slow.test", Pref: 10}, {Host: "gone.dead.test", Pref: 20}},
		},
		hosts: map[string][]netip.Addr{
			"mx1.two.test":    {a("192.0.2.1"), a("192.0.2.2")},
			"mx2.two.test":    {a("192.0.2.3")},
			"plain.test":      {a("192.0.2.3")},
			"nomx.two.test":   {a("192.0.2.3")},
			"flaky.slow.test": {a("192.0.2.9")},
		},
		tempf: map[string]bool{"servfail.test": true, "flaky.slow.test": true},
	}
	tests := []struct {
		name      string
		domain    string
		mode      MXMode
		wantErr   string // enhanced code; "" delivered
		wantTemp  bool
		wantDials string
	}{
		{"every address of the first MX, then the second", "two.test", MXDefault, "", false, "192.0.2.1,192.0.2.2,192.0.2.3"},
		{"no MX: the domain's own address", "plain.test", MXDefault, "", false, "192.0.2.3"},
		{"nomx: A record only", "nomx.two.test", MXNone, "", false, "192.0.2.3"},
		{"null MX", "null.test", MXDefault, "5.1.10", false, ""},
		{"NXDOMAIN", "nowhere.test", MXDefault, "5.1.2", false, ""},
		{"SERVFAIL defers", "servfail.test", MXDefault, "4.4.3", true, ""},
		{"MX host without address", "dead.test", MXDefault, "5.4.4", false, ""},
		{"temporary beats permanent", "slow.test", MXDefault, "4.4.3", true, ""},
		{"address literal", "[192.0.2.3]", MXDefault, "", false, "192.0.2.3"},
		{"lastresort after a dead MX", "dead.test", MXDefault, "", false, "192.0.2.3"},
		{"smart host not in DNS defers", "two.test", MXDefault, "4.4.4", true, ""},
		{"smart host by name: its address, not its MX", "two.test", MXDefault, "", false, "192.0.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := &sink{}
			port := startSink(t, be, nil)
			var dials []string
			var mu sync.Mutex
			c := newClient(t, 25, func(o *SMTPOptions) {
				o.Daemon = ""
				switch {
				case strings.HasPrefix(tt.name, "lastresort"):
					o.LastResort = "[192.0.2.3]"
				case strings.HasPrefix(tt.name, "smart host not"):
					o.Daemon = "relay.nowhere.test"
				case strings.HasPrefix(tt.name, "smart host by name"):
					o.Daemon = "plain.test"
				}
				o.Resolver = res
				o.MX = tt.mode
				o.Dial = dialMap(map[string]int{"192.0.2.3": port}, &dials, &mu)
			})
			r := c.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "u@"+tt.domain))[0]
			if tt.wantErr == "" {
				if r.Err != nil {
					t.Fatalf("got %v", r.Err)
				}
				if !strings.HasPrefix(r.Remote, "") || len(be.received()) != 1 {
					t.Fatalf("not delivered: %+v", r)
				}
			} else if r.Err == nil || r.Err.Enhanced != tt.wantErr || r.Err.Temporary() != tt.wantTemp {
				t.Fatalf("got %v, want %s temporary=%v", r.Err, tt.wantErr, tt.wantTemp)
			}
			mu.Lock()
			defer mu.Unlock()
			if tt.wantDials != "" && strings.Join(dials, ",") != tt.wantDials {
				t.Errorf("dialled %v, want %s", dials, tt.wantDials)
			}
		})
	}
}

func TestRouteRandomMX(t *testing.T) {
	res := &fakeResolver{mx: map[string][]dnsx.MX{"r.test": {
		{Host: "c", Pref: 20}, {Host: "a", Pref: 10}, {Host: "b", Pref: 10}, {Host: "d", Pref: 30},
	}}}
	order := func(mode MXMode) string {
		c := NewSMTP(SMTPOptions{Resolver: res, SMTPSettings: SMTPSettings{MX: mode}})
		hops, st := c.route(context.Background(), "r.test")
		if st != nil {
			t.Fatal(st)
		}
		var names []string
		for _, h := range hops {
			names = append(names, h.name)
		}
		return strings.Join(names, ",")
	}
	for i := 0; i < 20; i++ {
		if got := order(MXNonRandom); got != "a,b,c,d" {
			t.Fatalf("nonrandommx order %s", got)
		}
	}
	seen := map[string]bool{}
	for i := 0; i < 200 && len(seen) < 2; i++ {
		got := order(MXRandom)
		if got != "a,b,c,d" && got != "b,a,c,d" {
			t.Fatalf("randommx order %s breaks preferences", got)
		}
		seen[got] = true
	}
	if len(seen) != 2 {
		t.Errorf("randommx never shuffled equal preferences: %v", seen)
	}
}

func TestSMTPConcurrentBounded(t *testing.T) {
	be := &sink{}
	port := startSink(t, be, nil)
	c := newClient(t, port, func(o *SMTPOptions) { o.MaxConnsPerHost = 2 })
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := c.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d"))
			if r[0].Err != nil {
				errs <- r[0].Err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := be.sessions.Load(); n > 2 {
		t.Errorf("%d sessions, want at most 2", n)
	}
	if n := len(be.received()); n != 20 {
		t.Errorf("%d delivered", n)
	}
}

func BenchmarkSMTPRelay(b *testing.B) {
	be := &sinkDiscard{}
	srv := smtp.NewServer(be)
	srv.Domain = "sink.test"
	srv.MaxMessageBytes = 1 << 20
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	c := newClient(b, l.Addr().(*net.TCPAddr).Port, func(o *SMTPOptions) { o.MaxMessagesPerConn = 1000 })
	content := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"), 64)
	m := msgOf(content, "s@d", "a@d")
	ctx := context.Background()
	b.SetBytes(int64(len(content)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r := c.Deliver(ctx, m); r[0].Err != nil {
				b.Error(r[0].Err)
				return
			}
		}
	})
}

// sinkDiscard is the cheapest possible server backend for the benchmark.
type sinkDiscard struct{}

func (sinkDiscard) NewSession(*smtp.Conn) (smtp.Session, error) { return discardSession{}, nil }

type discardSession struct{}

func (discardSession) Reset()                               {}
func (discardSession) Logout() error                        { return nil }
func (discardSession) Mail(string, *smtp.MailOptions) error { return nil }
func (discardSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (discardSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// lmtpSink gives a status per recipient after DATA, as LMTP servers do.
type lmtpSink struct{ sink }

func (s *lmtpSink) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s.sessions.Add(1)
	return &lmtpSession{sinkSession{s: &s.sink, c: c}}, nil
}

type lmtpSession struct{ sinkSession }

func (ls *lmtpSession) LMTPData(r io.Reader, sc smtp.StatusCollector) error {
	if err := ls.Data(r); err != nil {
		return err
	}
	for _, rc := range ls.cur.rcpts {
		var err error
		if strings.HasPrefix(rc, "full@") {
			err = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
		}
		sc.SetStatus(rc, err)
	}
	return nil
}

func TestLMTPUnixPerRecipient(t *testing.T) {
	be := &lmtpSink{}
	c := lmtpOnUnixSocket(t, be, false)
	for round := 0; round < 2; round++ {
		res := c.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d", "full@d", "b@d"))
		if res[0].Err != nil || res[2].Err != nil {
			t.Fatalf("a, b: %v, %v", res[0].Err, res[2].Err)
		}
		if st := res[1].Err; st == nil || !st.Temporary() || st.Enhanced != "4.2.2" {
			t.Fatalf("full: %v", st)
		}
		if !strings.HasPrefix(res[0].Reply, "lmtp;250") || !strings.Contains(res[0].Remote, "UNIX|") {
			t.Errorf("reply %q remote %q", res[0].Reply, res[0].Remote)
		}
	}
	if n := be.sessions.Load(); n != 1 {
		t.Errorf("%d sessions, want 1 (reuse)", n)
	}
}

// DropIdle (qm run) closes the cached connections but keeps caching: the next two
// messages share one fresh connection.
func TestSMTPDropIdleKeepsCaching(t *testing.T) {
	var conns atomic.Int32
	port := scripted(t, func(c net.Conn, r *bufio.Reader) {
		conns.Add(1)
		io.WriteString(c, "220 cache.test ESMTP\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			switch cmd := strings.ToUpper(line); {
			case strings.HasPrefix(cmd, "DATA"):
				io.WriteString(c, "354 go\r\n")
				for {
					l, err := r.ReadString('\n')
					if err != nil || l == ".\r\n" {
						break
					}
				}
				io.WriteString(c, "250 2.0.0 ok\r\n")
			case strings.HasPrefix(cmd, "QUIT"):
				io.WriteString(c, "221 bye\r\n")
				return
			default:
				io.WriteString(c, "250 ok\r\n")
			}
		}
	})
	cl := newClient(t, port, nil)
	send := func() {
		if res := cl.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d")); res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
	}
	send()
	cl.DropIdle()
	send()
	send()
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (one before DropIdle, one cached after)", n)
	}
}
