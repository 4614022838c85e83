package queue

import (
	"context"
	"sync"
	"testing"
)

// TestCommitObserver: every enqueued message is reported once, by the commit
// that made it durable, and concurrent enqueues share commits.
func TestCommitObserver(t *testing.T) {
	var mu sync.Mutex
	var stats []CommitStats
	q := openTest(t, t.TempDir(), Options{CommitObserver: func(s CommitStats) {
		mu.Lock()
		stats = append(stats, s)
		mu.Unlock()
	}})
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := q.Enqueue(context.Background(), testEnvelope(i), []byte("Subject: x\r\n\r\nbody\r\n")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// The observer runs after a commit's waiters are released; Close waits for
	// the committing goroutines, so every call has happened after it.
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	msgs := 0
	for _, s := range stats {
		if s.Failed || s.Messages > s.Requests {
			t.Errorf("odd commit %+v", s)
		}
		msgs += s.Messages
	}
	if msgs != n {
		t.Errorf("observer saw %d messages committed, want %d", msgs, n)
	}
	if len(stats) == 0 || len(stats) > n {
		t.Errorf("%d commits for %d messages", len(stats), n)
	}
}
