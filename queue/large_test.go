package queue

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var largeN = flag.Int("queue.large", 0, "TestLargeQueue: number of messages (e.g. 1000000); 0 skips it")

// TestLargeQueue checks the memory promise on a big queue: it fills a queue with
// -queue.large messages of 1 KiB from 200 concurrent sessions, reopens it, walks it,
// and reports time, peak RSS and the Go heap. Run by hand:
//
//	go test -run TestLargeQueue -queue.large=1000000 -timeout 30m ./queue/
func TestLargeQueue(t *testing.T) {
	if *largeN == 0 {
		t.Skip("set -queue.large=N to run")
	}
	dir := t.TempDir()
	q := openTest(t, dir, Options{MaxBatch: 4096})
	body := bytes.Repeat([]byte("0123456789abcdef"), 64)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 200; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(*largeN); i = next.Add(1) {
				if _, err := q.Enqueue(context.Background(), testEnvelope(int(i)), body); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	st := q.Stats()
	t.Logf("enqueued %d in %v (%.0f msgs/s, %.1f per batch)", st.Enqueued, time.Since(start),
		float64(st.Enqueued)/time.Since(start).Seconds(), float64(st.Enqueued)/float64(st.Batches))
	q.Close()
	runtime.GC()

	for _, quick := range []bool{true, false} {
		start = time.Now()
		q = openTest(t, dir, Options{QuickRecovery: quick, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		t.Logf("Open (QuickRecovery=%v): %v", quick, time.Since(start))
		start = time.Now()
		n := 0
		q.Walk(func(*Envelope) bool { n++; return true })
		t.Logf("Walk %d: %v", n, time.Since(start))
		if n != *largeN {
			t.Errorf("Walk saw %d, want %d", n, *largeN)
		}
		q.Close()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range bytes.Split(status, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("VmHWM")) || bytes.HasPrefix(line, []byte("VmRSS")) {
			t.Logf("%s", line)
		}
	}
	t.Logf("Go heap: sys %d MiB, in use %d MiB", ms.HeapSys>>20, ms.HeapInuse>>20)
}
