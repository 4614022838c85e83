package channels

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// pool returns the connection cache of host name (at the channel's port).
func (s *SMTP) pool(name string) *hostPool {
	key := name + "|" + strconv.Itoa(s.opts.Port)
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pools[key]
	if p == nil {
		p = newHostPool(s.opts.MaxConnsPerHost, s.opts.MaxIdlePerHost, s.opts.IdleTimeout)
		if s.closed {
			p.maxIdle = -1
		}
		s.pools[key] = p
	}
	return p
}

// finish returns a connection to the cache after a transaction, or closes it:
// when it is broken, has carried MaxMessagesPerConn transactions, or the
// channel caches nothing.
func (s *SMTP) finish(pool *hostPool, c *smtpConn, broken bool) {
	if broken || c.msgs >= s.opts.MaxMessagesPerConn || s.opts.MaxIdlePerHost < 0 {
		if !broken {
			c.quit()
		}
		pool.discard(c)
		return
	}
	pool.put(c)
}

// Close sends QUIT on every cached connection and closes it. Deliver may not be
// called after Close.
func (s *SMTP) Close() error {
	s.mu.Lock()
	s.closed = true
	pools := s.pools
	s.pools = map[string]*hostPool{}
	s.mu.Unlock()
	for _, p := range pools {
		p.closeIdle()
	}
	return nil
}

// DropIdle closes the cached idle connections (the program stays usable): the next
// deliveries open fresh connections, which `qm run` needs to show their dialogue.
func (s *SMTP) DropIdle() {
	s.mu.Lock()
	pools := make([]*hostPool, 0, len(s.pools))
	for _, p := range s.pools {
		pools = append(pools, p)
	}
	s.mu.Unlock()
	for _, p := range pools {
		p.dropIdle()
	}
}

// hostPool bounds and caches the connections to one destination host.
//
// How it works: open counts every connection that exists (in use or idle) plus
// slots handed out for dialling; it never exceeds max. get hands out an idle
// connection when there is one, else a slot to dial with, else waits for
// either. Each idle connection has a timer that closes it after idleTimeout, so
// idle connections never outlive their welcome even when no more mail comes.
type hostPool struct {
	max, maxIdle int
	idleTimeout  time.Duration

	mu   sync.Mutex
	open int
	idle []*idleConn   // most recently used last
	wake chan struct{} // closed and replaced when a connection or a slot frees
}

type idleConn struct {
	c     *smtpConn
	timer *time.Timer
}

func newHostPool(max, maxIdle int, idleTimeout time.Duration) *hostPool {
	return &hostPool{max: max, maxIdle: maxIdle, idleTimeout: idleTimeout, wake: make(chan struct{})}
}

// get returns an idle connection (marked reused), or nil with a slot the caller
// must give back with release or hand to a connection (put/discard).
func (p *hostPool) get(ctx context.Context) (*smtpConn, error) {
	for {
		p.mu.Lock()
		for len(p.idle) > 0 {
			ic := p.idle[len(p.idle)-1]
			p.idle = p.idle[:len(p.idle)-1]
			if !ic.timer.Stop() {
				continue // its timer fired: it is being closed and was counted out
			}
			p.mu.Unlock()
			ic.c.reused = true
			return ic.c, nil
		}
		if p.open < p.max {
			p.open++
			p.mu.Unlock()
			return nil, nil
		}
		w := p.wake
		p.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// acquireNow takes a slot if one is free, without waiting.
func (p *hostPool) acquireNow() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open < p.max {
		p.open++
		return true
	}
	return false
}

// release gives back a slot that no connection holds.
func (p *hostPool) release() {
	p.mu.Lock()
	p.open--
	p.signal()
	p.mu.Unlock()
}

// discard closes a connection and frees its slot.
func (p *hostPool) discard(c *smtpConn) {
	c.close()
	p.release()
}

// put caches a healthy connection, or closes it when the cache is full.
func (p *hostPool) put(c *smtpConn) {
	c.reused = false
	p.mu.Lock()
	if p.maxIdle < 0 || len(p.idle) >= p.maxIdle {
		p.mu.Unlock()
		c.quit()
		p.discard(c)
		return
	}
	ic := &idleConn{c: c}
	ic.timer = time.AfterFunc(p.idleTimeout, func() { p.expire(ic) })
	p.idle = append(p.idle, ic)
	p.signal()
	p.mu.Unlock()
}

func (p *hostPool) expire(ic *idleConn) {
	// Whether or not ic is still listed (get may have popped it, then seen its
	// timer had fired and skipped it), closing it and freeing its slot is ours.
	p.mu.Lock()
	for i, x := range p.idle {
		if x == ic {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	ic.c.quit()
	p.discard(ic.c)
}

// closeIdle closes every idle connection and stops caching new ones.
func (p *hostPool) closeIdle() {
	p.mu.Lock()
	p.maxIdle = -1
	p.mu.Unlock()
	p.dropIdle()
}

// dropIdle closes the idle connections cached now; caching goes on.
func (p *hostPool) dropIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, ic := range idle {
		if ic.timer.Stop() {
			ic.c.quit()
			p.discard(ic.c)
		}
	}
}

func (p *hostPool) signal() {
	close(p.wake)
	p.wake = make(chan struct{})
}
