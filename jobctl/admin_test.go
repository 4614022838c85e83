package jobctl

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/queue"
)

// TestRemoveKeepsMessageFromJobs: a removed message is never delivered, whether
// it was ready or delayed; a message being delivered is ErrBusy until its attempt ends.
func TestRemoveKeepsMessageFromJobs(t *testing.T) {
	block := make(chan struct{})
	p := &program{block: block}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p}})
	if err := h.c.Stop("tcp_local"); err != nil {
		t.Fatal(err)
	}
	h.start()
	settle() // Run's start-up walk of the queue is over: it would index these again
	ready := h.enqueue(env("a@x", rcpt("tcp_local", "r@ready.example")))
	e := env("a@x", rcpt("tcp_local", "d@delayed.example"))
	e.Rcpts[0].NextAttempt = t0.Add(time.Hour)
	delayed := h.enqueue(e)
	busy := h.enqueue(env("a@x", rcpt("tcp_local", "b@busy.example")))
	for _, id := range []string{ready, delayed} {
		if err := h.c.Remove(id); err != nil {
			t.Fatalf("Remove(%s): %v", id, err)
		}
	}
	if err := h.c.Remove("unknown"); err != nil {
		t.Errorf("Remove of an unknown id: %v", err)
	}
	if err := h.c.Start("tcp_local"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the busy message taken", func() bool { return len(p.callList()) == 1 })
	if err := h.c.Remove(busy); !errors.Is(err, ErrBusy) {
		t.Errorf("Remove while delivering: %v, want ErrBusy", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	if err := h.c.RemoveWait(ctx, busy); !errors.Is(err, ErrBusy) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RemoveWait bounded: %v", err)
	}
	cancel()
	close(block)
	h.clock.Advance(2 * time.Hour) // the delayed one would be due now
	settle()
	for _, c := range p.callList() {
		if c.id != busy {
			t.Errorf("removed message %s delivered", c.id)
		}
	}
	s := h.c.Snapshot()
	if ci, _ := s.Channel("tcp_local"); ci.Ready+ci.Delayed+ci.Active != 0 {
		t.Errorf("index not empty: %+v", ci)
	}
	if r := h.c.Received(); r["tcp_local"] != 3 {
		t.Errorf("received %v, want tcp_local 3", r)
	}
}

// TestReturnBouncesNow: Return notifies the sender, marks every pending recipient
// Returned and takes the message out of the schedule.
func TestReturnBouncesNow(t *testing.T) {
	p := &program{}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p}})
	if err := h.c.Stop("tcp_local"); err != nil {
		t.Fatal(err)
	}
	h.start()
	waitFor(t, "Run started", func() bool { h.c.mu.Lock(); defer h.c.mu.Unlock(); return h.c.started })
	never := rcpt("tcp_local", "n@b.example")
	never.Notify = "NEVER"
	id := h.enqueue(env("sender@a.example", rcpt("tcp_local", "x@b.example"), never))
	n, err := h.c.Return(context.Background(), id, "returned by the postmaster")
	if err != nil || n != 2 {
		t.Fatalf("Return = %d, %v", n, err)
	}
	for i := 0; i < 2; i++ {
		if r, ok := h.q.rcpt(id, i); ok && r.State != queue.Returned {
			t.Errorf("recipient %d state %v", i, r.State)
		}
	}
	ns := h.noticeList()
	if len(ns) != 1 || ns[0].from != "" || ns[0].to[0] != "sender@a.example" ||
		!strings.Contains(string(ns[0].content), "Status: "+ReturnStatus) || strings.Contains(string(ns[0].content), "n@b.example") {
		t.Fatalf("notices %+v", ns)
	}
	if err := h.c.Start("tcp_local"); err != nil {
		t.Fatal(err)
	}
	settle()
	if len(p.callList()) != 0 {
		t.Error("a returned message was delivered")
	}
	snap := h.c.Snapshot()
	if ci, _ := snap.Channel("tcp_local"); ci.Counters.Returned != 2 {
		t.Errorf("counters %+v", ci.Counters)
	}
	if _, err := h.c.Return(context.Background(), "unknown", ""); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("Return unknown: %v", err)
	}
}
