package smtptest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Default bounds of a client connection. The deadline covers the whole
// conversation: it is long enough for a slow, loaded test machine, and short
// enough that a server that never answers fails the test rather than the run.
const (
	DefaultDialTimeout = 5 * time.Second
	DefaultDeadline    = 30 * time.Second
)

// Option changes how Dial, DialBanner and Open connect.
type Option func(*dialConfig)

type dialConfig struct {
	dialTimeout time.Duration
	deadline    time.Duration
	local       net.Addr
	format      func(raw string, err error) string
}

// DialTimeout bounds the TCP connect.
func DialTimeout(d time.Duration) Option { return func(c *dialConfig) { c.dialTimeout = d } }

// Deadline bounds the whole conversation, from the connect on.
func Deadline(d time.Duration) Option { return func(c *dialConfig) { c.deadline = d } }

// From connects from a chosen loopback source address, for tests of policies
// keyed by the client's IP.
func From(ip string) Option {
	return func(c *dialConfig) { c.local = &net.TCPAddr{IP: net.ParseIP(ip)} }
}

// Format makes Reply, Expect and Cmd return a reply as f renders it from what
// ReadReply returned, and hand a connection that ends to f instead of failing
// the test: for tests that compare transcripts, closes included, as text.
func Format(f func(raw string, err error) string) Option {
	return func(c *dialConfig) { c.format = f }
}

// Client is a raw SMTP client. It never fixes up what a test sends: Write puts
// the bytes on the wire as they are, Cmd adds only the CRLF and Data only the
// dot-stuffing and the final dot.
type Client struct {
	tb     testing.TB
	conn   net.Conn
	r      *bufio.Reader
	format func(raw string, err error) string
}

// Open connects to addr and reads nothing: the banner is the test's to read.
// The connection is closed when the test ends.
func Open(tb testing.TB, addr string, opts ...Option) *Client {
	tb.Helper()
	cfg := dialConfig{dialTimeout: DefaultDialTimeout, deadline: DefaultDeadline}
	for _, o := range opts {
		o(&cfg)
	}
	d := net.Dialer{Timeout: cfg.dialTimeout, LocalAddr: cfg.local}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		if cfg.local != nil {
			tb.Fatalf("dial %s from %s: %v", addr, cfg.local, err)
		}
		tb.Fatalf("dial %s: %v", addr, err)
	}
	if err := conn.SetDeadline(time.Now().Add(cfg.deadline)); err != nil {
		conn.Close()
		tb.Fatalf("set deadline: %v", err)
	}
	tb.Cleanup(func() { conn.Close() })
	return &Client{tb: tb, conn: conn, r: bufio.NewReader(conn), format: cfg.format}
}

// DialBanner connects and returns the client and the greeting, whatever it is
// (220, or 421 from a server over its connection cap).
func DialBanner(tb testing.TB, addr string, opts ...Option) (*Client, string) {
	tb.Helper()
	c := Open(tb, addr, opts...)
	return c, c.Reply()
}

// Dial connects and requires a 220 greeting.
func Dial(tb testing.TB, addr string, opts ...Option) *Client {
	tb.Helper()
	c, banner := DialBanner(tb, addr, opts...)
	if !strings.HasPrefix(banner, "220") {
		tb.Fatalf("want 220, got %q", banner)
	}
	return c
}

// Conn is the connection, for tests that close it abruptly or change its
// deadlines.
func (c *Client) Conn() net.Conn { return c.conn }

// StartTLS runs a TLS handshake on the connection (after the test's STARTTLS got
// its 220) and carries on over TLS. It returns the TLS connection for its state.
func (c *Client) StartTLS(cfg *tls.Config) *tls.Conn {
	c.tb.Helper()
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.tb.Fatalf("handshake: %v", err)
	}
	// Nothing can be buffered from before the handshake: the server sends no byte
	// after its 220 until the client's hello.
	c.conn, c.r = tc, bufio.NewReader(tc)
	return tc
}

// Write sends s as it is.
func (c *Client) Write(s string) {
	c.tb.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.tb.Fatalf("write %q: %v", s, err)
	}
}

// ReadReply reads one whole reply, continuation lines included, and returns it
// as it came, line ends included. When the connection ends or fails before the
// reply's last line, it returns what it read so far and the error.
func (c *Client) ReadReply() (string, error) {
	var all strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		all.WriteString(line)
		if err != nil {
			return all.String(), err
		}
		if len(line) < 4 || line[3] != '-' {
			return all.String(), nil
		}
	}
}

// Reply reads one whole reply; a connection that ends before it fails the test,
// unless the client has a Format.
func (c *Client) Reply() string {
	c.tb.Helper()
	r, err := c.ReadReply()
	if c.format != nil {
		return c.format(r, err)
	}
	if err != nil {
		c.tb.Fatalf("read reply: %v (so far %q)", err, r)
	}
	return r
}

// Expect reads a reply and requires it to start with code.
func (c *Client) Expect(code string) string {
	c.tb.Helper()
	r := c.Reply()
	if !strings.HasPrefix(r, code) {
		c.tb.Fatalf("want %s, got %q", code, r)
	}
	return r
}

// Cmd sends one command line (CRLF added) and requires the reply to start with
// code.
func (c *Client) Cmd(line, code string) string {
	c.tb.Helper()
	c.Write(line + "\r\n")
	return c.Expect(code)
}

// Hello reads a 220 greeting and says EHLO client.test, for a client from Open.
func (c *Client) Hello() string {
	c.tb.Helper()
	c.Expect("220 ")
	return c.Cmd("EHLO client.test", "250")
}

// Stuff returns content as DATA sends it: a dot doubled at the start of each line
// (RFC 5321 4.5.2), a CRLF added when the last line has none, and the final dot.
func Stuff(content []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(content) + len(content)/64 + 5)
	atLineStart := true
	for _, ch := range content {
		if atLineStart && ch == '.' {
			b.WriteByte('.')
		}
		b.WriteByte(ch)
		atLineStart = ch == '\n'
	}
	if !atLineStart {
		b.WriteString("\r\n")
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

// Data sends DATA, then content dot-stuffed, and requires the final reply to
// start with code.
func (c *Client) Data(content []byte, code string) string {
	c.tb.Helper()
	c.Cmd("DATA", "354")
	c.Write(string(Stuff(content)))
	return c.Expect(code)
}

// Send runs one transaction whose every step must succeed: MAIL and every RCPT
// 250, DATA 354, and 250 after the dot-stuffed content. It returns the final
// reply.
func (c *Client) Send(from string, to []string, content []byte) string {
	c.tb.Helper()
	c.envelope(from, to)
	return c.Data(content, "250")
}

// Attempt is Send that leaves the final reply to the test: it returns the reply
// to the final dot without judging it, and when the server goes away instead of
// answering (a test that kills it or fills its disk) what was read, often "".
func (c *Client) Attempt(from string, to []string, content []byte) string {
	c.tb.Helper()
	c.envelope(from, to)
	c.Cmd("DATA", "354")
	c.Write(string(Stuff(content)))
	r, _ := c.ReadReply()
	return r
}

// envelope sends MAIL and RCPT, each of which must get 250.
func (c *Client) envelope(from string, to []string) {
	c.tb.Helper()
	c.Cmd("MAIL FROM:<"+from+">", "250")
	for _, r := range to {
		c.Cmd("RCPT TO:<"+r+">", "250")
	}
}

// WaitClosed reads and discards until the server closes the connection, and
// fails the test if that takes longer than within.
func (c *Client) WaitClosed(within time.Duration) {
	c.tb.Helper()
	if err := c.conn.SetReadDeadline(time.Now().Add(within)); err != nil {
		c.tb.Fatalf("set deadline: %v", err)
	}
	if _, err := io.Copy(io.Discard, c.r); err != nil {
		c.tb.Fatalf("waiting for close: %v", err)
	}
}

// Transaction is one message for SendOne.
type Transaction struct {
	Helo, From string
	To         []string
	// Content is sent as it is, so it must not hold a line starting with a dot; its
	// last line must end in CRLF.
	Content string
}

// SendOne is a load generator's transaction: one connection, one message, QUIT.
// It reports whether the message was acknowledged with 250 after the final dot.
// It takes no testing.TB: load goroutines count failures (a crashed server is
// expected there) instead of failing the test.
func SendOne(addr string, tx Transaction) bool {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	if conn.SetDeadline(time.Now().Add(10*time.Second)) != nil {
		return false
	}
	c := &Client{conn: conn, r: bufio.NewReader(conn)}
	expect := func(code string) bool {
		r, err := c.ReadReply()
		return err == nil && allLinesStart(r, code)
	}
	steps := []struct{ send, code string }{
		{"", "220"},
		{"EHLO " + tx.Helo + "\r\n", "250"},
		{"MAIL FROM:<" + tx.From + ">\r\n", "250"},
	}
	for _, to := range tx.To {
		steps = append(steps, struct{ send, code string }{"RCPT TO:<" + to + ">\r\n", "250"})
	}
	steps = append(steps,
		struct{ send, code string }{"DATA\r\n", "354"},
		struct{ send, code string }{tx.Content + ".\r\n", "250"})
	for _, s := range steps {
		if s.send != "" {
			if _, err := io.WriteString(conn, s.send); err != nil {
				return false
			}
		}
		if !expect(s.code) {
			return false
		}
	}
	io.WriteString(conn, "QUIT\r\n")
	return true
}

// allLinesStart reports whether every line of a reply starts with code.
func allLinesStart(reply, code string) bool {
	for line := range strings.Lines(reply) {
		if !strings.HasPrefix(line, code) {
			return false
		}
	}
	return reply != ""
}
