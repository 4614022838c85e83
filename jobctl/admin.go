package jobctl

// Operator actions on single messages (qm hold, release, delete, return) and the
// received counter. Each action's order of queue and schedule operations lives
// here, so that the control socket's handler only dispatches.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"mtad.dev/mta/dsn"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/queue"
)

// ErrBusy is returned by Remove while a job or the notice processor works on the
// message: the attempt in flight cannot be taken back.
var ErrBusy = errors.New("jobctl: message is being delivered")

// ReturnStatus is the RFC 3463 status given to recipients returned by the operator.
// The product's documentation gives none; 5.0.0 is RFC 3463's "other undefined
// status", since no more specific code describes an operator's decision.
const ReturnStatus = "5.0.0"

// countReceivedLocked counts the pending recipients of a message entering the index
// from Add (new enqueues and releases, not the start-up walk) per channel.
func (c *Controller) countReceivedLocked(e *queue.Envelope) {
	if e == nil || e.Held || c.msgs[e.ID] != nil {
		return
	}
	for _, r := range e.Rcpts {
		if r.State == queue.Pending && r.Channel != "" {
			c.chanLocked(r.Channel).received++
		}
	}
}

// Received returns, per channel, the recipients of new and released messages the
// controller was given since it started (qm counters' "received"). The start-up
// walk of the queue is not counted: that mail was received by an earlier run.
func (c *Controller) Received() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.chans))
	for name, ch := range c.chans {
		if ch.received > 0 {
			out[name] = ch.received
		}
	}
	return out
}

// Remove takes a message out of the in-memory index so that no job takes it again
// (qm hold, delete, return). It does not touch the queue. A message not indexed
// (unknown, held, finished) is not an error. While an attempt is in flight it
// returns ErrBusy and changes nothing.
func (c *Controller) Remove(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.held, id) // deleted or returned; a failed return Adds it back
	m := c.msgs[id]
	if m == nil {
		m = c.reporting[id]
	}
	if m == nil {
		return nil
	}
	if m.rep.pending() {
		// Settled recipients wait for their report: let it go first, so that
		// what the operator does applies to what is really still pending.
		c.hurryReportLocked(m)
		return ErrBusy
	}
	for _, it := range m.items {
		if it.state == stActive {
			return ErrBusy
		}
	}
	for _, it := range slices.Clone(m.items) {
		h := it.h
		c.dropItem(it)
		c.maybeDropHost(h)
	}
	if c.msgs[id] == m { // dropItem removes the message with its last item
		delete(c.msgs, id)
		if m.nidx >= 0 {
			c.noticeH.remove(int(m.nidx))
		}
	}
	return nil
}

// RemoveWait is Remove retried until the attempt in flight ends or ctx expires.
func (c *Controller) RemoveWait(ctx context.Context, id string) error {
	for {
		err := c.Remove(id)
		if !errors.Is(err, ErrBusy) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Return bounces a message now (qm return): every pending recipient gets a
// failure notice (to the sender, by the usual NOTIFY and empty-sender rules), is
// marked Returned and logged R (K when NOTIFY excludes FAILURE). Held messages
// can be returned. It waits for an attempt in flight to end (bounded by ctx). It
// returns the number of recipients returned.
func (c *Controller) Return(ctx context.Context, id, diag string) (int, error) {
	if diag == "" {
		diag = "returned by the postmaster"
	}
	// An unknown id is reported as such, also before Run has started.
	if _, err := c.q.Get(id); err != nil {
		return 0, err
	}
	// Notices are submitted with Run's delivery context, which Run sets under mu:
	// seeing started under mu orders that write before our use.
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if !started {
		return 0, errors.New("jobctl: the job controller is not running yet")
	}
	if err := c.RemoveWait(ctx, id); err != nil {
		return 0, err
	}
	env, err := c.q.Get(id)
	if err != nil {
		return 0, err
	}
	var rs []noticeRcpt
	for i, r := range env.Rcpts {
		if r.State == queue.Pending {
			rs = append(rs, noticeRcpt{idx: i, action: dsn.Failed, status: ReturnStatus, diag: diag, attempts: r.Attempts})
		}
	}
	if len(rs) == 0 {
		return 0, nil
	}
	wanted, err := c.sendNotice(env, rs, dsn.EventFailure, time.Time{})
	if err != nil {
		// Nothing was marked: put the message back in the schedule.
		c.Add([]*queue.Envelope{env})
		return 0, fmt.Errorf("return %s: %w", id, err)
	}
	updates := make([]queue.Update, 0, len(rs))
	byChan := map[string][]outcome{}
	var order []string
	for k, r := range rs {
		code := maillog.ReturnCode(wanted[k])
		updates = append(updates, queue.Update{Rcpt: r.idx, State: queue.Returned, Attempts: r.attempts, LastError: diag})
		ch := env.Rcpts[r.idx].Channel
		if _, ok := byChan[ch]; !ok {
			order = append(order, ch)
		}
		byChan[ch] = append(byChan[ch], outcome{r.idx, code, diag})
	}
	if err := c.q.Update(env.ID, updates); err != nil {
		return 0, fmt.Errorf("return %s: record returned recipients: %w", id, err)
	}
	for _, ch := range order {
		c.logOutcomes(ch, env, byChan[ch])
	}
	c.mu.Lock()
	for _, ch := range order {
		c.chanLocked(ch).ctr.Returned += int64(len(byChan[ch]))
	}
	c.mu.Unlock()
	return len(rs), nil
}

// HoldResult tells what Hold did besides succeeding.
type HoldResult struct {
	// AlreadyHeld: the message was held before and nothing changed; Reason is
	// that earlier hold's reason.
	AlreadyHeld bool
	Reason      string
	// InFlight is set when the message is held on disk but an attempt that was in
	// progress did not end within the caller's context: it may still deliver.
	InFlight error
}

// operatorQueue is the queue's OperatorQueue side, or an error saying it has none.
func (c *Controller) operatorQueue() (OperatorQueue, error) {
	oq, ok := c.q.(OperatorQueue)
	if !ok {
		return nil, errors.New("jobctl: the queue cannot hold, release or delete messages")
	}
	return oq, nil
}

// Hold holds a message (qm hold) and logs its pending recipients H with reason.
// The hold is made durable first, then the message is taken out of the schedule
// (waiting, bounded by ctx, for an attempt in flight): if the attempt outlives the
// wait, the message stays held on disk, the next restart honours it, and
// HoldResult.InFlight says so. Errors of the queue are returned as they are (the
// caller reports them with the message id); an unknown id is queue.ErrNotFound.
func (c *Controller) Hold(ctx context.Context, id, reason string) (HoldResult, error) {
	oq, err := c.operatorQueue()
	if err != nil {
		return HoldResult{}, err
	}
	env, err := c.q.Get(id)
	if err != nil {
		return HoldResult{}, err
	}
	if env.Held {
		return HoldResult{AlreadyHeld: true, Reason: env.HeldReason}, nil
	}
	if err := oq.Hold(id, reason); err != nil {
		return HoldResult{}, err
	}
	var res HoldResult
	if err := c.RemoveWait(ctx, id); err != nil {
		res.InFlight = err
	} else {
		held := *env
		held.Held, held.HeldReason = true, reason
		c.NoteHeld(&held)
	}
	c.logPendingRecipients(env, maillog.CodeHeld, reason)
	return res, nil
}

// Release releases a held message (qm release); the queue hands it back to Add
// (OnCommit). It reports false, doing nothing, for a message that is not held.
func (c *Controller) Release(id string) (released bool, err error) {
	oq, err := c.operatorQueue()
	if err != nil {
		return false, err
	}
	env, err := c.q.Get(id)
	if err != nil {
		return false, err
	}
	if !env.Held {
		return false, nil
	}
	return true, oq.Release(id)
}

// Delete removes a message without a notice (qm delete) and logs its pending
// recipients K with reason. It takes the message out of the schedule first
// (waiting, bounded by ctx, for an attempt in flight, which would otherwise go on
// delivering a deleted message), then deletes it from the queue; when that fails
// a held message is counted as held again, since it still is on disk.
func (c *Controller) Delete(ctx context.Context, id, reason string) error {
	oq, err := c.operatorQueue()
	if err != nil {
		return err
	}
	env, err := c.q.Get(id)
	if err != nil {
		return err
	}
	if err := c.RemoveWait(ctx, id); err != nil {
		return err
	}
	if err := oq.Delete(id); err != nil {
		if env.Held {
			c.NoteHeld(env)
		}
		return err
	}
	c.logPendingRecipients(env, maillog.CodeReturnedNoNotice, reason)
	return nil
}

// logPendingRecipients logs every pending recipient of env with code and reason,
// each under its own channel, and publishes the records.
func (c *Controller) logPendingRecipients(env *queue.Envelope, code, reason string) {
	t := c.now()
	for i, r := range env.Rcpts {
		if r.State == queue.Pending {
			c.logRecord(outcomeRecord(t, r.Channel, env, outcome{i, code, reason}))
		}
	}
}
