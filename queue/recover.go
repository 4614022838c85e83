package queue

import (
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

type badMsg struct {
	id     string
	reason string
}

// recover checks the index, verifies every message's content record, sets damaged
// messages aside in the quarantine bucket, rebuilds segment reference counts and
// removes segments nobody references.
func (q *Queue) recover() error {
	start := time.Now()
	err := q.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMsgs, bucketQuarantine, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue: open index: %w", err)
	}
	// A damaged B+tree cannot be repaired message by message: refuse to start so the
	// operator restores or rebuilds it, rather than silently lose part of the queue.
	err = q.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
			if len(errs) >= 10 {
				break
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return fmt.Errorf("queue: index %s is damaged: %w", q.db.Path(), err)
	}
	q.log.Debug("recovery: index checked", "elapsed", time.Since(start))

	// Segment files present on disk.
	sizes, maxSeg, err := segmentSizes(q.segDir)
	if err != nil {
		return fmt.Errorf("queue: recover: %w", err)
	}

	// Messages acknowledged but not yet in the index when the last run ended.
	if err := q.replayJournal(sizes, maxSeg); err != nil {
		return err
	}
	q.log.Debug("recovery: journal replayed", "elapsed", time.Since(start))

	// One pass in key order, checking each content as its envelope is read. Ids grow
	// with time and so do segment numbers and offsets, so key order is segment order:
	// each segment is read sequentially, and nothing per message is kept in memory
	// (a million-message queue recovers in constant memory).
	var (
		bad    []badMsg
		f      *os.File
		wr     *windowReader // over f: records are read in offset order
		fseg   uint32
		ferr   error
		opened bool
		counts = make(map[uint32]int)
	)
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	err = q.db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketQuarantine).Cursor().Last(); k != nil {
			q.ids.observe(string(k))
		}
		if k, _ := tx.Bucket(bucketMsgs).Cursor().Last(); k != nil {
			q.ids.observe(string(k))
		}
		return tx.Bucket(bucketMsgs).ForEach(func(k, v []byte) error {
			_, loc, err := decodeEnvelope(v)
			if err != nil {
				bad = append(bad, badMsg{string(k), err.Error()})
				return nil
			}
			if !opened || fseg != loc.Seg {
				if f != nil {
					f.Close()
					f = nil
				}
				fseg, opened = loc.Seg, true
				f, ferr = os.Open(segPath(q.segDir, fseg))
				if ferr == nil {
					wr = newWindowReader(f, 1<<20)
				}
			}
			switch {
			case ferr != nil && errors.Is(ferr, os.ErrNotExist):
				err = fmt.Errorf("%w: segment %s missing", errRecord, segName(fseg))
			case ferr != nil:
				return ferr
			default:
				err = checkContent(wr, sizes[fseg], string(k), loc, !q.opts.QuickRecovery)
			}
			if err != nil {
				if !errors.Is(err, errRecord) {
					// An I/O error is not damage to quarantine: stop and let the
					// operator look, rather than set good mail aside.
					return fmt.Errorf("%s: %w", k, err)
				}
				bad = append(bad, badMsg{string(k), err.Error()})
				return nil
			}
			counts[loc.Seg]++
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("queue: recover: %w", err)
	}
	q.log.Debug("recovery: contents checked", "elapsed", time.Since(start))
	if len(bad) > 0 {
		if err := q.quarantine(bad); err != nil {
			return err
		}
	}

	// Segments no live message points into: leftovers of delivered messages, of
	// batches cut by a crash, or of segments abandoned after a write error.
	for n := range sizes {
		if counts[n] == 0 {
			if err := os.Remove(segPath(q.segDir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("queue: recover: remove unused segment: %w", err)
			}
		}
	}
	q.segs = counts
	q.nextSeg = maxSeg + 1
	live := 0
	for _, n := range counts {
		live += n
	}
	q.log.Info("queue recovered", "messages", live, "quarantined", len(bad),
		"segments", len(counts), "elapsed", time.Since(start))
	return nil
}

// quarantine moves damaged messages from msgs to the quarantine bucket, keeping
// their envelope bytes for the operator. Their content is not kept.
func (q *Queue) quarantine(bad []badMsg) error {
	now := time.Now()
	err := q.db.Update(func(tx *bolt.Tx) error {
		msgs, qb := tx.Bucket(bucketMsgs), tx.Bucket(bucketQuarantine)
		for _, m := range bad {
			key := []byte(m.id)
			raw := msgs.Get(key)
			if err := qb.Put(key, encodeQuarantine(m.reason, now, raw)); err != nil {
				return err
			}
			if err := msgs.Delete(key); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue: recover: quarantine: %w", err)
	}
	for _, m := range bad {
		q.log.Error("message quarantined", "id", m.id, "reason", m.reason)
	}
	return nil
}
