package jobctl

// The in-memory index. Everything here is guarded by Controller.mu.
//
// Sizes matter: a million queued messages must fit well under a GiB, so an entry
// holds ids, recipient indexes and times (unix nanoseconds), never envelopes or
// content; a job re-reads the envelope with Queue.Get when it takes the work.

// item states
const (
	stReady   uint8 = iota // in its host's ready FIFO
	stDelayed              // in the delayed heap, waiting for at
	stActive               // taken by a job or the notice processor
	stGone                 // removed; a lazy FIFO slot may still point to it
)

// msg is one queued message: its notice bookkeeping and its work items.
type msg struct {
	id      string
	arrival int64
	size    int64 // Envelope.Size, for qm summarize's totals
	nat     int64 // next notice event (delay or return)
	nidx    int32 // index in the notice heap, -1 when absent
	notices int16 // delay notices already sent (Envelope.Notices)
	class   Class
	expired bool  // the last notice age passed while work was active
	sched   []int // notices ages of the channel that schedules this message
	items   []*item
	rep     *msgReport // recipients waiting for the message's next report; nil: none (reports.go)
}

func (m *msg) heapKey() int64     { return m.nat }
func (m *msg) setHeapIdx(i int)   { m.nidx = int32(i) }
func (it *item) heapKey() int64   { return it.at }
func (it *item) setHeapIdx(i int) { it.hidx = int32(i) }
func (h *hostQ) heapKey() int64   { return h.until }
func (h *hostQ) setHeapIdx(i int) { h.hidx = int32(i) }

// item is the recipients of one message going to one host of one channel: the
// unit a job takes.
type item struct {
	m     *msg
	h     *hostQ
	rcpts []int32 // indexes into Envelope.Rcpts
	at    int64   // next attempt
	hidx  int32   // index in the delayed heap, -1 when absent
	aidx  int32   // index in its channel's arrival heap (chanCounts), -1 when absent
	state uint8
	// recording: the attempt has ended and its job is recording the results
	// (record, until reschedule). The item is still active, but a report of its
	// message no longer waits for it (awaitedLocked).
	recording bool
}

// hostQ is one destination host of one channel.
type hostQ struct {
	name    string
	ch      *chanState
	ready   [3]fifo[*item] // by class, urgent first
	nready  int            // items in ready (not counting lazily removed ones)
	count   int            // every item of this host, whatever its state
	active  int            // jobs working on this host
	until   int64          // backed off as a whole until then (0: not)
	hidx    int32          // index in the host heap, -1 when absent
	inRing  bool
	suspect bool // last connection-level attempt failed: probe with one job
	// window is how many jobs may work on this host at once (0: initialHostWindow).
	// It grows by one each time the host answers and falls to 1 when it does not,
	// Postfix-style, so a host that accepts connections and never answers holds at
	// most a couple of jobs while healthy hosts of the same channel get the rest.
	window  int
	lastErr string
}

func (h *hostQ) blocked() bool { return h.until != 0 }

// fifo is a slice queue that compacts itself.
type fifo[T any] struct {
	s    []T
	head int
}

func (f *fifo[T]) push(v T) { f.s = append(f.s, v) }
func (f *fifo[T]) len() int { return len(f.s) - f.head }
func (f *fifo[T]) front() T { return f.s[f.head] }
func (f *fifo[T]) pop() T {
	var zero T
	v := f.s[f.head]
	f.s[f.head] = zero
	f.head++
	if f.head == len(f.s) {
		f.s, f.head = f.s[:0], 0
	} else if f.head > 64 && f.head*2 > len(f.s) {
		n := copy(f.s, f.s[f.head:])
		clear(f.s[n:])
		f.s, f.head = f.s[:n], 0
	}
	return v
}

// minHeap is a binary heap whose elements know their index, so that arbitrary
// elements can be removed or re-keyed in O(log n).
type heapElem interface {
	heapKey() int64
	setHeapIdx(int)
}

type minHeap[T heapElem] struct{ s []T }

func (h *minHeap[T]) len() int { return len(h.s) }
func (h *minHeap[T]) min() T   { return h.s[0] }

func (h *minHeap[T]) push(v T) {
	h.s = append(h.s, v)
	v.setHeapIdx(len(h.s) - 1)
	h.up(len(h.s) - 1)
}

func (h *minHeap[T]) remove(i int) T {
	v := h.s[i]
	last := len(h.s) - 1
	if i != last {
		h.swap(i, last)
	}
	var zero T
	h.s[last] = zero
	h.s = h.s[:last]
	if i != last {
		h.down(i)
		h.up(i)
	}
	v.setHeapIdx(-1)
	return v
}

func (h *minHeap[T]) fix(i int) {
	h.down(i)
	h.up(i)
}

func (h *minHeap[T]) swap(i, j int) {
	h.s[i], h.s[j] = h.s[j], h.s[i]
	h.s[i].setHeapIdx(i)
	h.s[j].setHeapIdx(j)
}

func (h *minHeap[T]) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h.s[p].heapKey() <= h.s[i].heapKey() {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *minHeap[T]) down(i int) {
	n := len(h.s)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.s[r].heapKey() < h.s[l].heapKey() {
			m = r
		}
		if h.s[i].heapKey() <= h.s[m].heapKey() {
			return
		}
		h.swap(i, m)
		i = m
	}
}
