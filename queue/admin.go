package queue

// Read-only access for administration tools (mtactl qm when mtad is not running).
// Added by the control-socket work; it uses the queue's internals but never writes.

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrLocked is returned by OpenReadOnly when another process (a running mtad)
// holds the queue and did not let go within the timeout.
var ErrLocked = errors.New("queue: locked by another process")

// ReadOnly is a queue opened for reading only: Walk, Get and Content, no recovery,
// no committer. It takes bbolt's shared lock, so it cannot be opened while mtad
// holds the queue, and mtad cannot open the queue while a ReadOnly is open.
type ReadOnly struct {
	q *Queue
	// journal holds the messages acknowledged after the index's journal mark (the
	// last moments before mtad stopped or died): mtad puts them in the index at its
	// next start, and until then the tools show them from here.
	journal map[string]journaled
	order   []string // journal's ids, in journal order
}

type journaled struct {
	env *Envelope
	loc contentLoc
}

// OpenReadOnly opens the queue under dir for reading, waiting at most timeout for
// the lock (0: 200ms). A directory without a queue gives an error wrapping
// os.ErrNotExist; a held lock gives ErrLocked.
func OpenReadOnly(dir string, timeout time.Duration) (*ReadOnly, error) {
	if timeout <= 0 {
		timeout = 200 * time.Millisecond
	}
	path := filepath.Join(dir, "queue.db")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("queue: open %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("queue: open %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("queue: open index %s: %w", path, err)
	}
	q := &Queue{dir: dir, segDir: filepath.Join(dir, "segments"), db: db, log: slog.Default().With("subsystem", "queue")}
	// A queue that mtad never finished creating has no buckets yet: it is empty.
	empty := false
	err = db.View(func(tx *bolt.Tx) error {
		empty = tx.Bucket(bucketMsgs) == nil
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("queue: open %s: %w", path, err)
	}
	if empty {
		db.Close()
		return nil, fmt.Errorf("queue: open %s: no messages bucket: %w", path, os.ErrNotExist)
	}
	r := &ReadOnly{q: q, journal: make(map[string]journaled)}
	sizes, _, err := segmentSizes(q.segDir)
	var tail []replayed
	if err == nil {
		_, tail, err = q.journalTail(sizes)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		db.Close()
		return nil, fmt.Errorf("queue: open %s: %w", dir, err)
	}
	for _, m := range tail {
		if _, _, err := q.lookup(m.id); err == nil {
			continue // indexed after all: the mark lags by one commit at most
		}
		env, loc, err := decodeEnvelope(m.enc)
		if err != nil {
			continue // scanJournal decoded it already
		}
		r.journal[m.id] = journaled{env, loc}
		r.order = append(r.order, m.id)
	}
	return r, nil
}

// Walk is Queue.Walk, then the messages only the journal holds so far.
func (r *ReadOnly) Walk(fn func(*Envelope) bool) error {
	stopped := false
	if err := r.q.Walk(func(e *Envelope) bool {
		stopped = !fn(e)
		return !stopped
	}); err != nil || stopped {
		return err
	}
	for _, id := range r.order {
		if !fn(cloneEnvelope(r.journal[id].env)) {
			return nil
		}
	}
	return nil
}

// Get is Queue.Get, the journal included.
func (r *ReadOnly) Get(id string) (*Envelope, error) {
	env, _, err := r.get(id)
	return env, err
}

func (r *ReadOnly) get(id string) (*Envelope, contentLoc, error) {
	env, loc, err := r.q.get(id)
	if errors.Is(err, ErrNotFound) {
		if j, ok := r.journal[id]; ok {
			return cloneEnvelope(j.env), j.loc, nil
		}
	}
	return env, loc, err
}

// Content opens a message's content, verifying its checksum like Queue.Content.
// It opens the segment itself rather than use the queue's shared read handles:
// a read-only queue has no committer removing segments, and a short-lived tool
// gains nothing from caching.
func (r *ReadOnly) Content(id string) (Content, error) {
	_, loc, err := r.get(id)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(segPath(r.q.segDir, loc.Seg))
	if err != nil {
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

// Close releases the lock.
func (r *ReadOnly) Close() error {
	if r.q.isDown.Swap(true) {
		return nil
	}
	if err := r.q.db.Close(); err != nil {
		return fmt.Errorf("queue: close: %w", err)
	}
	return nil
}
