package jobctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime/debug"
	"strings"
	"time"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/dsn"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/queue"
	"mtad.dev/mta/status"
)

// retryOnQueueError is how long an item waits when the queue itself failed
// (unreadable envelope or content): not an attempt, so no backoff step is used.
const retryOnQueueError = 5 * time.Minute

// retryNotice is how long a notice that could not be submitted waits.
const retryNotice = 30 * time.Minute

// deliver runs one delivery attempt of an item taken by job j and records it.
func (c *Controller) deliver(j *job, it *item) {
	id := it.m.id
	env, err := c.q.Get(id)
	if err != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		it.h.active--
		if errors.Is(err, queue.ErrNotFound) {
			c.dropItem(it) // deleted (qm delete) or finished elsewhere
		} else {
			c.log.Error("read envelope", "id", id, "err", err)
			c.delayLocked(it, c.now().Add(retryOnQueueError).UnixNano())
		}
		c.ringAdd(it.h)
		c.maybeDropHost(it.h)
		return
	}
	var idx []int
	for _, r := range it.rcpts {
		if int(r) < len(env.Rcpts) && env.Rcpts[r].State == queue.Pending {
			idx = append(idx, int(r))
		}
	}
	if len(idx) == 0 {
		c.mu.Lock()
		it.h.active--
		c.dropItem(it)
		c.ringAdd(it.h)
		c.maybeDropHost(it.h)
		c.mu.Unlock()
		return
	}

	var results []channels.Result
	content, err := c.q.Content(id)
	if err != nil {
		st := status.New(451, "4.3.0", "cannot read queued content: %v", err)
		results = make([]channels.Result, len(idx))
		for i := range results {
			results[i] = channels.Result{Err: st, Reply: st.Error()}
		}
	} else {
		m := &channels.Message{
			ID: id, From: env.From, Content: content, Size: content.Size(),
			EightBit: env.Body8Bit, SMTPUTF8: env.SMTPUTF8, RET: env.RET, EnvID: env.EnvID, Arrival: env.Arrival, Source: env.Source,
		}
		// addrsperfile: at most per recipients in one call (one transaction); the
		// calls run one after the other on this job, so an SMTP program reuses its
		// connection for the next batch.
		per := c.channelAddrsPerFile(j.ch)
		for start := 0; start < len(idx); start += per {
			batch := idx[start:min(start+per, len(idx))]
			m.Rcpts = make([]channels.Rcpt, 0, len(batch))
			for _, i := range batch {
				r := env.Rcpts[i]
				m.Rcpts = append(m.Rcpts, channels.Rcpt{Addr: r.Addr, ORCPT: r.ORCPT, Notify: r.Notify, Host: r.Host})
			}
			results = append(results, c.checkResults(j, id, c.callProgram(j, m), len(batch))...)
		}
		content.Close()
	}
	c.record(j.ch, it, env, idx, results)
}

// channelAddrsPerFile is the channel's recipients-per-call cap (unlimited: the
// largest int). SetConfig changes the channel's settings under c.mu.
func (c *Controller) channelAddrsPerFile(ch *chanState) int {
	c.mu.Lock()
	n := ch.cfg.AddrsPerFile
	c.mu.Unlock()
	if n <= 0 {
		return math.MaxInt
	}
	return n
}

// checkResults holds a delivery program to its contract, one result per
// recipient: missing results become temporary failures, extra ones are dropped.
func (c *Controller) checkResults(j *job, id string, results []channels.Result, n int) []channels.Result {
	if len(results) == n {
		return results
	}
	c.log.Error("delivery program returned a wrong number of results", "channel", j.ch.name, "id", id,
		"results", len(results), "recipients", n)
	st := status.New(451, "4.3.0", "delivery program returned %d results for %d recipients", len(results), n)
	fixed := make([]channels.Result, n)
	copy(fixed, results)
	for i := len(results); i < n; i++ {
		fixed[i] = channels.Result{Err: st, Reply: st.Error()}
	}
	return fixed
}

// callProgram runs the channel program; a panic becomes a temporary failure for
// every recipient (unknown errors defer, never bounce) instead of killing mtad.
func (c *Controller) callProgram(j *job, m *channels.Message) (res []channels.Result) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("delivery program panicked", "channel", j.ch.name, "id", m.ID, "panic", p, "stack", string(debug.Stack()))
			st := status.New(451, "4.3.0", "delivery program failed")
			res = make([]channels.Result, len(m.Rcpts))
			for i := range res {
				res[i] = channels.Result{Err: st, Reply: st.Error()}
			}
		}
	}()
	return j.prog.Deliver(c.dctx, m)
}

// outcome of one recipient, for logging after the durable update.
type outcome struct {
	rcpt int
	code string // D, Q, R, K
	diag string
}

// record stores the results of an attempt durably, logs them, and puts what is
// left back into the index. Order matters: the notice for failed recipients is
// submitted before they are marked Returned, and the Update (with the next
// attempt time) is durable before the item becomes eligible again, so a crash
// repeats at worst a notice, never loses one, and never retries early.
func (c *Controller) record(ch *chanState, it *item, env *queue.Envelope, idx []int, results []channels.Result) {
	now := c.now()
	c.mu.Lock()
	expired := it.m.expired
	cfg := ch.cfg
	c.mu.Unlock()
	class := ClassOf(env.Priority)

	var (
		updates   []queue.Update
		outs      []outcome
		failed    []noticeRcpt
		keep      []int32
		nextAt    time.Time
		delivered bool
		connFail  = true
		lastErr   string
	)
	for k, i := range idx {
		r := env.Rcpts[i]
		res := results[k]
		diag := res.Reply
		if diag == "" && res.Err != nil {
			diag = res.Err.Error()
		}
		switch {
		case res.Err == nil:
			delivered, connFail = true, false
			updates = append(updates, queue.Update{Rcpt: i, State: queue.Delivered, Attempts: r.Attempts + 1, LastError: diag})
			outs = append(outs, outcome{i, "D", diag})
		case res.Err.Temporary() && !expired:
			if !res.ConnFailed {
				connFail = false
			}
			attempts := r.Attempts + 1
			na := now.Add(cfg.RetryDelay(class, attempts))
			if nextAt.IsZero() || na.Before(nextAt) {
				nextAt = na
			}
			updates = append(updates, queue.Update{Rcpt: i, State: queue.Pending, Attempts: attempts, NextAttempt: na, LastError: diag})
			outs = append(outs, outcome{i, "Q", diag})
			keep = append(keep, int32(i))
			lastErr = diag
		default:
			connFail = false
			st := res.Err.Enhanced
			if res.Err.Temporary() { // expired while this attempt ran
				st = "5.4.7"
			}
			failed = append(failed, noticeRcpt{idx: i, status: st, diag: diag, remote: res.Remote, attempts: r.Attempts + 1})
			lastErr = diag
		}
	}
	if len(failed) > 0 {
		wanted, err := c.sendNotice(env, failed, dsn.Failed, time.Time{})
		for k, f := range failed {
			if err != nil {
				// The notice could not be queued: keep the recipient and try again
				// later rather than dropping it silently.
				na := now.Add(retryNotice)
				if nextAt.IsZero() || na.Before(nextAt) {
					nextAt = na
				}
				updates = append(updates, queue.Update{Rcpt: f.idx, State: queue.Pending, Attempts: f.attempts, NextAttempt: na, LastError: f.diag})
				outs = append(outs, outcome{f.idx, "Q", "notice not sent: " + err.Error()})
				keep = append(keep, int32(f.idx))
				continue
			}
			code := "R"
			if !wanted[k] {
				code = "K"
			}
			updates = append(updates, queue.Update{Rcpt: f.idx, State: queue.Returned, Attempts: f.attempts, LastError: f.diag})
			outs = append(outs, outcome{f.idx, code, f.diag})
		}
	}
	if au, ok := c.q.(AsyncUpdater); ok && delivered && len(keep) == 0 && len(failed) == 0 {
		c.recordDelivered(au, ch, it, env, updates, outs)
		return
	}
	if err := c.q.Update(env.ID, updates); err != nil {
		// Delivered recipients may be delivered again after a restart; that is
		// the price of a failing disk, and better than losing mail.
		c.log.Error("record delivery results", "id", env.ID, "channel", ch.name, "err", err)
	}
	c.logOutcomes(ch.name, env, outs)

	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range outs {
		switch o.code {
		case "D":
			ch.ctr.Delivered++
		case "Q":
			ch.ctr.Requeued++
		default:
			ch.ctr.Returned++
		}
	}
	h := it.h
	h.active--
	if lastErr != "" {
		h.lastErr = lastErr
	}
	if delivered {
		h.suspect = false
	}
	if connFail {
		h.window = 1
	} else {
		c.hostAnswered(h)
	}
	if len(keep) == 0 {
		c.dropItem(it)
	} else {
		c.setItemRcpts(it, keep)
		c.delayLocked(it, nextAt.UnixNano())
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
		if connFail && len(keep) == len(idx) {
			// Nobody answered: the host, not this message, is the problem.
			// Everything queued for it waits out the same backoff.
			// The host waits the channel's first interval at most: a message on
			// its seventh retry must not hold back mail that never tried.
			h.suspect = true
			c.blockHost(h, min(nextAt.UnixNano(), now.Add(cfg.RetryDelay(class, 1)).UnixNano()))
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
		c.mu.Unlock()
	})
}

func (c *Controller) logOutcomes(source string, env *queue.Envelope, outs []outcome) {
	if c.mlog == nil {
		return
	}
	t := c.now()
	for _, o := range outs {
		r := env.Rcpts[o.rcpt]
		c.mlog.Log(maillog.Record{
			Time: t, Source: source, Code: o.code, Size: env.Size, From: env.From,
			ORCPT: r.ORCPT, To: r.Addr, ID: env.ID, MessageID: env.MessageID, Diag: o.diag,
		})
	}
}

// noticeRcpt is one recipient to report in a notice.
type noticeRcpt struct {
	idx      int
	status   string
	diag     string
	remote   string
	attempts int
}

// sendNotice builds and submits one notice for the recipients of env that asked
// for it (NOTIFY). wanted tells, per recipient, whether it was included (R) or
// excluded by NOTIFY (K). Rules that keep notices from looping:
//   - a notice always has the empty envelope sender;
//   - a message with the empty sender never gets a delay notice, and its failure
//     notice goes to the postmaster instead of <>;
//   - a failed message with the empty sender addressed to the postmaster is
//     dropped with an error log: that is a double bounce.
func (c *Controller) sendNotice(env *queue.Envelope, rs []noticeRcpt, action dsn.Action, until time.Time) ([]bool, error) {
	ev := dsn.EventFailure
	if action == dsn.Delayed {
		ev = dsn.EventDelay
	}
	wanted := make([]bool, len(rs))
	var list []noticeRcpt
	for k, r := range rs {
		if dsn.Wants(env.Rcpts[r.idx].Notify, ev) {
			wanted[k] = true
			list = append(list, r)
		}
	}
	if len(list) == 0 {
		return wanted, nil
	}
	c.mu.Lock()
	cfg := c.cfg
	c.seq++
	seq := c.seq
	c.mu.Unlock()

	to := env.From
	if to == "" {
		if action == dsn.Delayed {
			return wanted, nil
		}
		allPM := true
		for _, r := range list {
			if !strings.EqualFold(env.Rcpts[r.idx].Addr, cfg.Postmaster) {
				allPM = false
			}
		}
		if allPM {
			c.log.Error("double bounce: notice to the postmaster failed; dropped", "id", env.ID)
			return wanted, nil
		}
		to = cfg.Postmaster
		c.log.Warn("message with empty sender failed; notice goes to the postmaster", "id", env.ID)
	}
	if cfg.Submit == nil {
		c.log.Warn("no notice submitter configured; notice dropped", "id", env.ID, "action", string(action))
		return wanted, nil
	}
	rep := &dsn.Report{
		ReportingMTA:  cfg.Hostname,
		From:          cfg.Postmaster,
		To:            to,
		Date:          c.now(),
		MessageID:     fmt.Sprintf("dsn.%s.%d.%d@%s", env.ID, seq, c.now().Unix(), cfg.Hostname),
		QueueID:       env.ID,
		EnvID:         env.EnvID,
		Arrival:       env.Arrival,
		OrigMessageID: env.MessageID,
		Full:          strings.EqualFold(env.RET, "FULL"),
	}
	for _, r := range list {
		rc := env.Rcpts[r.idx]
		remote, _, _ := strings.Cut(r.remote, " ")
		rep.Recipients = append(rep.Recipients, dsn.Recipient{
			Original: rc.ORCPT, Final: rc.Addr, Action: action, Status: r.status,
			RemoteMTA: remote, Diagnostic: r.diag, WillRetryUntil: until,
		})
	}
	content, err := c.q.Content(env.ID)
	if err != nil {
		return nil, fmt.Errorf("read original for notice: %w", err)
	}
	defer content.Close()
	rep.Original = io.NewSectionReader(content, 0, content.Size())
	b, err := dsn.Build(rep)
	if err != nil {
		return nil, fmt.Errorf("build notice: %w", err)
	}
	if err := cfg.Submit(c.dctx, "", []string{to}, b); err != nil {
		return nil, fmt.Errorf("submit notice: %w", err)
	}
	return wanted, nil
}

// noticeTask is notice work found due by the Run loop.
type noticeTask struct {
	m      *msg
	ret    bool    // return (last age) rather than warn
	items  []*item // for a return: the items taken out of the index
	step   int     // for a delay: the new Notices count
	until  time.Time
	source string
}

// noticeDueLocked decides what a message's notice deadline means now.
func (c *Controller) noticeDueLocked(m *msg, now int64) *noticeTask {
	if c.msgs[m.id] != m {
		return nil
	}
	unit := int64(c.cfg.NoticeUnit)
	age := now - m.arrival
	reached := 0
	for reached < len(m.sched) && age >= int64(m.sched[reached])*unit {
		reached++
	}
	source := ""
	if len(m.items) > 0 {
		source = m.items[0].h.ch.name
	}
	last := m.arrival + int64(m.sched[len(m.sched)-1])*unit
	if reached >= len(m.sched) {
		t := &noticeTask{m: m, ret: true, source: source}
		for _, it := range m.items {
			if it.state == stActive {
				m.expired = true // the job returns them when its attempt ends
				continue
			}
			c.unindex(it)
			t.items = append(t.items, it)
		}
		if len(t.items) == 0 {
			return nil
		}
		return t
	}
	if reached > int(m.notices) {
		m.notices = int16(reached)
		c.scheduleNotice(m)
		return &noticeTask{m: m, step: reached, until: time.Unix(0, last), source: source}
	}
	c.scheduleNotice(m)
	return nil
}

// runNotice sends a delay notice or returns the remaining recipients.
func (c *Controller) runNotice(ctx context.Context, t *noticeTask) {
	if ctx.Err() != nil && !t.ret {
		return
	}
	env, err := c.q.Get(t.m.id)
	if err != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		if errors.Is(err, queue.ErrNotFound) {
			for _, it := range t.items {
				c.dropItem(it)
			}
			return
		}
		c.log.Error("read envelope for notice", "id", t.m.id, "err", err)
		c.requeueNotice(t)
		return
	}
	if t.ret {
		c.returnExpired(t, env)
		return
	}
	var rs []noticeRcpt
	for i, r := range env.Rcpts {
		if r.State == queue.Pending {
			rs = append(rs, noticeRcpt{idx: i, status: enhancedIn(r.LastError, "4.0.0"), diag: r.LastError})
		}
	}
	if len(rs) == 0 {
		return
	}
	wanted, err := c.sendNotice(env, rs, dsn.Delayed, t.until)
	if err != nil {
		c.log.Error("delay notice", "id", env.ID, "err", err)
		c.mu.Lock()
		t.m.notices = int16(t.step - 1)
		t.m.nat = c.now().Add(retryNotice).UnixNano()
		if t.m.nidx >= 0 {
			c.noticeH.fix(int(t.m.nidx))
		} else if c.msgs[t.m.id] == t.m {
			c.noticeH.push(t.m)
		}
		c.mu.Unlock()
		return
	}
	if nr, ok := c.q.(NoticeRecorder); ok {
		if err := nr.SetNotices(env.ID, t.step); err != nil {
			c.log.Error("record notices sent", "id", env.ID, "err", err)
		}
	}
	var outs []outcome
	for k, r := range rs {
		if wanted[k] {
			outs = append(outs, outcome{r.idx, "W", "delay notice sent: " + r.diag})
		}
	}
	c.logOutcomes(t.source, env, outs)
}

func (c *Controller) requeueNotice(t *noticeTask) {
	at := c.now().Add(retryNotice).UnixNano()
	for _, it := range t.items {
		c.delayLocked(it, at)
	}
	if c.msgs[t.m.id] == t.m {
		t.m.nat = at
		if t.m.nidx >= 0 {
			c.noticeH.fix(int(t.m.nidx))
		} else {
			c.noticeH.push(t.m)
		}
	}
}

// returnExpired returns every recipient of the task's items: the last notices
// age has passed.
func (c *Controller) returnExpired(t *noticeTask, env *queue.Envelope) {
	var rs []noticeRcpt
	for _, it := range t.items {
		for _, i := range it.rcpts {
			if int(i) < len(env.Rcpts) && env.Rcpts[i].State == queue.Pending {
				r := env.Rcpts[i]
				diag := r.LastError
				if diag == "" {
					diag = "delivery time expired"
				}
				rs = append(rs, noticeRcpt{idx: int(i), status: "5.4.7", diag: diag, attempts: r.Attempts})
			}
		}
	}
	var outs []outcome
	var updates []queue.Update
	if len(rs) > 0 {
		wanted, err := c.sendNotice(env, rs, dsn.Failed, time.Time{})
		if err != nil {
			c.log.Error("return notice", "id", env.ID, "err", err)
			c.mu.Lock()
			c.requeueNotice(t)
			c.mu.Unlock()
			return
		}
		for k, r := range rs {
			code := "R"
			if !wanted[k] {
				code = "K"
			}
			updates = append(updates, queue.Update{Rcpt: r.idx, State: queue.Returned, Attempts: r.attempts, LastError: r.diag})
			outs = append(outs, outcome{r.idx, code, r.diag})
		}
		if err := c.q.Update(env.ID, updates); err != nil {
			c.log.Error("record returned recipients", "id", env.ID, "err", err)
		}
		c.logOutcomes(t.source, env, outs)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, it := range t.items {
		for _, o := range outs {
			if slicesContains(it.rcpts, int32(o.rcpt)) {
				it.h.ch.ctr.Returned++
			}
		}
		c.dropItem(it)
	}
}

func slicesContains(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// enhancedIn finds an RFC 3463 code in a diagnostic ("smtp;451 4.4.1 ..."), or def.
func enhancedIn(diag, def string) string {
	for _, f := range strings.FieldsFunc(diag, func(r rune) bool { return r == ' ' || r == ';' }) {
		p := strings.Split(f, ".")
		if len(p) == 3 && len(p[0]) == 1 && strings.ContainsRune("245", rune(p[0][0])) && isDigits(p[1]) && isDigits(p[2]) {
			return f
		}
	}
	return def
}

func isDigits(s string) bool {
	if s == "" || len(s) > 3 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
