package smtptest

import (
	"io"
	"log"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one message a sink accepted.
type Message struct {
	From string
	To   []string
	Data []byte
	At   time.Time // when DATA ended
}

// SinkConfig says how a sink listens and what it does with a message.
type SinkConfig struct {
	// Addr is where it listens; "" is 127.0.0.1 on a free port.
	Addr string
	// Domain is its name in the greeting; "" is sink.test.
	Domain string
	// Rcpt, when set, decides each RCPT: given the recipient and how many times it
	// was offered before (0 the first time, and always with Record), nil accepts
	// it and an *smtp.SMTPError is the reply.
	Rcpt func(to string, attempt int) error
	// Record, when set, is given each accepted message instead of the sink keeping
	// it, so a long load test keeps only what it needs: such a sink keeps nothing
	// per message or recipient, and only Count still counts.
	Record func(Message)
}

// Sink is a remote SMTP server on loopback that accepts every message (unless
// SinkConfig.Rcpt says otherwise) and records it. It stops when the test ends.
type Sink struct {
	// Addr is the address it listens on, and Port its port.
	Addr string
	Port int

	cfg      SinkConfig
	mu       sync.Mutex
	msgs     []Message
	n        int
	attempts map[string]int
}

// NewSink starts a sink on 127.0.0.1 on a free port.
func NewSink(tb testing.TB) *Sink { return StartSink(tb, SinkConfig{}) }

// StartSink starts a sink as cfg says.
func StartSink(tb testing.TB, cfg SinkConfig) *Sink {
	tb.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Domain == "" {
		cfg.Domain = "sink.test"
	}
	s := &Sink{cfg: cfg, attempts: map[string]int{}}
	srv := smtp.NewServer(s)
	srv.Domain = cfg.Domain
	srv.AllowInsecureAuth = true
	// The client under test drops connections on purpose (crashes, timeouts);
	// go-smtp's complaints about them are noise in the test output.
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		tb.Fatalf("sink: listen on %s: %v", cfg.Addr, err)
	}
	s.Addr = l.Addr().String()
	s.Port = l.Addr().(*net.TCPAddr).Port
	go srv.Serve(l)
	tb.Cleanup(func() { srv.Close() })
	return s
}

// NewSession is called by go-smtp for each connection.
func (s *Sink) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s}, nil }

// Count is how many messages it accepted so far.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// Messages returns the messages it kept so far, in the order they arrived.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// Offered is how many times a recipient was offered in RCPT, accepted or not
// (always 0 for a sink with SinkConfig.Record).
func (s *Sink) Offered(to string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[to]
}

// Wait waits until it has accepted n messages and returns those it kept; it
// fails the test if that takes longer than within.
func (s *Sink) Wait(tb testing.TB, n int, within time.Duration) []Message {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		s.mu.Lock()
		got := s.n
		if got >= n {
			out := slices.Clone(s.msgs)
			s.mu.Unlock()
			return out
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			tb.Fatalf("sink has %d messages after %v, want %d", got, within, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *Sink) accept(m Message) {
	if s.cfg.Record != nil {
		s.cfg.Record(m)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if s.cfg.Record == nil {
		s.msgs = append(s.msgs, m)
	}
}

type sinkSession struct {
	s   *Sink
	cur Message
}

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.cur = Message{From: from}
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	n := ss.s.attempts[to]
	if ss.s.cfg.Record == nil {
		ss.s.attempts[to] = n + 1
	}
	ss.s.mu.Unlock()
	if ss.s.cfg.Rcpt != nil {
		if err := ss.s.cfg.Rcpt(to, n); err != nil {
			return err
		}
	}
	ss.cur.To = append(ss.cur.To, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.cur.Data = b
	ss.cur.At = time.Now()
	ss.s.accept(ss.cur)
	return nil
}

func (ss *sinkSession) Reset()        { ss.cur = Message{} }
func (ss *sinkSession) Logout() error { return nil }
