package smtpserver

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mtad.dev/mta/engine"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/mappings"
	"mtad.dev/mta/queue"
	"mtad.dev/mta/status"
)

// fakeRules is a scripted resolver: domains route to channels, a few local parts
// have fixed outcomes.
type fakeRules struct {
	mu    sync.Mutex
	calls []engine.Request
	// literal routes "postmaster@[IP]" to this channel when set
	literal string
}

func (f *fakeRules) Rewrite(req engine.Request) engine.Result {
	f.mu.Lock()
	f.calls = append(f.calls, req)
	literal := f.literal
	f.mu.Unlock()
	addr := strings.ToLower(req.Address)
	local, domain, _ := strings.Cut(addr, "@")
	res := engine.Result{Address: addr, Mailbox: local, Host: domain}
	switch {
	case strings.HasPrefix(domain, "["):
		if literal == "" {
			res.Channel = "tcp_local"
		} else {
			res.Channel = literal
		}
	case domain == "local.test":
		res.Channel = "l"
	case domain == "temp.test":
		res.Err = status.New(451, "4.4.3", "routing temporarily unavailable")
	case strings.HasSuffix(domain, ".invalid"):
		res.Err = status.New(550, "5.1.2", "unknown host or domain %s", addr)
	default:
		res.Channel = "tcp_local"
	}
	return res
}

func (f *fakeRules) Resolve(req engine.Request) engine.Resolution {
	rw := f.Rewrite(req)
	r := engine.Resolution{Rewrite: rw}
	if rw.Err != nil {
		r.Err = rw.Err
		return r
	}
	switch {
	case rw.Channel == "l" && rw.Mailbox == "nouser":
		r.Err = status.New(550, "5.1.1", "unknown or illegal user: %s", rw.Address)
	case rw.Channel == "l" && rw.Mailbox == "list":
		r.Recipients = []engine.Recipient{
			{Address: "ann@local.test", Channel: "l", Mailbox: "ann", Host: "local.test", Via: []string{"list"}},
			{Address: "bob@elsewhere.org", Channel: "tcp_local", Mailbox: "bob", Host: "elsewhere.org", Via: []string{"list"}},
		}
	default:
		r.Recipients = []engine.Recipient{{Address: rw.Address, Channel: rw.Channel, Mailbox: rw.Mailbox, Host: rw.Host}}
	}
	return r
}

// fakeAccess runs a scripted decision per table and records every probe.
type fakeAccess struct {
	mu     sync.Mutex
	probes []string // "TABLE probe"
	decide func(table, probe string) (mappings.Access, bool)
}

func (f *fakeAccess) Access(table, probe string, in mappings.Flags) (mappings.Access, bool) {
	f.mu.Lock()
	f.probes = append(f.probes, table+" "+probe)
	f.mu.Unlock()
	if f.decide == nil {
		return mappings.Access{}, false
	}
	return f.decide(table, probe)
}

func (f *fakeAccess) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.probes...)
}

// fakeQueue records enqueued messages; err makes Enqueue fail.
type fakeQueue struct {
	mu   sync.Mutex
	envs []*queue.Envelope
	msgs [][]byte
	err  error
	n    int
}

func (q *fakeQueue) Enqueue(ctx context.Context, env *queue.Envelope, content []byte) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return "", q.err
	}
	q.n++
	env.ID = "Q" + string(rune('A'+q.n-1))
	env.Size = int64(len(content))
	q.envs = append(q.envs, env)
	q.msgs = append(q.msgs, append([]byte(nil), content...))
	return env.ID, nil
}

func (q *fakeQueue) count() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.envs)
}

func (q *fakeQueue) get(i int) (*queue.Envelope, []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.envs[i], q.msgs[i]
}

// testEnv is one running server.
type testEnv struct {
	srv     *Server
	addr    string
	q       *fakeQueue
	rules   *fakeRules
	access  *fakeAccess
	logPath string
	log     *maillog.Logger
	cancel  context.CancelFunc
	done    chan error
	// cur is the policy Config.Policy returns; Store a new one to "reload".
	cur atomic.Pointer[Policy]
}

type option func(*Policy, *Config)

func basePolicy(rules *fakeRules, acc *fakeAccess) *Policy {
	return &Policy{
		Channels: map[string]ChannelPolicy{
			"tcp_local":    {Name: "tcp_local", SwitchChannel: true},
			"tcp_intranet": {Name: "tcp_intranet", AllowSwitchChannel: true},
			"l":            {Name: "l"},
		},
		DefaultSource: "tcp_local",
		Hostname:      "mx.test",
		resolver:      rules,
		access:        acc,
	}
}

func startServer(t *testing.T, opts ...option) *testEnv {
	t.Helper()
	e := &testEnv{q: &fakeQueue{}, rules: &fakeRules{}, access: &fakeAccess{}}
	pol := basePolicy(e.rules, e.access)
	e.logPath = filepath.Join(t.TempDir(), "mail.log")
	lg, err := maillog.Open(e.logPath, maillog.Options{LogMessageID: true})
	if err != nil {
		t.Fatal(err)
	}
	e.log = lg
	cfg := Config{Queue: e.q, Log: lg}
	for _, o := range opts {
		o(pol, &cfg)
	}
	e.cur.Store(pol)
	cfg.Policy = e.cur.Load
	e.srv = New(cfg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.done = make(chan error, 1)
	go func() { e.done <- e.srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
		defer c()
		e.srv.Shutdown(sctx)
		cancel()
		select {
		case <-e.done:
		case <-time.After(2 * time.Second):
			t.Error("Serve did not return")
		}
		lg.Close()
	})
	return e
}

// mailLog closes the logger (flushing it) and returns the file.
func (e *testEnv) mailLog(t *testing.T) string {
	t.Helper()
	e.log.Close()
	b, err := os.ReadFile(e.logPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rawClient speaks SMTP byte by byte.
type rawClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawClient) send(s string) {
	r.t.Helper()
	if _, err := r.c.Write([]byte(s)); err != nil {
		r.t.Fatalf("write %q: %v", s, err)
	}
}

// reply reads one whole (possibly multi-line) reply and returns its lines joined by
// "\n", without CRLF.
func (r *rawClient) reply() string {
	r.t.Helper()
	var lines []string
	for {
		l, err := r.br.ReadString('\n')
		if err != nil {
			if len(lines) == 0 && l == "" {
				return "EOF"
			}
			lines = append(lines, strings.TrimRight(l, "\r\n")+"<EOF>")
			return strings.Join(lines, "\n")
		}
		l = strings.TrimRight(l, "\r\n")
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			return strings.Join(lines, "\n")
		}
	}
}

// expect reads a reply and checks its prefix.
func (r *rawClient) expect(prefix string) string {
	r.t.Helper()
	got := r.reply()
	if !strings.HasPrefix(got, prefix) {
		r.t.Fatalf("reply %q, want prefix %q", got, prefix)
	}
	return got
}

// cmd sends a line and checks the reply's prefix.
func (r *rawClient) cmd(line, prefix string) string {
	r.t.Helper()
	r.send(line + "\r\n")
	return r.expect(prefix)
}

func (r *rawClient) hello() {
	r.t.Helper()
	r.expect("220 ")
	r.cmd("EHLO client.test", "250")
}
