package jobctl

import (
	"slices"
	"time"

	"mtad.dev/mta/maillog"
	"mtad.dev/mta/queue"
)

// Snapshot is the controller's state for mtactl qm (messages, jobs, counters).
type Snapshot struct {
	Time     time.Time
	Channels []ChannelInfo // sorted by name
	Jobs     []JobInfo     // jobs working on a message, sorted by channel, host
}

// ChannelInfo describes one channel. Counts are of queue entries (one message's
// recipients for one host), as qm reports "messages".
type ChannelInfo struct {
	Name       string
	Ready      int // eligible now (including those of backed-off hosts)
	Delayed    int // waiting for a retry time or a delivery window
	Active     int // being delivered or returned
	Recipients int
	Oldest     time.Time // arrival of the oldest message; zero when empty
	Jobs       int
	IdleJobs   int
	Stopped    bool
	Pool       string
	Hosts      []HostInfo // sorted by name
	Counters   Counters
}

// HostInfo describes one destination host of a channel.
type HostInfo struct {
	Host         string
	Queued       int // entries in any state
	Ready        int
	Oldest       time.Time
	LastError    string
	BackoffUntil time.Time // zero unless the host is backed off as a whole
	Jobs         int
}

// JobInfo is one job and the message it works on.
type JobInfo struct {
	Channel string
	Host    string
	ID      string
	Since   time.Time
}

// Snapshot returns a consistent copy of the controller's state. It walks the
// whole index while holding the controller's lock, so jobs wait meanwhile: meant
// for administration, not for a hot path, and not for a million queued messages.
func (c *Controller) Snapshot() Snapshot { return c.snapshot(true) }

// JobsSnapshot is Snapshot without the walk of the index: the channels' jobs,
// pools, stop state, counters and hosts (jobs, ready entries, last error,
// backoff), and the jobs. The per-channel Ready, Delayed, Active, Recipients and
// Oldest and the hosts' Queued and Oldest are left zero. Its cost does not grow
// with the queue, so mtactl process, jobs and counters stay instant at a million
// queued messages.
func (c *Controller) JobsSnapshot() Snapshot { return c.snapshot(false) }

func (c *Controller) snapshot(walk bool) Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Snapshot{Time: c.now()}
	type hostAgg struct {
		queued int
		oldest int64
	}
	agg := map[*hostQ]*hostAgg{}
	info := map[*chanState]*ChannelInfo{}
	for _, ch := range c.chans {
		ci := &ChannelInfo{Name: ch.name, Jobs: ch.jobs, IdleJobs: ch.idle, Stopped: ch.stopped, Counters: ch.ctr}
		if ch.pool != nil {
			ci.Pool = ch.pool.name
		}
		info[ch] = ci
	}
	for _, m := range c.msgs {
		if !walk {
			break
		}
		c.countReportLocked(info, m)
		for _, it := range m.items {
			ci := info[it.h.ch]
			switch it.state {
			case stReady:
				ci.Ready++
			case stDelayed:
				ci.Delayed++
			default:
				ci.Active++
			}
			ci.Recipients += len(it.rcpts)
			arr := time.Unix(0, m.arrival)
			if ci.Oldest.IsZero() || arr.Before(ci.Oldest) {
				ci.Oldest = arr
			}
			a := agg[it.h]
			if a == nil {
				a = &hostAgg{oldest: m.arrival}
				agg[it.h] = a
			}
			a.queued++
			a.oldest = min(a.oldest, m.arrival)
		}
	}
	if walk {
		for _, m := range c.reporting {
			c.countReportLocked(info, m)
		}
	}
	for ch, ci := range info {
		for _, h := range ch.hosts {
			hi := HostInfo{Host: h.name, Ready: h.nready, LastError: h.lastErr, Jobs: h.active}
			if a := agg[h]; a != nil {
				hi.Queued, hi.Oldest = a.queued, time.Unix(0, a.oldest)
			}
			if h.blocked() {
				hi.BackoffUntil = time.Unix(0, h.until)
			}
			ci.Hosts = append(ci.Hosts, hi)
		}
		slices.SortFunc(ci.Hosts, func(a, b HostInfo) int { return compareStrings(a.Host, b.Host) })
		s.Channels = append(s.Channels, *ci)
	}
	slices.SortFunc(s.Channels, func(a, b ChannelInfo) int { return compareStrings(a.Name, b.Name) })
	for j := range c.jobs {
		if j.id != "" {
			s.Jobs = append(s.Jobs, JobInfo{Channel: j.ch.name, Host: j.host, ID: j.id, Since: j.since})
		}
	}
	slices.SortFunc(s.Jobs, func(a, b JobInfo) int {
		if a.Channel != b.Channel {
			return compareStrings(a.Channel, b.Channel)
		}
		if a.Host != b.Host {
			return compareStrings(a.Host, b.Host)
		}
		return compareStrings(a.ID, b.ID)
	})
	return s
}

// countReportLocked counts every recipient m's report holds or is sending as
// active work of its channel: its outcome is not logged (or published) before
// the report is sent, and a subscriber that sees its channel's work done must
// have every outcome of it (qm run).
func (c *Controller) countReportLocked(info map[*chanState]*ChannelInfo, m *msg) {
	m.rep.forEach(func(r noticeRcpt) {
		if ci := info[c.chans[r.channel]]; ci != nil {
			ci.Active++
		}
	})
}

// Channel returns one channel's info from a snapshot (ok false when absent).
func (s *Snapshot) Channel(name string) (ChannelInfo, bool) {
	for _, c := range s.Channels {
		if c.Name == name {
			return c, true
		}
	}
	return ChannelInfo{}, false
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// chanCounts are one channel's totals over the index, kept current as items come
// and go so that qm summarize reads a few numbers per channel instead of walking a
// million messages while holding c.mu (which would stall every job meanwhile).
type chanCounts struct {
	msgs   int   // messages with at least one item in the channel
	rcpts  int   // recipients of those items
	size   int64 // sum of those messages' sizes
	blocks int64 // and of their sizes in blocks
	// arrivals orders the channel's items by their message's arrival: its head is
	// the oldest message. Most items leave from the head (the queue drains in
	// arrival order), so keeping it costs O(log n) per item, not a scan.
	arrivals minHeap[*arrivalElem]
}

// arrivalElem is an item seen by its channel's arrival heap (its own key and index).
type arrivalElem item

func (a *arrivalElem) heapKey() int64   { return a.m.arrival }
func (a *arrivalElem) setHeapIdx(i int) { a.aidx = int32(i) }

// sameChan reports whether another item of its message is in the same channel.
func sameChan(it *item) bool {
	for _, x := range it.m.items {
		if x != it && x.h.ch == it.h.ch {
			return true
		}
	}
	return false
}

// countMsgLocked adds a message that entered the index to its channels' totals.
func (c *Controller) countMsgLocked(m *msg) {
	c.qsize += m.size
	c.qblocks += maillog.Blocks(m.size)
	for i, it := range m.items {
		q := &it.h.ch.q
		q.rcpts += len(it.rcpts)
		q.arrivals.push((*arrivalElem)(it))
		if !slices.ContainsFunc(m.items[:i], func(x *item) bool { return x.h.ch == it.h.ch }) {
			q.msgs++
			q.size += m.size
			q.blocks += maillog.Blocks(m.size)
		}
	}
}

// uncountItemLocked takes an item that just left its message's items out of its
// channel's totals.
func (c *Controller) uncountItemLocked(it *item) {
	q := &it.h.ch.q
	q.rcpts -= len(it.rcpts)
	if it.aidx >= 0 {
		q.arrivals.remove(int(it.aidx))
	}
	if !sameChan(it) {
		q.msgs--
		q.size -= it.m.size
		q.blocks -= maillog.Blocks(it.m.size)
	}
}

// uncountMsgLocked takes a message that leaves the index out of the totals.
func (c *Controller) uncountMsgLocked(m *msg) {
	c.qsize -= m.size
	c.qblocks -= maillog.Blocks(m.size)
}

// setItemRcpts replaces an item's recipients (those still pending after an
// attempt), keeping its channel's recipient count right.
func (c *Controller) setItemRcpts(it *item, rcpts []int32) {
	if it.aidx >= 0 { // counted: still in its message's items
		it.h.ch.q.rcpts += len(rcpts) - len(it.rcpts)
	}
	it.rcpts = rcpts
}

// heldMsg is what qm summarize needs of a held message: held messages are not in
// the index, and a walk of the queue to find the few of them is what summarize
// must not do.
type heldMsg struct {
	arrival int64
	size    int64
	chans   []heldChan
}

type heldChan struct {
	name  string
	rcpts int // pending recipients for the channel
}

func (c *Controller) recordHeldLocked(e *queue.Envelope) {
	h := &heldMsg{arrival: e.Arrival.UnixNano(), size: e.Size}
	if e.Arrival.IsZero() {
		h.arrival = 0
	}
	for _, r := range e.Rcpts {
		if r.State != queue.Pending || r.Channel == "" {
			continue
		}
		k := slices.IndexFunc(h.chans, func(x heldChan) bool { return x.name == r.Channel })
		if k < 0 {
			h.chans = append(h.chans, heldChan{name: r.Channel})
			k = len(h.chans) - 1
		}
		h.chans[k].rcpts++
	}
	if len(h.chans) > 0 {
		c.held[e.ID] = h
	}
}

// NoteHeld records that a message was put on hold (qm hold) after Remove took it
// out of the schedule, so that the totals count it as held. A message still in
// the index (an attempt was in flight and Remove gave up) is left counted as
// queued: it is still scheduled.
func (c *Controller) NoteHeld(e *queue.Envelope) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e == nil || c.msgs[e.ID] != nil {
		return
	}
	c.recordHeldLocked(e)
}

// Counts are totals over a set of messages.
type Counts struct {
	Messages   int
	Recipients int // pending recipients
	Size       int64
	Blocks     int64     // sum of each message's size in blocks (maillog.Blocks)
	Oldest     time.Time // arrival of the oldest; zero when empty
}

// Add adds o's totals to n's; the oldest of the two stays.
func (n *Counts) Add(o Counts) {
	n.Messages += o.Messages
	n.Recipients += o.Recipients
	n.Size += o.Size
	n.Blocks += o.Blocks
	if !o.Oldest.IsZero() && (n.Oldest.IsZero() || o.Oldest.Before(n.Oldest)) {
		n.Oldest = o.Oldest
	}
}

// ChannelTotals are one channel's totals: messages with a pending recipient for
// the channel, scheduled (Queued) and held apart.
type ChannelTotals struct {
	Name   string
	Queued Counts
	Held   Counts
}

// QueueTotals answers qm summarize from the index.
type QueueTotals struct {
	// Complete is false until Run's start-up walk of the queue has finished (or when
	// it failed): until then the index does not cover the whole queue.
	Complete bool
	Channels []ChannelTotals // channels with queued or held mail, sorted by name
	Total    ChannelTotals   // every message counted once
}

// Totals returns the index's per-channel totals. Its cost does not grow with
// the number of queued messages (only with the number of held ones): the counts
// are kept as messages come and go.
func (c *Controller) Totals() QueueTotals {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.totalsLocked()
}

func (c *Controller) totalsLocked() QueueTotals {
	t := QueueTotals{Complete: c.loaded}
	by := map[string]*ChannelTotals{}
	get := func(name string) *ChannelTotals {
		ct := by[name]
		if ct == nil {
			ct = &ChannelTotals{Name: name}
			by[name] = ct
		}
		return ct
	}
	for name, ch := range c.chans {
		q := &ch.q
		if q.msgs == 0 {
			continue
		}
		cnt := Counts{Messages: q.msgs, Recipients: q.rcpts, Size: q.size, Blocks: q.blocks}
		if q.arrivals.len() > 0 {
			cnt.Oldest = time.Unix(0, q.arrivals.min().m.arrival)
		}
		get(name).Queued = cnt
		t.Total.Queued.Recipients += q.rcpts
		t.Total.Queued.Add(Counts{Oldest: cnt.Oldest})
	}
	t.Total.Queued.Messages = len(c.msgs)
	t.Total.Queued.Size, t.Total.Queued.Blocks = c.qsize, c.qblocks
	for _, h := range c.held {
		var arr time.Time
		if h.arrival != 0 {
			arr = time.Unix(0, h.arrival)
		}
		blocks := maillog.Blocks(h.size)
		rcpts := 0
		for _, hc := range h.chans {
			get(hc.name).Held.Add(Counts{Messages: 1, Recipients: hc.rcpts, Size: h.size, Blocks: blocks, Oldest: arr})
			rcpts += hc.rcpts
		}
		t.Total.Held.Add(Counts{Messages: 1, Recipients: rcpts, Size: h.size, Blocks: blocks, Oldest: arr})
	}
	t.Total.Name = "total"
	for _, ct := range by {
		t.Channels = append(t.Channels, *ct)
	}
	slices.SortFunc(t.Channels, func(a, b ChannelTotals) int { return compareStrings(a.Name, b.Name) })
	return t
}
