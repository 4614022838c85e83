package auth

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func ip(s string) netip.Addr             { return netip.MustParseAddr(s) }
func newTestLimiter(c *clock, max, tracked int) *Limiter {
	return NewLimiter(LimiterConfig{MaxFailures: max, Window: time.Minute, MaxTracked: tracked, Now: c.now})
}

func TestLimiter(t *testing.T) {
	type step struct {
		op   string // fail, allow, deny, succeed, wait
		addr string
		wait time.Duration
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"under the limit", []step{{"fail", "192.0.2.1", 0}, {"fail", "192.0.2.1", 0}, {"allow", "192.0.2.1", 0}}},
		{"at the limit", []step{{"fail", "192.0.2.1", 0}, {"fail", "192.0.2.1", 0}, {"fail", "192.0.2.1", 0}, {"deny", "192.0.2.1", 0}, {"allow", "192.0.2.2", 0}}},
		{"window expires", []step{{"fail", "192.0.2.1", 0}, {"fail", "192.0.2.1", 0}, {"fail", "192.0.2.1", 0}, {"wait", "", 59 * time.Second}, {"deny", "192.0.2.1", 0}, {"wait", "", time.Second}, {"allow", "192.0.2.1", 0}}},
		{"window restarts on the next failure", []step{{"fail", "192.0.2.1", 0}, {"fail", "192.0.2.1", 0}, {"wait", "", time.Minute}, {"fail", "192.0.2.1", 0}, {"fail", "192.0.2.1", 0}, {"allow", "192.0.2.1", 0}, {"fail", "192.0.2.1", 0}, {"deny", "192.0.2.1", 0}}},
		{"success forgets", []step{{"fail", "192.0.2.1", 0}, {"fail", "192.0.2.1", 0}, {"fail", "192.0.2.1", 0}, {"succeed", "192.0.2.1", 0}, {"allow", "192.0.2.1", 0}}},
		{"IPv6 counts per /64", []step{{"fail", "2001:db8::1", 0}, {"fail", "2001:db8::2", 0}, {"fail", "2001:db8::ffff:1", 0}, {"deny", "2001:db8::99", 0}, {"allow", "2001:db8:0:1::1", 0}}},
		{"IPv4-mapped is IPv4", []step{{"fail", "::ffff:192.0.2.7", 0}, {"fail", "192.0.2.7", 0}, {"fail", "::ffff:192.0.2.7", 0}, {"deny", "192.0.2.7", 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			l := newTestLimiter(c, 3, 100)
			for i, s := range tc.steps {
				switch s.op {
				case "fail":
					l.Fail(ip(s.addr))
				case "succeed":
					l.Succeed(ip(s.addr))
				case "wait":
					c.advance(s.wait)
				case "allow", "deny":
					if got := l.Allow(ip(s.addr)); got != (s.op == "allow") {
						t.Fatalf("step %d: Allow(%s) = %v", i, s.addr, got)
					}
				}
			}
		})
	}
}

func TestLimiterBoundedMemory(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := newTestLimiter(c, 1, 50)
	l.Fail(ip("198.51.100.1"))
	for i := range 1000 {
		l.Fail(ip(fmt.Sprintf("10.0.%d.%d", i/256, i%256)))
		if n := l.Tracked(); n > 50 {
			t.Fatalf("tracking %d addresses, bound 50", n)
		}
	}
	// The oldest was forgotten (fails open); the latest is still denied.
	if !l.Allow(ip("198.51.100.1")) || l.Allow(ip("10.0.3.231")) {
		t.Error("eviction order")
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l := NewLimiter(LimiterConfig{MaxFailures: 1000, MaxTracked: 10})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				a := ip(fmt.Sprintf("192.0.2.%d", (g*500+i)%20))
				l.Fail(a)
				l.Allow(a)
				if i%7 == 0 {
					l.Succeed(a)
				}
			}
		}()
	}
	wg.Wait()
	if l.Tracked() > 10 {
		t.Errorf("tracked %d", l.Tracked())
	}
}

func TestConnCounter(t *testing.T) {
	var c ConnCounter
	for i, want := range []bool{false, false, true, true} {
		if got := c.Fail(); got != want {
			t.Errorf("failure %d: close %v, want %v", i+1, got, want)
		}
	}
	one := ConnCounter{Limit: 1}
	if !one.Fail() || one.Failures() != 1 {
		t.Error("limit 1")
	}
}
