package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"mtad.dev/mta/compiler"
	"mtad.dev/mta/control"
	"mtad.dev/mta/jobctl"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/queue"
)

// controlState is what the control socket keeps between requests.
type controlState struct {
	started time.Time
	done    chan struct{} // closed when the control server has stopped and removed its socket

	mu      sync.Mutex                  // guards base and cleared
	base    map[string]control.Counters // counters at the last clear
	cleared time.Time
}

// Operator texts written to mail.log and the message (product wording where it has one).
const (
	holdReason   = "held by the postmaster (qm hold)"
	deleteReason = "deleted by the postmaster (qm delete)"
	returnReason = "returned by the postmaster (qm return)"
)

// actionWait bounds how long hold, delete and return wait for an attempt in flight.
const actionWait = 30 * time.Second

// startControl opens DATA/control.sock and serves mtactl's requests until ctx
// ends. A live socket (another mtad on this data directory) is an error.
func (d *Daemon) startControl(ctx context.Context) error {
	d.ctl.started = time.Now()
	d.ctl.cleared = d.ctl.started
	srv, err := control.Listen(filepath.Join(d.opts.DataDir, control.SocketName), d.handleControl, d.log.With("component", "control"))
	if err != nil {
		return err
	}
	d.ctl.done = make(chan struct{})
	go func() {
		defer close(d.ctl.done)
		if err := srv.Serve(ctx); err != nil {
			d.log.Error("control socket", "err", err)
		}
	}()
	return nil
}

// waitControl waits until the control server is gone, so that a daemon started next
// on the same data directory finds no live socket of ours.
func (d *Daemon) waitControl(ctx context.Context) {
	if d.ctl.done == nil {
		return
	}
	select {
	case <-d.ctl.done:
	case <-ctx.Done():
	}
}

// ControlSocket is the control socket's path.
func (d *Daemon) ControlSocket() string { return filepath.Join(d.opts.DataDir, control.SocketName) }

// FlushDNS empties the DNS caches of every resolver the delivery programs use
// (mtactl cache -flush) and returns how many it flushed.
func (d *Daemon) FlushDNS() int {
	d.dnsMu.Lock()
	defer d.dnsMu.Unlock()
	n := 0
	for _, r := range d.dns {
		if f, ok := r.(interface{ Flush() }); ok {
			f.Flush()
			n++
		}
	}
	return n
}

func (d *Daemon) info() control.Info {
	img := d.image.Load()
	return control.Info{
		PID: os.Getpid(), Started: d.ctl.started, DataDir: d.opts.DataDir, Config: configName(d.opts.ConfigDir),
		ImageBuilt: img.Header.BuildTime, ImageHash: fmt.Sprintf("%x", img.Header.SourceHash[:]), Version: compiler.Version,
	}
}

func (d *Daemon) handleControl(ctx context.Context, req *control.Request, w *control.Writer) {
	if ctx.Err() != nil {
		w.Fail(control.ErrKindShutdown, "mtad is shutting down")
		return
	}
	now := time.Now()
	filter := control.Filter{}
	if req.Filter != nil {
		filter = *req.Filter
	}
	switch req.Command {
	case control.CmdPing:
		w.Result(d.info(), "")
	case control.CmdDirectory:
		res, err := control.Directory(d.queue, filter, now)
		reply(w, res, err)
	case control.CmdSummarize:
		res, err := d.summarize(ctx, filter, now)
		if err == nil {
			d.addJobState(&res, filter.Channel)
			if img := d.image.Load(); img != nil {
				res.Image = &control.ImageInUse{Built: img.Header.BuildTime, Hash: fmt.Sprintf("%x", img.Header.SourceHash[:])}
			}
		}
		reply(w, res, err)
	case control.CmdDomains:
		res, err := control.SummarizeDomains(d.queue, filter, now)
		if err == nil {
			d.addHostState(res)
		}
		reply(w, res, err)
	case control.CmdCounters:
		w.Result(d.counters(req.Clear), "")
	case control.CmdJobs:
		w.Result(control.Jobs{Channels: d.jobChannels(req.Channel, false)}, "")
	case control.CmdView:
		if len(req.IDs) != 1 {
			w.Fail(control.ErrKindUsage, "view takes one message id")
			return
		}
		res, err := control.View(d.queue, req.IDs[0])
		if errors.Is(err, queue.ErrNotFound) {
			w.Fail(control.ErrKindNotFound, "no such message: "+req.IDs[0])
			return
		}
		reply(w, res, err)
	case control.CmdHold, control.CmdRelease, control.CmdDelete, control.CmdReturn:
		if len(req.IDs) == 0 {
			w.Fail(control.ErrKindUsage, req.Command+" takes message ids")
			return
		}
		out := make([]control.IDResult, 0, len(req.IDs))
		for _, id := range req.IDs {
			out = append(out, d.runMessageCommand(ctx, req.Command, id))
		}
		w.Result(out, "")
	case control.CmdRun:
		d.runChannel(ctx, req, w)
	case control.CmdRequeue:
		d.requeue(ctx, req, w)
	case control.CmdSubmit:
		if !d.knownChannel(req.Channel, w) {
			return
		}
		before := d.delayedEntries(req.Channel)
		d.jc.RunNow(req.Channel)
		w.Result(control.RunResult{Channel: req.Channel, Made: before, Reason: "submitted"}, "")
	case control.CmdSubmitMessage:
		if req.Submission == nil {
			w.Fail(control.ErrKindUsage, "submit-message takes a submission")
			return
		}
		w.Result(d.submitMessage(ctx, req.Submission), "")
	case control.CmdStop, control.CmdStart:
		if !d.knownChannel(req.Channel, w) {
			return
		}
		var err error
		if req.Command == control.CmdStop {
			err = d.jc.Stop(req.Channel)
		} else {
			err = d.jc.Start(req.Channel)
		}
		if err != nil {
			w.Fail(control.ErrKindInternal, control.HoldListError(req.Command, err))
			return
		}
		d.log.Info("channel "+req.Command+" by the postmaster", "channel", req.Channel)
		w.Result(d.jc.Stopped(), "")
	case control.CmdStopped:
		w.Result(d.jc.Stopped(), "")
	case control.CmdReload:
		if err := d.Reload(); err != nil {
			w.Fail(control.ErrKindInternal, "reload refused; the previous configuration stays in force: "+err.Error())
			return
		}
		w.Result(d.info(), "")
	case control.CmdReopenLog:
		reply(w, struct{}{}, d.ReopenLog())
	case control.CmdProcess:
		w.Result(d.process(), "")
	case control.CmdFlushCache:
		w.Result(control.FlushResult{Resolvers: d.FlushDNS()}, "")
	default:
		w.Fail(control.ErrKindUsage, fmt.Sprintf("unknown command %q", req.Command))
	}
}

func reply(w *control.Writer, v any, err error) {
	if err != nil {
		w.Fail(control.ErrKindInternal, err.Error())
		return
	}
	w.Result(v, "")
}

func (d *Daemon) knownChannel(name string, w *control.Writer) bool {
	if name == "" {
		w.Fail(control.ErrKindUsage, "a channel name is required")
		return false
	}
	if _, ok := d.image.Load().Channel(name); !ok {
		w.Fail(control.ErrKindNotFound, "no such channel: "+name)
		return false
	}
	return true
}

// summarize answers qm summarize from the job controller's totals when they can
// (no walk: instant at a million queued messages) and walks the queue otherwise
// (sender, recipient, host or age filters; before the start-up walk is done).
//
// Right after a start the job controller is still reading the queue: a walk of
// our own would compete with it for the disk and CPU and finish later than it
// (11-20 s against a few at a million messages), so summarize waits for it.
func (d *Daemon) summarize(ctx context.Context, f control.Filter, now time.Time) (control.Summary, error) {
	t := d.jc.Totals()
	if !t.Complete && control.IndexAnswers(f) {
		wctx, cancel := context.WithTimeout(ctx, indexWait)
		if d.jc.WaitLoaded(wctx) {
			t = d.jc.Totals()
		}
		cancel()
	}
	res, ok, err := control.SummarizeIndex(t, f)
	if ok || err != nil {
		return res, err
	}
	return control.Summarize(d.queue, f, now)
}

// indexWait bounds how long summarize waits for the job controller's start-up
// walk before walking the queue itself.
const indexWait = time.Minute

// addJobState fills in jobs and stopped flags, and lists stopped channels even
// when they have nothing queued (an operator looking for what is stopped must see them).
func (d *Daemon) addJobState(s *control.Summary, only string) {
	snap := d.jc.JobsSnapshot()
	have := map[string]bool{}
	for i := range s.Channels {
		c := &s.Channels[i]
		have[c.Name] = true
		if ci, ok := snap.Channel(c.Name); ok {
			c.Jobs, c.Stopped = ci.Jobs, ci.Stopped
		}
	}
	for _, ci := range snap.Channels {
		if !have[ci.Name] && (ci.Stopped || ci.Jobs > 0) && (only == "" || only == ci.Name) {
			s.Channels = append(s.Channels, control.ChannelSummary{Name: ci.Name, Jobs: ci.Jobs, Stopped: ci.Stopped})
		}
	}
	for _, c := range s.Channels {
		s.Total.Jobs += c.Jobs
	}
	slices.SortFunc(s.Channels, func(a, b control.ChannelSummary) int { return strings.Compare(a.Name, b.Name) })
}

// addHostState replaces the queue's view of a host's last error with the job
// controller's (more recent: it is the last attempt, whichever message it was)
// and adds whole-host backoff.
func (d *Daemon) addHostState(ds []control.DomainSummary) {
	snap := d.jc.JobsSnapshot()
	for i := range ds {
		ci, ok := snap.Channel(ds[i].Channel)
		if !ok {
			continue
		}
		for _, h := range ci.Hosts {
			if h.Host == ds[i].Domain {
				if h.LastError != "" {
					ds[i].LastError = h.LastError
				}
				ds[i].BackoffUntil = h.BackoffUntil
			}
		}
	}
}

func toCounters(c jobctl.Counters, received int64) control.Counters {
	return control.Counters{Received: received, Delivered: c.Delivered, Requeued: c.Requeued, Returned: c.Returned, Held: c.Held}
}

func (d *Daemon) counters(clear bool) control.CountersCleared {
	snap := d.jc.JobsSnapshot()
	recv := d.jc.Received()
	d.ctl.mu.Lock()
	defer d.ctl.mu.Unlock()
	out := control.CountersCleared{Started: d.ctl.started, Cleared: d.ctl.cleared}
	now := map[string]control.Counters{}
	for _, ci := range snap.Channels {
		c := toCounters(ci.Counters, recv[ci.Name])
		now[ci.Name] = c
		if c == (control.Counters{}) {
			continue
		}
		out.Rows = append(out.Rows, control.CounterRow{Channel: ci.Name, Total: c, Since: c.Sub(d.ctl.base[ci.Name])})
	}
	if clear {
		d.ctl.base = now
		d.ctl.cleared = time.Now()
	}
	return out
}

// jobChannels reports the channels with jobs (or the one asked for, or all with all).
func (d *Daemon) jobChannels(only string, all bool) []control.JobChannel {
	snap := d.jc.JobsSnapshot()
	img := d.image.Load()
	var out []control.JobChannel
	for _, ci := range snap.Channels {
		if only != "" && ci.Name != only {
			continue
		}
		if only == "" && !all && ci.Jobs == 0 {
			continue
		}
		jc := control.JobChannel{Name: ci.Name, Jobs: ci.Jobs, Idle: ci.IdleJobs, MaxJobs: img.MaxJobs(ci.Name), Pool: ci.Pool, Stopped: ci.Stopped}
		for _, h := range ci.Hosts {
			if h.Jobs > 0 {
				jc.Hosts = append(jc.Hosts, control.JobHost{Host: h.Host, Jobs: h.Jobs, Ready: h.Ready})
			}
		}
		for _, j := range snap.Jobs {
			if j.Channel == ci.Name {
				jc.Messages = append(jc.Messages, control.JobMsg{ID: j.ID, Host: j.Host, Since: j.Since})
			}
		}
		out = append(out, jc)
	}
	return out
}

func (d *Daemon) process() control.Process {
	img := d.image.Load()
	p := control.Process{Info: d.info(), MaxConns: smtpMaxConns(img)}
	open := d.smtp.Sessions()
	for _, a := range d.Addrs() {
		p.Listeners = append(p.Listeners, a.String())
		p.ListenerSessions = append(p.ListenerSessions, open[a.String()])
	}
	// Sessions of listeners a reload closed go on and count in the total.
	for _, n := range open {
		p.Sessions += n
	}
	p.Channels = d.jobChannels("", true)
	running := map[string]int{}
	for _, c := range p.Channels {
		running[c.Pool] += c.Jobs
	}
	for _, pl := range img.Jobs.Pools {
		p.Pools = append(p.Pools, control.PoolProcess{Name: pl.Name, Limit: pl.JobLimit, Jobs: running[pl.Name]})
	}
	return p
}

// runMessageCommand runs qm hold, release, delete or return on one message: the
// job controller carries out the action (the order of its queue and schedule
// steps is jobctl's); this words the outcome for mtactl.
func (d *Daemon) runMessageCommand(ctx context.Context, cmd, id string) control.IDResult {
	res := control.IDResult{ID: id}
	wctx, cancel := context.WithTimeout(ctx, actionWait)
	defer cancel()
	var err error
	switch cmd {
	case control.CmdHold:
		var h jobctl.HoldResult
		h, err = d.jc.Hold(wctx, id, holdReason)
		if err == nil && h.AlreadyHeld {
			res.Note = "already held: " + h.Reason
			return res
		}
		if err == nil && h.InFlight != nil {
			res.Note = "held; an attempt in progress may still deliver it: " + h.InFlight.Error()
		}
	case control.CmdRelease:
		var released bool
		released, err = d.jc.Release(id)
		if err == nil && !released {
			res.Note = "not held"
			return res
		}
	case control.CmdDelete:
		err = d.jc.Delete(wctx, id, deleteReason)
	case control.CmdReturn:
		var n int
		n, err = d.jc.Return(wctx, id, returnReason)
		if err == nil {
			res.Note = fmt.Sprintf("%d recipient(s) returned", n)
		}
	}
	if errors.Is(err, queue.ErrNotFound) {
		res.Error = "no such message"
		return res
	}
	if err != nil {
		res.Error = err.Error()
		return res
	}
	d.log.Info("message "+cmd+" by the postmaster", "id", id)
	return res
}

func (d *Daemon) delayedEntries(channel string) int {
	snap := d.jc.Snapshot()
	if ci, ok := snap.Channel(channel); ok {
		return ci.Delayed
	}
	return 0
}

// runPoll is how often qm run looks at the channel's state and its transcripts;
// outcomes are streamed as they come.
const runPoll = 200 * time.Millisecond

// runChannel is qm run: every entry of the channel is made ready now, ignoring
// backoff, and the job controller's outcomes for the channel (its D, Q, R and K
// records, in mail.log's layout) are streamed with the dialogue of the connections
// the channel opens, until its work is done or the bound passes.
func (d *Daemon) runChannel(ctx context.Context, req *control.Request, w *control.Writer) {
	if !d.knownChannel(req.Channel, w) {
		return
	}
	ch := req.Channel
	snap := d.jc.Snapshot()
	if ci, ok := snap.Channel(ch); ok && ci.Stopped {
		w.Fail(control.ErrKindUsage, "channel "+ch+" is stopped: qm start it first")
		return
	}
	bound := req.Timeout
	if bound <= 0 {
		bound = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	// Subscribed before anything is made ready, so that no outcome of the run is missed.
	sub := d.jc.Subscribe(ch, jobctl.DefaultOutcomeBuffer)
	defer sub.Close()
	// While the command watches, the channel's SMTP client writes a transcript of
	// each connection it opens, and the command streams it: the product's `qm run`
	// shows the delivery dialogue on the terminal. (A cached connection opened before
	// the run has no transcript; its outcome lines still show.)
	flag := d.runDebug(ch)
	flag.n.Add(1)
	defer flag.n.Add(-1)
	run := &channelRun{
		d: d, w: w, sub: sub,
		dialogue: newDialogueTail(filepath.Join(d.opts.DataDir, "log"), ch+"_master.log-"),
		res:      control.RunResult{Channel: ch},
	}
	d.dropIdleConnections(ch)
	run.res.Made = d.delayedEntries(ch)
	d.jc.RunNow(ch)
	if !run.watch(ctx, bound) {
		return // the client went away
	}
	if lost := sub.Lost(); lost > 0 {
		run.res.Lost = lost
		d.log.Warn("qm run fell behind; outcomes not shown", "channel", ch, "lost", lost)
	}
	w.Result(run.res, "")
}

// channelRun is one qm run's streaming state.
type channelRun struct {
	d        *Daemon
	w        *control.Writer
	sub      *jobctl.Subscription
	dialogue *dialogueTail
	res      control.RunResult
}

// watch streams until the channel's work is done, the client goes away (false)
// or ctx ends, and sets res.Reason and res.Left.
func (r *channelRun) watch(ctx context.Context, bound time.Duration) bool {
	tick := time.NewTicker(runPoll)
	defer tick.Stop()
	idleSince := time.Now()
	for {
		if !r.stream(nil) {
			return false
		}
		if reason := r.workDone(&idleSince); reason != "" {
			// Every outcome of the finished work was published before the work
			// left the schedule's active state: what is buffered is all of it.
			r.res.Reason = reason
			return r.stream(nil)
		}
		if !r.streamUntil(tick.C, ctx.Done()) {
			return false
		}
		if ctx.Err() != nil {
			if ctx.Err() == context.DeadlineExceeded {
				r.res.Reason = fmt.Sprintf("stopped watching after %s; delivery goes on", bound)
			} else {
				r.res.Reason = "interrupted"
			}
			return r.stream(nil)
		}
	}
}

// streamUntil streams outcomes as they come until next or done fires. It returns
// false when the client went away.
func (r *channelRun) streamUntil(next <-chan time.Time, done <-chan struct{}) bool {
	for {
		select {
		case o := <-r.sub.Outcomes():
			if !r.stream(&o) {
				return false
			}
		case <-next:
			return true
		case <-done:
			return true
		}
	}
}

// workDone tells why watching may stop ("" to go on): nothing of the channel is
// ready or being delivered, or no job has run for it for a while. It sets res.Left.
func (r *channelRun) workDone(idleSince *time.Time) string {
	ch := r.res.Channel
	snap := r.d.jc.Snapshot()
	ci, _ := snap.Channel(ch)
	inFlight := 0
	for _, j := range snap.Jobs {
		if j.Channel == ch {
			inFlight++
		}
	}
	r.res.Left = ci.Ready + ci.Delayed + ci.Active
	if ci.Ready == 0 && ci.Active == 0 && inFlight == 0 {
		return "no work left that can be attempted now"
	}
	if ci.Jobs > 0 || inFlight > 0 {
		*idleSince = time.Now()
	} else if time.Since(*idleSince) > 2*time.Second {
		return "no job runs for the channel (no delivery program, or its pool is full)"
	}
	return ""
}

// stream sends the new dialogue lines, then first (when not nil) and every outcome
// already buffered, as mail.log lines, counting them. It returns false when the
// client went away.
func (r *channelRun) stream(first *jobctl.Outcome) bool {
	for _, line := range r.dialogue.read() {
		if r.w.Event("  "+line) != nil {
			return false
		}
	}
	if first != nil && !r.send(*first) {
		return false
	}
	for {
		select {
		case o := <-r.sub.Outcomes():
			if !r.send(o) {
				return false
			}
		default:
			return true
		}
	}
}

// send streams one outcome and counts it; qm run shows deliveries, requeues and
// returns, not delay notices or the postmaster's holds.
func (r *channelRun) send(o jobctl.Outcome) bool {
	switch o.Code {
	case maillog.CodeDelivered:
		r.res.Delivered++
	case maillog.CodeRequeued:
		r.res.Requeued++
	case maillog.CodeReturned, maillog.CodeReturnedNoNotice:
		r.res.Returned++
	default:
		return true
	}
	return r.w.Event(r.d.mlog.Line(o.Record)) == nil
}

// dropIdleConnections makes a channel's program forget its cached connections, so
// that what qm run attempts goes over connections whose dialogue it can show.
func (d *Daemon) dropIdleConnections(channel string) {
	d.progMu.Lock()
	e, ok := d.progs[channel]
	d.progMu.Unlock()
	if p, isSMTP := e.prog.(interface{ DropIdle() }); ok && isSMTP {
		p.DropIdle()
	}
}

// dialogueTail follows the transcripts (prefix*) that appear in dir after it was
// made: the connections opened while a qm run watches.
type dialogueTail struct {
	dir, prefix string
	old         map[string]bool
	tails       map[string]*logTail
	order       []string
}

func newDialogueTail(dir, prefix string) *dialogueTail {
	t := &dialogueTail{dir: dir, prefix: prefix, old: map[string]bool{}, tails: map[string]*logTail{}}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		t.old[e.Name()] = true
	}
	return t
}

func (t *dialogueTail) read() []string {
	ents, _ := os.ReadDir(t.dir)
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, t.prefix) && !t.old[n] && t.tails[n] == nil {
			t.tails[n] = &logTail{path: filepath.Join(t.dir, n)}
			t.order = append(t.order, n)
		}
	}
	var lines []string
	for _, n := range t.order {
		lines = append(lines, t.tails[n].read()...)
	}
	return lines
}

// logTail reads the lines appended to a file since the last read (from its start
// the first time): one debug transcript.
type logTail struct {
	path string
	off  int64
	part string
}

func (t *logTail) read() []string {
	f, err := os.Open(t.path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() < t.off {
		t.off, t.part = 0, "" // rotated or truncated
	}
	if _, err := f.Seek(t.off, io.SeekStart); err != nil {
		return nil
	}
	var lines []string
	r := bufio.NewReader(f)
	for {
		s, err := r.ReadString('\n')
		t.off += int64(len(s))
		if err != nil {
			t.part += s
			return lines
		}
		lines = append(lines, strings.TrimRight(t.part+s, "\n"))
		t.part = ""
	}
}
