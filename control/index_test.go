package control

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/jobctl"
	"mtad.dev/mta/queue"
	"mtad.dev/mta/status"
)

// gateProgram delivers by the recipient's local part: "slow*" waits until the gate
// opens (the item stays active), "temp*" fails temporarily (delayed), anything
// else is delivered.
type gateProgram struct {
	gate    chan struct{}
	waiting atomic.Int32
}

func (p *gateProgram) Deliver(ctx context.Context, m *channels.Message) []channels.Result {
	out := make([]channels.Result, len(m.Rcpts))
	for i, r := range m.Rcpts {
		switch {
		case strings.HasPrefix(r.Addr, "slow"):
			p.waiting.Add(1)
			select {
			case <-p.gate:
			case <-ctx.Done():
				out[i] = channels.Result{Err: status.New(451, "4.4.2", "cancelled"), ConnFailed: true}
				continue
			}
			out[i] = channels.Result{Reply: "smtp;250 ok"}
		case strings.HasPrefix(r.Addr, "temp"):
			out[i] = channels.Result{Err: status.New(451, "4.2.1", "later"), Reply: "smtp;451 4.2.1 later", ConnFailed: true}
		default:
			out[i] = channels.Result{Reply: "smtp;250 ok"}
		}
	}
	return out
}

func rc(channel, addr string) queue.Recipient {
	return queue.Recipient{Addr: addr, Channel: channel, Host: addr[strings.IndexByte(addr, '@')+1:]}
}

// indexFilters are the filters the index answers, each compared with the walk.
var indexFilters = []Filter{
	{},
	{Channel: "tcp_local"},
	{Channel: "TCP_STOP"}, // channel names match without regard to case, as in the walk
	{Channel: "l"},
	{Channel: "nosuch"},
	{Held: true},
	{Held: true, Channel: "tcp_local"},
	{Held: true, Channel: "tcp_stop"},
}

// sameAsWalk compares SummarizeIndex with Summarize for every filter of
// indexFilters, polling (bounded) because the index follows the queue's commits
// from another goroutine. It returns the last walk answer for the unfiltered case.
func sameAsWalk(t *testing.T, q *queue.Queue, c *jobctl.Controller) Summary {
	t.Helper()
	var all Summary
	for _, f := range indexFilters {
		var diff string
		deadline := time.Now().Add(5 * time.Second)
		for {
			now := time.Now()
			walk, err := Summarize(q, f, now)
			if err != nil {
				t.Fatal(err)
			}
			fast, ok, err := SummarizeIndex(c.Totals(), f)
			if err != nil || !ok {
				t.Fatalf("filter %+v: index did not answer (ok %v, err %v)", f, ok, err)
			}
			if reflect.DeepEqual(walk, fast) {
				if f == (Filter{}) {
					all = walk
				}
				break
			}
			diff = fmt.Sprintf("walk  %+v\nindex %+v", walk, fast)
			if time.Now().After(deadline) {
				t.Fatalf("filter %+v: the index's answer differs from the walk's:\n%s", f, diff)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return all
}

// TestSummarizeIndexMatchesWalk runs the job controller on a real queue holding
// ready (stopped channel), delayed (temporary failure, one recipient of the item
// delivered), active (a delivery in progress), held (at enqueue and by qm hold),
// released, deleted and delivered messages with several hosts and channels, and
// checks that summarize from the index gives exactly the walk's answer at each
// step, down to an empty queue.
func TestSummarizeIndexMatchesWalk(t *testing.T) {
	var ctrl atomic.Pointer[jobctl.Controller]
	q, err := queue.Open(filepath.Join(t.TempDir(), "queue"), queue.Options{
		Logger: discard(),
		OnCommit: func(envs []*queue.Envelope) {
			if c := ctrl.Load(); c != nil {
				c.Add(envs)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	prog := &gateProgram{gate: make(chan struct{})}
	c := jobctl.New(jobctl.Config{Queue: q, Logger: discard(),
		Programs: map[string]channels.Program{"tcp_local": prog, "tcp_stop": prog, "l": prog}})
	ctrl.Store(c)
	if err := c.Stop("tcp_stop"); err != nil {
		t.Fatal(err)
	}

	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	enqueue := func(age int, held bool, body string, rcpts ...queue.Recipient) string {
		t.Helper()
		e := &queue.Envelope{From: "s@example.org", Arrival: base.Add(time.Duration(age) * time.Minute), Held: held, Rcpts: rcpts}
		if held {
			e.HeldReason = "test"
		}
		id, err := q.Enqueue(context.Background(), e, []byte("Subject: x\r\n\r\n"+body+"\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	// Before Run: the start-up walk finds these.
	enqueue(1, false, "multi-host, stopped", rc("tcp_stop", "a1@a.example"), rc("tcp_stop", "a2@a.example"), rc("tcp_stop", "b@b.example"))
	enqueue(2, true, "held at enqueue, two channels", rc("tcp_local", "h@h.example"), rc("l", "h@localhost"), rc("l", "h2@localhost"))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !c.Totals().Complete {
		if time.Now().After(deadline) {
			t.Fatal("start-up walk not finished")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, ok, _ := SummarizeIndex(c.Totals(), Filter{From: "*@example.org"}); ok {
		t.Error("the index answered a sender filter")
	}

	enqueue(3, false, "active and stopped", rc("tcp_local", "slow@s.example"), rc("tcp_stop", "c@c.example"))
	partial := enqueue(4, false, "one delivered, one delayed, same host", rc("tcp_local", "ok@t.example"), rc("tcp_local", "temp@t.example"),
		rc("tcp_local", "temp2@u.example"))
	delivered := enqueue(5, false, "delivered at once", rc("l", "d@localhost"))
	toHold := enqueue(6, false, "held by qm hold", rc("tcp_stop", "x@x.example"), rc("tcp_stop", "y@y.example"))
	toRelease := enqueue(7, true, "released", rc("tcp_stop", "r@r.example"))
	toDelete := enqueue(8, true, "deleted while held", rc("tcp_stop", "z@z.example"))

	for deadline := time.Now().Add(5 * time.Second); prog.waiting.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("slow delivery not started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitQueue(t, "message for l delivered", func() bool {
		_, err := q.Get(delivered)
		return err != nil
	})
	waitQueue(t, "first attempts recorded", func() bool {
		e, err := q.Get(partial)
		return err == nil && e.Rcpts[0].State == queue.Delivered && e.Rcpts[1].Attempts == 1 && e.Rcpts[2].Attempts == 1
	})
	// qm hold, release and delete as mtad does them.
	env, err := q.Get(toHold)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Hold(toHold, "test"); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveWait(ctx, toHold); err != nil {
		t.Fatal(err)
	}
	env.Held = true
	c.NoteHeld(env)
	if err := q.Release(toRelease); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveWait(ctx, toDelete); err != nil {
		t.Fatal(err)
	}
	if err := q.Delete(toDelete); err != nil {
		t.Fatal(err)
	}

	s := sameAsWalk(t, q, c)
	// The fixture must hold what it claims, or the comparison proves little.
	want := map[string][3]int{ // messages, recipients, held
		"l":         {1, 2, 1},
		"tcp_local": {3, 4, 1},
		"tcp_stop":  {4, 7, 1},
	}
	for _, cs := range s.Channels {
		if got := [3]int{cs.Messages, cs.Recipients, cs.Held}; got != want[cs.Name] {
			t.Errorf("%s: messages, recipients, held = %v, want %v", cs.Name, got, want[cs.Name])
		}
	}
	if s.Total.Messages != 6 || s.Total.Held != 2 || s.Total.Recipients != 13 || !s.Total.Oldest.Equal(base.Add(time.Minute)) {
		t.Errorf("total %+v", s.Total)
	}

	// Drain what can be: the slow delivery ends, the stopped channel starts.
	close(prog.gate)
	if err := c.Start("tcp_stop"); err != nil {
		t.Fatal(err)
	}
	waitQueue(t, "queue drained", func() bool {
		s, err := Summarize(q, Filter{}, time.Now())
		return err == nil && s.Total.Messages == 3
	})
	s = sameAsWalk(t, q, c)
	if s.Total.Messages != 3 || s.Total.Held != 2 {
		t.Errorf("after the drain, want the 2 held and the delayed message left: %+v", s.Total)
	}
}

func waitQueue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting: " + what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSummarizeIndexFilters checks the index answer's selection on fixed totals.
func TestSummarizeIndexFilters(t *testing.T) {
	old, young := time.Unix(1000, 0), time.Unix(2000, 0)
	tot := jobctl.QueueTotals{
		Complete: true,
		Channels: []jobctl.ChannelTotals{
			{Name: "a", Queued: jobctl.Counts{Messages: 2, Recipients: 3, Size: 10, Blocks: 2, Oldest: young},
				Held: jobctl.Counts{Messages: 1, Recipients: 1, Size: 5, Blocks: 1, Oldest: old}},
			{Name: "b", Queued: jobctl.Counts{Messages: 1, Recipients: 1, Size: 7, Blocks: 1, Oldest: young}},
		},
		Total: jobctl.ChannelTotals{Name: "total", Queued: jobctl.Counts{Messages: 2, Recipients: 4, Size: 10, Blocks: 2, Oldest: young},
			Held: jobctl.Counts{Messages: 1, Recipients: 1, Size: 5, Blocks: 1, Oldest: old}},
	}
	a := ChannelSummary{Name: "a", Messages: 3, Recipients: 4, Held: 1, Size: 15, Blocks: 3, Oldest: old}
	aHeld := ChannelSummary{Name: "a", Messages: 1, Recipients: 1, Held: 1, Size: 5, Blocks: 1, Oldest: old}
	b := ChannelSummary{Name: "b", Messages: 1, Recipients: 1, Size: 7, Blocks: 1, Oldest: young}
	total := func(cs ChannelSummary) ChannelSummary { cs.Name = "total"; return cs }
	tests := []struct {
		name string
		t    jobctl.QueueTotals
		f    Filter
		want Summary
		ok   bool
	}{
		{"all", tot, Filter{}, Summary{Channels: []ChannelSummary{a, b}, Total: total(ChannelSummary{Messages: 3, Recipients: 5, Held: 1, Size: 15, Blocks: 3, Oldest: old})}, true},
		{"channel", tot, Filter{Channel: "B"}, Summary{Channels: []ChannelSummary{b}, Total: total(b)}, true},
		{"held", tot, Filter{Held: true}, Summary{Channels: []ChannelSummary{aHeld}, Total: total(aHeld)}, true},
		{"held of a channel without", tot, Filter{Held: true, Channel: "b"}, Summary{Total: ChannelSummary{Name: "total"}}, true},
		{"unknown channel", tot, Filter{Channel: "c"}, Summary{Total: ChannelSummary{Name: "total"}}, true},
		{"sender filter walks", tot, Filter{From: "x"}, Summary{}, false},
		{"domain filter walks", tot, Filter{Domain: "x"}, Summary{}, false},
		{"age filter walks", tot, Filter{Older: time.Hour}, Summary{}, false},
		{"incomplete index walks", jobctl.QueueTotals{Channels: tot.Channels}, Filter{}, Summary{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := SummarizeIndex(tc.t, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v ok %v\nwant %+v ok %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	if _, _, err := SummarizeIndex(tot, Filter{From: "[x"}); err == nil {
		t.Error("a malformed filter was accepted")
	}
}
