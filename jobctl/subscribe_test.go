package jobctl

import (
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/status"
)

// drain takes what a subscription holds now, without waiting.
func drain(s *Subscription) []Outcome {
	var out []Outcome
	for {
		select {
		case o := <-s.Outcomes():
			out = append(out, o)
		default:
			return out
		}
	}
}

// TestSubscriptionSeesOutcomes: a subscription gets its channel's outcomes as
// mail.log records (the channel in Source, the code, recipient, queue id and
// diagnostic), and none of other channels; by the time a Snapshot shows the work
// done, every outcome of it is already buffered; after Close nothing arrives.
func TestSubscriptionSeesOutcomes(t *testing.T) {
	p := &program{result: func(m *channels.Message, r channels.Rcpt) channels.Result {
		if strings.HasPrefix(r.Addr, "later") {
			return channels.Result{Remote: r.Host, Err: status.New(451, "4.2.0", "busy"), Reply: "smtp;451 4.2.0 busy"}
		}
		return channels.Result{Remote: r.Host, Reply: "smtp;250 2.0.0 ok"}
	}}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p, "l": &program{}}})
	local := h.c.Subscribe("tcp_local", 0)
	all := h.c.Subscribe("", 0)
	other := h.c.Subscribe("l", 0)
	defer all.Close()
	defer other.Close()
	h.start()
	id := h.enqueue(env("a@a.example", rcpt("tcp_local", "now@b.example"), rcpt("tcp_local", "later@b.example")))
	waitFor(t, "the attempt recorded", func() bool {
		s := h.c.Snapshot()
		ci, _ := s.Channel("tcp_local")
		return len(p.callList()) == 1 && ci.Ready == 0 && ci.Active == 0
	})
	got := drain(local)
	if len(got) != 2 {
		t.Fatalf("outcomes buffered once the work was done: %+v", got)
	}
	for i, want := range []struct{ code, to, diag string }{
		{"D", "now@b.example", "smtp;250 2.0.0 ok"},
		{"Q", "later@b.example", "smtp;451 4.2.0 busy"},
	} {
		o := got[i]
		if o.Source != "tcp_local" || o.Code != want.code || o.To != want.to || o.ID != id || o.Diag != want.diag || o.From != "a@a.example" {
			t.Errorf("outcome %d: %+v, want %+v", i, o.Record, want)
		}
	}
	if n := len(drain(all)); n != 2 {
		t.Errorf("the all-channels subscription got %d outcomes, want 2", n)
	}
	if o := drain(other); len(o) != 0 {
		t.Errorf("channel l's subscription got %+v", o)
	}

	local.Close()
	local.Close() // twice is harmless
	h.enqueue(env("a@a.example", rcpt("tcp_local", "again@b.example")))
	waitFor(t, "the second message delivered", func() bool { return len(drain(all)) == 1 })
	if o := drain(local); len(o) != 0 || local.Lost() != 0 {
		t.Errorf("outcomes after Close: %+v, lost %d", o, local.Lost())
	}
}

// TestSlowSubscriberLosesNotDelivery: a subscriber that does not read loses the
// outcomes its buffer cannot hold, counted, and delivery goes on at full speed:
// publishing never waits.
func TestSlowSubscriberLosesNotDelivery(t *testing.T) {
	p := &program{}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p}})
	slow := h.c.Subscribe("tcp_local", 1)
	defer slow.Close()
	h.start()
	const msgs = 20
	for range msgs {
		h.enqueue(env("a@a.example", rcpt("tcp_local", "x@b.example"), rcpt("tcp_local", "y@b.example")))
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.q.len() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages still queued: delivery waited for the subscriber", h.q.len())
		}
		time.Sleep(time.Millisecond)
	}
	waitFor(t, "every outcome offered", func() bool { return len(slow.Outcomes())+int(slow.Lost()) == 2*msgs })
	if n := len(drain(slow)); n != 1 || slow.Lost() != 2*msgs-1 {
		t.Errorf("buffered %d, lost %d; want 1 and %d", n, slow.Lost(), 2*msgs-1)
	}
}
