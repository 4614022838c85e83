package jobctl

import (
	"context"
	"errors"
	"testing"
	"time"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/queue"
)

// stoppedRunning is a running controller whose channel tcp_local is stopped
// (nothing is delivered unless the test starts it), with a subscription to
// every channel's outcomes.
func stoppedRunning(t *testing.T, cfg Config) (*harness, *Subscription) {
	t.Helper()
	h := newHarness(t, cfg)
	if err := h.c.Stop("tcp_local"); err != nil {
		t.Fatal(err)
	}
	outs := h.c.Subscribe("", 0)
	t.Cleanup(outs.Close)
	h.start()
	waitFor(t, "Run started", func() bool { h.c.mu.Lock(); defer h.c.mu.Unlock(); return h.c.started })
	// Run's start-up walk of the queue must be over, or it could put a message
	// the test takes out of the schedule back in.
	h.c.WaitLoaded(context.Background())
	return h, outs
}

// TestRequeueMovesReturnsAndRestores: Requeue hands move the envelope with the
// message out of the schedule, marks the moved recipients delivered (D with
// where they went) only after move returned, returns the refused one with a
// notice (R), leaves the others pending and schedules them again; a held
// message stays held; a move that fails changes nothing.
func TestRequeueMovesReturnsAndRestores(t *testing.T) {
	p := &program{}
	h, outs := stoppedRunning(t, Config{Programs: map[string]channels.Program{"tcp_local": p}})
	id := h.enqueue(env("sender@a.example", rcpt("tcp_local", "m@dead.example"), rcpt("tcp_local", "r@gone.example"), rcpt("tcp_local", "s@live.example")))
	var during *queue.Envelope
	res, err := h.c.Requeue(context.Background(), id, func(e *queue.Envelope) ([]RequeueStep, error) {
		during, _ = h.q.Get(id)
		h.c.mu.Lock()
		indexed := h.c.msgs[id] != nil
		h.c.mu.Unlock()
		if indexed {
			t.Error("the message is still in the schedule while it moves")
		}
		return []RequeueStep{
			{Rcpt: 0, Moved: true, Diag: "requeued to tcp_dead as NEW1 (qm requeue)"},
			{Rcpt: 1, Return: true, Status: "5.1.2", Diag: "550 5.1.2 No mail (qm requeue)"},
		}, nil
	})
	if err != nil || res.Moved != 1 || res.Returned != 1 {
		t.Fatalf("Requeue = %+v, %v", res, err)
	}
	for i := range 3 {
		if during.Rcpts[i].State != queue.Pending {
			t.Errorf("recipient %d was marked before move returned", i)
		}
	}
	want := []queue.RcptState{queue.Delivered, queue.Returned, queue.Pending}
	for i, st := range want {
		if r, _ := h.q.rcpt(id, i); r.State != st {
			t.Errorf("recipient %d: state %v, want %v", i, r.State, st)
		}
	}
	got := drain(outs)
	if len(got) != 2 || got[0].Code != "D" || got[0].Diag != "requeued to tcp_dead as NEW1 (qm requeue)" || got[1].Code != "R" {
		t.Errorf("records: %+v", got)
	}
	if ns := h.noticeList(); len(ns) != 1 || ns[0].to[0] != "sender@a.example" {
		t.Errorf("notices: %+v", ns)
	}
	if tot := h.c.Totals(); tot.Total.Queued.Messages != 1 || tot.Total.Queued.Recipients != 1 {
		t.Errorf("the rest is not scheduled again: %+v", tot.Total)
	}
	if r := h.c.Received(); r["tcp_local"] != 3 {
		t.Errorf("received %v: putting the message back must not count it again", r)
	}

	// A failed move: nothing marked, the message scheduled as before.
	_, err = h.c.Requeue(context.Background(), id, func(*queue.Envelope) ([]RequeueStep, error) {
		return nil, errors.New("disk full")
	})
	if err == nil {
		t.Error("a failed move is not reported")
	}
	if r, _ := h.q.rcpt(id, 2); r.State != queue.Pending {
		t.Error("a failed move changed the message")
	}
	if tot := h.c.Totals(); tot.Total.Queued.Messages != 1 {
		t.Errorf("after a failed move: %+v", tot.Total)
	}

	// A held message: what stays of it stays held, and is counted so.
	held := h.enqueue(env("sender@a.example", rcpt("tcp_local", "h1@dead.example"), rcpt("tcp_local", "h2@live.example")))
	if _, err := h.c.Hold(context.Background(), held, "held by the test"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.Requeue(context.Background(), held, func(*queue.Envelope) ([]RequeueStep, error) {
		return []RequeueStep{{Rcpt: 0, Moved: true, Diag: "moved"}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if e, _ := h.q.Get(held); !e.Held || e.Rcpts[0].State != queue.Delivered {
		t.Errorf("held message after Requeue: %+v", e)
	}
	if tot := h.c.Totals(); tot.Total.Held.Messages != 1 || tot.Total.Held.Recipients != 1 {
		t.Errorf("held totals after Requeue: %+v", tot.Total)
	}

	// Everything moved: the message leaves the queue and the schedule.
	all := h.enqueue(env("sender@a.example", rcpt("tcp_local", "a@dead.example")))
	if _, err := h.c.Requeue(context.Background(), all, func(*queue.Envelope) ([]RequeueStep, error) {
		return []RequeueStep{{Rcpt: 0, Moved: true, Diag: "moved"}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.q.Get(all); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("a message whose every recipient moved is still queued: %v", err)
	}
	if err := h.c.Start("tcp_local"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the recipient that stayed delivered", func() bool { return len(p.callList()) == 1 })
	settle()
	if c := p.callList(); len(c) != 1 || c[0].id != id {
		t.Errorf("deliveries after the requeues: %+v", c)
	}
	h.clock.Advance(time.Hour)
}

// TestRequeueMovedRecordedWithoutWaiting: with a queue that commits updates
// asynchronously, Requeue returns before the moved recipients are marked; the
// D lines and the rescheduling of what stays wait for the commit.
func TestRequeueMovedRecordedWithoutWaiting(t *testing.T) {
	aq := &asyncQueue{memQueue: newMemQueue()}
	h, outs := stoppedRunning(t, Config{Queue: aq, Programs: map[string]channels.Program{"tcp_local": &program{}}})
	id := h.enqueue(env("a@x", rcpt("tcp_local", "m@dead.example"), rcpt("tcp_local", "s@live.example")))
	res, err := h.c.Requeue(context.Background(), id, func(*queue.Envelope) ([]RequeueStep, error) {
		return []RequeueStep{{Rcpt: 0, Moved: true, Diag: "requeued to tcp_dead as NEW1 (qm requeue)"}}, nil
	})
	if err != nil || res.Moved != 1 {
		t.Fatalf("Requeue = %+v, %v", res, err)
	}
	if r, _ := h.q.rcpt(id, 0); r.State != queue.Pending || aq.held() != 1 {
		t.Fatalf("the move was not left to the commit: state %v, %d updates held", r.State, aq.held())
	}
	if got := drain(outs); len(got) != 0 {
		t.Errorf("logged before the commit: %+v", got)
	}
	if tot := h.c.Totals(); tot.Total.Queued.Messages != 0 {
		t.Errorf("scheduled again before the commit: %+v", tot.Total)
	}
	aq.commit()
	if r, _ := h.q.rcpt(id, 0); r.State != queue.Delivered {
		t.Errorf("after the commit: state %v", r.State)
	}
	if got := drain(outs); len(got) != 1 || got[0].Code != "D" || got[0].To != "m@dead.example" {
		t.Errorf("records after the commit: %+v", got)
	}
	if tot := h.c.Totals(); tot.Total.Queued.Messages != 1 || tot.Total.Queued.Recipients != 1 {
		t.Errorf("what stays is not scheduled again: %+v", tot.Total)
	}
}
