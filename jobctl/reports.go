package jobctl

// Reports: the notices that tell a sender what became of recipients, one per
// message and event rather than one per delivery attempt.
//
// A message's recipients may go to several channels and hosts, each item tried
// by its own job. Like Postfix, we gather what the attempts of one message find
// out (permanent failures, and deliveries that must be announced because the
// recipient asked NOTIFY=SUCCESS) into one report, sent when none of the
// message's other work is under way or about to start: every item is either
// done or waiting for a later retry. The sender then gets one failure notice
// listing every recipient that failed, and one success notice listing every
// recipient delivered or relayed, instead of one per destination. A report is
// never held longer than that, nor than reportHoldMax, a bound for work that is
// slow to start or to end (a saturated pool, a server that answers slowly).
//
// Most reports are sent by the job whose attempt was the last one awaited: its
// notices are submitted before its results are recorded, and what they report
// is marked in the same Update (record). The Run loop sends the others: those
// whose wait something else ended (wakeReportLocked), whose deadline passed
// (the report heap), or that qm actions hurry (hurryReportLocked).
//
// An attempt stops being awaited as soon as its job has added its outcome to
// the report and looked whether the report is due (item.recording), not when
// its item leaves the active state a little later. When several attempts of a
// message end together, each job then sees the others' outcomes as known and
// the last to look sends the report; otherwise each could see another still
// active, leave the report to it, and nobody would send it before
// reportHoldMax.
//
// The ordering contract of notices stays: a recipient is marked in the queue
// (Returned, or Delivered when a success notice reports it) only after the
// notice that reports it was submitted, that is durably queued. Until then it is
// Pending on disk and held here in memory, out of the schedule, so a crash
// retries it (it fails or is delivered again, and the notice is sent then): a
// notice may be repeated, never lost.

import (
	"errors"
	"time"

	"mtad.dev/mta/dsn"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/queue"
)

// reportHoldMax is the longest a report waits for the rest of its message.
const reportHoldMax = 5 * time.Minute

// msgReport is what a message's next report will say, and when it goes.
type msgReport struct {
	m       *msg
	held    []noticeRcpt // settled recipients waiting for the report
	sending []noticeRcpt // taken by the goroutine submitting the report now
	by      int64        // the report goes at the latest then (unix ns)
	after   int64        // and not before then: a notice that could not be submitted waits
	hidx    int32        // index in the controller's report heap, -1 when absent
}

func (r *msgReport) heapKey() int64   { return r.by }
func (r *msgReport) setHeapIdx(i int) { r.hidx = int32(i) }

// pending reports whether a report is held or being sent: the message is not
// done with while it is.
func (r *msgReport) pending() bool { return r != nil && (len(r.held) > 0 || r.sending != nil) }

// forEach calls fn for every recipient the report holds or is sending.
func (r *msgReport) forEach(fn func(noticeRcpt)) {
	if r == nil {
		return
	}
	for _, x := range r.held {
		fn(x)
	}
	for _, x := range r.sending {
		fn(x)
	}
}

// reported returns the recipients a report holds or is sending, by index.
func (r *msgReport) reported() map[int]bool {
	if !r.pending() {
		return nil
	}
	out := make(map[int]bool, len(r.held)+len(r.sending))
	r.forEach(func(x noticeRcpt) { out[x.idx] = true })
	return out
}

// holdReportLocked adds recipients to m's next report.
func (c *Controller) holdReportLocked(m *msg, rs []noticeRcpt, now time.Time) {
	if len(rs) == 0 {
		return
	}
	if m.rep == nil {
		m.rep = &msgReport{m: m, hidx: -1}
	}
	r := m.rep
	if len(r.held) == 0 {
		r.by = max(now.Add(reportHoldMax).UnixNano(), r.after)
	}
	r.held = append(r.held, rs...)
	c.armReportLocked(r)
}

// armReportLocked puts a held report in the report heap at its deadline.
func (c *Controller) armReportLocked(r *msgReport) {
	if len(r.held) == 0 || r.sending != nil {
		return
	}
	if r.hidx >= 0 {
		c.reportH.fix(int(r.hidx))
	} else {
		c.reportH.push(r)
	}
	c.pokeRun()
}

// reportDueLocked reports whether m's held report may go now: its deadline
// passed, or none of the message's work is under way or about to start.
func (c *Controller) reportDueLocked(m *msg, now int64) bool {
	r := m.rep
	if r == nil || len(r.held) == 0 || r.sending != nil || now < r.after {
		return false
	}
	if now >= r.by {
		return true
	}
	for _, it := range m.items {
		if c.awaitedLocked(it) {
			return false
		}
	}
	return true
}

// awaitedLocked reports whether an item's attempt is under way or about to
// start, so that a report of its message waits for its outcome. An attempt
// whose job is recording its results is over: its job has already held what
// it found out for the report and checked it, and will not check it again.
// Ready work of a stopped channel, a channel without a program or a pool, a
// backed-off host, or a controller shutting down is not about to start: it
// counts as waiting for a later retry.
func (c *Controller) awaitedLocked(it *item) bool {
	switch it.state {
	case stActive:
		return !it.recording
	case stReady:
		ch := it.h.ch
		return !c.stopping && !ch.stopped && ch.prog != nil && ch.poolOK && !it.h.blocked()
	}
	return false
}

// takeReportLocked takes m's held report for sending when it is due; nil when
// it is not.
func (c *Controller) takeReportLocked(m *msg, now int64) []noticeRcpt {
	if !c.reportDueLocked(m, now) {
		return nil
	}
	r := m.rep
	if r.hidx >= 0 {
		c.reportH.remove(int(r.hidx))
	}
	rs := r.held
	r.held, r.sending = nil, rs
	return rs
}

// wakeReportLocked is called when some of m's work left the ready or active
// state without its job recording an attempt (taken out by a delivery window, an
// unreadable envelope, an asynchronous commit that ended): if the report waited
// only for that, the Run loop sends it now.
func (c *Controller) wakeReportLocked(m *msg) {
	if now := c.now().UnixNano(); c.reportDueLocked(m, now) {
		m.rep.by = now
		c.armReportLocked(m.rep)
	}
}

// hurryReportLocked makes m's held report due now, whatever it waits for: qm
// hold, delete and return first let it go, so that what it reports is settled.
func (c *Controller) hurryReportLocked(m *msg) {
	if r := m.rep; r != nil && len(r.held) > 0 {
		r.by = max(min(r.by, c.now().UnixNano()), r.after)
		c.armReportLocked(r)
	}
}

// dueReportsLocked takes the reports whose deadline passed, for the Run loop.
func (c *Controller) dueReportsLocked(now int64) []*noticeTask {
	var due []*noticeTask
	for c.reportH.len() > 0 && c.reportH.min().by <= now {
		r := c.reportH.remove(0)
		if rs := c.takeReportLocked(r.m, now); rs != nil {
			due = append(due, &noticeTask{m: r.m, report: rs})
		}
	}
	return due
}

// sendReport submits the report of m's recipients rs (taken by
// takeReportLocked), then sends again what was held meanwhile if that is due
// too, and forgets the message once nothing of it is left.
func (c *Controller) sendReport(m *msg, rs []noticeRcpt) {
	for rs != nil {
		retry := c.submitReport(m, rs)
		c.mu.Lock()
		rs = c.reportSentLocked(m, retry)
		c.mu.Unlock()
	}
}

// reportSentLocked ends the sending of m's report: what could not be submitted
// (retry) is held again for retryNotice. It returns what was held meanwhile when
// that is due now, taken for sending; otherwise the report waits for its
// deadline, or the message is forgotten once nothing of it is left.
func (c *Controller) reportSentLocked(m *msg, retry []noticeRcpt) []noticeRcpt {
	now := c.now()
	r := m.rep
	r.sending = nil
	if len(retry) > 0 {
		r.after = now.Add(retryNotice).UnixNano()
		r.held = append(r.held, retry...)
		r.by = max(r.by, r.after)
	}
	if rs := c.takeReportLocked(m, now.UnixNano()); rs != nil {
		return rs
	}
	c.armReportLocked(r)
	if !r.pending() {
		m.rep = nil
	}
	c.forgetMsgIfDoneLocked(m)
	return nil
}

// submitReport sends the report of m's recipients rs (reportNotices), then
// marks them in the queue and logs them. It returns the recipients whose notice
// could not be submitted.
func (c *Controller) submitReport(m *msg, rs []noticeRcpt) (retry []noticeRcpt) {
	env, err := c.q.Get(m.id)
	if errors.Is(err, queue.ErrNotFound) {
		return nil // gone from the queue: nothing to report, nothing to mark
	}
	if err != nil {
		c.log.Error("read envelope for a notice", "id", m.id, "err", err)
		return rs
	}
	p, retry := c.reportNotices(env, rs)
	if len(p.updates) > 0 {
		if err := c.q.Update(env.ID, p.updates); err != nil {
			c.log.Error("record reported recipients", "id", env.ID, "err", err)
		}
	}
	c.logEachChannel(env, p.outs)
	return retry
}

// reportNotices submits one failure notice for the failed recipients of rs and
// one success notice for the delivered and relayed ones, each to the sender as
// NOTIFY asks, and plans what to mark in the queue now that they are submitted:
// Returned (R or K), Delivered (D). The caller makes that durable and logs it;
// before, never: a crash in between sends a notice again, never loses one. It
// returns the recipients whose notice could not be submitted, to try again after
// retryNotice; failed ones are also planned requeued (Q), so that a restart
// retries them as well.
func (c *Controller) reportNotices(env *queue.Envelope, rs []noticeRcpt) (p attemptPlan, retry []noticeRcpt) {
	p.failed = reportPart(rs, dsn.EventFailure)
	if len(p.failed) > 0 {
		wanted, err := c.sendNotice(env, p.failed, dsn.EventFailure, time.Time{})
		if err != nil {
			c.log.Error("failure notice", "id", env.ID, "err", err)
			retry = append(retry, p.failed...)
		}
		p.settleFailed(wanted, err, c.now())
	}
	if succeeded := reportPart(rs, dsn.EventSuccess); len(succeeded) > 0 {
		if _, err := c.sendNotice(env, succeeded, dsn.EventSuccess, time.Time{}); err != nil {
			// Delivered, but not marked so until the notice is queued: a
			// restart before then delivers it again, with its notice.
			c.log.Error("success notice", "id", env.ID, "err", err)
			retry = append(retry, succeeded...)
		} else {
			for _, r := range succeeded {
				p.updates = append(p.updates, queue.Update{Rcpt: r.idx, State: queue.Delivered, Attempts: r.attempts, LastError: r.diag})
				p.outs = append(p.outs, outcome{r.idx, maillog.CodeDelivered, r.diag})
			}
		}
	}
	return p, retry
}

// reportPart is the recipients of rs a notice for ev reports.
func reportPart(rs []noticeRcpt, ev dsn.Event) []noticeRcpt {
	var part []noticeRcpt
	for _, r := range rs {
		if (r.action == dsn.Failed) == (ev == dsn.EventFailure) {
			part = append(part, r)
		}
	}
	return part
}

// logEachChannel logs outcomes of recipients of several channels, each under
// its own channel, and counts them in its channel's totals.
func (c *Controller) logEachChannel(env *queue.Envelope, outs []outcome) {
	t := c.now()
	for _, o := range outs {
		c.logRecord(outcomeRecord(t, env.Rcpts[o.rcpt].Channel, env, o))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range outs {
		ctr := &c.chanLocked(env.Rcpts[o.rcpt].Channel).ctr
		switch o.code {
		case maillog.CodeDelivered:
			ctr.Delivered++
		case maillog.CodeRequeued:
			ctr.Requeued++
		default:
			ctr.Returned++
		}
	}
}

// flushReports sends every held report at shutdown, once no job runs: nothing
// they wait for can happen any more, and a report left unsent would make the
// next start deliver again what it reports as delivered.
func (c *Controller) flushReports() {
	c.mu.Lock()
	now := c.now().UnixNano()
	var due []*noticeTask
	for _, r := range append([]*msgReport(nil), c.reportH.s...) {
		if rs := c.takeReportLocked(r.m, max(now, r.by)); rs != nil {
			due = append(due, &noticeTask{m: r.m, report: rs})
		}
	}
	c.mu.Unlock()
	for _, t := range due {
		c.sendReport(t.m, t.report)
	}
}
