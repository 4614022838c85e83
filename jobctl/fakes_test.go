package jobctl

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/queue"
	"mtad.dev/mta/status"
)

// memQueue is an in-memory Queue with the contract's semantics: Update applies
// per-recipient changes and removes a message once nothing is Pending.
type memQueue struct {
	mu       sync.Mutex
	envs     map[string]*queue.Envelope
	content  map[string][]byte
	updates  int
	failNext error
	seq      int
	// beforeUpdate, when set, is called at the start of every Update, outside
	// the lock: a test pauses a job there, between its check of the message's
	// report and the end of its record.
	beforeUpdate func(id string, ups []queue.Update)
}

func newMemQueue() *memQueue {
	return &memQueue{envs: map[string]*queue.Envelope{}, content: map[string][]byte{}}
}

func copyEnv(e *queue.Envelope) *queue.Envelope {
	n := *e
	n.Rcpts = slices.Clone(e.Rcpts)
	return &n
}

// put stores an envelope and returns the copy a committer would hand to OnCommit.
func (q *memQueue) put(e *queue.Envelope, content string) *queue.Envelope {
	q.mu.Lock()
	defer q.mu.Unlock()
	if e.ID == "" {
		q.seq++
		e.ID = fmt.Sprintf("m%06d", q.seq)
	}
	e.Size = int64(len(content))
	q.envs[e.ID] = copyEnv(e)
	q.content[e.ID] = []byte(content)
	return copyEnv(e)
}

func (q *memQueue) Walk(fn func(*queue.Envelope) bool) error {
	q.mu.Lock()
	ids := make([]string, 0, len(q.envs))
	for id := range q.envs {
		ids = append(ids, id)
	}
	q.mu.Unlock()
	slices.Sort(ids)
	for _, id := range ids {
		e, err := q.Get(id)
		if err != nil {
			continue
		}
		if !fn(e) {
			break
		}
	}
	return nil
}

func (q *memQueue) Get(id string) (*queue.Envelope, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.envs[id]
	if e == nil {
		return nil, queue.ErrNotFound
	}
	return copyEnv(e), nil
}

type memContent struct{ *bytes.Reader }

func (memContent) Close() error { return nil }

func (q *memQueue) Content(id string) (queue.Content, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	b, ok := q.content[id]
	if !ok {
		return nil, queue.ErrNotFound
	}
	return memContent{bytes.NewReader(b)}, nil
}

func (q *memQueue) Update(id string, ups []queue.Update) error {
	if q.beforeUpdate != nil {
		q.beforeUpdate(id, ups)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failNext != nil {
		err := q.failNext
		q.failNext = nil
		return err
	}
	e := q.envs[id]
	if e == nil {
		return queue.ErrNotFound
	}
	q.updates++
	for _, u := range ups {
		r := &e.Rcpts[u.Rcpt]
		r.State, r.Attempts, r.NextAttempt, r.LastError = u.State, u.Attempts, u.NextAttempt, u.LastError
	}
	for _, r := range e.Rcpts {
		if r.State == queue.Pending {
			return nil
		}
	}
	delete(q.envs, id)
	delete(q.content, id)
	return nil
}

func (q *memQueue) SetNotices(id string, n int) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if e := q.envs[id]; e != nil {
		e.Notices = n
	}
	return nil
}

// Hold, Release and Delete are the OperatorQueue side (qm hold, release, delete).
func (q *memQueue) Hold(id, reason string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.envs[id]
	if e == nil {
		return queue.ErrNotFound
	}
	e.Held, e.HeldReason = true, reason
	return nil
}

func (q *memQueue) Release(id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.envs[id]
	if e == nil {
		return queue.ErrNotFound
	}
	e.Held, e.HeldReason = false, ""
	return nil
}

func (q *memQueue) Delete(id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.envs[id] == nil {
		return queue.ErrNotFound
	}
	delete(q.envs, id)
	delete(q.content, id)
	return nil
}

func (q *memQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.envs)
}

func (q *memQueue) rcpt(id string, i int) (queue.Recipient, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.envs[id]
	if e == nil {
		return queue.Recipient{}, false
	}
	return e.Rcpts[i], true
}

// fakeClock is a manual clock; timers fire when Advance passes their deadline.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*fakeTimer]struct{}
}

func newFakeClock(t time.Time) *fakeClock {
	return &fakeClock{now: t, timers: map[*fakeTimer]struct{}{}}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

// Advance moves time forward and fires due timers.
func (c *fakeClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	for ft := range c.timers {
		if !ft.at.After(t) {
			delete(c.timers, ft)
			select {
			case ft.ch <- t:
			default:
			}
		}
	}
}

type fakeTimer struct {
	c  *fakeClock
	ch chan time.Time
	at time.Time
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, ok := t.c.timers[t]
	delete(t.c.timers, t)
	return ok
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, ok := t.c.timers[t]
	select {
	case <-t.ch:
	default:
	}
	t.at = t.c.now.Add(d)
	if d <= 0 {
		t.ch <- t.c.now
		delete(t.c.timers, t)
		return ok
	}
	t.c.timers[t] = struct{}{}
	return ok
}

// program is a scripted delivery program that measures concurrency.
type program struct {
	clock Clock
	// result decides the outcome per recipient; nil delivers.
	result func(m *channels.Message, r channels.Rcpt) channels.Result
	delay  time.Duration // real time spent per call
	block  chan struct{} // when non-nil, Deliver waits for it (or ctx)

	cur, max atomic.Int64
	shared   *atomic.Int64 // optional: concurrency across programs (a pool)
	sharedMx *atomic.Int64

	mu    sync.Mutex
	calls []call
}

type call struct {
	at    time.Time
	id    string
	hosts []string
	addrs []string
}

func (p *program) Deliver(ctx context.Context, m *channels.Message) []channels.Result {
	n := p.cur.Add(1)
	defer p.cur.Add(-1)
	raise(&p.max, n)
	if p.shared != nil {
		s := p.shared.Add(1)
		defer p.shared.Add(-1)
		raise(p.sharedMx, s)
	}
	c := call{id: m.ID}
	if p.clock != nil {
		c.at = p.clock.Now()
	}
	for _, r := range m.Rcpts {
		c.hosts = append(c.hosts, r.Host)
		c.addrs = append(c.addrs, r.Addr)
	}
	p.mu.Lock()
	p.calls = append(p.calls, c)
	p.mu.Unlock()
	if p.delay > 0 {
		time.Sleep(p.delay)
	}
	if p.block != nil {
		select {
		case <-p.block:
		case <-ctx.Done():
			res := make([]channels.Result, len(m.Rcpts))
			for i := range res {
				res[i] = channels.Result{Err: status.New(451, "4.4.2", "cancelled"), ConnFailed: true}
			}
			return res
		}
	}
	res := make([]channels.Result, len(m.Rcpts))
	for i, r := range m.Rcpts {
		if p.result != nil {
			res[i] = p.result(m, r)
		} else {
			res[i] = channels.Result{Remote: r.Host, Reply: "smtp;250 2.0.0 ok"}
		}
	}
	return res
}

func (p *program) callList() []call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

func raise(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// waitFor polls cond for up to 5 s of real time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// settle gives the controller's goroutines a moment to react to an event that
// should NOT produce work, before the test asserts that nothing happened.
func settle() { time.Sleep(30 * time.Millisecond) }

// harness runs a controller against a memQueue and a fake clock.
type harness struct {
	t      *testing.T
	q      *memQueue
	clock  *fakeClock
	c      *Controller
	cancel context.CancelFunc
	done   chan error

	mu      sync.Mutex
	notices []submitted
}

type submitted struct {
	from    string
	to      []string
	content []byte
}

var t0 = time.Date(2024, 3, 4, 10, 0, 0, 0, time.UTC)

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, done: make(chan error, 1)}
	if q, ok := cfg.Queue.(*memQueue); ok {
		h.q = q
	} else if aq, ok := cfg.Queue.(*asyncQueue); ok {
		h.q = aq.memQueue
	} else {
		h.q = newMemQueue()
		cfg.Queue = h.q
	}
	if fc, ok := cfg.Clock.(*fakeClock); ok {
		h.clock = fc
	} else {
		h.clock = newFakeClock(t0)
		cfg.Clock = h.clock
	}
	if cfg.Submit == nil {
		cfg.Submit = func(ctx context.Context, from string, to []string, content []byte) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.notices = append(h.notices, submitted{from, slices.Clone(to), slices.Clone(content)})
			return nil
		}
	}
	cfg.Hostname = "mx1.example.com"
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h.c = New(cfg)
	return h
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.c.Run(ctx) }()
	h.t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	for {
		select {
		case err := <-h.done:
			if err != nil {
				h.t.Errorf("Run: %v", err)
			}
			return
		case <-time.After(5 * time.Millisecond):
			h.clock.Advance(time.Minute) // let the shutdown grace elapse
		}
	}
}

// enqueue stores a message and tells the controller, as OnCommit does.
func (h *harness) enqueue(e *queue.Envelope) string {
	if e.Arrival.IsZero() {
		e.Arrival = h.clock.Now()
	}
	c := h.q.put(e, "Subject: test\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n")
	h.c.Add([]*queue.Envelope{c})
	return c.ID
}

func (h *harness) noticeList() []submitted {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.notices)
}

func env(from string, rcpts ...queue.Recipient) *queue.Envelope {
	return &queue.Envelope{From: from, Rcpts: rcpts}
}

func rcpt(channel, addr string) queue.Recipient {
	host := addr[bytes.IndexByte([]byte(addr), '@')+1:]
	return queue.Recipient{Addr: addr, Orig: addr, Channel: channel, Host: host}
}

type runtimeMem struct{ heap uint64 }

func (m *runtimeMem) read() {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.heap = ms.HeapAlloc
}
