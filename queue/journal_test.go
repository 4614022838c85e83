package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// journalOnly enqueues bodies into a queue whose index cannot be written, so that
// after Close they exist only in the journal (the state a kill -9 between the
// segment fsync and the index commit leaves), and returns their ids and the
// segment file holding them.
func journalOnly(t testing.TB, dir string, bodies []string) ([]string, string) {
	t.Helper()
	ids, err := journalOnlyIn(t, dir, bodies)
	if err != nil {
		t.Fatalf("Enqueue with a failing index: %v (the journal fsync is the commit)", err)
	}
	segs, err := filepath.Glob(filepath.Join(dir, "segments", "*.seg"))
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments: %v %v", segs, err)
	}
	return ids, segs[0]
}

// journalOnlyIn is journalOnly on a queue that may already hold messages (and
// segments).
func journalOnlyIn(t testing.TB, dir string, bodies []string) ([]string, error) {
	t.Helper()
	q := openTest(t, dir, Options{beforeCommit: func() error { return errors.New("index: no space left on device") }})
	defer q.Close()
	var ids []string
	for i, b := range bodies {
		id, err := q.Enqueue(context.Background(), testEnvelope(i), []byte(b))
		if err != nil {
			return ids, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func TestJournalReplay(t *testing.T) {
	bodies := []string{"first body\r\n", "second body\r\n", "third body\r\n"}
	tests := []struct {
		name   string
		damage func(t *testing.T, seg string)
		want   int // messages replayed, in order
	}{
		{"intact", func(*testing.T, string) {}, 3},
		{"last envelope record torn", func(t *testing.T, seg string) {
			fi, _ := os.Stat(seg)
			if err := os.Truncate(seg, fi.Size()-10); err != nil {
				t.Fatal(err)
			}
		}, 2},
		{"last envelope record missing", func(t *testing.T, seg string) {
			b, _ := os.ReadFile(seg)
			i := bytes.LastIndex(b, []byte(envRecMagic))
			if err := os.Truncate(seg, int64(i)); err != nil {
				t.Fatal(err)
			}
		}, 2},
		{"second content damaged", func(t *testing.T, seg string) {
			b, _ := os.ReadFile(seg)
			flipByte(t, seg, int64(bytes.Index(b, []byte("second body"))))
		}, 1},
		{"garbage after the records", func(t *testing.T, seg string) {
			f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(bytes.Repeat([]byte{0xAB}, 5000))
			f.Close()
		}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ids, seg := journalOnly(t, dir, bodies)
			tt.damage(t, seg)
			q := openTest(t, dir, Options{})
			if got := q.Stats().Replayed; got != int64(tt.want) {
				t.Errorf("replayed %d messages, want %d", got, tt.want)
			}
			if qi := q.Quarantined(); len(qi) != 0 {
				t.Errorf("quarantined: %+v", qi)
			}
			for i, id := range ids {
				env, err := q.Get(id)
				if i >= tt.want {
					if err != ErrNotFound {
						t.Errorf("message %d after the damage: %v, want not found", i, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("acknowledged message %d lost: %v", i, err)
				}
				if want := testEnvelope(i).Rcpts[1].Addr; env.Rcpts[1].Addr != want || env.ID != id {
					t.Errorf("message %d: envelope %+v", i, env)
				}
				if got := string(readAll(t, q, id)); got != bodies[i] {
					t.Errorf("message %d: content %q, want %q", i, got, bodies[i])
				}
			}
			// The journal mark moved: a second start replays nothing and the
			// messages are there once.
			q.Close()
			q = openTest(t, dir, Options{})
			defer q.Close()
			if got := q.Stats().Replayed; got != 0 {
				t.Errorf("second start replayed %d messages again", got)
			}
			n := 0
			q.Walk(func(*Envelope) bool { n++; return true })
			if n != tt.want {
				t.Errorf("%d messages queued after the second start, want %d", n, tt.want)
			}
		})
	}
}

// TestJournalNoResurrection: what was delivered or deleted stays gone, and what
// was indexed normally is not replayed, whatever the journal still holds.
func TestJournalNoResurrection(t *testing.T) {
	dir := t.TempDir()
	q := openTest(t, dir, Options{})
	ctx := context.Background()
	var ids []string
	for i := range 6 {
		id, err := q.Enqueue(ctx, testEnvelope(i), []byte(fmt.Sprintf("body %d\r\n", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := q.Update(ids[0], []Update{{Rcpt: 0, State: Delivered}, {Rcpt: 1, State: Delivered}}); err != nil {
		t.Fatal(err)
	}
	if err := q.Delete(ids[1]); err != nil {
		t.Fatal(err)
	}
	q.Close()
	q = openTest(t, dir, Options{})
	defer q.Close()
	if got := q.Stats().Replayed; got != 0 {
		t.Errorf("replayed %d messages that were in the index", got)
	}
	for i, id := range ids {
		_, err := q.Get(id)
		if gone := i < 2; gone != (err == ErrNotFound) {
			t.Errorf("message %d: %v (gone: %v)", i, err, gone)
		}
	}
}

// TestReadYourWrites: the index trails the journal, but whatever Enqueue
// acknowledged is visible to Get, Walk and Stats called after it returned.
func TestReadYourWrites(t *testing.T) {
	q := openTest(t, t.TempDir(), Options{})
	defer q.Close()
	ctx := context.Background()
	for i := range 200 {
		id, err := q.Enqueue(ctx, testEnvelope(i), []byte("x\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		q.Walk(func(*Envelope) bool { n++; return true })
		if n != i+1 {
			t.Fatalf("Walk right after Enqueue %d sees %d messages", i+1, n)
		}
		if _, err := q.Get(id); err != nil {
			t.Fatalf("Get right after Enqueue: %v", err)
		}
	}
}

// TestReadOnlySeesJournal: after a crash, mtactl qm (mtad down) lists the messages
// only the journal holds, with their content, and lists them once after mtad put
// them in the index.
func TestReadOnlySeesJournal(t *testing.T) {
	dir := t.TempDir()
	bodies := []string{"one\r\n", "two\r\n"}
	ids, _ := journalOnly(t, dir, bodies)
	check := func(stage string) {
		t.Helper()
		r, err := OpenReadOnly(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var walked []string
		r.Walk(func(e *Envelope) bool { walked = append(walked, e.ID); return true })
		if fmt.Sprint(walked) != fmt.Sprint(ids) {
			t.Errorf("%s: Walk lists %v, want %v", stage, walked, ids)
		}
		for i, id := range ids {
			if _, err := r.Get(id); err != nil {
				t.Errorf("%s: Get %s: %v", stage, id, err)
			}
			c, err := r.Content(id)
			if err != nil {
				t.Fatalf("%s: Content %s: %v", stage, id, err)
			}
			b := make([]byte, c.Size())
			c.ReadAt(b, 0)
			c.Close()
			if string(b) != bodies[i] {
				t.Errorf("%s: content %q, want %q", stage, b, bodies[i])
			}
		}
	}
	check("journal only")
	openTest(t, dir, Options{}).Close() // replays
	check("replayed")
}

// FuzzScanJournal: whatever bytes a segment holds past the journal mark (a torn
// write, a foreign file, damage), the scan neither panics nor reads past the file,
// and replays only envelopes that decode and name the content just before them.
func FuzzScanJournal(f *testing.F) {
	// A journal of two messages as the seed (written the way writeContents does,
	// without opening a queue in every fuzz worker), and damaged variants.
	good := []byte(segMagic)
	for i, body := range []string{"first\r\n", "second\r\n"} {
		env := testEnvelope(i)
		env.ID, env.Size = fmt.Sprintf("06H3EKZ7P0005%03d", i), int64(len(body))
		sum := crc32.Checksum([]byte(body), castagnoli)
		good = appendRecHeader(good, env.ID, []byte(body), sum)
		loc := contentLoc{Seg: 1, Off: int64(len(good)), Len: int64(len(body)), CRC: sum}
		good = append(good, body...)
		good = appendEnvRec(good, encodeEnvelope(nil, env, loc))
	}
	if recs := scanRecords(bytes.NewReader(good), 1, int64(len(segMagic)), int64(len(good))); len(recs) != 2 {
		f.Fatalf("seed journal: %d records replayed, want 2", len(recs))
	}
	f.Add(good)
	f.Add(good[:len(good)-7])
	f.Add(append(bytes.Clone(good), 0, 0, 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs := scanRecords(bytes.NewReader(data), 1, int64(len(segMagic)), int64(len(data)))
		for _, r := range recs {
			env, loc, err := decodeEnvelope(r.enc)
			if err != nil || env.ID != r.id {
				t.Fatalf("replayed an envelope that does not decode or names %q: %v", env.ID, err)
			}
			if loc.Seg != 1 || loc.Off < 0 || loc.Off+loc.Len > int64(len(data)) {
				t.Fatalf("replayed content outside the file: %+v (file %d bytes)", loc, len(data))
			}
		}
	})
}

// TestJournalUpgrade: an index written before the journal existed (no mark, no
// meta bucket) opens with every message and replays nothing; from then on the
// journal works.
func TestJournalUpgrade(t *testing.T) {
	dir := t.TempDir()
	q := openTest(t, dir, Options{})
	for i := range 3 {
		if _, err := q.Enqueue(context.Background(), testEnvelope(i), []byte("old\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	q.Close()
	db, err := bolt.Open(filepath.Join(dir, "queue.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketMeta) }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	q = openTest(t, dir, Options{})
	n := 0
	q.Walk(func(*Envelope) bool { n++; return true })
	if n != 3 || q.Stats().Replayed != 0 {
		t.Fatalf("old index: %d messages, %d replayed; want 3, 0", n, q.Stats().Replayed)
	}
	q.Close()
	ids, _ := journalOnlyIn(t, dir, []string{"new\r\n"})
	q = openTest(t, dir, Options{})
	defer q.Close()
	if q.Stats().Replayed != 1 {
		t.Fatalf("after the upgrade: %d replayed, want 1", q.Stats().Replayed)
	}
	if got := string(readAll(t, q, ids[0])); got != "new\r\n" {
		t.Fatalf("replayed content %q", got)
	}
}
