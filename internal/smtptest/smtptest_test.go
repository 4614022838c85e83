package smtptest

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func TestStuff(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", ".\r\n"},
		{"plain", "a\r\nb\r\n", "a\r\nb\r\n.\r\n"},
		{"no final line end", "a\r\nb", "a\r\nb\r\n.\r\n"},
		{"leading dot", ".a\r\n", "..a\r\n.\r\n"},
		{"lone dot line", "a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n"},
		{"dot after bare LF", "a\n.b\n", "a\n..b\n.\r\n"},
		{"dot inside a line", "a.b\r\n", "a.b\r\n.\r\n"},
		{"two dots", "..\r\n", "...\r\n.\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(Stuff([]byte(tc.in))); got != tc.want {
				t.Errorf("Stuff(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// scriptServer accepts one connection on loopback, writes out to it, then keeps
// what the client sends until the client closes (or, with hangup, closes at
// once after writing).
type scriptServer struct {
	addr string
	mu   sync.Mutex
	got  bytes.Buffer
	done chan struct{}
}

func startScript(t *testing.T, out string, hangup bool) *scriptServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &scriptServer{addr: l.Addr().String(), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, out)
		if hangup {
			return
		}
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			s.mu.Lock()
			s.got.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return s
}

// received waits for the client side to close and returns all it sent.
func (s *scriptServer) received(t *testing.T) string {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("script server did not finish in 10 s")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got.String()
}

func TestReadReply(t *testing.T) {
	for _, tc := range []struct {
		name    string
		out     string
		hangup  bool
		want    []string // successive replies
		wantErr bool     // the last read ends in an error
	}{
		{name: "one line", out: "220 hi\r\n", want: []string{"220 hi\r\n"}},
		{
			name: "multi-line then next",
			out:  "250-mx.test\r\n250-SIZE 10\r\n250 8BITMIME\r\n354 go\r\n",
			want: []string{"250-mx.test\r\n250-SIZE 10\r\n250 8BITMIME\r\n", "354 go\r\n"},
		},
		{name: "short line ends a reply", out: "25\r\n", want: []string{"25\r\n"}},
		{name: "bare LF kept", out: "250-a\n250 b\n", want: []string{"250-a\n250 b\n"}},
		{name: "cut in a continuation", out: "250-a\r\n250-b", hangup: true, want: []string{"250-a\r\n250-b"}, wantErr: true},
		{name: "closed before a byte", out: "", hangup: true, want: []string{""}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startScript(t, tc.out, tc.hangup)
			c := Open(t, srv.addr)
			for i, want := range tc.want {
				got, err := c.ReadReply()
				last := i == len(tc.want)-1
				if got != want {
					t.Errorf("reply %d = %q, want %q", i, got, want)
				}
				if wantErr := last && tc.wantErr; (err != nil) != wantErr {
					t.Errorf("reply %d: error %v, want error %v", i, err, wantErr)
				}
			}
		})
	}
}

// TestClientBytes checks that the client puts on the wire exactly what a
// conversation implies, and no more.
func TestClientBytes(t *testing.T) {
	replies := "220 hi\r\n250-x\r\n250 y\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n"
	for _, tc := range []struct {
		name    string
		run     func(c *Client) string
		wantOut string
		wantRet string
	}{
		{
			name: "Send dot-stuffs and adds the final CRLF",
			run: func(c *Client) string {
				c.Hello()
				return c.Send("a@x", []string{"b@y", "c@y"}, []byte(".hidden\r\nlast"))
			},
			wantOut: "EHLO client.test\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n..hidden\r\nlast\r\n.\r\n",
			wantRet: "250 queued\r\n",
		},
		{
			name: "Write is byte exact",
			run: func(c *Client) string {
				c.Expect("220")
				c.Write("EHLO a\nMAIL FROM:<>\r\n\r\n")
				return c.Reply()
			},
			wantOut: "EHLO a\nMAIL FROM:<>\r\n\r\n",
			wantRet: "250-x\r\n250 y\r\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startScript(t, replies, false)
			c := Open(t, srv.addr)
			ret := tc.run(c)
			c.Conn().Close()
			if got := srv.received(t); got != tc.wantOut {
				t.Errorf("on the wire %q, want %q", got, tc.wantOut)
			}
			if ret != tc.wantRet {
				t.Errorf("returned %q, want %q", ret, tc.wantRet)
			}
		})
	}
}

func TestAttemptReturnsWhatWasRead(t *testing.T) {
	// The server takes the whole message and dies before answering the final
	// dot: Attempt must hand back "" instead of failing the test.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		io.WriteString(c, "220 hi\r\n")
		inData := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			switch {
			case inData && line == ".\r\n":
				return
			case inData:
			case strings.HasPrefix(line, "DATA"):
				inData = true
				io.WriteString(c, "354 go\r\n")
			default:
				io.WriteString(c, "250 ok\r\n")
			}
		}
	}()
	c := Dial(t, l.Addr().String())
	if got := c.Attempt("a@x", []string{"b@y"}, []byte("x\r\n")); got != "" {
		t.Errorf("Attempt = %q, want \"\"", got)
	}
}

func TestSinkRecords(t *testing.T) {
	rejected := &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	for _, tc := range []struct {
		name      string
		rcpt      func(string, int) error
		to        []string
		wantTo    []string
		wantReply string
	}{
		{name: "accepts", to: []string{"a@y", "b@y"}, wantTo: []string{"a@y", "b@y"}, wantReply: "250"},
		{
			name: "script refuses the first offer of one recipient",
			rcpt: func(to string, attempt int) error {
				if to == "b@y" && attempt == 0 {
					return rejected
				}
				return nil
			},
			to: []string{"a@y", "b@y", "b@y"}, wantTo: []string{"a@y", "b@y"}, wantReply: "550 5.1.1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := StartSink(t, SinkConfig{Rcpt: tc.rcpt})
			c := Dial(t, s.Addr)
			c.Cmd("EHLO client.test", "250")
			c.Cmd("MAIL FROM:<f@x>", "250")
			for i, to := range tc.to {
				want := "250"
				if i == 1 {
					want = tc.wantReply
				}
				c.Cmd("RCPT TO:<"+to+">", want)
			}
			c.Data([]byte("Subject: t\r\n\r\n.dot\r\n"), "250")
			msgs := s.Wait(t, 1, 10*time.Second)
			if len(msgs) != 1 || s.Count() != 1 {
				t.Fatalf("sink kept %d, counted %d, want 1", len(msgs), s.Count())
			}
			m := msgs[0]
			if m.From != "f@x" || !slices.Equal(m.To, tc.wantTo) || string(m.Data) != "Subject: t\r\n\r\n.dot\r\n" {
				t.Errorf("sink got from %q to %q data %q", m.From, m.To, m.Data)
			}
			if got := s.Offered("b@y"); got != len(tc.to)-1 {
				t.Errorf("b@y offered %d times, want %d", got, len(tc.to)-1)
			}
		})
	}
}

func TestSinkRecordAndSendOne(t *testing.T) {
	var mu sync.Mutex
	var recorded []Message
	s := StartSink(t, SinkConfig{Record: func(m Message) {
		mu.Lock()
		recorded = append(recorded, m)
		mu.Unlock()
	}})
	tx := Transaction{Helo: "load.test", From: "l@x", To: []string{"r@y"}, Content: "Subject: one\r\n\r\nbody\r\n"}
	if !SendOne(s.Addr, tx) {
		t.Fatal("SendOne to a healthy sink reported failure")
	}
	s.Wait(t, 1, 10*time.Second)
	if n := len(s.Messages()); n != 0 {
		t.Errorf("sink kept %d messages though Record is set", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(recorded) != 1 || string(recorded[0].Data) != tx.Content || recorded[0].From != "l@x" {
		t.Errorf("recorded %+v", recorded)
	}
}

func TestSendOneRefused(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		hangup    bool
	}{
		{"temporary failure after the dot", "220 hi\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n451 4.3.0 try later\r\n", false},
		{"multi-line EHLO with a bad line", "220 hi\r\n250-ok\r\n550 no\r\n", false},
		{"closed after DATA", "220 hi\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startScript(t, tc.out, tc.hangup)
			done := make(chan bool, 1)
			go func() {
				done <- SendOne(srv.addr, Transaction{Helo: "h", From: "f@x", To: []string{"r@y"}, Content: "x\r\n"})
			}()
			select {
			case ok := <-done:
				if ok {
					t.Error("SendOne reported 250")
				}
			case <-time.After(15 * time.Second):
				t.Fatal("SendOne did not return in 15 s")
			}
		})
	}
}

func TestFormat(t *testing.T) {
	// A formatted client hands a close to its Format instead of failing.
	mark := func(raw string, err error) string {
		if err != nil {
			return strings.TrimSpace("closed after " + raw)
		}
		return strings.ReplaceAll(raw, "\r\n", "|")
	}
	for _, tc := range []struct {
		name, out string
		want      []string
	}{
		{"multi-line", "250-a\r\n250 b\r\n", []string{"250-a|250 b|"}},
		{"close", "421 bye\r\n", []string{"421 bye|", "closed after"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startScript(t, tc.out, true)
			c := Open(t, srv.addr, Format(mark))
			for i, want := range tc.want {
				if got := c.Reply(); got != want {
					t.Errorf("reply %d = %q, want %q", i, got, want)
				}
			}
		})
	}
}
