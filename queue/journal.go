package queue

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The segments are the queue's journal. A message is acknowledged once its content
// record and envelope record are fsync'd in the current segment; its envelope
// reaches bbolt in the indexer's next transaction, together with the journal mark:
// the position just past the last batch that transaction indexed. Everything in the
// segments before the mark is in the index (or was, and has since been delivered or
// deleted); everything after it may not be. Recovery therefore reads the segments
// from the mark on and puts back every whole envelope record whose content record
// is whole too, then moves the mark past them.
//
// What this costs: a record written and fsync'd but never acknowledged (the process
// died between the fsync and the reply) is replayed too. It is delivered although
// the client was not told so: a duplicate if the client sends it again, as with any
// MTA that dies after its commit and before its 250, never a loss. A batch whose write
// or fsync failed is cut back from its segment before the client gets 452, so it is
// not replayed (unless the cut fails as well).

var (
	bucketMeta     = []byte("meta")
	keyJournalMark = []byte("journal")
)

// journalPos is a position in the journal: segment number and byte offset.
type journalPos struct {
	Seg uint32
	Off int64
}

func putJournalMark(tx *bolt.Tx, p journalPos) error {
	var v [12]byte
	binary.LittleEndian.PutUint32(v[:4], p.Seg)
	binary.LittleEndian.PutUint64(v[4:], uint64(p.Off))
	return tx.Bucket(bucketMeta).Put(keyJournalMark, v[:])
}

func getJournalMark(tx *bolt.Tx) (journalPos, bool) {
	v := tx.Bucket(bucketMeta).Get(keyJournalMark)
	if len(v) != 12 {
		return journalPos{}, false
	}
	return journalPos{Seg: binary.LittleEndian.Uint32(v[:4]), Off: int64(binary.LittleEndian.Uint64(v[4:]))}, true
}

// indexProgress lets readers wait until the index holds every batch acknowledged
// before they asked.
type indexProgress struct {
	mu   sync.Mutex
	done uint64        // last batch entirely in the index
	ch   chan struct{} // closed and replaced whenever done moves
}

// indexed records that every batch up to seq is in the index.
func (q *Queue) indexed(seq uint64) {
	p := &q.idx
	p.mu.Lock()
	if seq > p.done {
		p.done = seq
		if p.ch != nil {
			close(p.ch)
			p.ch = nil
		}
	}
	p.mu.Unlock()
}

func (q *Queue) indexedSeq() uint64 {
	q.idx.mu.Lock()
	defer q.idx.mu.Unlock()
	return q.idx.done
}

// indexWaitMax bounds how long a read waits for the index to catch up: when the
// index cannot be written (its disk is full) reads answer with what it holds.
const indexWaitMax = 2 * time.Second

// awaitIndex waits until everything acknowledged before the call is in the index.
// The wait is one index commit at most, and nothing at all when the queue is idle.
func (q *Queue) awaitIndex() {
	target := q.ackSeq.Load()
	p := &q.idx
	var timeout <-chan time.Time
	for {
		p.mu.Lock()
		if p.done >= target {
			p.mu.Unlock()
			return
		}
		if p.ch == nil {
			p.ch = make(chan struct{})
		}
		ch := p.ch
		p.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(indexWaitMax)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ch:
		case <-timeout:
			return
		case <-q.stopped:
			return
		}
	}
}

// replayJournal is the part of recovery that puts back into the index the messages
// acknowledged after its journal mark, and moves the mark past every segment on
// disk (new writes go to a new segment). sizes lists the segment files.
func (q *Queue) replayJournal(sizes map[uint32]int64, maxSeg uint32) error {
	mark, found, err := q.journalTail(sizes)
	if err != nil {
		return fmt.Errorf("queue: recover: %w", err)
	}
	var added int
	err = q.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMsgs)
		b.FillPercent = 0.9
		for _, m := range found {
			if b.Get([]byte(m.id)) != nil {
				continue
			}
			if err := b.Put([]byte(m.id), m.enc); err != nil {
				return err
			}
			added++
		}
		return putJournalMark(tx, journalPos{Seg: maxSeg + 1})
	})
	if err != nil {
		return fmt.Errorf("queue: recover: replay journal: %w", err)
	}
	q.stats.replayed.Store(int64(added))
	if added > 0 {
		q.log.Info("journal replayed", "messages", added, "from_segment", segName(mark.Seg), "from_offset", mark.Off)
	}
	return nil
}

// journalTail returns the messages journaled past the index's journal mark, in
// journal order. sizes lists the segment files and their sizes.
func (q *Queue) journalTail(sizes map[uint32]int64) (journalPos, []replayed, error) {
	var mark journalPos
	var hasMark bool
	if err := q.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) != nil {
			mark, hasMark = getJournalMark(tx)
		}
		return nil
	}); err != nil {
		return mark, nil, fmt.Errorf("journal mark: %w", err)
	}
	// Without a mark the index predates the journal (or is new): everything in it
	// was indexed before its acknowledgement, so there is nothing to replay.
	if !hasMark {
		return mark, nil, nil
	}
	segs := make([]uint32, 0, len(sizes))
	for n := range sizes {
		if n >= mark.Seg {
			segs = append(segs, n)
		}
	}
	slices.Sort(segs)
	var found []replayed
	for _, n := range segs {
		from := int64(len(segMagic))
		if n == mark.Seg {
			from = max(from, mark.Off)
		}
		recs, err := scanJournal(segPath(q.segDir, n), n, from, sizes[n])
		if err != nil {
			return mark, nil, fmt.Errorf("journal %s: %w", segName(n), err)
		}
		found = append(found, recs...)
	}
	return mark, found, nil
}

// segmentSizes lists the segment files under dir with their sizes, and the highest
// segment number (0: none).
func segmentSizes(dir string) (map[uint32]int64, uint32, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	sizes := make(map[uint32]int64)
	var maxSeg uint32
	for _, e := range entries {
		n, ok := parseSegName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return nil, 0, err
		}
		sizes[n] = fi.Size()
		maxSeg = max(maxSeg, n)
	}
	return sizes, maxSeg, nil
}

type replayed struct {
	id  string
	enc []byte
}

// scanJournal reads segment n from offset from and returns the messages whose
// content record and envelope record are both whole. It stops at the first record
// that is not: what follows a torn record was never acknowledged (appends are
// sequential and a batch is acknowledged only after its fsync).
func scanJournal(path string, n uint32, from, size int64) ([]replayed, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	return scanRecords(f, n, from, size), nil
}

// scanRecords is scanJournal on any reader of the segment's size bytes.
func scanRecords(f io.ReaderAt, n uint32, from, size int64) []replayed {
	if from >= size {
		return nil
	}
	br := bufio.NewReaderSize(io.NewSectionReader(f, from, size-from), 256<<10)
	off := from
	var out []replayed
	var hdr [recHeaderLen]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return out
		}
		id, clen, csum, err := parseRecHeader(hdr[:])
		if err != nil || clen < 0 || clen > size-off {
			return out
		}
		loc := contentLoc{Seg: n, Off: off + recHeaderLen, Len: clen, CRC: csum}
		h := crc32.New(castagnoli)
		if _, err := io.CopyN(h, br, clen); err != nil || h.Sum32() != csum {
			return out
		}
		off = loc.Off + clen

		// The envelope record; a content record without one is from a segment written
		// before the journal existed, or a batch cut short.
		var eh [envRecHeaderLen]byte
		if _, err := io.ReadFull(br, eh[:]); err != nil || string(eh[:4]) != envRecMagic {
			return out
		}
		if crc32.Checksum(eh[:8], castagnoli) != binary.LittleEndian.Uint32(eh[8:]) {
			return out
		}
		elen := int64(binary.LittleEndian.Uint32(eh[4:8]))
		if elen > maxEnvRec || elen > size-off-envRecHeaderLen {
			return out
		}
		enc := make([]byte, elen)
		if _, err := io.ReadFull(br, enc); err != nil {
			return out
		}
		off += envRecHeaderLen + elen
		env, eloc, err := decodeEnvelope(enc)
		if err != nil || env.ID != id || eloc != loc {
			return out
		}
		out = append(out, replayed{id: id, enc: enc})
	}
}
