package daemon

// qm requeue: queued recipients routed again with the configuration in force
// and moved to the channel it sends them to now, the recipe for a backlogged
// destination given its own channel and pool. The routing is package reroute's
// (the reprocess channel's code, through intake), the order of queue and
// schedule operations on each message the job controller's (Requeue); this file
// selects the messages, streams them to a few workers and reports.
//
// Decisions where the product's documentation is silent (the product moves a
// backlog by restarting with the new configuration; it has no such command):
//   - The rules see each message from its original source channel, as if it
//     arrived now, and SEND_ACCESS judges each recipient (ORIG_SEND_ACCESS
//     judged the address the client gave, before alias expansion, and is not
//     asked again); a recipient they now refuse for good is returned to its
//     sender (R), one they refuse for now stays where it is.
//   - A recipient the rules still send where it is, is left alone.
//   - Held messages are selected only with -held (they were set aside on
//     purpose); the copies made of them are not held, since moving them is the
//     cure the hold waited for. Loops and holdlimit hold the copies again.
//   - The old recipient is logged D with "requeued to CHANNEL as ID (qm
//     requeue)", as the product's reprocess channel logs its hand-off; the new
//     copy has its E line.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"mtad.dev/mta/control"
	"mtad.dev/mta/jobctl"
	"mtad.dev/mta/queue"
	"mtad.dev/mta/reroute"
	"mtad.dev/mta/status"
)

const (
	// requeueWorkers is how many messages are moved at once: enough for their
	// enqueues and updates to share group commits, few enough to leave most of
	// the queue's commits to the mail that keeps flowing meanwhile.
	requeueWorkers = 8
	// requeueProgress is how often a running requeue reports.
	requeueProgress = 2 * time.Second
	// requeueBusyWait bounds the wait for a delivery attempt in flight on a
	// message, in the first pass; such messages are retried once the others
	// are done (at most requeueBusyMax of them), with actionWait.
	requeueBusyWait = 2 * time.Second
	requeueBusyMax  = 10000
)

// requeueRun is one qm requeue in progress.
type requeueRun struct {
	d      *Daemon
	filter control.Filter
	dry    bool
	began  time.Time
	events chan string // dry-run lines, written to the client by the handler

	mu       sync.Mutex
	res      control.RequeueResult
	busy     []string // messages an attempt in flight kept from moving (first pass)
	boundary string   // the first queue id this run created: the walk stops there
}

// requeue handles control.CmdRequeue.
func (d *Daemon) requeue(ctx context.Context, req *control.Request, w *control.Writer) {
	r := &requeueRun{d: d, dry: req.DryRun, began: time.Now(), events: make(chan string, 256)}
	r.res.DryRun = r.dry
	if req.Filter != nil {
		r.filter = *req.Filter
	}
	if err := r.filter.Validate(); err != nil {
		w.Fail(control.ErrKindUsage, err.Error())
		return
	}
	// The job controller's start-up walk must be over: it would otherwise put
	// back in the schedule recipients this run has just moved away.
	if !d.jc.WaitLoaded(ctx) {
		w.Fail(control.ErrKindInternal, "the job controller has not finished reading the queue")
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(r.events)
		r.run(ctx, req.IDs)
	}()
	tick := time.NewTicker(requeueProgress)
	defer tick.Stop()
	for {
		select {
		case line, ok := <-r.events:
			if !ok {
				<-done
				r.res.Elapsed = time.Since(r.began)
				d.log.Info("qm requeue", "dry_run", r.dry, "messages", r.res.Messages, "recipients", r.res.Recipients,
					"moved", r.res.Moved, "returned", r.res.Returned, "unchanged", r.res.Unchanged, "kept", r.res.Kept,
					"took", r.res.Elapsed.Round(time.Millisecond))
				w.Result(r.res, "")
				return
			}
			w.Event(line) // a client gone cancels ctx: the run stops by itself
		case <-tick.C:
			r.mu.Lock()
			line := r.res.Progress(time.Since(r.began))
			r.mu.Unlock()
			w.Event(line)
		}
	}
}

// run selects the messages (ids, else a walk of the queue) and moves them with
// requeueWorkers workers; memory stays bounded by the walk's chunk and the
// workers' channel whatever the queue's size.
func (r *requeueRun) run(ctx context.Context, ids []string) {
	jobs := make(chan string, 4*requeueWorkers)
	var wg sync.WaitGroup
	for range requeueWorkers {
		wg.Go(func() {
			for id := range jobs {
				r.one(ctx, id, requeueBusyWait, true)
			}
		})
	}
	r.feed(ctx, ids, jobs)
	close(jobs)
	wg.Wait()
	r.mu.Lock()
	busy := r.busy
	r.busy = nil
	r.mu.Unlock()
	for _, id := range busy {
		if ctx.Err() != nil {
			break
		}
		r.one(ctx, id, actionWait, false)
	}
	// The old recipients are marked asynchronously; the report waits for
	// them, so that what it says is on disk and in mail.log when it arrives.
	r.d.jc.WaitMoves(ctx)
}

// feed sends the ids of the messages with a selected recipient to jobs.
func (r *requeueRun) feed(ctx context.Context, ids []string, jobs chan<- string) {
	send := func(id string) bool {
		select {
		case jobs <- id:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if len(ids) > 0 {
		for _, id := range ids {
			env, err := r.d.queue.Get(id)
			switch {
			case errors.Is(err, queue.ErrNotFound):
				r.fail(id, errors.New("no such message"))
			case err != nil:
				r.fail(id, err)
			case env.Held && !r.filter.Held:
				r.fail(id, errors.New("the message is held: requeue it with -held"))
			case len(r.filter.Select(env, r.began)) > 0 && !send(id):
				return
			}
		}
		return
	}
	err := r.d.queue.Walk(func(env *queue.Envelope) bool {
		if r.past(env.ID) {
			return false // created by this run (or after it began): already routed by the rules in force
		}
		if len(r.filter.Select(env, r.began)) == 0 {
			return true
		}
		return send(env.ID)
	})
	if err != nil {
		r.fail("walk", err)
	}
}

// past reports whether id was created after this run's first copy. Queue ids
// sort by creation time, so every message the walk has still to reach from
// there on is newer than the run.
func (r *requeueRun) past(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.boundary != "" && id >= r.boundary
}

// fail records a failure that kept nothing from being examined.
func (r *requeueRun) fail(id string, err error) {
	r.mu.Lock()
	r.res.AddError(id, err)
	r.mu.Unlock()
}

// one requeues one message. busyWait bounds the wait for an attempt in flight;
// with deferBusy a message still busy then is kept for a later pass.
func (r *requeueRun) one(ctx context.Context, id string, busyWait time.Duration, deferBusy bool) {
	var res control.RequeueResult
	var created []string
	move := func(env *queue.Envelope) ([]jobctl.RequeueStep, error) {
		steps, ids, err := r.move(ctx, env, &res)
		created = ids
		return steps, err
	}
	var err error
	if r.dry {
		var env *queue.Envelope
		if env, err = r.d.queue.Get(id); err == nil {
			_, _, err = r.move(ctx, env, &res)
		}
	} else {
		wctx, cancel := context.WithTimeout(ctx, busyWait)
		var done jobctl.RequeueResult
		done, err = r.d.jc.Requeue(wctx, id, move)
		cancel()
		res.Moved, res.Returned = done.Moved, done.Returned
		res.Kept = res.Recipients - res.Moved - res.Returned - res.Unchanged
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range created {
		if r.boundary == "" || c < r.boundary {
			r.boundary = c
		}
	}
	switch {
	case deferBusy && errors.Is(err, jobctl.ErrBusy) && len(r.busy) < requeueBusyMax:
		r.busy = append(r.busy, id)
		return // counted when its second pass comes
	case errors.Is(err, queue.ErrNotFound):
		return // delivered or removed meanwhile: nothing left to move
	case err != nil:
		r.d.log.Warn("qm requeue: recipients kept where they were", "id", id, "err", err)
		res.AddError(id, err)
		if res.Recipients == 0 {
			res.Messages, res.Kept = 1, 1
		}
	}
	r.res.Merge(&res)
}

// move routes the selected recipients of env again and, unless this is a dry
// run, queues the copies; it tells the job controller what became of each and
// returns the ids of the copies made.
func (r *requeueRun) move(ctx context.Context, env *queue.Envelope, res *control.RequeueResult) ([]jobctl.RequeueStep, []string, error) {
	idx := r.filter.Select(env, r.began)
	if len(idx) == 0 {
		return nil, nil, nil
	}
	res.Messages, res.Recipients = 1, len(idx)
	rcpts := make([]reroute.QueuedRcpt, len(idx))
	for k, i := range idx {
		rc := env.Rcpts[i]
		rcpts[k] = reroute.QueuedRcpt{Addr: rc.Addr, Orig: rc.Orig, ORCPT: rc.ORCPT, Notify: rc.Notify, Channel: rc.Channel}
	}
	msg := queuedMessage(env, r.d.queue)
	moves := reroute.Requeue(ctx, r.d.intake, r.d.intakeRules(), msg, rcpts, r.dry)
	var steps []jobctl.RequeueStep
	var created []string
	var errs []error
	for k, m := range moves {
		i, rc := idx[k], env.Rcpts[idx[k]]
		switch {
		case m.Unchanged:
			res.Unchanged++
		case m.Refused != nil && !m.Refused.Temporary():
			steps = append(steps, jobctl.RequeueStep{Rcpt: i, Return: true, Status: returnStatus(m.Refused), Diag: m.Refused.Error() + " (qm requeue)"})
			r.dryLine(env.ID, rc, "would be returned: "+m.Refused.Error())
		case m.Refused != nil:
			errs = append(errs, fmt.Errorf("%s: %s", rc.Addr, m.Refused.Error()))
		case m.Err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", rc.Addr, m.Err))
		default:
			to := routedChannels(m)
			res.AddFlow(rc.Channel, to, 1)
			r.dryLine(env.ID, rc, "would move to "+describeRoutes(m))
			if m.Moved() {
				steps = append(steps, jobctl.RequeueStep{Rcpt: i, Moved: true, Diag: "requeued to " + to + " as " + strings.Join(m.IDs, " ") + " (qm requeue)"})
				created = append(created, m.IDs...)
			}
		}
	}
	if r.dry {
		res.Returned = len(steps)
		res.Kept = len(errs)
		for _, f := range res.Flows {
			res.Moved += f.Recipients
		}
	}
	return steps, created, errors.Join(errs...)
}

// dryLine reports one recipient of a dry run.
func (r *requeueRun) dryLine(id string, rc queue.Recipient, what string) {
	if r.dry {
		r.events <- fmt.Sprintf("%s %s (%s): %s", id, rc.Addr, rc.Channel, what)
	}
}

// returnStatus is the RFC 3463 code a refusal returns a recipient with.
func returnStatus(st *status.Status) string {
	if st.Enhanced != "" {
		return st.Enhanced
	}
	return "5.0.0"
}

// routedChannels names the channels a move sends a recipient to, in order.
func routedChannels(m reroute.Move) string {
	var chans []string
	for _, rt := range m.Routed {
		if !containsFold(chans, rt.Channel) {
			chans = append(chans, rt.Channel)
		}
	}
	return strings.Join(chans, ",")
}

// describeRoutes is "CHANNEL ADDRESS, ..." of a move.
func describeRoutes(m reroute.Move) string {
	parts := make([]string, len(m.Routed))
	for i, rt := range m.Routed {
		parts[i] = rt.Channel + " " + rt.Addr
	}
	return strings.Join(parts, ", ")
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// queuedMessage is env as package reroute takes it, its content read from the
// queue only when something is to be copied.
func queuedMessage(env *queue.Envelope, q *queue.Queue) *reroute.Queued {
	return &reroute.Queued{
		ID: env.ID, From: env.From, Source: env.Source, Client: env.Client, Arrival: env.Arrival,
		RET: env.RET, EnvID: env.EnvID, Body8Bit: env.Body8Bit, SMTPUTF8: env.SMTPUTF8,
		Priority: env.Priority, Notices: env.Notices,
		Content: func() ([]byte, error) {
			c, err := q.Content(env.ID)
			if err != nil {
				return nil, err
			}
			defer c.Close()
			b := make([]byte, c.Size())
			if _, err := io.ReadFull(io.NewSectionReader(c, 0, c.Size()), b); err != nil {
				return nil, fmt.Errorf("read content of %s: %w", env.ID, err)
			}
			return b, nil
		},
	}
}
