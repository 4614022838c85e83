package jobctl

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/queue"
	"mtad.dev/mta/status"
)

// TestRealQueueDurableRetry runs the controller on the real queue: results are
// recorded durably, and after closing and reopening everything the retry happens
// at the recorded time, not before, and finishes the message.
func TestRealQueueDurableRetry(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock(t0)
	var ctrl atomic.Pointer[Controller]
	open := func() *queue.Queue {
		q, err := queue.Open(dir, queue.Options{
			Logger: slog.New(slog.DiscardHandler),
			OnCommit: func(envs []*queue.Envelope) {
				if c := ctrl.Load(); c != nil {
					c.Add(envs)
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	var failTemp atomic.Bool
	failTemp.Store(true)
	var calls atomic.Int64
	p := &program{result: func(_ *channels.Message, r channels.Rcpt) channels.Result {
		calls.Add(1)
		if r.Addr == "temp@b.example" && failTemp.Load() {
			return channels.Result{Err: status.New(451, "4.2.1", "later"), Remote: "mx.b.example", Reply: "smtp;451 4.2.1 later"}
		}
		return channels.Result{Remote: "mx.b.example", Reply: "smtp;250 2.0.0 ok"}
	}}
	run := func(q *queue.Queue) (stop func()) {
		c := New(Config{Queue: q, Clock: clock, Logger: slog.New(slog.DiscardHandler),
			Programs: map[string]channels.Program{"tcp_local": p}})
		ctrl.Store(c)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
			ctrl.Store(nil)
		}
	}

	q := open()
	stop := run(q)
	id, err := q.Enqueue(context.Background(), &queue.Envelope{From: "alice@a.example", Arrival: t0,
		Rcpts: []queue.Recipient{rcpt("tcp_local", "ok@b.example"), rcpt("tcp_local", "temp@b.example")}},
		[]byte("Subject: hi\r\n\r\nhello\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	var e *queue.Envelope
	waitFor(t, "first attempt recorded", func() bool {
		e, err = q.Get(id)
		return err == nil && e.Rcpts[1].Attempts == 1
	})
	if e.Rcpts[0].State != queue.Delivered || e.Rcpts[1].State != queue.Pending || !e.Rcpts[1].NextAttempt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("after first attempt: %+v", e.Rcpts)
	}
	stop()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	failTemp.Store(false)
	clock.Set(t0.Add(30 * time.Minute))
	q = open()
	defer q.Close()
	stop = run(q)
	defer stop()
	settle()
	if n := calls.Load(); n != 2 {
		t.Fatalf("retried before the recorded next attempt (%d calls)", n)
	}
	clock.Set(t0.Add(time.Hour))
	waitFor(t, "message finished", func() bool {
		_, err := q.Get(id)
		return errors.Is(err, queue.ErrNotFound)
	})
	if n := calls.Load(); n != 3 {
		t.Errorf("%d delivery calls, want 3 (ok once, temp twice)", n)
	}
}
