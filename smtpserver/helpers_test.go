package smtpserver

import (
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
	"mtad.dev/mta/intake"
	"mtad.dev/mta/internal/smtptest"
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
	decide := f.decide
	f.mu.Unlock()
	if decide == nil {
		return mappings.Access{}, false
	}
	return decide(table, probe)
}

// setDecide installs the table's answers; the server may already be serving
// (a connection's PORT_ACCESS probe runs on the server's goroutine).
func (f *fakeAccess) setDecide(d func(table, probe string) (mappings.Access, bool)) {
	f.mu.Lock()
	f.decide = d
	f.mu.Unlock()
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
		Intake:        &intake.Rules{Resolver: rules, Access: acc, Hostname: "mx.test"},
	}
}

// withIntakeChannels gives the policy's intake rules the channels the policy has,
// as the daemon does when it builds both from one image.
func withIntakeChannels(p *Policy) {
	if p.Intake == nil {
		return
	}
	in := *p.Intake
	chans := make(map[string]intake.Channel, len(p.Channels))
	for name := range p.Channels {
		chans[name] = in.Channels[name]
	}
	for name, c := range in.Channels {
		chans[name] = c
	}
	in.Channels = chans
	p.Intake = &in
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
	withIntakeChannels(pol)
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

// rawClient is the shared raw client with this package's view of a reply (see
// replyText).
type rawClient struct {
	*smtptest.Client
	t *testing.T
}

// dialRaw connects and reads nothing: the banner is the test's to read. The
// short deadline suits a server in the same process.
func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c := smtptest.Open(t, addr, smtptest.DialTimeout(2*time.Second), smtptest.Deadline(5*time.Second),
		smtptest.Format(replyText))
	return &rawClient{Client: c, t: t}
}

// replyText renders a reply as the tests compare it: its lines joined by "\n"
// without line ends. A reply cut short by the server closing ends in "<EOF>";
// "EOF" alone is a close before any byte.
func replyText(raw string, err error) string {
	if err != nil && raw == "" {
		return "EOF"
	}
	lines := strings.Split(raw, "\n")
	if err == nil {
		lines = lines[:len(lines)-1] // after the last line's LF
	}
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, "\r\n")
	}
	if err != nil {
		lines[len(lines)-1] += "<EOF>"
	}
	return strings.Join(lines, "\n")
}

func (r *rawClient) send(s string) { r.t.Helper(); r.Write(s) }

func (r *rawClient) reply() string { r.t.Helper(); return r.Reply() }

// expect reads a reply and checks its prefix.
func (r *rawClient) expect(prefix string) string { r.t.Helper(); return r.Expect(prefix) }

// cmd sends a line and checks the reply's prefix.
func (r *rawClient) cmd(line, prefix string) string { r.t.Helper(); return r.Cmd(line, prefix) }

func (r *rawClient) hello() { r.t.Helper(); r.Hello() }
