package queue

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// reportQueue adds the numbers that matter for group commit: messages per second and
// fsyncs per message (a bbolt commit costs two fdatasyncs).
func reportQueue(b *testing.B, q *Queue, before Stats, n int, elapsed time.Duration) {
	st := q.Stats()
	fsyncs := (st.SegmentSyncs - before.SegmentSyncs) + 2*(st.IndexCommits-before.IndexCommits)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(fsyncs)/float64(n), "fsyncs/msg")
	b.ReportMetric(float64(n)/float64(st.Batches-before.Batches), "ops/batch")
}

// sessionCounts are the concurrent SMTP sessions simulated: the brief's 20, and a
// busy server's 200 (batches grow with concurrency).
var sessionCounts = []int{20, 200}

func parallelism(sessions int) int { return max(1, sessions/runtime.GOMAXPROCS(0)) }

// BenchmarkEnqueueParallel: 4 KiB messages from concurrent sessions, the way an SMTP
// server under load calls Enqueue.
func BenchmarkEnqueueParallel(b *testing.B) {
	for _, sessions := range sessionCounts {
		b.Run(fmt.Sprintf("sessions=%d", sessions), func(b *testing.B) {
			q := openTest(b, b.TempDir(), Options{})
			defer q.Close()
			body := make([]byte, 4096)
			for i := range body {
				body[i] = byte('a' + i%26)
			}
			env := testEnvelope(1)
			b.SetBytes(int64(len(body)))
			b.SetParallelism(parallelism(sessions))
			before := q.Stats()
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := q.Enqueue(context.Background(), env, body); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			reportQueue(b, q, before, b.N, time.Since(start))
		})
	}
}

// BenchmarkUpdate: concurrent final delivery reports, each removing its message.
func BenchmarkUpdate(b *testing.B) {
	q := openTest(b, b.TempDir(), Options{})
	defer q.Close()
	body := make([]byte, 4096)
	ids := make([]string, b.N)
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
				id, err := q.Enqueue(context.Background(), testEnvelope(int(i)), body)
				if err != nil {
					b.Error(err)
					return
				}
				ids[i] = id
			}
		}()
	}
	wg.Wait()
	next.Store(0)
	ups := []Update{{Rcpt: 0, State: Delivered, Attempts: 1}, {Rcpt: 1, State: Delivered, Attempts: 1}}
	before := q.Stats()
	start := time.Now()
	b.SetParallelism(parallelism(20))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			if err := q.Update(ids[i], ups); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportQueue(b, q, before, b.N, time.Since(start))
	if n := q.Stats().Segments; n > 1 {
		b.Errorf("%d segments left after every message was delivered", n)
	}
}

// BenchmarkBaselineFilePerMessage is the yardstick for the two above: what a
// file-per-message queue (Postfix's cleanup: create, write, fsync, close) costs for the
// same 4 KiB messages and sessions on the same disk. It is the floor of
// such a design (no directory fsync, no rename into the active queue, no process
// hops), so the ratio of EnqueueParallel to it understates our advantage.
func BenchmarkBaselineFilePerMessage(b *testing.B) {
	for _, sessions := range sessionCounts {
		b.Run(fmt.Sprintf("sessions=%d", sessions), func(b *testing.B) { baselineFilePerMessage(b, sessions) })
	}
}

func baselineFilePerMessage(b *testing.B, sessions int) {
	dir := b.TempDir()
	body := make([]byte, 4096)
	var seq atomic.Int64
	b.SetBytes(int64(len(body)))
	b.SetParallelism(parallelism(sessions))
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			path := filepath.Join(dir, strconv.FormatInt(seq.Add(1), 10))
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := f.Write(body); err != nil {
				b.Error(err)
			}
			if err := f.Sync(); err != nil {
				b.Error(err)
			}
			f.Close()
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.ReportMetric(1, "fsyncs/msg")
}
