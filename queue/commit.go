package queue

import (
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

type opKind uint8

const (
	opEnqueue opKind = iota
	opUpdate
	opHold
	opRelease
	opDelete
)

// request is one operation waiting for the committer.
type request struct {
	kind    opKind
	id      string
	env     *Envelope // opEnqueue: the queue's copy, ID assigned by the committer
	content []byte
	updates []Update
	reason  string

	loc     contentLoc // opEnqueue: where the content went
	written bool       // opEnqueue: content is in the segment and synced
	removed *contentLoc
	notify  *Envelope // opRelease: the envelope that became deliverable

	err  error
	done chan struct{}
	cb   func(error) // UpdateAsync: called after done is closed
}

// CommitStats describes one group commit, for Options.CommitObserver.
type CommitStats struct {
	Messages int  // enqueued messages made durable by this commit
	Requests int  // requests of every kind in the batch (enqueues, updates, ...)
	Failed   bool // the index transaction failed: nothing of the batch committed
}

// The writer is a two-stage pipeline, one goroutine per stage:
//
//   - committer (stage 1) takes whatever requests are waiting (at least one, at most
//     MaxBatch), assigns ids, appends the contents to the segment and fsyncs it once;
//   - indexer (stage 2) commits every envelope change of that batch in one bbolt
//     transaction (two fdatasyncs), then releases the waiters.
//
// While stage 2 commits batch N, stage 1 already writes batch N+1, so the segment
// fsync and the index fsyncs overlap (the file system merges concurrent fsyncs into
// one journal commit) and batches grow with load by themselves: whatever arrives
// during a commit forms the next batch. For each batch the order is still segment
// fsync, then index commit, which is what makes a crash harmless.
func (q *Queue) committer() {
	defer close(q.handoff)
	for {
		batch := make([]*request, 0, 16)
		select {
		case r := <-q.reqs:
			batch = append(batch, r)
		case <-q.quit:
			// Senders still blocked in submit see quit and get ErrClosed; nothing
			// handed over is left unanswered: the indexer drains the handoff.
			return
		}
		bytes := len(batch[0].content)
	gather:
		for len(batch) < q.opts.MaxBatch && bytes < q.opts.MaxBatchBytes {
			select {
			case r := <-q.reqs:
				batch = append(batch, r)
				bytes += len(r.content)
			default:
				break gather
			}
		}
		if onlyAsync(batch) {
			batch = q.linger(batch)
		}
		q.writeBatch(batch)
		q.handoff <- batch
	}
}

// asyncLinger is how long a batch made only of UpdateAsync requests waits for
// company. Nobody waits for those (the delivery job has moved on), so instead of
// one index commit (two fdatasyncs) per delivered message they share the commit of
// the next enqueue batch or of each other: at a few hundred messages a second this
// took the index commits from ~0.8 to ~0.3 per message. The price: a D line and the
// removal from the queue come up to this much later, and a crash in that window
// redelivers those messages (duplicates, never losses). [inf] 10 ms.
const asyncLinger = 10 * time.Millisecond

func onlyAsync(batch []*request) bool {
	for _, r := range batch {
		if r.cb == nil {
			return false
		}
	}
	return true
}

// linger gathers more requests for an all-UpdateAsync batch, up to asyncLinger,
// and stops at once when a request somebody waits for (an enqueue) arrives.
func (q *Queue) linger(batch []*request) []*request {
	t := time.NewTimer(asyncLinger)
	defer t.Stop()
	for len(batch) < q.opts.MaxBatch {
		select {
		case r := <-q.reqs:
			batch = append(batch, r)
			if r.cb == nil {
				return batch
			}
		case <-t.C:
			return batch
		case <-q.quit:
			return batch // still committed: every request taken gets its answer
		}
	}
	return batch
}

// indexer is stage 2 of the pipeline.
func (q *Queue) indexer() {
	defer close(q.stopped)
	for batch := range q.handoff {
		q.indexBatch(batch)
	}
}

// writeBatch is stage 1: ids and contents. The messages written are counted in
// their segment at once, before their envelopes are committed, so the segment
// cannot be removed between the two stages; indexBatch takes the count back if the
// commit fails.
func (q *Queue) writeBatch(batch []*request) {
	q.stats.batches.Add(1)
	now := time.Now()
	var nEnq int
	for _, r := range batch {
		if r.kind == opEnqueue {
			r.env.ID = q.ids.next(now)
			nEnq++
		}
	}
	if nEnq == 0 {
		return
	}
	if err := q.writeContents(batch); err != nil {
		q.log.Error("writing message contents failed", "err", err, "messages", nEnq)
		for _, r := range batch {
			if r.kind == opEnqueue {
				r.err = errNoSpace(err)
			}
		}
		return
	}
	q.mu.Lock()
	for _, r := range batch {
		if r.kind == opEnqueue {
			r.written = true
			q.segs[r.loc.Seg]++
		}
	}
	q.mu.Unlock()
}

// indexBatch is stage 2: one bbolt transaction for every envelope change of the
// batch, then the waiters are released and OnCommit is fed.
func (q *Queue) indexBatch(batch []*request) {
	// bbolt keeps the key and value slices given to Put until the commit: every
	// Put gets its own buffer.
	txErr := q.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMsgs)
		// Ids grow with time, so enqueues always append at the right edge of the
		// B+tree; bbolt's default split (half full) would leave every page it moves
		// past half empty: twice the file, twice the mmap a Walk or recovery touches
		// (1M queued messages: 441 MB at 0.5). Pages still get room for envelopes that
		// grow with delivery attempts. [inf] 0.9.
		b.FillPercent = 0.9
		for _, r := range batch {
			r.removed, r.notify = nil, nil
			if r.err != nil {
				continue
			}
			if r.kind == opEnqueue {
				if err := b.Put([]byte(r.env.ID), encodeEnvelope(nil, r.env, r.loc)); err != nil {
					return err
				}
				continue
			}
			if err := q.apply(b, r); err != nil {
				return err
			}
		}
		if q.opts.beforeCommit != nil {
			return q.opts.beforeCommit()
		}
		return nil
	})
	q.stats.commits.Add(1)
	if txErr != nil {
		q.log.Error("index commit failed", "err", txErr, "requests", len(batch))
	}

	var notify []*Envelope
	q.mu.Lock()
	for _, r := range batch {
		if txErr != nil && r.err == nil {
			r.err = txFailure(r, txErr)
			if r.written {
				q.unrefLocked(r.loc.Seg)
			}
			continue
		}
		if r.err != nil {
			continue
		}
		switch {
		case r.kind == opEnqueue:
			q.stats.enqueued.Add(1)
			if !r.env.Held { // held on arrival: not deliverable until released
				notify = append(notify, r.env)
			}
		case r.removed != nil:
			q.unrefLocked(r.removed.Seg)
		case r.notify != nil:
			notify = append(notify, r.notify)
		}
	}
	q.mu.Unlock()

	for _, r := range batch {
		r.content = nil // the caller's buffer: do not keep it reachable
		close(r.done)
	}
	if len(notify) > 0 {
		q.notify.push(notify)
	}
	for _, r := range batch {
		if r.cb != nil {
			r.cb(r.err)
		}
	}
	if obs := q.opts.CommitObserver; obs != nil {
		st := CommitStats{Requests: len(batch), Failed: txErr != nil}
		for _, r := range batch {
			if r.kind == opEnqueue && r.err == nil {
				st.Messages++
			}
		}
		obs(st)
	}
}

func txFailure(r *request, err error) error {
	if r.kind == opEnqueue {
		return errNoSpace(err)
	}
	return fmt.Errorf("queue: commit: %w", err)
}

// apply performs one non-enqueue request inside the transaction. Problems with the
// request itself (unknown id, bad update) go to r.err and do not abort the others;
// only storage errors are returned.
func (q *Queue) apply(b *bolt.Bucket, r *request) error {
	key := []byte(r.id)
	v := b.Get(key)
	if v == nil {
		r.err = ErrNotFound
		return nil
	}
	env, loc, derr := decodeEnvelope(v)
	if derr != nil {
		if r.kind == opDelete {
			// An unreadable envelope can still be removed; it holds no segment
			// reference (recovery never counted it).
			return b.Delete(key)
		}
		r.err = fmt.Errorf("queue: %s: %w", r.id, derr)
		return nil
	}
	switch r.kind {
	case opDelete:
		r.removed = &loc
		return b.Delete(key)
	case opHold:
		env.Held, env.HeldReason = true, r.reason
	case opRelease:
		if !env.Held {
			return nil
		}
		env.Held, env.HeldReason = false, ""
		r.notify = env
	case opUpdate:
		if err := applyUpdates(env, r.updates); err != nil {
			r.err = fmt.Errorf("queue: update %s: %w", r.id, err)
			return nil
		}
		if !hasPending(env) {
			r.removed = &loc
			return b.Delete(key)
		}
	}
	return b.Put(key, encodeEnvelope(nil, env, loc))
}

var errBadUpdate = errors.New("invalid update")

func applyUpdates(env *Envelope, ups []Update) error {
	for _, u := range ups {
		if u.Rcpt < 0 || u.Rcpt >= len(env.Rcpts) {
			return fmt.Errorf("%w: recipient %d of %d", errBadUpdate, u.Rcpt, len(env.Rcpts))
		}
		if u.State > Returned {
			return fmt.Errorf("%w: state %d", errBadUpdate, u.State)
		}
		// Delivered and Returned are final: a late or duplicated report must not make
		// a delivered recipient deliverable again.
		if cur := env.Rcpts[u.Rcpt].State; cur != Pending && u.State != cur {
			return fmt.Errorf("%w: recipient %d is already final (state %d)", errBadUpdate, u.Rcpt, cur)
		}
	}
	for _, u := range ups {
		r := &env.Rcpts[u.Rcpt]
		r.State = u.State
		r.Attempts = u.Attempts
		r.NextAttempt = u.NextAttempt.Round(0)
		r.LastError = u.LastError
	}
	return nil
}

func hasPending(env *Envelope) bool {
	for i := range env.Rcpts {
		if env.Rcpts[i].State == Pending {
			return true
		}
	}
	return false
}

// writeContents appends the batch's contents to the current segment and fsyncs it
// once. On failure the segment is abandoned (its state after a failed write or
// fsync cannot be trusted) and the next batch starts a new one; bytes already in
// it that nobody references go away with it.
func (q *Queue) writeContents(batch []*request) error {
	var total int64
	for _, r := range batch {
		if r.kind == opEnqueue {
			total += recHeaderLen + int64(len(r.content))
		}
	}
	if q.cur != nil && q.cur.size > int64(len(segMagic)) && q.cur.size+total > q.opts.segmentSize {
		q.retireCurrent()
	}
	if q.cur == nil {
		if err := q.newSegment(); err != nil {
			return err
		}
	}
	cur := q.cur
	if q.wbuf == nil {
		q.wbuf = bufio.NewWriterSize(cur.f, 256<<10)
	}
	w := q.wbuf
	w.Reset(cur.f) // also drops what a failed flush left behind
	off := cur.size
	var hdr []byte
	for _, r := range batch {
		if r.kind != opEnqueue {
			continue
		}
		sum := crc32.Checksum(r.content, castagnoli)
		hdr = appendRecHeader(hdr[:0], r.env.ID, r.content, sum)
		w.Write(hdr)
		w.Write(r.content)
		off += recHeaderLen
		r.loc = contentLoc{Seg: cur.n, Off: off, Len: int64(len(r.content)), CRC: sum}
		off += int64(len(r.content))
	}
	err := w.Flush()
	if err == nil {
		err = cur.f.Sync()
		q.stats.segSyncs.Add(1)
	}
	if err != nil {
		q.retireCurrent()
		return fmt.Errorf("append to segment %s: %w", segName(cur.n), err)
	}
	cur.size = off
	return nil
}

// newSegment creates the next segment file and makes its directory entry durable.
func (q *Queue) newSegment() error {
	q.mu.Lock()
	n := q.nextSeg
	q.nextSeg++
	q.mu.Unlock()
	path := segPath(q.segDir, n)
	f, err := q.opts.createSegment(path)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	if _, err := f.Write([]byte(segMagic)); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("create segment %s: %w", segName(n), err)
	}
	if err := syncDir(q.segDir); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("create segment %s: sync directory: %w", segName(n), err)
	}
	q.stats.segSyncs.Add(1)
	q.mu.Lock()
	q.cur = &curSegment{n: n, f: f, size: int64(len(segMagic))}
	q.mu.Unlock()
	return nil
}

// retireCurrent stops appending to the current segment; it is removed now if no
// message lives in it, otherwise when its last message leaves.
func (q *Queue) retireCurrent() {
	q.mu.Lock()
	cur := q.cur
	q.cur = nil
	if cur != nil && q.segs[cur.n] == 0 {
		delete(q.segs, cur.n)
		q.removeSegmentLocked(cur.n)
	}
	q.mu.Unlock()
	if cur != nil {
		cur.f.Close()
	}
}

func (q *Queue) unrefLocked(n uint32) {
	q.segs[n]--
	if q.segs[n] > 0 {
		return
	}
	delete(q.segs, n)
	if q.cur != nil && q.cur.n == n {
		return // still being appended to
	}
	q.removeSegmentLocked(n)
}

func (q *Queue) removeSegmentLocked(n uint32) {
	q.dropReaderLocked(n)
	// No fsync of the directory: a removed segment that reappears after a crash
	// is unreferenced and recovery removes it again.
	if err := os.Remove(segPath(q.segDir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
		q.log.Warn("removing empty segment", "segment", segName(n), "err", err)
	}
}

// notifier calls OnCommit from its own goroutine, in commit order, so that a slow
// callback (or one that calls back into the queue) never stalls the committer.
type notifier struct {
	fn      func([]*Envelope)
	mu      sync.Mutex
	cond    *sync.Cond
	pending [][]*Envelope
	closed  bool
	done    chan struct{}
}

func newNotifier(fn func([]*Envelope)) *notifier {
	n := &notifier{fn: fn, done: make(chan struct{})}
	n.cond = sync.NewCond(&n.mu)
	go n.run()
	return n
}

func (n *notifier) push(envs []*Envelope) {
	if n.fn == nil {
		return
	}
	n.mu.Lock()
	n.pending = append(n.pending, envs)
	n.mu.Unlock()
	n.cond.Signal()
}

func (n *notifier) run() {
	defer close(n.done)
	for {
		n.mu.Lock()
		for len(n.pending) == 0 && !n.closed {
			n.cond.Wait()
		}
		if len(n.pending) == 0 {
			n.mu.Unlock()
			return
		}
		work := n.pending
		n.pending = nil
		n.mu.Unlock()
		for _, envs := range work {
			n.fn(envs)
		}
	}
}

// close delivers what is pending and stops the goroutine.
func (n *notifier) close() {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.cond.Signal()
	<-n.done
}
