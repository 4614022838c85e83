package jobctl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/queue"
)

// Controller is the job controller. Create it with New, feed it with Add, run it
// with Run. All methods are safe for concurrent use.
type Controller struct {
	q     Queue
	clock Clock
	hold  *HoldList
	mlog  *maillog.Logger
	log   *slog.Logger
	err   error       // from New, returned by Run
	subs  subscribers // who receives the outcomes in process (subscribe.go)

	mu      sync.Mutex
	cfg     Config
	msgs    map[string]*msg
	chans   map[string]*chanState
	pools   map[string]*poolState
	delayed minHeap[*item]
	hostsH  minHeap[*hostQ]
	noticeH minHeap[*msg]
	reportH minHeap[*msgReport] // held reports by deadline (reports.go)
	// reporting are messages with no work left whose report is still held or
	// being sent, by id (reports.go).
	reporting map[string]*msg
	jobs      map[*job]struct{}
	seq       uint64
	held      map[string]*heldMsg // held messages, for qm summarize (snapshot.go)
	qsize     int64               // sum of the indexed messages' sizes
	qblocks   int64               // and of their sizes in blocks
	loaded    bool                // Run's start-up walk of the queue finished
	loadDone  chan struct{}       // closed when that walk ends, whatever its outcome

	started  bool
	stopping bool
	stopCh   chan struct{} // closed when Run's context ends
	poke     chan struct{} // wakes Run when a heap head may have moved earlier
	wg       sync.WaitGroup
	moves    atomic.Int64    // Requeue's marks not yet committed (WaitMoves)
	dctx     context.Context // deliveries; cancelled ShutdownGrace after stop
}

type chanState struct {
	name   string
	cfg    Channel
	prog   channels.Program
	pool   *poolState // nil: no pool limit
	poolOK bool       // false: the channel names an unknown pool; it starts no jobs
	hosts  map[string]*hostQ
	ring   fifo[*hostQ] // hosts with eligible ready work, round-robin

	nready   int // ready items
	nblocked int // ready items of backed-off hosts
	jobs     int
	idle     int
	stopped  bool
	wake     chan struct{} // closed (and replaced) when work becomes ready
	ctr      Counters
	q        chanCounts // the index's totals for this channel (snapshot.go)
	received int64      // recipients of new and released messages (admin.go)
	warned   bool
}

type poolState struct {
	name    string
	limit   int
	running int
	idle    int
	reclaim chan struct{} // closed (and replaced) to make idle jobs give their slot back
}

type job struct {
	ch    *chanState
	pool  *poolState
	prog  channels.Program
	host  string
	id    string
	since time.Time
	taken int // items taken so far
}

// Counters are a channel's totals since start, per recipient.
type Counters struct {
	Delivered int64
	Requeued  int64
	Returned  int64
	Held      int64 // held messages seen (not scheduled)
}

// New builds a controller. The hold list is loaded here; an error loading it is
// reported by Run (and logged).
func New(cfg Config) *Controller {
	c := &Controller{
		msgs:      map[string]*msg{},
		reporting: map[string]*msg{},
		chans:     map[string]*chanState{},
		pools:     map[string]*poolState{},
		jobs:      map[*job]struct{}{},
		held:      map[string]*heldMsg{},
		loadDone:  make(chan struct{}),
		stopCh:    make(chan struct{}),
		poke:      make(chan struct{}, 1),
		dctx:      context.Background(),
	}
	c.cfg = cfg.withDefaults()
	c.q = c.cfg.Queue
	c.clock = c.cfg.Clock
	c.log = c.cfg.Logger
	c.mlog = c.cfg.MailLog
	hold, err := OpenHoldList(c.cfg.HoldList)
	if err != nil {
		c.err = fmt.Errorf("jobctl: %w", err)
		c.log.Error("hold list unreadable; no channel is considered stopped", "path", c.cfg.HoldList, "err", err)
		hold, _ = OpenHoldList("")
	}
	c.hold = hold
	c.applyConfigLocked()
	return c
}

// SetConfig replaces channel settings, pools and programs at run time (hot
// reload). Running jobs are not killed: a job finishes its message and exits if
// its channel or pool is now over its limit; new limits apply to new jobs at once.
// Queue, Clock, HoldList, MailLog and Logger are fixed at New and ignored here.
func (c *Controller) SetConfig(cfg Config) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := cfg.withDefaults()
	n.Queue, n.Clock, n.HoldList = c.cfg.Queue, c.cfg.Clock, c.cfg.HoldList
	n.MailLog, n.Logger = c.cfg.MailLog, c.cfg.Logger
	c.cfg = n
	c.applyConfigLocked()
	c.kickLocked()
}

func (c *Controller) applyConfigLocked() {
	pools := map[string]*poolState{}
	for name, limit := range c.cfg.Pools {
		p := c.pools[name]
		if p == nil {
			p = &poolState{name: name, reclaim: make(chan struct{})}
		}
		p.limit = limit
		pools[name] = p
	}
	// Pools that disappeared keep existing for the jobs that hold them.
	c.pools = pools
	for _, ch := range c.chans {
		c.configureChan(ch)
	}
	for name := range c.cfg.Programs {
		c.chanLocked(name)
	}
	for name := range c.cfg.Channels {
		if name != "" && name[len(name)-1] != '*' {
			c.chanLocked(name)
		}
	}
}

func (c *Controller) configureChan(ch *chanState) {
	ch.cfg = c.cfg.channel(ch.name)
	ch.prog = c.cfg.Programs[ch.name]
	ch.stopped = c.hold.Stopped(ch.name)
	ch.pool, ch.poolOK = nil, true
	if len(c.cfg.Pools) > 0 {
		name := ch.cfg.Pool
		if name == "" {
			name = c.cfg.DefaultPool
		}
		ch.pool = c.pools[name]
		if ch.pool == nil {
			ch.poolOK = false
			c.log.Warn("channel names an unknown pool; its mail stays queued", "channel", ch.name, "pool", name)
		}
	}
	for _, h := range ch.hosts {
		c.ringAdd(h)
	}
}

// chanLocked returns the state of a channel, creating it.
func (c *Controller) chanLocked(name string) *chanState {
	ch := c.chans[name]
	if ch == nil {
		ch = &chanState{name: name, hosts: map[string]*hostQ{}, wake: make(chan struct{})}
		c.chans[name] = ch
		c.configureChan(ch)
	}
	return ch
}

func (c *Controller) now() time.Time { return c.clock.Now() }

// Add indexes envelopes that became durable and deliverable (queue OnCommit, and
// Run's initial walk). Held messages are counted, not scheduled; an id already
// indexed is ignored. Add does not retain envs.
func (c *Controller) Add(envs []*queue.Envelope) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now().UnixNano()
	for _, e := range envs {
		c.countReceivedLocked(e)
		c.addLocked(e, now)
	}
	c.kickLocked()
	c.pokeRun()
}

func (c *Controller) addLocked(e *queue.Envelope, now int64) {
	if e == nil || c.msgs[e.ID] != nil {
		return
	}
	if e.Held {
		if c.held[e.ID] != nil {
			return
		}
		c.recordHeldLocked(e)
		seen := map[string]bool{}
		for _, r := range e.Rcpts {
			if r.State == queue.Pending && r.Channel != "" && !seen[r.Channel] {
				seen[r.Channel] = true
				c.chanLocked(r.Channel).ctr.Held++
			}
		}
		return
	}
	delete(c.held, e.ID) // released
	var reported map[int]bool
	if old := c.reporting[e.ID]; old != nil {
		// Settled recipients still waiting for their report (reports.go) are
		// Pending on disk: they must not be tried again.
		reported = old.rep.reported()
	}
	m := &msg{id: e.ID, arrival: e.Arrival.UnixNano(), size: e.Size, nidx: -1, notices: int16(e.Notices), class: ClassOf(e.Priority)}
	if e.Arrival.IsZero() {
		m.arrival = now
	}
	for i, r := range e.Rcpts {
		if r.State != queue.Pending || r.Channel == "" || reported[i] {
			continue
		}
		ch := c.chanLocked(r.Channel)
		var it *item
		for _, x := range m.items {
			if x.h.ch == ch && x.h.name == r.Host {
				it = x
				break
			}
		}
		at := int64(0)
		if !r.NextAttempt.IsZero() {
			at = r.NextAttempt.UnixNano()
		}
		if it == nil {
			h := ch.hosts[r.Host]
			if h == nil {
				h = &hostQ{name: r.Host, ch: ch, hidx: -1}
				ch.hosts[r.Host] = h
			}
			h.count++
			it = &item{m: m, h: h, at: at, hidx: -1, aidx: -1, state: stGone}
			m.items = append(m.items, it)
		} else if at < it.at {
			// Recipients of one item are attempted together: the earliest wins.
			it.at = at
		}
		it.rcpts = append(it.rcpts, int32(i))
	}
	if len(m.items) == 0 {
		return
	}
	m.sched = m.items[0].h.ch.cfg.notices()
	c.msgs[m.id] = m
	c.countMsgLocked(m)
	for _, it := range m.items {
		if it.at > now {
			c.delayLocked(it, it.at)
		} else {
			c.makeReady(it)
		}
	}
	c.scheduleNotice(m)
}

func (c *Controller) scheduleNotice(m *msg) {
	k := int(m.notices)
	if k >= len(m.sched) {
		k = len(m.sched) - 1
	}
	m.nat = m.arrival + int64(m.sched[k])*int64(c.cfg.NoticeUnit)
	if m.nidx >= 0 {
		c.noticeH.fix(int(m.nidx))
	} else {
		c.noticeH.push(m)
	}
}

func (c *Controller) pokeRun() {
	select {
	case c.poke <- struct{}{}:
	default:
	}
}

// makeReady puts an item in its host's ready FIFO.
func (c *Controller) makeReady(it *item) {
	it.state = stReady
	h := it.h
	h.ready[it.m.class].push(it)
	h.nready++
	h.ch.nready++
	if h.blocked() {
		h.ch.nblocked++
	} else {
		c.ringAdd(h)
	}
	h.ch.signal()
}

func (c *Controller) delayLocked(it *item, at int64) {
	it.state = stDelayed
	it.at = at
	if it.hidx >= 0 {
		c.delayed.fix(int(it.hidx))
	} else {
		c.delayed.push(it)
	}
	c.pokeRun()
}

// unindex takes an item out of the ready FIFO (lazily) or the delayed heap.
func (c *Controller) unindex(it *item) {
	switch it.state {
	case stReady:
		h := it.h
		h.nready--
		h.ch.nready--
		if h.blocked() {
			h.ch.nblocked--
		}
	case stDelayed:
		if it.hidx >= 0 {
			c.delayed.remove(int(it.hidx))
		}
	}
	it.state = stActive
}

// dropItem forgets an item whose recipients are all done.
func (c *Controller) dropItem(it *item) {
	if it.state == stReady || it.state == stDelayed {
		c.unindex(it)
	}
	it.state = stGone
	m := it.m
	if i := slices.Index(m.items, it); i >= 0 {
		m.items = slices.Delete(m.items, i, i+1)
		c.uncountItemLocked(it)
	}
	it.h.count--
	c.maybeDropHost(it.h)
	c.forgetMsgIfDoneLocked(m)
}

// forgetMsgIfDoneLocked takes a message out of the index once no item of it is
// left. One whose report is still held or being sent waits aside (reporting)
// until the report is sent: the operator's actions wait for it (Remove).
func (c *Controller) forgetMsgIfDoneLocked(m *msg) {
	if len(m.items) > 0 {
		return
	}
	if c.msgs[m.id] == m {
		c.uncountMsgLocked(m)
		delete(c.msgs, m.id)
		if m.nidx >= 0 {
			c.noticeH.remove(int(m.nidx))
		}
	}
	if m.rep.pending() {
		c.reporting[m.id] = m
	} else if c.reporting[m.id] == m {
		delete(c.reporting, m.id)
	}
}

func (c *Controller) maybeDropHost(h *hostQ) {
	if h.count == 0 && h.active == 0 && h.hidx < 0 && !h.inRing && h.ch.hosts[h.name] == h {
		delete(h.ch.hosts, h.name)
	}
}

func (c *Controller) hostLimit(h *hostQ) int {
	if h.suspect {
		return 1
	}
	limit := h.ch.cfg.maxJobs()
	if n := h.ch.cfg.HostJobs; n > 0 {
		limit = n
	}
	w := h.window
	if w <= 0 {
		w = initialHostWindow
	}
	return min(w, limit)
}

// stuckAfter is how long one delivery attempt may run before its job stops counting
// towards the channel's threaddepth arithmetic.
const stuckAfter = 500 * time.Millisecond

// stuckJobs counts the channel's jobs whose current attempt started over stuckAfter
// ago. Jobs are few (pool limits), so a scan is cheap.
func (c *Controller) stuckJobs(ch *chanState) int {
	n := 0
	now := c.now()
	for j := range c.jobs {
		if j.ch == ch && j.id != "" && now.Sub(j.since) > stuckAfter {
			n++
		}
	}
	return n
}

// initialHostWindow is how many jobs a host gets before it has answered once.
const initialHostWindow = 2

// hostAnswered widens a host's concurrency window after an attempt it answered
// (delivered, or refused per recipient: the host is alive either way).
func (c *Controller) hostAnswered(h *hostQ) {
	w := max(h.window, initialHostWindow)
	if w < h.ch.cfg.maxJobs() {
		w++
	}
	h.window = w
}

// ringAdd puts a host in its channel's round-robin when it has work a job may take.
func (c *Controller) ringAdd(h *hostQ) {
	if !h.inRing && !h.blocked() && h.nready > 0 && h.active < c.hostLimit(h) {
		h.inRing = true
		h.ch.ring.push(h)
		h.ch.signal()
	}
}

func (ch *chanState) signal() {
	if ch.idle > 0 {
		close(ch.wake)
		ch.wake = make(chan struct{})
	}
}

// blockHost backs a host off as a whole: its ready items wait with it.
func (c *Controller) blockHost(h *hostQ, until int64) {
	if !h.blocked() {
		h.ch.nblocked += h.nready
	}
	if until > h.until {
		h.until = until
	}
	if h.hidx >= 0 {
		c.hostsH.fix(int(h.hidx))
	} else {
		c.hostsH.push(h)
	}
	c.pokeRun()
}

func (c *Controller) unblockHost(h *hostQ) {
	if h.hidx >= 0 {
		c.hostsH.remove(int(h.hidx))
	}
	if h.blocked() {
		h.ch.nblocked -= h.nready
		h.until = 0
	}
	c.ringAdd(h)
	c.maybeDropHost(h)
}

// take gives a job the next item of a channel: hosts in round-robin, within a host
// urgent before normal before nonurgent, FIFO inside a class. Items whose class
// is outside its delivery window are parked until it opens.
func (c *Controller) take(ch *chanState, now time.Time) *item {
	for ch.ring.len() > 0 {
		h := ch.ring.pop()
		h.inRing = false
		if h.blocked() || h.active >= c.hostLimit(h) || ch.hosts[h.name] != h {
			continue
		}
		it := c.popReady(h, now)
		if it == nil {
			c.maybeDropHost(h)
			continue
		}
		h.active++
		c.ringAdd(h)
		return it
	}
	return nil
}

func (c *Controller) popReady(h *hostQ, now time.Time) *item {
	for cl := range h.ready {
		q := &h.ready[cl]
		w := h.ch.cfg.Windows[cl]
		for q.len() > 0 {
			it := q.pop()
			if it.state != stReady || it.h != h {
				continue // lazily removed
			}
			c.unindex(it)
			if !w.Open(now) {
				c.delayLocked(it, w.NextOpen(now).UnixNano())
				c.wakeReportLocked(it.m)
				continue
			}
			return it
		}
	}
	return nil
}

// kickLocked starts the jobs the ready backlog asks for, within the limits:
// one job per ThreadDepth ready items, at most MaxJobs per channel, at most the
// pool's job_limit across its channels.
func (c *Controller) kickLocked() {
	if !c.started || c.stopping {
		return
	}
	for _, ch := range c.chans {
		c.kickChan(ch)
	}
}

func (c *Controller) kickChan(ch *chanState) {
	{
		if ch.stopped || ch.prog == nil || !ch.poolOK {
			if ch.prog == nil && !ch.warned && ch.nready > 0 {
				ch.warned = true
				c.log.Warn("no delivery program for channel; its mail stays queued", "channel", ch.name)
			}
			return
		}
		backlog := ch.nready - ch.nblocked
		if backlog <= 0 || ch.ring.len() == 0 {
			return // nothing a new job could take (hosts at their window wait)
		}
		td := ch.cfg.threadDepth()
		// threaddepth decides how many jobs the backlog deserves; a job stuck for
		// long on one attempt (a host that accepts and never answers) does not serve
		// that backlog, so it does not count against it.
		want := min((backlog+td-1)/td+c.stuckJobs(ch), ch.cfg.maxJobs())
		for ch.jobs < want {
			if p := ch.pool; p != nil && p.running >= p.limit {
				if p.idle > 0 {
					close(p.reclaim)
					p.reclaim = make(chan struct{})
				}
				break
			}
			c.startJob(ch)
		}
	}
}

func (c *Controller) startJob(ch *chanState) {
	j := &job{ch: ch, pool: ch.pool}
	ch.jobs++
	if j.pool != nil {
		j.pool.running++
	}
	c.jobs[j] = struct{}{}
	c.wg.Add(1)
	go c.runJob(j)
}

// overLimit reports whether a job should retire because limits were lowered.
func (c *Controller) overLimit(j *job) bool {
	if j.ch.jobs > j.ch.cfg.maxJobs() {
		return true
	}
	if j.pool != nil && (j.pool.running > j.pool.limit || c.pools[j.pool.name] != j.pool) {
		return true
	}
	return c.poolStarved(j) != nil
}

// poolStarved reports whether a job should hand its pool slot over: the pool is
// full and another channel of the pool has eligible work and no job at all.
// Without this a busy channel would keep every slot of a shared pool forever.
func (c *Controller) poolStarved(j *job) *chanState {
	p := j.pool
	if p == nil || p.running < p.limit || j.taken == 0 {
		return nil // a job always does some work before yielding: no ping-pong
	}
	for _, o := range c.chans {
		if o != j.ch && o.pool == p && o.jobs == 0 && !o.stopped && o.prog != nil && o.poolOK && o.nready > o.nblocked {
			return o
		}
	}
	return nil
}

func (c *Controller) runJob(j *job) {
	defer c.wg.Done()
	ch := j.ch
	idle := c.clock.NewTimer(time.Hour)
	idle.Stop()
	reclaimed := false
	c.mu.Lock()
	for !c.stopping && !ch.stopped && !c.overLimit(j) && ch.prog != nil {
		now := c.now()
		it := c.take(ch, now)
		if it == nil {
			if reclaimed {
				break
			}
			wake := ch.wake
			var rc chan struct{}
			if j.pool != nil {
				rc = j.pool.reclaim
				j.pool.idle++
			}
			ch.idle++
			idleTime := c.cfg.IdleTime
			c.mu.Unlock()
			idle.Reset(idleTime)
			select {
			case <-wake:
			case <-rc:
				reclaimed = true
			case <-idle.C():
				reclaimed = true // one more look for work, then exit
			case <-c.stopCh:
			}
			idle.Stop()
			c.mu.Lock()
			ch.idle--
			if j.pool != nil {
				j.pool.idle--
			}
			continue
		}
		reclaimed = false
		j.taken++
		j.prog, j.host, j.id, j.since = ch.prog, it.h.name, it.m.id, now
		c.mu.Unlock()
		c.deliver(j, it)
		c.mu.Lock()
		j.prog, j.host, j.id = nil, "", ""
	}
	starved := c.poolStarved(j)
	ch.jobs--
	if j.pool != nil {
		j.pool.running--
	}
	delete(c.jobs, j)
	if starved != nil && !c.stopping {
		c.startJob(starved) // hand the slot over, not back to the free-for-all
	}
	c.kickLocked()
	c.mu.Unlock()
}

// loadQueue indexes what the queue holds at start. Envelopes are added in small
// batches under one lock each rather than one lock per envelope: a million lock
// handoffs with the SMTP commits and qm contending for the lock are avoidable work
// (the time of this walk is how long summarize waits after a start).
func (c *Controller) loadQueue(ctx context.Context) {
	defer close(c.loadDone)
	began := time.Now()
	if c.q == nil {
		c.mu.Lock()
		c.loaded = true
		c.mu.Unlock()
		return
	}
	const batch = 256
	envs := make([]*queue.Envelope, 0, batch)
	flush := func() {
		c.mu.Lock()
		now := c.now().UnixNano()
		for _, e := range envs {
			c.addLocked(e, now)
		}
		c.kickLocked()
		c.mu.Unlock()
		clear(envs)
		envs = envs[:0]
	}
	err := c.q.Walk(func(e *queue.Envelope) bool {
		envs = append(envs, e)
		if len(envs) == batch {
			flush()
		}
		return ctx.Err() == nil
	})
	flush()
	if err != nil {
		c.log.Error("queue walk failed; only new mail will be scheduled", "err", err)
	}
	c.mu.Lock()
	c.loaded = err == nil && ctx.Err() == nil
	msgs, held := len(c.msgs), len(c.held)
	c.mu.Unlock()
	c.log.Info("queue indexed", "messages", msgs, "held", held, "elapsed", time.Since(began).Round(time.Millisecond))
}

// WaitLoaded waits until Run's start-up walk of the queue has ended (or ctx). It
// reports whether the index then covers the whole queue (the walk succeeded).
func (c *Controller) WaitLoaded(ctx context.Context) bool {
	select {
	case <-c.loadDone:
	case <-ctx.Done():
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loaded
}

// Run loads the queue, then schedules until ctx is cancelled. On cancellation no
// new job starts; running deliveries get ShutdownGrace to finish before their
// context is cancelled; Run returns once every job has recorded its results.
func (c *Controller) Run(ctx context.Context) error {
	if c.err != nil {
		return c.err
	}
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return errors.New("jobctl: Run called twice")
	}
	c.dctx = dctx
	c.started = true
	c.mu.Unlock()

	c.loadQueue(ctx)

	timer := c.clock.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		c.mu.Lock()
		now := c.now()
		due := c.fireDueLocked(now)
		c.kickLocked()
		next := c.nextDeadlineLocked()
		c.mu.Unlock()

		for _, t := range due {
			c.runNotice(ctx, t)
		}
		if len(due) > 0 {
			continue
		}
		timer.Stop()
		if next != 0 {
			d := time.Duration(next - now.UnixNano())
			timer.Reset(max(d, time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return c.shutdown(cancel)
		case <-timer.C():
		case <-c.poke:
		}
	}
}

func (c *Controller) shutdown(cancel context.CancelFunc) error {
	c.mu.Lock()
	c.stopping = true
	close(c.stopCh)
	grace := c.cfg.ShutdownGrace
	c.mu.Unlock()
	done := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(done)
	}()
	t := c.clock.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
		c.flushReports()
		return nil
	case <-t.C():
	}
	c.log.Warn("shutdown grace elapsed; cancelling running deliveries")
	cancel()
	<-done
	c.flushReports()
	return nil
}

func (c *Controller) nextDeadlineLocked() int64 {
	var next int64
	consider := func(t int64) {
		if next == 0 || t < next {
			next = t
		}
	}
	if c.delayed.len() > 0 {
		consider(c.delayed.min().at)
	}
	if c.hostsH.len() > 0 {
		consider(c.hostsH.min().until)
	}
	if c.noticeH.len() > 0 {
		consider(c.noticeH.min().nat)
	}
	if c.reportH.len() > 0 {
		consider(c.reportH.min().by)
	}
	// A job that becomes stuck frees its share of the threaddepth arithmetic: wake
	// up then, so that ready work of other hosts gets a job without waiting for the
	// next enqueue.
	for j := range c.jobs {
		if j.id != "" && j.ch.ring.len() > 0 {
			if t := j.since.Add(stuckAfter + time.Millisecond).UnixNano(); t > c.now().UnixNano() {
				consider(t)
			}
		}
	}
	return next
}

// fireDueLocked moves due delayed items to ready, ends due host backoffs, and
// returns the notice work that is due: reports first, then delays and returns.
func (c *Controller) fireDueLocked(now time.Time) []*noticeTask {
	n := now.UnixNano()
	for c.delayed.len() > 0 && c.delayed.min().at <= n {
		it := c.delayed.remove(0)
		if it.state == stDelayed {
			c.makeReady(it)
		}
	}
	for c.hostsH.len() > 0 && c.hostsH.min().until <= n {
		c.unblockHost(c.hostsH.min())
	}
	var due []*noticeTask
	if !c.stopping {
		due = c.dueReportsLocked(n)
	}
	for c.noticeH.len() > 0 && c.noticeH.min().nat <= n && !c.stopping {
		m := c.noticeH.remove(0)
		if t := c.noticeDueLocked(m, n); t != nil {
			due = append(due, t)
		}
	}
	return due
}

// Stop stops a channel durably (qm stop): its work stays indexed, no job starts,
// running jobs finish their message and exit.
func (c *Controller) Stop(channel string) error {
	if err := c.hold.Stop(channel); err != nil {
		return fmt.Errorf("stop %s: %w", channel, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.chanLocked(channel)
	ch.stopped = c.hold.Stopped(channel)
	close(ch.wake) // idle jobs notice and exit
	ch.wake = make(chan struct{})
	return nil
}

// Start removes a channel from the hold list and starts its jobs at once.
func (c *Controller) Start(channel string) error {
	if err := c.hold.Start(channel); err != nil {
		return fmt.Errorf("start %s: %w", channel, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.chanLocked(channel)
	ch.stopped = c.hold.Stopped(channel)
	c.kickLocked()
	return nil
}

// Stopped lists the stopped channels.
func (c *Controller) Stopped() []string { return c.hold.List() }

// RunNow makes every waiting message of a channel ready now, ignoring backoff and
// host backoff (delivery windows still apply).
func (c *Controller) RunNow(channel string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.chans[channel]
	if ch == nil {
		return
	}
	var move []*item
	for _, it := range c.delayed.s {
		if it.h.ch == ch {
			move = append(move, it)
		}
	}
	for _, it := range move {
		c.delayed.remove(int(it.hidx))
		c.makeReady(it)
	}
	for _, h := range ch.hosts {
		h.suspect = false
		if h.blocked() || h.hidx >= 0 {
			c.unblockHost(h)
		}
	}
	c.kickLocked()
}

// ReloadHoldList re-reads the hold list after another process (mtactl working
// on the file directly) changed it: newly stopped channels stop taking work,
// started ones get jobs at once.
func (c *Controller) ReloadHoldList() error {
	if err := c.hold.Reload(); err != nil {
		return fmt.Errorf("reload hold list: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range c.hold.List() {
		c.chanLocked(name)
	}
	for _, ch := range c.chans {
		was := ch.stopped
		ch.stopped = c.hold.Stopped(ch.name)
		if ch.stopped && !was {
			close(ch.wake)
			ch.wake = make(chan struct{})
		}
	}
	c.kickLocked()
	return nil
}
