package smtpserver

import (
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestIdleConnectionResources checks that a flood of idle connections cannot
// exhaust the server: 10 000 connection attempts that never send a command, in batches of 1 000 opened at once from 127.0.0.1. Each must be
// refused at the cap (421 4.3.2) or, once admitted, cut by the greeting timeout
// (421 4.4.2), and the process must stay within a bound while it happens and come
// back to where it started afterwards.
//
// Measured (go1.26, linux/amd64, MaxConns 100, 1 000 connections per batch, three
// runs on a loaded machine): 2.6-5.4 s; 77-86 % refused at the cap, the rest cut
// by the greeting timeout; peak goroutines 248-284 from a baseline of 4 (one per
// admitted session, plus admission goroutines of refused connections not yet
// exited: those scale with the arrival burst, not with MaxConns); peak heap in use
// 6.6-7.2 MiB from a baseline of 1.4 MiB (the admitted sessions: mostly the
// connection's 16 KiB read buffer). The asserted bounds leave more than 2x
// headroom for slow or loaded machines:
//
//	goroutines <= baseline + 2*MaxConns + batch/2
//	heap in use <= baseline + 16 MiB
//
// i.e. the cost of idle clients is set by MaxConns (a goroutine and some 20-50 KiB
// per admitted connection), not by how many clients try.
func TestIdleConnectionResources(t *testing.T) {
	const (
		total    = 10000
		batch    = 1000
		maxConns = 100
	)
	if testing.Short() {
		t.Skip("resource test: about 2 s, skipped with -short")
	}
	e := startServer(t, func(p *Policy, c *Config) {
		p.Timeouts = Timeouts{Greeting: 150 * time.Millisecond, Command: 150 * time.Millisecond}
		c.MaxConns = maxConns
		// all the clients are 127.0.0.1: exempt it from the per-IP cap so that the
		// global one is what refuses
		c.PerIPExempt = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseG, baseHeap := runtime.NumGoroutine(), ms.HeapInuse

	var peakG, peakHeap atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if g := int64(runtime.NumGoroutine()); g > peakG.Load() {
				peakG.Store(g)
			}
			runtime.ReadMemStats(&ms)
			if h := int64(ms.HeapInuse); h > peakHeap.Load() {
				peakHeap.Store(h)
			}
		}
	}()

	var refused, timedOut int
	start := time.Now()
	for done := 0; done < total; done += batch {
		conns := make([]net.Conn, 0, batch)
		for i := 0; i < batch; i++ {
			c, err := net.DialTimeout("tcp", e.addr, 2*time.Second)
			if err != nil {
				t.Fatalf("dial %d: %v", done+i, err)
			}
			conns = append(conns, c)
		}
		for i, c := range conns {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			b, err := io.ReadAll(c)
			c.Close()
			got := string(b)
			switch {
			case err != nil:
				t.Fatalf("connection %d not closed by the server: %v (read %q)", done+i, err, got)
			case strings.HasPrefix(got, "421 4.3.2 Too many connections") && strings.Count(got, "\n") == 1:
				refused++
			case strings.HasPrefix(got, "220 mx.test ") && strings.HasSuffix(got, "\r\n421 4.4.2 mx.test Error: timeout exceeded\r\n"):
				timedOut++
			default:
				t.Fatalf("connection %d: %q", done+i, got)
			}
		}
	}
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()

	gLimit := int64(baseG + 2*maxConns + batch/2)
	hLimit := int64(baseHeap) + 16<<20
	t.Logf("%d attempts in %v: %d refused at the cap, %d cut by the greeting timeout; goroutines %d -> peak %d (limit %d); heap in use %.1f MiB -> peak %.1f MiB (limit %.1f MiB)",
		total, elapsed.Round(time.Millisecond), refused, timedOut, baseG, peakG.Load(), gLimit,
		float64(baseHeap)/(1<<20), float64(peakHeap.Load())/(1<<20), float64(hLimit)/(1<<20))
	if refused+timedOut != total || refused == 0 || timedOut == 0 {
		t.Errorf("refused %d + timed out %d, want both and %d in all", refused, timedOut, total)
	}
	if peakG.Load() > gLimit {
		t.Errorf("peak goroutines %d > %d", peakG.Load(), gLimit)
	}
	if peakHeap.Load() > hLimit {
		t.Errorf("peak heap in use %d > %d", peakHeap.Load(), hLimit)
	}

	// Everything is given back: no connection counted, no goroutine left behind.
	deadline := time.Now().Add(3 * time.Second)
	for {
		e.srv.mu.Lock()
		n, ips, live := e.srv.nconns, len(e.srv.perIP), len(e.srv.conns)
		e.srv.mu.Unlock()
		g := runtime.NumGoroutine()
		if n == 0 && ips == 0 && live == 0 && g <= baseG+2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the test: %d connections counted, %d addresses, %d sessions, %d goroutines (baseline %d)", n, ips, live, g, baseG)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
