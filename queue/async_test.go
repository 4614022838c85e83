package queue

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestUpdateAsync: the callback comes once per call with Update's outcome, after
// the change is durable (visible to Get, and after a reopen), and ErrClosed after Close.
func TestUpdateAsync(t *testing.T) {
	dir := t.TempDir()
	q := openTest(t, dir, Options{})
	id, err := q.Enqueue(context.Background(), testEnvelope(1), []byte("body"))
	if err != nil {
		t.Fatal(err)
	}
	wait := func(what string, f func(done func(error))) error {
		t.Helper()
		ch := make(chan error, 2)
		f(func(err error) { ch <- err })
		select {
		case err := <-ch:
			select {
			case <-ch:
				t.Fatalf("%s: callback called twice", what)
			case <-time.After(20 * time.Millisecond):
			}
			return err
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no callback", what)
		}
		return nil
	}
	tests := []struct {
		name string
		id   string
		ups  []Update
		want error
	}{
		{"first recipient delivered", id, []Update{{Rcpt: 0, State: Delivered, Attempts: 1}}, nil},
		{"unknown id", "00000000000000ZZ", []Update{{Rcpt: 0, State: Delivered}}, ErrNotFound},
		{"delivered back to pending", id, []Update{{Rcpt: 0, State: Pending}}, errBadUpdate},
	}
	for _, tt := range tests {
		err := wait(tt.name, func(done func(error)) { q.UpdateAsync(tt.id, tt.ups, done) })
		if !errors.Is(err, tt.want) && err != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	env, err := q.Get(id)
	if err != nil || env.Rcpts[0].State != Delivered {
		t.Fatalf("after async update: %v %+v", err, env)
	}
	// The rest delivered: the message leaves the queue, durably.
	var rest []Update
	for i := 1; i < len(env.Rcpts); i++ {
		rest = append(rest, Update{Rcpt: i, State: Delivered, Attempts: 1})
	}
	if err := wait("rest", func(done func(error)) { q.UpdateAsync(id, rest, done) }); err != nil {
		t.Fatal(err)
	}
	q.Close()
	if err := wait("after close", func(done func(error)) { q.UpdateAsync(id, rest, done) }); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
	q = openTest(t, dir, Options{})
	defer q.Close()
	if _, err := q.Get(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("after reopen: %v, want ErrNotFound", err)
	}
}

// TestContentPaths: contents up to memContentMax are read whole with one pread on a
// shared handle, larger ones stream from their own; both verify and both are byte
// exact; the shared handle goes away with its segment; truncation is detected.
func TestContentPaths(t *testing.T) {
	dir := t.TempDir()
	q := openTest(t, dir, Options{segmentSize: 1}) // one segment per batch
	defer q.Close()
	ctx := context.Background()
	small := []byte("Subject: s\r\n\r\nsmall\r\n")
	large := make([]byte, memContentMax+10)
	for i := range large {
		large[i] = byte('a' + i%26)
	}
	ids := map[string][]byte{}
	var last string // in the segment still being appended to, which stays
	for _, b := range [][]byte{small, large, small} {
		id, err := q.Enqueue(ctx, testEnvelope(1), b)
		if err != nil {
			t.Fatal(err)
		}
		ids[id], last = b, id
	}
	for id, want := range ids {
		c, err := q.Content(id)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, c.Size())
		if n, err := c.ReadAt(got, 0); n != len(got) || (err != nil && err != io.EOF) {
			t.Fatalf("%s: ReadAt %d, %v", id, n, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: content differs", id)
		}
		if n, err := c.ReadAt(make([]byte, 4), c.Size()-2); n != 2 || err != io.EOF {
			t.Errorf("%s: read across the end: %d, %v", id, n, err)
		}
		c.Close()
	}
	q.mu.Lock()
	nr := len(q.readers)
	q.mu.Unlock()
	if nr != 2 {
		t.Errorf("%d shared segment handles, want 2 (the small messages' segments)", nr)
	}
	all := []Update{{Rcpt: 0, State: Delivered}, {Rcpt: 1, State: Delivered}}
	for id := range ids {
		if id == last {
			continue
		}
		if err := q.Update(id, all); err != nil {
			t.Fatal(err)
		}
	}
	q.mu.Lock()
	nr = len(q.readers)
	q.mu.Unlock()
	if nr != 1 {
		t.Errorf("%d shared handles after their segments went, want 1", nr)
	}
	_, loc, _ := q.get(last)
	if err := os.Truncate(segPath(filepath.Join(dir, "segments"), loc.Seg), loc.Off+2); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Content(last); !errors.Is(err, errRecord) {
		t.Errorf("Content of a truncated record: %v, want errRecord", err)
	}
}

// blockingSegment holds every Sync until release is closed: a committer stuck in
// an fsync.
type blockingSegment struct {
	segFile
	syncing chan struct{} // receives when a Sync starts
	release chan struct{}
}

func (b blockingSegment) Sync() error {
	b.syncing <- struct{}{}
	<-b.release
	return b.segFile.Sync()
}

// TestUpdateAsyncDoesNotWaitForCommitter: a delivery job recording its result
// never waits for the committer's current fsync (it would take its next message
// one commit later); the results are committed once the committer is free, and an
// UpdateAsync queued before Close is committed by Close.
func TestUpdateAsyncDoesNotWaitForCommitter(t *testing.T) {
	dir := t.TempDir()
	q := openTest(t, dir, Options{})
	var ids []string
	for i := range 3 {
		id, err := q.Enqueue(context.Background(), testEnvelope(i), []byte("body"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	q.Close()

	syncing, release := make(chan struct{}, 16), make(chan struct{})
	q = openTest(t, dir, Options{createSegment: func(path string) (segFile, error) {
		f, err := createSegmentFile(path)
		if err != nil {
			return nil, err
		}
		return blockingSegment{f, syncing, release}, nil
	}})
	// An enqueue puts the committer into a Sync that does not return.
	enq := make(chan error, 1)
	go func() {
		_, err := q.Enqueue(context.Background(), testEnvelope(9), []byte("stuck"))
		enq <- err
	}()
	select {
	case <-syncing:
	case <-time.After(10 * time.Second):
		t.Fatal("the committer never reached the segment fsync")
	}
	results := make(chan error, 2)
	delivered := []Update{{Rcpt: 0, State: Delivered}, {Rcpt: 1, State: Delivered}}
	returned := make(chan struct{})
	go func() {
		q.UpdateAsync(ids[0], delivered, func(err error) { results <- err })
		q.UpdateAsync(ids[1], delivered, func(err error) { results <- err })
		close(returned)
	}()
	select {
	case <-returned: // although the committer is stuck in its fsync
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("UpdateAsync waited for the committer's fsync")
	}
	close(release)
	for range 2 {
		select {
		case err := <-results:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("an UpdateAsync was never committed")
		}
	}
	if err := <-enq; err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	q.UpdateAsync(ids[2], delivered, func(err error) { closed <- err })
	q.Close()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("UpdateAsync queued before Close: %v", err)
		}
	default:
		t.Fatal("Close returned before committing an UpdateAsync queued before it")
	}
	q.UpdateAsync(ids[2], delivered, func(err error) { closed <- err })
	if err := <-closed; !errors.Is(err, ErrClosed) {
		t.Fatalf("UpdateAsync after Close: %v, want ErrClosed", err)
	}
	q = openTest(t, dir, Options{})
	defer q.Close()
	for _, id := range ids {
		if _, err := q.Get(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: delivered everywhere but still queued (%v)", id, err)
		}
	}
}
