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
	var rs []settled
	for i, r := range env.Rcpts {
		if r.State == queue.Pending {
			rs = append(rs, settled{rcpt: i, returned: true, status: ReturnStatus, diag: diag})
		}
	}
	if len(rs) == 0 {
		return 0, nil
	}
	n, noticeErr, err := c.settle(env, rs)
	if noticeErr != nil {
		// Nothing was marked: put the message back in the schedule.
		c.Add([]*queue.Envelope{env})
		return 0, fmt.Errorf("return %s: %w", id, noticeErr)
	}
	if err != nil {
		return 0, fmt.Errorf("return %s: %w", id, err)
	}
	return n, nil
}

// settled is one recipient an operator action finishes: returned to the sender
// (a failure notice, then R, or K when NOTIFY excludes failures), or moved to
// copies elsewhere by qm requeue (D, with where it went as the diagnostic).
type settled struct {
	rcpt     int // index into Envelope.Rcpts
	returned bool
	status   string // RFC 3463 code of a return
	diag     string
}

// settle finishes recipients of env, which the caller has taken out of the
// schedule. The failure notice for the returned ones is submitted first, so a
// crash repeats a notice rather than losing one; then one durable update marks
// every recipient, and only then are the lines logged. When the notice cannot
// be submitted, the returned recipients are left pending and noticeErr says
// why; the moved ones are marked all the same (their copies are durable). err
// is a failed update: then nothing was marked or logged. It returns how many
// recipients were returned.
func (c *Controller) settle(env *queue.Envelope, rs []settled) (returned int, noticeErr, err error) {
	var notice []noticeRcpt
	for _, s := range rs {
		if s.returned {
			notice = append(notice, noticeRcpt{idx: s.rcpt, action: dsn.Failed, status: s.status, diag: s.diag, attempts: env.Rcpts[s.rcpt].Attempts})
		}
	}
	var wanted []bool
	if len(notice) > 0 {
		wanted, noticeErr = c.sendNotice(env, notice, dsn.EventFailure, time.Time{})
	}
	var marks settlePlan
	k := 0
	for _, s := range rs {
		code := maillog.CodeDelivered
		if s.returned {
			k++
			if noticeErr != nil {
				continue
			}
			code = maillog.ReturnCode(wanted[k-1])
			returned++
		}
		marks.add(env, s, code)
	}
	if len(marks.updates) == 0 {
		return 0, noticeErr, nil
	}
	if err := c.q.Update(env.ID, marks.updates); err != nil {
		return 0, noticeErr, fmt.Errorf("record returned recipients: %w", err)
	}
	c.logSettled(env, &marks)
	return returned, noticeErr, nil
}

// settlePlan is what settling recipients writes: the queue updates, and the
// mail.log outcomes per channel in the order the channels first appear.
type settlePlan struct {
	updates []queue.Update
	byChan  map[string][]outcome
	order   []string
}

// add marks one recipient with the log code: D moves it away (Delivered),
// anything else returns it (Returned).
func (p *settlePlan) add(env *queue.Envelope, s settled, code string) {
	r := env.Rcpts[s.rcpt]
	state := queue.Delivered
	if code != maillog.CodeDelivered {
		state = queue.Returned
	}
	p.updates = append(p.updates, queue.Update{Rcpt: s.rcpt, State: state, Attempts: r.Attempts, LastError: s.diag})
	if p.byChan == nil {
		p.byChan = map[string][]outcome{}
	}
	if _, ok := p.byChan[r.Channel]; !ok {
		p.order = append(p.order, r.Channel)
	}
	p.byChan[r.Channel] = append(p.byChan[r.Channel], outcome{s.rcpt, code, s.diag})
}

// logSettled writes the lines of settled recipients, once they are durable,
// and counts the returned ones.
func (c *Controller) logSettled(env *queue.Envelope, p *settlePlan) {
	for _, ch := range p.order {
		c.logOutcomes(ch, env, p.byChan[ch])
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range p.order {
		for _, o := range p.byChan[ch] {
			if o.code != maillog.CodeDelivered {
				c.chanLocked(ch).ctr.Returned++
			}
		}
	}
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

// RequeueStep is the caller's verdict on one recipient of a message being
// requeued (qm requeue); recipients it does not name stay as they are.
type RequeueStep struct {
	Rcpt int // index into Envelope.Rcpts
	// Moved: durable copies elsewhere now hold the recipient; it is marked done
	// here and logged D with Diag (where it went).
	Moved bool
	// Return: the rules in force refuse it for good; it is returned to the
	// sender with Status (RFC 3463) and Diag, as qm return does.
	Return bool
	Status string
	Diag   string
}

// RequeueResult counts what Requeue did with one message.
type RequeueResult struct {
	Moved, Returned int
}

// Requeue moves recipients of a queued message elsewhere (qm requeue). It takes
// the message out of the schedule (waiting, bounded by ctx, for an attempt in
// flight, so that the old recipients are not delivered while they move), hands
// the envelope as it is now to move, which queues the new copies and tells what
// became of each recipient, then marks the recipients that moved as done,
// returns those refused for good (failure notice first) and puts the message
// back in the schedule for what stays. The new copies are durable before move
// returns and the old recipients are marked only after: a crash in between
// delivers twice, never loses. Held messages can be requeued; what stays of
// them stays held.
func (c *Controller) Requeue(ctx context.Context, id string, move func(*queue.Envelope) ([]RequeueStep, error)) (RequeueResult, error) {
	if _, err := c.q.Get(id); err != nil {
		return RequeueResult{}, err
	}
	// Returns submit notices with Run's delivery context (see Return).
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if !started {
		return RequeueResult{}, errors.New("jobctl: the job controller is not running yet")
	}
	if err := c.RemoveWait(ctx, id); err != nil {
		return RequeueResult{}, err
	}
	env, err := c.q.Get(id)
	if err != nil {
		return RequeueResult{}, err // finished meanwhile: nothing to put back
	}
	steps, err := move(env)
	var res RequeueResult
	var rs []settled
	for _, st := range steps {
		if st.Rcpt < 0 || st.Rcpt >= len(env.Rcpts) || env.Rcpts[st.Rcpt].State != queue.Pending {
			continue
		}
		switch {
		case st.Moved:
			rs = append(rs, settled{rcpt: st.Rcpt, diag: st.Diag})
			res.Moved++
		case st.Return:
			rs = append(rs, settled{rcpt: st.Rcpt, returned: true, status: st.Status, diag: st.Diag})
		}
	}
	if au, ok := c.q.(AsyncUpdater); ok && len(rs) > 0 && res.Moved == len(rs) && c.settleMovedAsync(au, env, rs) {
		return res, err
	}
	var noticeErr, recordErr error
	if len(rs) > 0 {
		res.Returned, noticeErr, recordErr = c.settle(env, rs)
	}
	if recordErr != nil {
		res.Moved = 0
	}
	c.restore(id, env)
	return res, errors.Join(err, noticeErr, recordErr)
}

// settleMovedAsync marks recipients that moved without waiting for the commit:
// their copies are durable already, so a crash before this commit only leaves
// them here too (a duplicate, never a loss), and the caller goes on with its
// next message while this joins a later group commit. The lines are logged and
// the rest of the message is scheduled again once the change is durable; until
// then the message stays out of the schedule. Run waits for it (c.wg). Once
// Run is stopping it reports false and does nothing: Run may be waiting for
// its last work already, and the caller marks them the synchronous way.
func (c *Controller) settleMovedAsync(au AsyncUpdater, env *queue.Envelope, rs []settled) bool {
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		return false
	}
	c.wg.Add(1) // under mu: shutdown sets stopping under mu before it waits
	c.mu.Unlock()
	var marks settlePlan
	for _, s := range rs {
		marks.add(env, s, maillog.CodeDelivered)
	}
	c.moves.Add(1)
	au.UpdateAsync(env.ID, marks.updates, func(err error) {
		defer c.wg.Done()
		defer c.moves.Add(-1)
		if err != nil {
			// Nothing was marked: the recipients are still here, and are
			// scheduled again with the rest (their copies deliver them too).
			c.log.Error("requeue: cannot record the recipients that moved", "id", env.ID, "err", err)
			c.scheduleAgain(env)
			return
		}
		c.logSettled(env, &marks)
		after := *env
		after.Rcpts = slices.Clone(env.Rcpts)
		for _, u := range marks.updates {
			after.Rcpts[u.Rcpt].State = u.State
		}
		c.scheduleAgain(&after) // the queue must not be waited for here: env as it is now
	})
	return true
}

// WaitMoves waits until the recipients Requeue moved so far are recorded in
// the queue and logged, or ctx ends (false then). It polls: several requeues
// may add moves while one waits, which a WaitGroup does not allow.
func (c *Controller) WaitMoves(ctx context.Context) bool {
	for c.moves.Load() > 0 {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
	return true
}

// scheduleAgain puts env back in the schedule as it is given (restore reads it
// from the queue first): its pending recipients are scheduled, a held message
// is counted as held.
func (c *Controller) scheduleAgain(env *queue.Envelope) {
	if env.Held {
		c.NoteHeld(env)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(env, c.now().UnixNano())
	c.kickLocked()
	c.pokeRun()
}

// restore puts a message an operator action took out of the schedule back in,
// as the queue has it now: what is still pending is scheduled again (it is not
// counted as received a second time), a held message is counted as held, and a
// message finished meanwhile is forgotten. old is the envelope as it was taken
// out, used when the queue cannot be read.
func (c *Controller) restore(id string, old *queue.Envelope) {
	env, err := c.q.Get(id)
	if errors.Is(err, queue.ErrNotFound) {
		return
	}
	if err != nil {
		c.log.Warn("requeue: cannot read the message back; scheduling it as it was", "id", id, "err", err)
		env = old
	}
	c.scheduleAgain(env)
}
