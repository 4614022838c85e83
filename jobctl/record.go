package jobctl

import (
	"strings"
	"time"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/dsn"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/queue"
)

// outcome of one recipient, for logging after the durable update.
type outcome struct {
	rcpt int
	code string // a maillog action code: D, Q, R, K, W, H
	diag string
}

// attemptPlan is what the results of one delivery attempt mean for the queue, the
// log and the schedule, decided before anything is written (classifyResults).
type attemptPlan struct {
	updates []queue.Update // the durable changes, one per recipient settled so far
	outs    []outcome      // the mail.log lines, written once updates are durable
	// failed are the permanent failures, and succeeded the deliveries the sender
	// asked to hear of (NOTIFY=SUCCESS) that no next hop reports: they wait for
	// the message's report (reports.go) and are marked in the queue only once it
	// is submitted, so updates and outs leave them out (settleFailed adds the
	// failed ones' then).
	failed    []noticeRcpt
	succeeded []noticeRcpt
	keep      []int32   // recipients that stay queued in the item
	nextAt    time.Time // the earliest next attempt of keep; zero when keep is empty
	// delivered: some recipient was delivered (the host answered, and is no
	// longer suspect).
	delivered bool
	// connFail: no server answered for any recipient, so the host rather than the
	// message is the problem (see reschedule).
	connFail bool
	lastErr  string // the host's new last error; "" keeps the previous one
}

// classifyResults sorts an attempt's results (results[k] is for recipient idx[k]
// of env) into a plan. It is pure: now, expired (the message's last notice age
// passed before the attempt) and the channel's retry intervals for the message's
// class are given.
func classifyResults(env *queue.Envelope, idx []int, results []channels.Result, now time.Time, expired bool,
	cfg *Channel, class Class) attemptPlan {
	p := attemptPlan{connFail: true}
	for k, i := range idx {
		r := env.Rcpts[i]
		res := results[k]
		diag := res.Reply
		if diag == "" && res.Err != nil {
			diag = res.Err.Error()
		}
		switch {
		case res.Err == nil:
			p.delivered, p.connFail = true, false
			if action, ok := successToReport(env, r, res); ok {
				p.succeeded = append(p.succeeded, noticeRcpt{idx: i, channel: r.Channel, action: action,
					status: successStatus(diag), diag: diag, remote: remoteMTA(res), attempts: r.Attempts + 1})
				continue
			}
			p.updates = append(p.updates, queue.Update{Rcpt: i, State: queue.Delivered, Attempts: r.Attempts + 1, LastError: diag})
			p.outs = append(p.outs, outcome{i, maillog.CodeDelivered, diag})
		case res.Err.Temporary() && !expired:
			if !res.ConnFailed {
				p.connFail = false
			}
			attempts := r.Attempts + 1
			na := now.Add(cfg.RetryDelay(class, attempts))
			p.requeue(i, attempts, na, diag, diag)
			p.lastErr = diag
		default:
			p.connFail = false
			st := res.Err.Enhanced
			if res.Err.Temporary() { // expired while this attempt ran
				st = "5.4.7"
			}
			p.failed = append(p.failed, noticeRcpt{idx: i, channel: r.Channel, action: dsn.Failed, status: st, diag: diag,
				remote: remoteMTA(res), attempts: r.Attempts + 1})
			p.lastErr = diag
		}
	}
	return p
}

// successToReport tells whether a delivery is to be announced in a success
// notice, and with which action: the recipient asked for it (NOTIFY=SUCCESS),
// the sender can get one (not <>), and the program says the message stops
// here or went to a next hop that will not report (RFC 3461 §6.2). A next hop
// that took the request over (Handoff HandedOn) reports instead of us.
func successToReport(env *queue.Envelope, r queue.Recipient, res channels.Result) (dsn.Action, bool) {
	if env.From == "" || !dsn.Wants(r.Notify, dsn.EventSuccess) {
		return "", false
	}
	switch res.Handoff {
	case channels.DeliveredHere:
		return dsn.Delivered, true
	case channels.RelayedWithoutDSN:
		return dsn.Relayed, true
	}
	return "", false
}

// successStatus is the Status of a success notice: the server's own 2.x.x
// code when its reply has one, else 2.0.0.
func successStatus(diag string) string {
	if st := enhancedIn(diag, "2.0.0"); strings.HasPrefix(st, "2.") {
		return st
	}
	return "2.0.0"
}

// remoteMTA is the host a notice names in Remote-MTA for a result: the first
// word of Remote, or "" when the program said it is no DNS host.
func remoteMTA(res channels.Result) string {
	if res.NoRemoteMTA {
		return ""
	}
	host, _, _ := strings.Cut(res.Remote, " ")
	return host
}

// requeue plans recipient i to stay queued until at, logged Q with logDiag.
func (p *attemptPlan) requeue(i, attempts int, at time.Time, lastErr, logDiag string) {
	if p.nextAt.IsZero() || at.Before(p.nextAt) {
		p.nextAt = at
	}
	p.updates = append(p.updates, queue.Update{Rcpt: i, State: queue.Pending, Attempts: attempts, NextAttempt: at, LastError: lastErr})
	p.outs = append(p.outs, outcome{i, maillog.CodeRequeued, logDiag})
	p.keep = append(p.keep, int32(i))
}

// settleFailed plans the permanent failures once their notice was submitted
// (noticeErr nil): Returned, logged R, or K for those NOTIFY left out of the
// notice (wanted[k] false). A notice that could not be submitted keeps them
// queued for retryNotice rather than dropping them silently.
func (p *attemptPlan) settleFailed(wanted []bool, noticeErr error, now time.Time) {
	for k, f := range p.failed {
		if noticeErr != nil {
			p.requeue(f.idx, f.attempts, now.Add(retryNotice), f.diag, "notice not sent: "+noticeErr.Error())
			continue
		}
		p.updates = append(p.updates, queue.Update{Rcpt: f.idx, State: queue.Returned, Attempts: f.attempts, LastError: f.diag})
		p.outs = append(p.outs, outcome{f.idx, maillog.ReturnCode(wanted[k]), f.diag})
	}
}

// allDelivered: every recipient of the attempt was delivered and nothing waits
// for a report, so nothing of the item stays queued (record's fast path).
func (p *attemptPlan) allDelivered() bool {
	return p.delivered && len(p.keep) == 0 && len(p.failed) == 0 && len(p.succeeded) == 0
}

// record stores the results of an attempt durably, logs them, and puts what is
// left back into the index. Order matters, and the steps below keep it: the
// recipients a notice must report wait for the message's report and are marked
// in the queue only once it is submitted (reports.go); the Update (with the next
// attempt time) is durable before the item becomes eligible again. So a crash
// repeats at worst a notice, never loses one, and never retries early.
func (c *Controller) record(ch *chanState, it *item, env *queue.Envelope, idx []int, results []channels.Result) {
	now := c.now()
	c.mu.Lock()
	expired := it.m.expired
	cfg := ch.cfg
	c.mu.Unlock()
	class := ClassOf(env.Priority)
	p := classifyResults(env, idx, results, now, expired, &cfg, class)

	if au, ok := c.q.(AsyncUpdater); ok && p.allDelivered() {
		c.recordDelivered(au, ch, it, env, p.updates, p.outs)
		return
	}
	// 1. The recipients to report join the message's report. When this attempt
	// was the last work it waited for, its notices are submitted now, and what
	// they report is marked in the same Update as the attempt's results. From
	// here on the report does not wait for this attempt (recording), in the
	// same locked step as this check: a job whose attempt ends while this one
	// is being recorded then sees it over and sends the report itself.
	c.mu.Lock()
	c.holdReportLocked(it.m, p.failed, now)
	c.holdReportLocked(it.m, p.succeeded, now)
	it.recording = true
	report := c.takeReportLocked(it.m, now.UnixNano())
	c.mu.Unlock()
	var reported attemptPlan
	var retry []noticeRcpt
	if report != nil {
		reported, retry = c.reportNotices(env, report)
	}
	// 2. The results durable (and logged) ...
	if updates := append(p.updates, reported.updates...); len(updates) > 0 {
		if err := c.q.Update(env.ID, updates); err != nil {
			// Delivered recipients may be delivered again after a restart; that is
			// the price of a failing disk, and better than losing mail.
			c.log.Error("record delivery results", "id", env.ID, "channel", ch.name, "err", err)
		}
	}
	c.logOutcomes(ch.name, env, p.outs)
	c.logEachChannel(env, reported.outs)
	// 3. ... before what is left becomes eligible again.
	c.reschedule(ch, it, &p, len(idx), expired, now, cfg.RetryDelay(class, 1))
	if report != nil {
		c.mu.Lock()
		next := c.reportSentLocked(it.m, retry)
		c.mu.Unlock()
		if next != nil {
			c.sendReport(it.m, next)
		}
	}
}

// reschedule applies an attempt's plan to the in-memory schedule once its Update
// is durable: counters, the host's state, and the item dropped (nothing left) or
// delayed to its next attempt. attempted is the number of recipients the attempt
// had; hostBackoff bounds how long a host that did not answer is backed off.
func (c *Controller) reschedule(ch *chanState, it *item, p *attemptPlan, attempted int, expired bool, now time.Time, hostBackoff time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range p.outs {
		switch o.code {
		case maillog.CodeDelivered:
			ch.ctr.Delivered++
		case maillog.CodeRequeued:
			ch.ctr.Requeued++
		default:
			ch.ctr.Returned++
		}
	}
	it.recording = false
	h := it.h
	h.active--
	if p.lastErr != "" {
		h.lastErr = p.lastErr
	}
	if p.delivered {
		h.suspect = false
	}
	if p.connFail {
		h.window = 1
	} else {
		c.hostAnswered(h)
	}
	if len(p.keep) == 0 {
		c.dropItem(it)
	} else {
		c.setItemRcpts(it, p.keep)
		c.delayLocked(it, p.nextAt.UnixNano())
		if it.m.expired && !expired && c.msgs[it.m.id] == it.m {
			// The last notice age passed while we were delivering: let the
			// notice processor return the rest now.
			it.m.nat = now.UnixNano()
			if it.m.nidx >= 0 {
				c.noticeH.fix(int(it.m.nidx))
			} else {
				c.noticeH.push(it.m)
			}
		}
		if p.connFail && len(p.keep) == attempted {
			// Nobody answered: the host, not this message, is the problem.
			// Everything queued for it waits out the same backoff.
			// The host waits the channel's first interval at most: a message on
			// its seventh retry must not hold back mail that never tried.
			h.suspect = true
			c.blockHost(h, min(p.nextAt.UnixNano(), now.Add(hostBackoff).UnixNano()))
		}
	}
	c.ringAdd(h)
	c.maybeDropHost(h)
	c.kickLocked()
}

// recordDelivered is record's fast path, for an attempt where every recipient was
// delivered: the job does not wait for the commit of its results but goes on with
// its next message at once; the Update joins the next group commit. Nothing can go
// wrong by not waiting: a delivered recipient is never scheduled again in this
// process, and a crash before the commit redelivers it after restart (a duplicate,
// never a loss). Until the commit the item stays active, so qm hold/delete/return
// (Remove) waits for it as for an attempt in flight, the D lines are written only
// once the result is durable, and Run does not return before it is.
func (c *Controller) recordDelivered(au AsyncUpdater, ch *chanState, it *item, env *queue.Envelope, updates []queue.Update, outs []outcome) {
	c.mu.Lock()
	ch.ctr.Delivered += int64(len(outs))
	h := it.h
	h.active--
	h.suspect = false
	c.hostAnswered(h)
	c.wg.Add(1) // the job's own count is still held: no race with shutdown's Wait
	c.ringAdd(h)
	c.kickLocked()
	c.mu.Unlock()
	au.UpdateAsync(env.ID, updates, func(err error) {
		defer c.wg.Done()
		if err != nil {
			c.log.Error("record delivery results", "id", env.ID, "channel", ch.name, "err", err)
		}
		c.logOutcomes(ch.name, env, outs)
		c.mu.Lock()
		c.dropItem(it)
		c.ringAdd(h)
		c.maybeDropHost(h)
		c.wakeReportLocked(it.m)
		c.mu.Unlock()
	})
}

// logOutcomes writes the outcomes' mail.log lines, all from source (the channel),
// and publishes them to the subscribers (subscribe.go).
func (c *Controller) logOutcomes(source string, env *queue.Envelope, outs []outcome) {
	t := c.now()
	for _, o := range outs {
		c.logRecord(outcomeRecord(t, source, env, o))
	}
}

// outcomeRecord is the mail.log record of one recipient's outcome.
func outcomeRecord(t time.Time, source string, env *queue.Envelope, o outcome) maillog.Record {
	r := env.Rcpts[o.rcpt]
	return maillog.Record{
		Time: t, Source: source, Code: o.code, Size: env.Size, From: env.From,
		ORCPT: r.ORCPT, To: r.Addr, ID: env.ID, MessageID: env.MessageID, Diag: o.diag,
	}
}

// logRecord writes one mail.log record (when there is a mail log) and publishes it.
func (c *Controller) logRecord(r maillog.Record) {
	c.mlog.Log(r)
	c.publish(r)
}
