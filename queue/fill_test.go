package queue

import (
	"context"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestIndexPagesFull checks that enqueues (ids only grow) leave the index's leaf
// pages nearly full rather than half empty: at a million queued messages this is
// the difference between ~230 and ~440 MB of queue.db mapped into mtad.
func TestIndexPagesFull(t *testing.T) {
	q := openTest(t, t.TempDir(), Options{})
	defer q.Close()
	const n, workers = 4000, 16
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if _, err := q.Enqueue(context.Background(), testEnvelope(i), []byte("Subject: x\r\n\r\nbody\r\n")); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Enqueue: %v", err)
	}
	q.awaitIndex() // the index trails the acknowledgements by one commit
	var st bolt.BucketStats
	if err := q.db.View(func(tx *bolt.Tx) error {
		st = tx.Bucket(bucketMsgs).Stats()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if st.KeyN != n {
		t.Fatalf("index holds %d keys, want %d", st.KeyN, n)
	}
	fill := float64(st.LeafInuse) / float64(st.LeafAlloc)
	t.Logf("leaf pages %d, %d of %d bytes in use (%.0f%%)", st.LeafPageN, st.LeafInuse, st.LeafAlloc, 100*fill)
	if fill < 0.8 {
		t.Errorf("leaf pages %.0f%% full, want >= 80%% (appending keys should fill pages)", 100*fill)
	}
}
