package jobctl

import (
	"sync"
	"sync/atomic"

	"mtad.dev/mta/maillog"
)

// Outcome is what happened to one recipient, as the controller writes it to
// mail.log: delivered (D), requeued (Q), returned (R, K), delay notice sent (W),
// held (H) or deleted (K) by the postmaster. Record.Source is the channel; the
// remote host and reply are in Record.Diag.
type Outcome struct {
	maillog.Record
}

// DefaultOutcomeBuffer is a subscription's buffer when Subscribe is given none:
// room for the outcomes of a few hundred multi-recipient attempts.
const DefaultOutcomeBuffer = 4096

// Subscription receives outcomes in process (Subscribe). It is how qm run learns
// what the jobs did without reading mail.log back.
//
// Publishing never waits for a subscriber: each outcome is offered to the
// subscription's buffer and dropped when the buffer is full, and the drop is
// counted (Lost). A slow subscriber therefore loses outcomes; it never slows a
// delivery or holds the controller's lock.
type Subscription struct {
	c        *Controller
	channel  string // "" for every channel
	outcomes chan Outcome
	lost     atomic.Int64
}

// subscribers is the controller's list of subscriptions. Publishing reads an
// immutable slice through an atomic pointer, so a delivery job pays one atomic
// load when nobody listens and takes no lock when someone does; Subscribe and
// Close copy the slice under mu.
type subscribers struct {
	mu   sync.Mutex
	list atomic.Pointer[[]*Subscription]
}

// Subscribe starts receiving the outcomes of channel ("" for every channel) from
// now on, with room for buffer undelivered outcomes (DefaultOutcomeBuffer when
// buffer <= 0). The outcomes of one message arrive in the order they were
// logged; across jobs, in the order their results were recorded. The outcome of
// a delivery attempt (or of a return at the last notice age) is published before
// its work leaves the schedule's active state, so once a Snapshot shows a
// channel's work done, every outcome of that work is already in the buffer. (The
// postmaster's hold, delete and return take the message out of the schedule
// first and publish after.) Close the subscription when done.
func (c *Controller) Subscribe(channel string, buffer int) *Subscription {
	if buffer <= 0 {
		buffer = DefaultOutcomeBuffer
	}
	s := &Subscription{c: c, channel: channel, outcomes: make(chan Outcome, buffer)}
	c.subs.mu.Lock()
	defer c.subs.mu.Unlock()
	var next []*Subscription
	if cur := c.subs.list.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, s)
	c.subs.list.Store(&next)
	return s
}

// Outcomes is the channel outcomes arrive on. It is never closed: a publisher
// that loaded the list just before Close may still put one in the buffer, which
// nobody reads then.
func (s *Subscription) Outcomes() <-chan Outcome { return s.outcomes }

// Lost is how many outcomes were dropped because the buffer was full.
func (s *Subscription) Lost() int64 { return s.lost.Load() }

// Close stops the subscription. It is safe to call more than once.
func (s *Subscription) Close() {
	subs := &s.c.subs
	subs.mu.Lock()
	defer subs.mu.Unlock()
	cur := subs.list.Load()
	if cur == nil {
		return
	}
	next := make([]*Subscription, 0, len(*cur))
	for _, x := range *cur {
		if x != s {
			next = append(next, x)
		}
	}
	subs.list.Store(&next)
}

// publish offers an outcome to every subscription of its channel, without waiting.
func (c *Controller) publish(r maillog.Record) {
	list := c.subs.list.Load()
	if list == nil {
		return
	}
	for _, s := range *list {
		if s.channel != "" && s.channel != r.Source {
			continue
		}
		select {
		case s.outcomes <- Outcome{Record: r}:
		default:
			s.lost.Add(1)
		}
	}
}
