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

// TestHoldReleaseDelete: Hold makes the hold durable, takes the message out of
// the schedule, counts it as held and logs H for its pending recipients; holding
// again changes nothing; Release clears the hold (once); Delete takes a message
// out of the schedule and the queue and logs K; an attempt in flight bounds Hold
// (held on disk, InFlight) and Delete (refused, nothing deleted).
func TestHoldReleaseDelete(t *testing.T) {
	block := make(chan struct{})
	p := &program{block: block}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p}})
	if err := h.c.Stop("tcp_local"); err != nil {
		t.Fatal(err)
	}
	outs := h.c.Subscribe("", 0)
	defer outs.Close()
	h.start()
	ctx := context.Background()
	// Run's start-up walk of the queue must be over: it could otherwise index the
	// message again after Hold took it out of the schedule.
	h.c.WaitLoaded(ctx)
	done := rcpt("tcp_local", "done@b.example")
	done.State = queue.Delivered
	id := h.enqueue(env("a@x", rcpt("tcp_local", "r@b.example"), done, rcpt("l", "local@x")))

	res, err := h.c.Hold(ctx, id, "held by the test")
	if err != nil || res.AlreadyHeld || res.InFlight != nil {
		t.Fatalf("Hold = %+v, %v", res, err)
	}
	if e, _ := h.q.Get(id); !e.Held || e.HeldReason != "held by the test" {
		t.Errorf("queue after Hold: held=%v %q", e.Held, e.HeldReason)
	}
	if tot := h.c.Totals(); tot.Total.Queued.Messages != 0 || tot.Total.Held.Messages != 1 || tot.Total.Held.Recipients != 2 {
		t.Errorf("totals after Hold: %+v", tot.Total)
	}
	got := drain(outs)
	if len(got) != 2 || got[0].Code != "H" || got[0].Source != "tcp_local" || got[0].To != "r@b.example" ||
		got[1].Source != "l" || got[1].To != "local@x" || got[1].Diag != "held by the test" {
		t.Errorf("Hold's records: %+v", got)
	}
	if res, err := h.c.Hold(ctx, id, "again"); err != nil || !res.AlreadyHeld || res.Reason != "held by the test" {
		t.Errorf("Hold of a held message = %+v, %v", res, err)
	}

	if ok, err := h.c.Release(id); !ok || err != nil {
		t.Errorf("Release = %v, %v", ok, err)
	}
	if ok, err := h.c.Release(id); ok || err != nil {
		t.Errorf("Release of a released message = %v, %v", ok, err)
	}

	if err := h.c.Delete(ctx, id, "deleted by the test"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.q.Get(id); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("queue after Delete: %v", err)
	}
	if got := drain(outs); len(got) != 2 || got[0].Code != "K" || got[1].Code != "K" || got[0].Diag != "deleted by the test" {
		t.Errorf("Delete's records: %+v", got)
	}
	for _, f := range []func() error{
		func() error { _, err := h.c.Hold(ctx, "unknown", "x"); return err },
		func() error { _, err := h.c.Release("unknown"); return err },
		func() error { return h.c.Delete(ctx, "unknown", "x") },
	} {
		if err := f(); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("action on an unknown id: %v", err)
		}
	}

	busy := h.enqueue(env("a@x", rcpt("tcp_local", "b@busy.example")))
	if err := h.c.Start("tcp_local"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the busy message taken", func() bool { return len(p.callList()) == 1 })
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := h.c.Delete(short, busy, "x"); !errors.Is(err, ErrBusy) {
		t.Errorf("Delete while delivering: %v, want ErrBusy", err)
	}
	if _, err := h.q.Get(busy); err != nil {
		t.Errorf("Delete while delivering deleted it: %v", err)
	}
	res, err = h.c.Hold(short, busy, "held in flight")
	if err != nil || !errors.Is(res.InFlight, ErrBusy) {
		t.Errorf("Hold while delivering = %+v, %v", res, err)
	}
	if e, _ := h.q.Get(busy); !e.Held {
		t.Error("Hold while delivering did not hold it on disk")
	}
	close(block)
}

// TestActionsNeedAnOperatorQueue: a queue without Hold, Release and Delete makes
// the actions fail instead of half-doing them.
func TestActionsNeedAnOperatorQueue(t *testing.T) {
	h := newHarness(t, Config{Queue: readOnlyQueue{newMemQueue()}})
	if _, err := h.c.Hold(context.Background(), "m1", "x"); err == nil {
		t.Error("Hold without an OperatorQueue succeeded")
	}
	if err := h.c.Delete(context.Background(), "m1", "x"); err == nil {
		t.Error("Delete without an OperatorQueue succeeded")
	}
}

// readOnlyQueue hides memQueue's OperatorQueue side.
type readOnlyQueue struct{ q *memQueue }

func (r readOnlyQueue) Walk(fn func(*queue.Envelope) bool) error { return r.q.Walk(fn) }
func (r readOnlyQueue) Get(id string) (*queue.Envelope, error)   { return r.q.Get(id) }
func (r readOnlyQueue) Content(id string) (queue.Content, error) { return r.q.Content(id) }
func (r readOnlyQueue) Update(id string, ups []queue.Update) error {
	return r.q.Update(id, ups)
}
