package queue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"mtad.dev/mta/status"
)

var (
	bucketMsgs       = []byte("msgs")
	bucketQuarantine = []byte("quarantine")
)

const defaultMaxBatch = 512

// ErrClosed is returned by operations on a closed queue.
var ErrClosed = errors.New("queue: closed")

// errNoSpace is what a failed write becomes for the SMTP client: 452 4.3.1.
func errNoSpace(err error) error {
	return fmt.Errorf("queue: %w: %w", status.New(452, "4.3.1", "insufficient system storage"), err)
}

// Queue is the durable message queue. Safe for concurrent use.
type Queue struct {
	dir    string
	segDir string
	db     *bolt.DB
	opts   Options
	log    *slog.Logger

	reqs    chan *request
	handoff chan []*request // committer -> indexer
	quit    chan struct{}
	stopped chan struct{}
	closeMu sync.Mutex
	closed  bool
	isDown  atomic.Bool // closed, readable without closeMu by the read paths

	// mu guards the segment table; the committer changes it after each commit and
	// Content opens segment files under it so none is removed under its feet.
	mu      sync.Mutex
	segs    map[uint32]int        // live messages per segment
	readers map[uint32]*segReader // shared read handles of segments (Content)
	cur     *curSegment           // the segment being appended to; nil until the next batch
	nextSeg uint32

	ids      *idGen        // committer only
	wbuf     *bufio.Writer // committer only: batches content writes into few syscalls
	hdrBuf   []byte        // committer only: record headers
	batchSeq uint64        // committer only: number of the last batch taken

	unindexed []*request // indexer only: acknowledged enqueues a failed index commit left out

	// UpdateAsync requests wait here rather than on reqs, so that a delivery job
	// never waits for the committer to finish its current batch (up to an fsync and
	// an index commit) before it takes its next message.
	asyncMu   sync.Mutex
	async     []*request
	asyncShut bool          // Close has begun: UpdateAsync answers ErrClosed
	asyncKick chan struct{} // capacity 1: wakes an idle committer

	// ackSeq is the last batch whose enqueues were acknowledged; idx tracks the last
	// batch fully in the index, so that reads can wait for what was acknowledged
	// before them (read your writes although the index trails the journal).
	ackSeq atomic.Uint64
	idx    indexProgress

	notify *notifier
	stats  statsCounters
}

// curSegment is the committer's open segment. Only the committer touches it.
type curSegment struct {
	n    uint32
	f    segFile
	size int64
}

// Open opens or creates the queue under dir and recovers it (everything committed
// is there; anything half-written is discarded) before returning.
func Open(dir string, opts Options) (*Queue, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = defaultMaxBatch
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = 32 << 20
	}
	if opts.segmentSize <= 0 {
		opts.segmentSize = segTarget
	}
	if opts.lockTimeout <= 0 {
		opts.lockTimeout = 2 * time.Second
	}
	if opts.createSegment == nil {
		opts.createSegment = createSegmentFile
	}
	q := &Queue{
		dir:       dir,
		segDir:    filepath.Join(dir, "segments"),
		opts:      opts,
		log:       opts.Logger,
		reqs:      make(chan *request),
		handoff:   make(chan []*request), // unbuffered: at most one batch waits, so batches grow
		quit:      make(chan struct{}),
		asyncKick: make(chan struct{}, 1),
		stopped:   make(chan struct{}),
		segs:      make(map[uint32]int),
		readers:   make(map[uint32]*segReader),
		ids:       newIDGen(),
	}
	if q.log == nil {
		q.log = slog.Default()
	}
	q.log = q.log.With("subsystem", "queue")
	if err := os.MkdirAll(q.segDir, 0o700); err != nil {
		return nil, fmt.Errorf("queue: open %s: %w", dir, err)
	}
	db, err := bolt.Open(filepath.Join(dir, "queue.db"), 0o600, &bolt.Options{
		Timeout: opts.lockTimeout, // another mtad holds the queue: fail instead of hanging
		// The freelist is rebuilt at open instead of written at every commit: commits
		// are the hot path, opens are rare.
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: 256 << 20, // fewer remaps, which wait for readers
	})
	if err != nil {
		return nil, fmt.Errorf("queue: open index %s: %w", filepath.Join(dir, "queue.db"), err)
	}
	q.db = db
	// The directory entries of queue.db and segments/ must be durable before any
	// acknowledgement relies on them (they are new on the first start), and so must
	// the queue directory's own entry in its parent: without that fsync a power cut
	// after the first start could take the whole queue directory, every
	// acknowledged message with it (the power-loss test found it). Making the
	// parent itself durable in its own parent is the caller's part (the daemon
	// creates the data directory that way). Both are synced at every start: one
	// fsync each, and it covers a directory someone else created without one.
	if err := syncDir(dir); err != nil {
		db.Close()
		return nil, fmt.Errorf("queue: open %s: %w", dir, err)
	}
	if !skipFsync(faultQueueDir) {
		if err := syncDir(filepath.Dir(dir)); err != nil {
			db.Close()
			return nil, fmt.Errorf("queue: open %s: sync its parent: %w", dir, err)
		}
	}
	if err := q.recover(); err != nil {
		db.Close()
		return nil, err
	}
	q.notify = newNotifier(opts.OnCommit)
	go q.committer()
	go q.indexer()
	return q, nil
}

// Close stops the committer after flushing pending work. Operations after Close
// return ErrClosed.
func (q *Queue) Close() error {
	q.closeMu.Lock()
	if q.closed {
		q.closeMu.Unlock()
		return nil
	}
	q.closed = true
	q.isDown.Store(true)
	q.asyncMu.Lock()
	q.asyncShut = true // from here UpdateAsync answers ErrClosed; what it queued is committed
	q.asyncMu.Unlock()
	close(q.quit)
	q.closeMu.Unlock()
	<-q.stopped
	q.notify.close()
	// One line per run: how many commits and fsyncs the messages cost (group commit
	// at work), the first figure to look at when throughput changes.
	st := q.Stats()
	q.log.Info("queue closed", "enqueued", st.Enqueued, "batches", st.Batches,
		"index_commits", st.IndexCommits, "segment_syncs", st.SegmentSyncs)
	var errs []error
	if q.cur != nil {
		errs = append(errs, q.cur.f.Close())
		q.cur = nil
	}
	q.mu.Lock()
	for n := range q.readers {
		q.dropReaderLocked(n)
	}
	q.mu.Unlock()
	errs = append(errs, q.db.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("queue: close: %w", err)
	}
	return nil
}

// submit hands r to the committer and waits for its commit.
func (q *Queue) submit(ctx context.Context, r *request) error {
	r.done = make(chan struct{})
	select {
	case q.reqs <- r:
	case <-q.quit:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("queue: %w", ctx.Err())
	}
	// Once handed over the request will be committed or fail shortly; waiting for
	// the outcome (rather than for ctx) keeps "returned nil" equal to "on disk".
	<-r.done
	return r.err
}

// Enqueue stores env and content durably and returns the new id only once both are
// on disk (fsync'd in the segment, which is the journal, shared with concurrent
// enqueues by group commit). The caller answers 250 after this returns nil. The
// message reaches the index and OnCommit a moment later; Get, Walk and Stats called
// after Enqueue returned wait for that, so they see it. env is not modified; the
// queue keeps a copy.
func (q *Queue) Enqueue(ctx context.Context, env *Envelope, content []byte) (string, error) {
	if env == nil {
		return "", errors.New("queue: enqueue: nil envelope")
	}
	if !hasPending(env) {
		// It would never be delivered nor removed.
		return "", errors.New("queue: enqueue: no pending recipient")
	}
	e := cloneEnvelope(env)
	if e.Arrival.IsZero() {
		e.Arrival = time.Now()
	}
	e.Arrival = e.Arrival.Round(0) // no monotonic reading: it is meaningless on disk
	e.Size = int64(len(content))
	r := &request{kind: opEnqueue, env: e, content: content, acked: make(chan struct{})}
	select {
	case q.reqs <- r:
	case <-q.quit:
		return "", ErrClosed
	case <-ctx.Done():
		return "", fmt.Errorf("queue: %w", ctx.Err())
	}
	// Once handed over the request will be journaled or fail shortly; waiting for
	// the outcome (rather than for ctx) keeps "returned nil" equal to "on disk".
	<-r.acked
	if r.err != nil {
		return "", r.err
	}
	return r.env.ID, nil
}

// Update records delivery results durably (group-committed). When no recipient is
// Pending any more, the message is removed from the queue. A recipient already
// Delivered or Returned cannot go back to Pending: such an update is refused whole.
func (q *Queue) Update(id string, updates []Update) error {
	return q.submit(context.Background(), &request{kind: opUpdate, id: id, updates: updates})
}

// UpdateAsync is Update without the wait, so a delivery job can go on with its next
// message while its results are committed with the next group commit. done is
// called exactly once with what Update would have returned, once the change is
// durable (or has failed): from the queue's commit goroutine, so it must be quick
// and must not wait for the queue (it may submit more work asynchronously). After
// Close, done gets ErrClosed at once, on the caller's goroutine.
func (q *Queue) UpdateAsync(id string, updates []Update, done func(error)) {
	r := &request{kind: opUpdate, id: id, updates: updates, cb: done, done: make(chan struct{})}
	q.asyncMu.Lock()
	if q.asyncShut {
		q.asyncMu.Unlock()
		done(ErrClosed)
		return
	}
	q.async = append(q.async, r)
	q.asyncMu.Unlock()
	select {
	case q.asyncKick <- struct{}{}:
	default: // a kick is pending already
	}
}

// Hold marks a message .HELD with a reason; Release clears it (and calls OnCommit).
// Holding a held message replaces the reason; releasing one not held does nothing.
func (q *Queue) Hold(id, reason string) error {
	return q.submit(context.Background(), &request{kind: opHold, id: id, reason: reason})
}

// Release clears .HELD and hands the message to OnCommit.
func (q *Queue) Release(id string) error {
	return q.submit(context.Background(), &request{kind: opRelease, id: id})
}

// Delete removes a message silently (qm delete).
func (q *Queue) Delete(id string) error {
	return q.submit(context.Background(), &request{kind: opDelete, id: id})
}

// Get returns a copy of one envelope.
func (q *Queue) Get(id string) (*Envelope, error) {
	env, _, err := q.get(id)
	return env, err
}

// get reads one envelope from the index. A message acknowledged a moment ago may
// not be there yet (the index trails the journal by one commit): on a miss it waits
// for the index to hold everything acknowledged so far and looks again, so a hit,
// the common case (a delivery), never waits.
func (q *Queue) get(id string) (*Envelope, contentLoc, error) {
	env, loc, err := q.lookup(id)
	if errors.Is(err, ErrNotFound) && q.ackSeq.Load() > q.indexedSeq() {
		q.awaitIndex()
		env, loc, err = q.lookup(id)
	}
	return env, loc, err
}

func (q *Queue) lookup(id string) (*Envelope, contentLoc, error) {
	if q.isDown.Load() {
		return nil, contentLoc{}, ErrClosed
	}
	var (
		env *Envelope
		loc contentLoc
	)
	err := q.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMsgs).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		var err error
		env, loc, err = decodeEnvelope(v)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, loc, ErrNotFound
		}
		return nil, loc, fmt.Errorf("queue: get %s: %w", id, err)
	}
	return env, loc, nil
}

// Walk calls fn for every message in the queue (held ones too), in id order, until
// fn returns false. Envelopes passed to fn must not be retained across calls unless copied.
//
// It reads the index in chunks of short read transactions rather than one long one:
// a read transaction held open for a whole million-message walk would stop bbolt from
// growing its map for the committer.
func (q *Queue) Walk(fn func(*Envelope) bool) error {
	if q.isDown.Load() {
		return ErrClosed
	}
	q.awaitIndex()
	const chunk = 1024
	var after []byte
	batch := make([]*Envelope, 0, chunk)
	for {
		batch = batch[:0]
		err := q.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketMsgs).Cursor()
			var k, v []byte
			if after == nil {
				k, v = c.First()
			} else {
				k, v = c.Seek(after)
				if k != nil && string(k) == string(after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && len(batch) < chunk; k, v = c.Next() {
				after = append(after[:0], k...)
				env, _, err := decodeEnvelope(v)
				if err != nil {
					// Recovery quarantines these; one appearing later is reported, not fatal.
					q.log.Error("unreadable envelope skipped", "id", string(k), "err", err)
					continue
				}
				batch = append(batch, env)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("queue: walk: %w", err)
		}
		for _, env := range batch {
			if !fn(env) {
				return nil
			}
		}
		if len(batch) < chunk {
			return nil
		}
	}
}

// Content opens a message's content for reading; the caller must Close it. The
// content's checksum is verified first, so a damaged message is never delivered.
func (q *Queue) Content(id string) (Content, error) {
	_, loc, err := q.get(id)
	if err != nil {
		return nil, err
	}
	if loc.Len <= memContentMax {
		return q.memContent(id, loc)
	}
	q.mu.Lock()
	f, err := os.Open(segPath(q.segDir, loc.Seg))
	q.mu.Unlock()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			// The message was removed (and its segment with it) after we read it.
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("queue: content %s: %w", id, err)
	}
	fi, err := f.Stat()
	if err == nil {
		err = checkContent(f, fi.Size(), id, loc, true)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("queue: content %s: %w", id, err)
	}
	return &content{f: f, sr: io.NewSectionReader(f, loc.Off, loc.Len)}, nil
}

// Quarantined lists the messages recovery set aside as damaged, in id order.
func (q *Queue) Quarantined() []QuarantineInfo {
	var out []QuarantineInfo
	err := q.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketQuarantine).ForEach(func(k, v []byte) error {
			out = append(out, decodeQuarantine(string(k), v))
			return nil
		})
	})
	if err != nil {
		q.log.Error("reading quarantine", "err", err)
	}
	return out
}

// DeleteQuarantined forgets a quarantined message (qm, once the operator has seen it).
func (q *Queue) DeleteQuarantined(id string) error {
	err := q.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketQuarantine)
		if b.Get([]byte(id)) == nil {
			return ErrNotFound
		}
		return b.Delete([]byte(id))
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("queue: delete quarantined %s: %w", id, err)
	}
	return err
}

// Stats are counters since Open, for metrics and benchmarks.
type Stats struct {
	Enqueued     int64 // messages acknowledged
	Batches      int64 // committer rounds (each one bbolt commit)
	SegmentSyncs int64 // fsyncs of segment files and of the segments directory
	IndexCommits int64 // bbolt commits (each costs two fdatasyncs)
	Replayed     int64 // messages recovery put back from the journal at Open
	Segments     int   // segment files holding live messages or open for appending
}

type statsCounters struct {
	enqueued, batches, segSyncs, commits, replayed atomic.Int64
}

// Stats returns the counters since Open.
func (q *Queue) Stats() Stats {
	q.awaitIndex()
	q.mu.Lock()
	n := len(q.segs)
	if q.cur != nil {
		if _, ok := q.segs[q.cur.n]; !ok {
			n++
		}
	}
	q.mu.Unlock()
	return Stats{
		Enqueued:     q.stats.enqueued.Load(),
		Batches:      q.stats.batches.Load(),
		SegmentSyncs: q.stats.segSyncs.Load(),
		IndexCommits: q.stats.commits.Load(),
		Replayed:     q.stats.replayed.Load(),
		Segments:     n,
	}
}

func cloneEnvelope(e *Envelope) *Envelope {
	c := *e
	c.Rcpts = append([]Recipient(nil), e.Rcpts...)
	return &c
}

// Content is a message's bytes.
type Content interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// ErrNotFound is returned for an unknown id.
var ErrNotFound = errNotFound{}

type errNotFound struct{}

func (errNotFound) Error() string { return "queue: no such message" }
