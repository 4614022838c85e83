package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/queue"
	"mtad.dev/mta/status"
)

func TestMatch(t *testing.T) {
	cases := []struct {
		pat, s string
		want   bool
	}{
		{"*", "", true},
		{"*", "a@b", true},
		{"*@yahoo.com", "Joe@YAHOO.com", true},
		{"*@yahoo.com", "joe@yahoo.co.uk", false},
		{"j?e@*", "joe@x", true},
		{"j?e@*", "je@x", false},
		{"[a-c]*@x", "bob@x", true},
		{"[!a-c]*@x", "bob@x", false},
		{"[!a-c]*@x", "dan@x", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"<>", "<>", true},
		{"[abc", "[abc", true}, // unterminated class is literal
		{"**@x", "a@x", true},
		{"", "", true},
		{"", "a", false},
	}
	for _, c := range cases {
		if got := Match(c.pat, c.s); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pat, c.s, got, c.want)
		}
	}
}

func FuzzMatch(f *testing.F) {
	for _, s := range []string{"*@x", "[a-", "[!]]", "?*?", "a[b-c]*d"} {
		f.Add(s, "abc@x")
	}
	f.Fuzz(func(t *testing.T, pat, s string) {
		Match(pat, s) // must not panic or hang
		if !strings.ContainsAny(s, "*?[]!^-") && !Match(s, s) {
			t.Errorf("a literal does not match itself: %q", s)
		}
	})
}

// FuzzRequest feeds arbitrary bytes to the server's request decoding: it must
// answer (an error) and never panic.
func FuzzRequest(f *testing.F) {
	f.Add([]byte(`{"version":1,"command":"ping"}`))
	f.Add([]byte(`{"version":1,"command":"directory","filter":{"from":"[","older":-5}}`))
	f.Add([]byte(`{"version":99}`))
	f.Add([]byte(`{"version":1,"command":"submit-message","submission":{"user":"u","recipients":["a"],"content":"U3ViamVjdDogeA0KDQo="}}`))
	f.Add([]byte(`{"version":1,"command":"submit-message","submission":{"content":"!!not base64"}}`))
	f.Add([]byte("\x00\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, c := net.Pipe()
		s := &Server{handler: func(ctx context.Context, req *Request, w *Writer) {
			if req.Filter != nil {
				req.Filter.Validate()
			}
			w.Result(req, "")
		}, log: discard(), requestTimeout: 200 * time.Millisecond} // an unfinished request ("[") is answered at the timeout
		done := make(chan struct{})
		go func() { defer close(done); s.serveConn(context.Background(), c) }()
		go func() { a.Write(append(b, '\n')); a.Write([]byte("{}")) }()
		a.SetReadDeadline(time.Now().Add(5 * time.Second))
		var r Response
		if err := json.NewDecoder(a).Decode(&r); err != nil {
			t.Fatalf("no reply: %v", err)
		}
		if !r.Final {
			t.Fatalf("reply not final: %+v", r)
		}
		a.Close()
		<-done
	})
}

func shortDir(t *testing.T) string {
	t.Helper()
	// Unix socket paths are limited to ~108 bytes; t.TempDir() can be long.
	d, err := os.MkdirTemp("", "ctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func echoServer(t *testing.T, path string) (*Server, context.CancelFunc, chan error) {
	t.Helper()
	s, err := Listen(path, func(ctx context.Context, req *Request, w *Writer) {
		switch req.Command {
		case "stream":
			for i := 0; i < 3; i++ {
				w.Event("line " + string(rune('a'+i)))
			}
			w.Result(map[string]int{"n": 3}, "")
		case "fail":
			w.Fail(ErrKindNotFound, "no such thing")
		case "silent":
		default:
			w.Result(req.Command, "")
		}
	}, discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, cancel, done
}

func TestSocketLifecycle(t *testing.T) {
	dir := shortDir(t)
	path := filepath.Join(dir, SocketName)
	cl := &Client{Path: path}
	if _, err := cl.Call(context.Background(), Request{Command: "x"}, nil); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("no socket: %v, want ErrNotRunning", err)
	}
	// A stale socket: bound once, its listener gone.
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := cl.Call(context.Background(), Request{Command: "x"}, nil); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("stale socket: %v, want ErrNotRunning", err)
	}
	_, cancel, done := echoServer(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode %v, want 0600 socket", fi.Mode())
	}
	var got string
	if _, err := cl.Call(context.Background(), Request{Command: "hello"}, &got); err != nil || got != "hello" {
		t.Fatalf("call: %q %v", got, err)
	}
	// A second server on the same path is refused while the first answers.
	if _, err := Listen(path, nil, discard()); !errors.Is(err, ErrInUse) {
		t.Errorf("second Listen: %v, want ErrInUse", err)
	}
	var events []string
	var n map[string]int
	if _, err := cl.Stream(context.Background(), Request{Command: "stream"}, func(s string) { events = append(events, s) }, &n); err != nil {
		t.Fatal(err)
	}
	if strings.Join(events, ",") != "line a,line b,line c" || n["n"] != 3 {
		t.Errorf("stream: %q %v", events, n)
	}
	_, err = cl.Call(context.Background(), Request{Command: "fail"}, nil)
	var ce *Error
	if !errors.As(err, &ce) || ce.Kind != ErrKindNotFound || ce.Msg != "no such thing" {
		t.Errorf("fail: %v", err)
	}
	if _, err := cl.Call(context.Background(), Request{Command: "silent"}, nil); err == nil || !strings.Contains(err.Error(), "no reply") {
		t.Errorf("handler without reply: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
	done <- nil // for the cleanup
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after shutdown: %v", err)
	}
}

func TestVersionMismatch(t *testing.T) {
	dir := shortDir(t)
	path := filepath.Join(dir, SocketName)
	echoServer(t, path)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte(`{"version":2,"command":"ping"}`))
	var r Response
	if err := json.NewDecoder(c).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if !r.Final || !strings.Contains(r.Error, "protocol version 2 not supported") {
		t.Errorf("reply %+v", r)
	}
}

// fixture enqueues messages with known arrivals into a fresh queue.
func fixture(t *testing.T, now time.Time) (*queue.Queue, []string) {
	t.Helper()
	q, err := queue.Open(filepath.Join(t.TempDir(), "queue"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	envs := []*queue.Envelope{
		{From: "alice@example.org", Arrival: now.Add(-3 * time.Hour), Rcpts: []queue.Recipient{
			{Addr: "bob@yahoo.com", Channel: "tcp_local", Host: "yahoo.com", Attempts: 4, LastError: "smtp;421 4.7.0 try later"},
			{Addr: "carol@yahoo.com", Channel: "tcp_local", Host: "yahoo.com", Attempts: 4, LastError: "smtp;421 4.7.0 try later"},
			{Addr: "dan@localhost", Channel: "l", Host: "localhost", State: queue.Delivered},
		}},
		{From: "", Arrival: now.Add(-10 * time.Minute), Rcpts: []queue.Recipient{
			{Addr: "eve@mail.example.net", Channel: "tcp_local", Host: "mail.example.net"},
		}},
		{From: "loop@example.org", Arrival: now.Add(-30 * time.Minute), Held: true, HeldReason: "too many Received: lines", Rcpts: []queue.Recipient{
			{Addr: "frank@localhost", Channel: "l", Host: "localhost"},
		}},
	}
	var ids []string
	for _, e := range envs {
		id, err := q.Enqueue(context.Background(), e, []byte("Subject: s\r\nFrom: x\r\n\r\nbody\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return q, ids
}

func TestDirectoryFilters(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	q, ids := fixture(t, now)
	cases := []struct {
		name string
		f    Filter
		want []int
	}{
		{"all", Filter{}, []int{0, 1, 2}},
		{"channel", Filter{Channel: "l"}, []int{2}}, // dan is delivered: not pending
		{"to wildcard", Filter{To: "*@YAHOO.COM"}, []int{0}},
		{"empty sender", Filter{From: "<>"}, []int{1}},
		{"from wildcard", Filter{From: "*@example.org"}, []int{0, 2}},
		{"domain", Filter{Domain: "yahoo.com"}, []int{0}},
		{"subdomain", Filter{Domain: ".example.net"}, []int{1}},
		{"older", Filter{Older: time.Hour}, []int{0}},
		{"younger", Filter{Younger: 20 * time.Minute}, []int{1}},
		{"held", Filter{Held: true}, []int{2}},
		{"combined rcpt criteria", Filter{Channel: "l", To: "*@yahoo.com"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			es, err := Directory(q, c.f, now)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range es {
				got = append(got, e.ID)
			}
			var want []string
			for _, i := range c.want {
				want = append(want, ids[i])
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
	es, _ := Directory(q, Filter{}, now)
	if e := es[0]; len(e.Rcpts) != 2 || e.Attempts != 4 || e.LastError != "smtp;421 4.7.0 try later" || e.Channels[0] != "tcp_local" {
		t.Errorf("entry 0: %+v", e)
	}
	if _, err := Directory(q, Filter{From: "[abc"}, now); err == nil {
		t.Error("unbalanced pattern accepted")
	}
}

func TestSummaries(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	q, _ := fixture(t, now)
	s, err := Summarize(q, Filter{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Channels) != 2 || s.Channels[0].Name != "l" || s.Channels[1].Name != "tcp_local" {
		t.Fatalf("channels %+v", s.Channels)
	}
	if c := s.Channels[1]; c.Messages != 2 || c.Recipients != 3 || !c.Oldest.Equal(now.Add(-3*time.Hour)) {
		t.Errorf("tcp_local %+v", c)
	}
	if c := s.Channels[0]; c.Messages != 1 || c.Held != 1 {
		t.Errorf("l %+v", c)
	}
	if s.Total.Messages != 3 || s.Total.Recipients != 4 {
		t.Errorf("total %+v", s.Total)
	}
	ds, err := SummarizeDomains(q, Filter{Channel: "tcp_local"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].Domain != "yahoo.com" || ds[0].Recipients != 2 || ds[0].Attempts != 4 ||
		ds[0].LastError != "smtp;421 4.7.0 try later" || ds[1].Domain != "mail.example.net" {
		t.Errorf("domains %+v", ds)
	}
}

func TestViewHeaders(t *testing.T) {
	now := time.Now()
	q, ids := fixture(t, now)
	v, err := View(q, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if v.Headers != "Subject: s\nFrom: x\n" || v.Envelope.From != "alice@example.org" || len(v.Envelope.Rcpts) != 3 {
		t.Errorf("view %+v", v)
	}
	if _, err := View(q, "NOSUCHID"); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	for in, want := range map[string]string{
		"":                           "",
		"\r\nbody":                   "",
		"A: 1\r\n B\r\n\r\nbody\r\n": "A: 1\n B\n",
		"A: 1":                       "A: 1\n",
	} {
		got, err := readHeader(bytes.NewReader([]byte(in)))
		if err != nil || got != want {
			t.Errorf("readHeader(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestSubmitResultRefused(t *testing.T) {
	perm, temp := status.New(550, "5.1.2", "no"), status.New(451, "4.3.0", "later")
	cases := []struct {
		res             SubmitResult
		refused, tempor bool
	}{
		{SubmitResult{ID: "X", Recipients: []SubmitRecipient{{Addr: "a"}}}, false, false},
		{SubmitResult{Status: temp}, true, true},
		{SubmitResult{Status: perm}, true, false},
		{SubmitResult{Recipients: []SubmitRecipient{{Addr: "a", Status: temp}, {Addr: "b"}}}, true, true},
		{SubmitResult{Recipients: []SubmitRecipient{{Addr: "a", Status: temp}, {Addr: "b", Status: perm}}}, true, false},
	}
	for i, c := range cases {
		if r, tm := c.res.Refused(); r != c.refused || tm != c.tempor {
			t.Errorf("case %d: Refused() = %v, %v; want %v, %v", i, r, tm, c.refused, c.tempor)
		}
	}
}
