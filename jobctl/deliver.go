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
		c.wakeReportLocked(it.m)
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
		c.wakeReportLocked(it.m)
		c.mu.Unlock()
		return
	}

	var results []channels.Result
	content, err := c.q.Content(id)
	if err != nil {
		st := status.New(451, "4.3.0", "cannot read queued content: %v", err)
		results = make([]channels.Result, len(idx))
		for i := range results {
			// No server took part: as for a host nobody answered, the attempt
			// counts as a connection failure.
			results[i] = channels.Result{Err: st, Reply: st.Error(), ConnFailed: true}
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
		fixed[i] = channels.Result{Err: st, Reply: st.Error(), ConnFailed: true}
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
				res[i] = channels.Result{Err: st, Reply: st.Error(), ConnFailed: true}
			}
		}
	}()
	return j.prog.Deliver(c.dctx, m)
}

// noticeRcpt is one recipient to report in a notice.
type noticeRcpt struct {
	idx      int
	channel  string // the recipient's channel, for a report held for it (reports.go)
	action   dsn.Action
	status   string
	diag     string // the outcome as mail.log shows it ("smtp;550 ...", "maildir;new/...")
	remote   string // the host for Remote-MTA, "" for none
	attempts int
}

// noticeDiagnostic is what a notice says in Diagnostic-Code for r. A failure or
// delay reports its reason, whatever it is. A success reports a server's reply
// ("smtp;250 ...", "lmtp;250 ..."): a local program's own words ("maildir;new/
// FILE", "x-unix;0 delivered") are no diagnostic a sender can use.
func noticeDiagnostic(r noticeRcpt) string {
	if r.action != dsn.Delivered && r.action != dsn.Relayed {
		return r.diag
	}
	typ, _, _ := strings.Cut(r.diag, ";")
	if typ = strings.ToLower(typ); typ == "smtp" || typ == "lmtp" {
		return r.diag
	}
	return ""
}

// sendNotice builds and submits one notice about ev for the recipients of env
// that asked for it (NOTIFY), each with its own action. wanted tells, per
// recipient, whether it was included (R) or excluded by NOTIFY (K). Rules that
// keep notices from looping:
//   - a notice always has the empty envelope sender;
//   - a message with the empty sender never gets a delay or success notice, and
//     its failure notice goes to the postmaster instead of <>;
//   - a failed message with the empty sender addressed to the postmaster is
//     dropped with an error log: that is a double bounce.
//
// The original is returned whole only with RET=FULL and not in a success notice:
// RFC 3461 §4.3 has RET apply to notices of failure, a success notice carries
// the header only.
func (c *Controller) sendNotice(env *queue.Envelope, rs []noticeRcpt, ev dsn.Event, until time.Time) ([]bool, error) {
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
		if ev != dsn.EventFailure {
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
		c.log.Warn("no notice submitter configured; notice dropped", "id", env.ID, "action", string(list[0].action))
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
		Full:          strings.EqualFold(env.RET, "FULL") && ev != dsn.EventSuccess,
	}
	for _, r := range list {
		rc := env.Rcpts[r.idx]
		rep.Recipients = append(rep.Recipients, dsn.Recipient{
			Original: rc.ORCPT, Final: rc.Addr, Action: r.action, Status: r.status,
			RemoteMTA: r.remote, Diagnostic: noticeDiagnostic(r), WillRetryUntil: until,
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
	report []noticeRcpt // a report to send (reports.go) rather than a delay or a return
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

// runNotice sends a delay notice or a report, or returns the remaining
// recipients.
func (c *Controller) runNotice(ctx context.Context, t *noticeTask) {
	if t.report != nil {
		c.sendReport(t.m, t.report)
		return
	}
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
	// Recipients a report holds are settled, only not yet marked in the queue.
	c.mu.Lock()
	reported := t.m.rep.reported()
	c.mu.Unlock()
	var rs []noticeRcpt
	for i, r := range env.Rcpts {
		if r.State == queue.Pending && !reported[i] {
			rs = append(rs, noticeRcpt{idx: i, action: dsn.Delayed, status: enhancedIn(r.LastError, "4.0.0"), diag: r.LastError})
		}
	}
	if len(rs) == 0 {
		return
	}
	wanted, err := c.sendNotice(env, rs, dsn.EventDelay, t.until)
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
			outs = append(outs, outcome{r.idx, maillog.CodeDelayNoticeSent, "delay notice sent: " + r.diag})
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
// age has passed. They join the message's report, which goes at once unless
// other work of the message is under way (reports.go).
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
				rs = append(rs, noticeRcpt{idx: int(i), channel: r.Channel, action: dsn.Failed, status: "5.4.7", diag: diag,
					attempts: r.Attempts})
			}
		}
	}
	c.mu.Lock()
	now := c.now()
	c.holdReportLocked(t.m, rs, now)
	for _, it := range t.items {
		c.dropItem(it)
	}
	send := c.takeReportLocked(t.m, now.UnixNano())
	c.mu.Unlock()
	if send != nil {
		c.sendReport(t.m, send)
	}
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
