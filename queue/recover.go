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
	if err := q.checkIndex(); err != nil {
		return err
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

	counts, bad, err := q.checkContents(sizes)
	if err != nil {
		return fmt.Errorf("queue: recover: %w", err)
	}
	q.log.Debug("recovery: contents checked", "elapsed", time.Since(start))
	if len(bad) > 0 {
		if err := q.quarantine(bad); err != nil {
			return err
		}
	}

	if err := q.removeUnusedSegments(sizes, counts); err != nil {
		return err
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

// checkIndex creates the buckets a new index lacks and runs bbolt's consistency
// check on the index.
func (q *Queue) checkIndex() error {
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
	return nil
}

// checkContents reads every envelope of the index and checks the content record it
// points to. It returns the number of live messages per segment and the messages
// found damaged; an error means recovery cannot go on (an I/O error, not damage).
//
// It makes one pass in key order, checking each content as its envelope is read.
// Ids grow with time and so do segment numbers and offsets, so key order is segment
// order: each segment is read sequentially, and nothing per message is kept in
// memory (a million-message queue recovers in constant memory).
func (q *Queue) checkContents(sizes map[uint32]int64) (counts map[uint32]int, bad []badMsg, err error) {
	counts = make(map[uint32]int)
	var seg recoverySegment
	defer seg.close()
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
			seg.moveTo(q.segDir, loc.Seg)
			switch {
			case seg.openErr != nil && errors.Is(seg.openErr, os.ErrNotExist):
				err = fmt.Errorf("%w: segment %s missing", errRecord, segName(seg.n))
			case seg.openErr != nil:
				return seg.openErr
			default:
				err = checkContent(seg.reader, sizes[seg.n], string(k), loc, !q.opts.QuickRecovery)
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
	return counts, bad, err
}

// recoverySegment is the segment file checkContents is reading. Records are read
// in offset order, through a window reader.
type recoverySegment struct {
	n       uint32
	opened  bool // n is meaningful: a segment was opened (or tried)
	file    *os.File
	reader  *windowReader // over file
	openErr error         // opening segment n failed
}

// moveTo makes segment n the open one, closing the previous one.
func (s *recoverySegment) moveTo(dir string, n uint32) {
	if s.opened && s.n == n {
		return
	}
	s.close()
	s.n, s.opened = n, true
	s.file, s.openErr = os.Open(segPath(dir, n))
	if s.openErr == nil {
		s.reader = newWindowReader(s.file, 1<<20)
	}
}

func (s *recoverySegment) close() {
	if s.file != nil {
		s.file.Close()
		s.file = nil
	}
}

// removeUnusedSegments deletes the segments no live message points into:
// leftovers of delivered messages, of batches cut by a crash, or of segments
// abandoned after a write error.
func (q *Queue) removeUnusedSegments(sizes map[uint32]int64, counts map[uint32]int) error {
	for n := range sizes {
		if counts[n] == 0 {
			if err := os.Remove(segPath(q.segDir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("queue: recover: remove unused segment: %w", err)
			}
		}
	}
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
