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
	enc     []byte     // opEnqueue: the stored envelope, as journaled and put in bbolt
	jend    journalPos // opEnqueue: journal position just past this request's batch
	seq     uint64     // the committer batch this request was in
	written bool       // opEnqueue: both records are in the segment and synced
	removed *contentLoc
	notify  *Envelope // opRelease: the envelope that became deliverable

	err   error
	done  chan struct{} // closed once the request is committed to the index (or failed); nil for enqueues
	acked chan struct{} // opEnqueue: closed once the records are durable in the journal (or failed)
	cb    func(error)   // UpdateAsync: called after done is closed
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
//     MaxBatch), assigns ids, appends each content and envelope record to the
//     segment, fsyncs it once and acknowledges the enqueues: the segment is the
//     journal, so they are durable from here;
//   - indexer (stage 2) commits every envelope change of that batch in one bbolt
//     transaction (two fdatasyncs) with the journal mark (how far the journal is in
//     the index), then releases the other waiters and feeds OnCommit.
//
// While stage 2 commits batch N, stage 1 already writes batch N+1, so the segment
// fsync and the index fsyncs overlap and batches grow with load by themselves:
// whatever arrives during a commit forms the next batch. An SMTP client waits for
// one fsync, not three. A crash between the stages loses nothing: recovery replays
// the envelope records past the journal mark (journal.go).
func (q *Queue) committer() {
	defer close(q.handoff)
	for {
		batch := make([]*request, 0, 16)
		select {
		case r := <-q.reqs:
			batch = append(batch, r)
		case <-q.asyncKick:
		case <-q.quit:
			// Senders still blocked in submit see quit and get ErrClosed; nothing
			// handed over is left unanswered: the indexer drains the handoff, and
			// the UpdateAsync requests queued before Close are committed now.
			if batch = q.takeAsync(batch); len(batch) > 0 {
				q.writeBatch(batch)
				q.handoff <- batch
			}
			return
		}
		if batch = q.takeAsync(batch); len(batch) == 0 {
			continue // the kick's requests went with the previous batch
		}
		bytes := 0
		for _, r := range batch {
			bytes += len(r.content)
		}
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
// redelivers those messages (duplicates, never losses). 10 ms is our choice: small
// beside the time one delivery takes.
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
				return q.takeAsync(batch)
			}
		case <-q.asyncKick:
			batch = q.takeAsync(batch)
		case <-t.C:
			return q.takeAsync(batch)
		case <-q.quit:
			return q.takeAsync(batch) // still committed: every request taken gets its answer
		}
	}
	return batch
}

// takeAsync appends the UpdateAsync requests waiting to batch.
func (q *Queue) takeAsync(batch []*request) []*request {
	q.asyncMu.Lock()
	batch = append(batch, q.async...)
	clear(q.async)
	q.async = q.async[:0]
	q.asyncMu.Unlock()
	return batch
}

// indexRetry is how soon the indexer tries again to put acknowledged enqueues in
// the index after a failed commit when nothing else arrives.
const indexRetry = time.Second

// indexer is stage 2 of the pipeline.
func (q *Queue) indexer() {
	defer close(q.stopped)
	var retry <-chan time.Time
	for {
		select {
		case batch, ok := <-q.handoff:
			if !ok {
				if len(q.unindexed) > 0 {
					q.indexBatch(nil)
				}
				if n := len(q.unindexed); n > 0 {
					q.log.Error("acknowledged messages not in the index at close; the journal has them and the next start replays them", "messages", n)
				}
				return
			}
			q.indexBatch(batch)
		case <-retry:
			q.indexBatch(nil)
		}
		retry = nil
		if len(q.unindexed) > 0 {
			retry = time.After(indexRetry)
		}
	}
}

// writeBatch is stage 1: ids and contents. The messages written are counted in
// their segment at once, before their envelopes are committed, so the segment
// cannot be removed between the two stages; indexBatch takes the count back if the
// commit fails.
func (q *Queue) writeBatch(batch []*request) {
	q.stats.batches.Add(1)
	q.batchSeq++
	now := time.Now()
	var nEnq int
	for _, r := range batch {
		r.seq = q.batchSeq
		if r.kind == opEnqueue {
			r.env.ID = q.ids.next(now)
			nEnq++
		}
	}
	if nEnq == 0 {
		return
	}
	end, err := q.writeContents(batch)
	if err != nil {
		q.log.Error("writing message contents failed", "err", err, "messages", nEnq)
		for _, r := range batch {
			if r.kind == opEnqueue {
				r.err = errNoSpace(err)
				r.content = nil
				close(r.acked)
			}
		}
		return
	}
	q.mu.Lock()
	for _, r := range batch {
		if r.kind == opEnqueue {
			r.written = true
			r.jend = end
			q.segs[r.loc.Seg]++
		}
	}
	q.mu.Unlock()
	// Acknowledged from here: whatever happens to the index, recovery finds these.
	q.ackSeq.Store(q.batchSeq)
	q.stats.enqueued.Add(int64(nEnq))
	for _, r := range batch {
		if r.kind == opEnqueue {
			r.content = nil // the caller's buffer, free once Enqueue returns
			close(r.acked)
		}
	}
}

// indexBatch is stage 2: one bbolt transaction for every envelope change of the
// batch, then the waiters are released and OnCommit is fed.
func (q *Queue) indexBatch(batch []*request) {
	// Enqueues acknowledged earlier whose index commit failed go first, in order.
	if len(q.unindexed) > 0 {
		batch = append(q.unindexed, batch...)
		q.unindexed = nil
	}
	var mark journalPos
	var seq uint64
	for _, r := range batch {
		if r.written {
			mark = r.jend // batches are in journal order: the last one is the furthest
		}
		seq = max(seq, r.seq)
	}
	// bbolt keeps the key and value slices given to Put until the commit: every
	// Put gets its own buffer.
	txErr := q.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMsgs)
		// Ids grow with time, so enqueues always append at the right edge of the
		// B+tree; bbolt's default split (half full) would leave every page it moves
		// past half empty: twice the file, twice the mmap a Walk or recovery touches
		// (1M queued messages: 441 MB at 0.5). 0.9, our choice rather than 1.0, still
		// leaves pages room for envelopes that grow with delivery attempts.
		b.FillPercent = 0.9
		for _, r := range batch {
			r.removed, r.notify = nil, nil
			if r.err != nil {
				continue
			}
			if r.kind == opEnqueue {
				if err := b.Put([]byte(r.env.ID), r.enc); err != nil {
					return err
				}
				continue
			}
			if err := q.apply(b, r); err != nil {
				return err
			}
		}
		if mark.Seg != 0 {
			if err := putJournalMark(tx, mark); err != nil {
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
		if txErr != nil && r.written {
			// Acknowledged already: it stays durable in the journal and goes into the
			// next commit (or the next start's replay), never becomes a failure.
			q.unindexed = append(q.unindexed, r)
			continue
		}
		if txErr != nil && r.err == nil {
			r.err = txFailure(r, txErr)
			continue
		}
		if r.err != nil {
			continue
		}
		switch {
		case r.kind == opEnqueue:
			r.enc = nil
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
		if r.done != nil {
			close(r.done)
		}
	}
	if len(q.unindexed) == 0 {
		q.indexed(seq)
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
			if r.written && txErr == nil {
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

// writeContents appends each enqueue's content record and envelope record to the
// current segment and fsyncs it once; it returns the journal position just past the
// batch. On failure the segment is cut back to where the batch began (so recovery
// does not replay messages the clients were refused) and abandoned (its state after a
// failed write or fsync cannot be trusted); the next batch starts a new one.
func (q *Queue) writeContents(batch []*request) (journalPos, error) {
	var total int64
	for _, r := range batch {
		if r.kind == opEnqueue {
			total += recHeaderLen + int64(len(r.content)) + envRecHeaderLen + 256
		}
	}
	if q.cur != nil && q.cur.size > int64(len(segMagic)) && q.cur.size+total > q.opts.segmentSize {
		q.retireCurrent()
	}
	if q.cur == nil {
		if err := q.newSegment(); err != nil {
			return journalPos{}, err
		}
	}
	cur := q.cur
	if q.wbuf == nil {
		q.wbuf = bufio.NewWriterSize(cur.f, 256<<10)
	}
	w := q.wbuf
	w.Reset(cur.f) // also drops what a failed flush left behind
	off := cur.size
	hdr := q.hdrBuf[:0]
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
		r.enc = encodeEnvelope(nil, r.env, r.loc)
		hdr = appendEnvRec(hdr[:0], r.enc)
		w.Write(hdr)
		off += int64(len(hdr))
	}
	q.hdrBuf = hdr
	err := w.Flush()
	if err == nil && !skipFsync(faultSegment) {
		err = cur.f.Sync()
		q.stats.segSyncs.Add(1)
	}
	if err != nil {
		cur.f.Truncate(cur.size) // best effort: the segment is abandoned either way
		q.retireCurrent()
		return journalPos{}, fmt.Errorf("append to segment %s: %w", segName(cur.n), err)
	}
	cur.size = off
	return journalPos{Seg: cur.n, Off: off}, nil
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
