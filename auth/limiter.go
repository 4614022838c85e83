package auth

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// Limiter defaults.
const (
	DefaultMaxFailures = 10
	DefaultWindow      = 15 * time.Minute
	DefaultMaxTracked  = 10000
	// DefaultDisconnectBadAuthLimit is disconnectbadauthlimit's default, as the
	// product's documentation gives it: failed AUTHs on one connection before it is
	// dropped.
	DefaultDisconnectBadAuthLimit = 3
)

// LimiterConfig sets a Limiter up; zero fields take the defaults.
type LimiterConfig struct {
	MaxFailures int           // failures per address per window before Allow says no
	Window      time.Duration // how long failures are remembered (from the first)
	MaxTracked  int           // addresses remembered at most
	Now         func() time.Time
}

// Limiter counts failed authentications per client address. Safe for concurrent
// use; one Limiter serves all connections.
type Limiter struct {
	max    int
	window time.Duration
	cap    int
	now    func() time.Time

	mu    sync.Mutex
	byKey map[netip.Prefix]*list.Element
	lru   *list.List // of *failures, most recently failed at the front
}

type failures struct {
	key   netip.Prefix
	start time.Time // the window began at the first failure
	n     int
}

// NewLimiter returns a Limiter.
func NewLimiter(c LimiterConfig) *Limiter {
	l := &Limiter{max: c.MaxFailures, window: c.Window, cap: c.MaxTracked, now: c.Now,
		byKey: make(map[netip.Prefix]*list.Element), lru: list.New()}
	if l.max <= 0 {
		l.max = DefaultMaxFailures
	}
	if l.window <= 0 {
		l.window = DefaultWindow
	}
	if l.cap <= 0 {
		l.cap = DefaultMaxTracked
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l
}

// keyOf groups addresses: one IPv4 address, or one IPv6 /64 (what one site is
// usually given, so rotating through it does not reset the count).
func keyOf(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// Allow reports whether the address may try to authenticate now.
func (l *Limiter) Allow(ip netip.Addr) bool {
	k := keyOf(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.byKey[k]
	if !ok {
		return true
	}
	f := e.Value.(*failures)
	if l.now().Sub(f.start) >= l.window {
		l.remove(e)
		return true
	}
	return f.n < l.max
}

// Fail records a failed authentication from the address.
func (l *Limiter) Fail(ip netip.Addr) {
	k := keyOf(ip)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.byKey[k]; ok {
		f := e.Value.(*failures)
		if now.Sub(f.start) >= l.window {
			f.start, f.n = now, 0
		}
		f.n++
		l.lru.MoveToFront(e)
		return
	}
	for l.lru.Len() >= l.cap {
		l.remove(l.lru.Back())
	}
	l.byKey[k] = l.lru.PushFront(&failures{key: k, start: now, n: 1})
}

// Succeed forgets an address's failures: a user who mistyped and then got it
// right is not held to the earlier attempts.
func (l *Limiter) Succeed(ip netip.Addr) {
	k := keyOf(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.byKey[k]; ok {
		l.remove(e)
	}
}

// Tracked is the number of addresses remembered (for metrics and tests).
func (l *Limiter) Tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

func (l *Limiter) remove(e *list.Element) {
	delete(l.byKey, e.Value.(*failures).key)
	l.lru.Remove(e)
}

// ConnCounter counts failed AUTHs on one connection (disconnectbadauthlimit).
// The zero value uses DefaultDisconnectBadAuthLimit. Not for concurrent use: a
// connection is served by one goroutine.
type ConnCounter struct {
	Limit int // failures after which the connection is dropped
	n     int
}

// Fail records a failure and reports whether the connection must now be closed.
func (c *ConnCounter) Fail() bool {
	c.n++
	lim := c.Limit
	if lim <= 0 {
		lim = DefaultDisconnectBadAuthLimit
	}
	return c.n >= lim
}

// Failures is the number of failures so far.
func (c *ConnCounter) Failures() int { return c.n }
