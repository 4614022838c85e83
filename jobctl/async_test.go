package jobctl

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/queue"
)

// asyncQueue is a memQueue with UpdateAsync whose commits the test releases by hand.
type asyncQueue struct {
	*memQueue
	mu      sync.Mutex
	pending []func()
}

func (q *asyncQueue) UpdateAsync(id string, ups []queue.Update, done func(error)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending = append(q.pending, func() { done(q.memQueue.Update(id, ups)) })
}

func (q *asyncQueue) held() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// commit makes every held update durable, in order.
func (q *asyncQueue) commit() {
	q.mu.Lock()
	p := q.pending
	q.pending = nil
	q.mu.Unlock()
	for _, f := range p {
		f()
	}
}

// TestDeliveredRecordedWithoutWaiting guards the pipelined record path: a job
// goes on with the next message while the previous result is being committed, but
// until the commit the message counts as in flight (qm cannot take it), its D line
// is not logged, and Run does not return.
func TestDeliveredRecordedWithoutWaiting(t *testing.T) {
	dir := t.TempDir()
	ml, err := maillog.Open(filepath.Join(dir, "mail.log"), maillog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	aq := &asyncQueue{memQueue: newMemQueue()}
	p := &program{}
	h := newHarness(t, Config{Queue: aq, Programs: map[string]channels.Program{"tcp_local": p},
		Channels: map[string]Channel{"tcp_local": {MaxJobs: 1}}, MailLog: ml})
	h.start()

	id1 := h.enqueue(env("a@a.example", rcpt("tcp_local", "x@b.example")))
	waitFor(t, "first result submitted", func() bool { return aq.held() == 1 })
	if err := h.c.Remove(id1); !errors.Is(err, ErrBusy) {
		t.Errorf("Remove before the commit: %v, want ErrBusy", err)
	}
	// The only job is free again although the first commit has not happened.
	id2 := h.enqueue(env("a@a.example", rcpt("tcp_local", "y@b.example")))
	waitFor(t, "second message delivered before the first commit", func() bool { return aq.held() == 2 })
	if _, err := h.q.Get(id1); err != nil {
		t.Fatalf("first message left the queue before its commit: %v", err)
	}
	syncLog(t, ml) // what was logged so far is in the file
	if b, _ := os.ReadFile(filepath.Join(dir, "mail.log")); strings.Contains(string(b), " D ") {
		t.Errorf("D logged before the result was durable:\n%s", b)
	}

	aq.commit()
	for _, id := range []string{id1, id2} {
		if _, err := h.q.Get(id); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("%s still queued after its commit: %v", id, err)
		}
		if err := h.c.Remove(id); err != nil {
			t.Errorf("Remove after the commit: %v", err)
		}
	}

	// Shutdown waits for a result still being committed.
	h.enqueue(env("a@a.example", rcpt("tcp_local", "z@b.example")))
	waitFor(t, "third result submitted", func() bool { return aq.held() == 1 })
	h.cancel()
	h.cancel = nil
	select {
	case <-h.done:
		t.Fatal("Run returned with a delivery result not yet durable")
	case <-time.After(50 * time.Millisecond):
	}
	aq.commit()
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the last commit")
	}
	ml.Close()
	b, _ := os.ReadFile(filepath.Join(dir, "mail.log"))
	if n := strings.Count(string(b), " tcp_local D "); n != 3 {
		t.Errorf("%d D lines, want 3:\n%s", n, b)
	}
	s := h.c.Snapshot()
	if ci, _ := s.Channel("tcp_local"); ci.Counters.Delivered != 3 {
		t.Errorf("counters %+v", ci.Counters)
	}
}

// syncLog waits (bounded) until everything logged to ml is in its file.
func syncLog(t *testing.T, ml *maillog.Logger) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ml.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}
