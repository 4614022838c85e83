package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"mtad.dev/mta/status"
)

func testEnvelope(n int) *Envelope {
	env := &Envelope{From: fmt.Sprintf("sender%d@example.com", n), Source: "tcp_local"}
	for i := 0; i < 2; i++ {
		env.Rcpts = append(env.Rcpts, Recipient{
			Addr: fmt.Sprintf("r%d-%d@example.org", n, i), Channel: "tcp_intranet", Host: "example.org",
		})
	}
	return env
}

func openTest(t testing.TB, dir string, opts Options) *Queue {
	t.Helper()
	if opts.Logger == nil && !testing.Verbose() {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	q, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return q
}

func readAll(t testing.TB, q *Queue, id string) []byte {
	t.Helper()
	c, err := q.Content(id)
	if err != nil {
		t.Fatalf("Content(%s): %v", id, err)
	}
	defer c.Close()
	b, err := io.ReadAll(io.NewSectionReader(c, 0, c.Size()))
	if err != nil {
		t.Fatalf("read content %s: %v", id, err)
	}
	return b
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "segments", "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

func TestEnvelopeRoundTrip(t *testing.T) {
	arrival := time.Date(2026, 11, 23, 17, 53, 4, 123456789, time.UTC)
	full := &Envelope{
		From: "sender@siroe.com", Source: "tcp_local", Arrival: arrival,
		RET: "HDRS", EnvID: "QQ314159", Body8Bit: true, SMTPUTF8: true,
		MessageID: "<abc@siroe.com>", Client: "mail.siroe.com ([192.0.2.1])", Priority: -1,
		Held: true, HeldReason: "holdlimit exceeded", Notices: 3,
		Rcpts: []Recipient{
			{Addr: "a@example.com", Orig: "A@Example.com", ORCPT: "rfc822;A@Example.com", Notify: "SUCCESS,FAILURE,DELAY",
				Channel: "tcp_intranet", Host: "example.com", State: Pending, Attempts: 4,
				NextAttempt: arrival.Add(time.Hour), LastError: "451 4.4.1 no answer"},
			{Addr: "δ@例え.jp", Orig: "δ@例え.jp", Notify: "NEVER", Channel: "ims-ms", Host: "例え.jp",
				State: Delivered, Attempts: 1},
			{Addr: "x@y", State: Returned, LastError: "550 5.1.1 no such user"},
		},
	}
	tests := []struct {
		name string
		env  *Envelope
	}{
		{"every field", full},
		{"minimal", &Envelope{Rcpts: []Recipient{{Addr: "b@c"}}}},
		{"null sender", &Envelope{From: "", Priority: 1, Rcpts: []Recipient{{Addr: "b@c", NextAttempt: time.Unix(0, 0)}}}},
	}
	q := openTest(t, t.TempDir(), Options{})
	defer q.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Straight through the codec, with a content location.
			loc := contentLoc{Seg: 70000, Off: 1 << 40, Len: tt.env.Size, CRC: 0xdeadbeef}
			got, gotLoc, err := decodeEnvelope(encodeEnvelope(nil, tt.env, loc))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if gotLoc != loc {
				t.Errorf("loc = %+v, want %+v", gotLoc, loc)
			}
			assertEnvEqual(t, got, tt.env)

			// Through the queue.
			content := []byte("Subject: x\r\n\r\nbody\r\n")
			id, err := q.Enqueue(context.Background(), tt.env, content)
			if err != nil {
				t.Fatalf("Enqueue: %v", err)
			}
			want := cloneEnvelope(tt.env)
			want.ID, want.Size = id, int64(len(content))
			got, err = q.Get(id)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if want.Arrival.IsZero() {
				if time.Since(got.Arrival) > time.Minute {
					t.Errorf("Arrival not set: %v", got.Arrival)
				}
				want.Arrival = got.Arrival
			}
			assertEnvEqual(t, got, want)
		})
	}
}

// assertEnvEqual compares envelopes with times compared by instant.
func assertEnvEqual(t *testing.T, got, want *Envelope) {
	t.Helper()
	norm := func(e *Envelope) *Envelope {
		c := cloneEnvelope(e)
		c.Arrival = time.Unix(0, e.Arrival.UnixNano()).UTC()
		if e.Arrival.IsZero() {
			c.Arrival = time.Time{}
		}
		if len(c.Rcpts) == 0 {
			c.Rcpts = nil
		}
		for i := range c.Rcpts {
			if !c.Rcpts[i].NextAttempt.IsZero() {
				c.Rcpts[i].NextAttempt = time.Unix(0, c.Rcpts[i].NextAttempt.UnixNano()).UTC()
			}
		}
		return c
	}
	if g, w := norm(got), norm(want); !reflect.DeepEqual(g, w) {
		t.Errorf("envelope mismatch:\n got %+v\nwant %+v", g, w)
	}
}

func TestEnvelopeCorruptionDetected(t *testing.T) {
	b := encodeEnvelope(nil, testEnvelope(1), contentLoc{})
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x20
		if _, _, err := decodeEnvelope(c); err == nil {
			t.Fatalf("flipping byte %d went unnoticed", i)
		}
	}
	for n := 0; n < len(b); n++ {
		if _, _, err := decodeEnvelope(b[:n]); err == nil {
			t.Fatalf("truncation to %d bytes went unnoticed", n)
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	full := encodeEnvelope(nil, testEnvelope(1), contentLoc{Seg: 1, Off: 44})
	f.Add(full[:len(full)-4])
	f.Add([]byte{1, 2, 3, 4, 5})
	f.Fuzz(func(t *testing.T, body []byte) {
		// The input is the record without its checksum, which is added here: random
		// bytes would almost never pass the CRC and the parser would go untested.
		b := binary.LittleEndian.AppendUint32(bytes.Clone(body), crc32.Checksum(body, castagnoli))
		env, loc, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		// Whatever decodes must survive a round trip unchanged.
		env2, loc2, err := decodeEnvelope(encodeEnvelope(nil, env, loc))
		if err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v", err)
		}
		if loc2 != loc || !reflect.DeepEqual(env2, env) {
			t.Fatalf("round trip changed the envelope:\n%+v\n%+v", env, env2)
		}
	})
}

func TestIDs(t *testing.T) {
	g := newIDGen()
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	seen := make(map[string]bool)
	prev := ""
	for i := 0; i < 200000; i++ {
		// Many ids per millisecond (to overflow the counter), and a clock step back.
		at := now.Add(time.Duration(i/100000) * time.Millisecond)
		if i == 150000 {
			at = now.Add(-time.Hour)
		}
		id := g.next(at)
		if len(id) != idLen || !validID(id) {
			t.Fatalf("bad id %q", id)
		}
		if seen[id] || id <= prev {
			t.Fatalf("id %q not unique/increasing after %q", id, prev)
		}
		seen[id], prev = true, id
	}
	id := newIDGen().next(now)
	if ms, ok := idMillis(id); !ok || ms != now.UnixMilli() {
		t.Errorf("idMillis(%s) = %d, %v; want %d", id, ms, ok, now.UnixMilli())
	}
	g2 := newIDGen()
	g2.observe(prev)
	if id := g2.next(now.Add(-24 * time.Hour)); id <= prev {
		t.Errorf("after observe(%s) got smaller id %s", prev, id)
	}
	for _, bad := range []string{"", "0123456789ABCDEI", "0123456789abcdef", "0123456789ABCDEFG"} {
		if validID(bad) {
			t.Errorf("validID(%q) = true", bad)
		}
	}
}

func TestContentByteExact(t *testing.T) {
	dir := t.TempDir()
	q := openTest(t, dir, Options{})
	rnd := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 4095, 4096, 65537, 1 << 20}
	for i := 0; i < 10; i++ {
		sizes = append(sizes, rnd.IntN(1<<20+1))
	}
	want := make(map[string][]byte)
	for i, n := range sizes {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(rnd.Uint32())
		}
		id, err := q.Enqueue(context.Background(), testEnvelope(i), b)
		if err != nil {
			t.Fatal(err)
		}
		want[id] = b
	}
	check := func(q *Queue) {
		for id, b := range want {
			if got := readAll(t, q, id); !bytes.Equal(got, b) {
				t.Errorf("%s: content differs (%d bytes, want %d)", id, len(got), len(b))
			}
			env, err := q.Get(id)
			if err != nil || env.Size != int64(len(b)) {
				t.Errorf("%s: Get = %v, %v; size want %d", id, env, err, len(b))
			}
		}
	}
	check(q)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, dir, Options{})
	defer q.Close()
	check(q)
}

func TestConcurrentEnqueue(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	notified := make(map[string]bool)
	q := openTest(t, dir, Options{OnCommit: func(envs []*Envelope) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range envs {
			notified[e.ID] = true
		}
	}})
	const workers, each = 50, 20
	var wg sync.WaitGroup
	ids := make([][]string, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				body := []byte(fmt.Sprintf("worker %d message %d\r\n", w, i))
				id, err := q.Enqueue(context.Background(), testEnvelope(w*each+i), body)
				if err != nil {
					t.Error(err)
					return
				}
				ids[w] = append(ids[w], id)
			}
		}()
	}
	wg.Wait()
	st := q.Stats()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if st.Enqueued != workers*each {
		t.Errorf("Stats.Enqueued = %d", st.Enqueued)
	}
	if st.Batches >= workers*each {
		t.Errorf("no group commit: %d batches for %d messages", st.Batches, workers*each)
	}
	t.Logf("%d messages in %d batches", st.Enqueued, st.Batches)

	q = openTest(t, dir, Options{})
	defer q.Close()
	seen := make(map[string]bool)
	for w := range ids {
		for i, id := range ids[w] {
			if seen[id] {
				t.Fatalf("duplicate id %s", id)
			}
			seen[id] = true
			if !notified[id] {
				t.Errorf("OnCommit never saw %s", id)
			}
			if got, want := string(readAll(t, q, id)), fmt.Sprintf("worker %d message %d\r\n", w, i); got != want {
				t.Errorf("%s: content %q, want %q", id, got, want)
			}
		}
	}
	var n int
	prev := ""
	if err := q.Walk(func(e *Envelope) bool {
		if e.ID <= prev {
			t.Errorf("Walk out of order: %s after %s", e.ID, prev)
		}
		prev = e.ID
		n++
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if n != workers*each {
		t.Errorf("Walk saw %d messages, want %d", n, workers*each)
	}
}

func TestUpdate(t *testing.T) {
	dir := t.TempDir()
	// Tiny segments: every batch starts a new one, so reclaiming can be observed.
	q := openTest(t, dir, Options{segmentSize: 1})
	defer q.Close()
	ctx := context.Background()
	id1, err := q.Enqueue(ctx, testEnvelope(1), []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	id2, err := q.Enqueue(ctx, testEnvelope(2), []byte("two"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(segFiles(t, dir)); n != 2 {
		t.Fatalf("%d segments, want 2", n)
	}
	next := time.Now().Add(time.Hour)
	if err := q.Update(id1, []Update{
		{Rcpt: 0, State: Delivered, Attempts: 1},
		{Rcpt: 1, State: Pending, Attempts: 1, NextAttempt: next, LastError: "451 4.4.1 later"},
	}); err != nil {
		t.Fatal(err)
	}
	env, err := q.Get(id1)
	if err != nil {
		t.Fatal(err)
	}
	if r := env.Rcpts; r[0].State != Delivered || r[1].State != Pending || r[1].Attempts != 1 ||
		!r[1].NextAttempt.Equal(next) || r[1].LastError != "451 4.4.1 later" {
		t.Fatalf("after partial update: %+v", r)
	}

	badUpdates := []struct {
		name string
		id   string
		ups  []Update
		want error
	}{
		{"unknown id", "00000000000000ZZ", []Update{{Rcpt: 0, State: Delivered}}, ErrNotFound},
		{"rcpt out of range", id1, []Update{{Rcpt: 2, State: Delivered}}, errBadUpdate},
		{"negative rcpt", id1, []Update{{Rcpt: -1, State: Delivered}}, errBadUpdate},
		{"delivered back to pending", id1, []Update{{Rcpt: 1, State: Delivered}, {Rcpt: 0, State: Pending}}, errBadUpdate},
		{"bad state", id1, []Update{{Rcpt: 1, State: 7}}, errBadUpdate},
	}
	for _, tt := range badUpdates {
		if err := q.Update(tt.id, tt.ups); !errors.Is(err, tt.want) {
			t.Errorf("%s: Update = %v, want %v", tt.name, err, tt.want)
		}
	}
	// The refused update must not have applied its valid half.
	if env, _ := q.Get(id1); env.Rcpts[1].State != Pending {
		t.Fatalf("refused update partly applied: %+v", env.Rcpts)
	}

	if err := q.Update(id1, []Update{{Rcpt: 1, State: Returned, Attempts: 2, LastError: "550 5.1.1 unknown"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Get(id1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after complete update: %v, want ErrNotFound", err)
	}
	if _, err := q.Content(id1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Content after complete update: %v, want ErrNotFound", err)
	}
	// id1's segment is no longer referenced and not the current one: gone.
	if segs := segFiles(t, dir); len(segs) != 1 {
		t.Fatalf("segments after removal: %v", segs)
	}
	if got := string(readAll(t, q, id2)); got != "two" {
		t.Fatalf("id2 content %q", got)
	}
	if err := q.Update(id1, []Update{{Rcpt: 0, State: Delivered}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of removed message: %v", err)
	}
}

func TestDeliveredNotRedeliveredAfterRestart(t *testing.T) {
	dir := t.TempDir()
	q := openTest(t, dir, Options{})
	id, err := q.Enqueue(context.Background(), testEnvelope(1), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Update(id, []Update{{Rcpt: 0, State: Delivered, Attempts: 1}}); err != nil {
		t.Fatal(err)
	}
	gone, err := q.Enqueue(context.Background(), testEnvelope(2), []byte("y"))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Update(gone, []Update{{Rcpt: 0, State: Delivered}, {Rcpt: 1, State: Delivered}}); err != nil {
		t.Fatal(err)
	}
	q.Close()
	q = openTest(t, dir, Options{})
	defer q.Close()
	env, err := q.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if env.Rcpts[0].State != Delivered || env.Rcpts[1].State != Pending {
		t.Fatalf("states after restart: %+v", env.Rcpts)
	}
	if _, err := q.Get(gone); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fully delivered message back after restart: %v", err)
	}
	if segs := segFiles(t, dir); len(segs) != 1 {
		t.Fatalf("segments after restart: %v", segs)
	}
}

func TestHoldReleaseDelete(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var notified []string
	onCommit := func(envs []*Envelope) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range envs {
			notified = append(notified, e.ID+held(e))
		}
	}
	takeNotified := func() []string {
		// OnCommit runs on its own goroutine: wait briefly for it.
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			n := notified
			if len(n) > 0 || time.Now().After(deadline) {
				notified = nil
				mu.Unlock()
				return n
			}
			mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}
	q := openTest(t, dir, Options{OnCommit: onCommit})
	ctx := context.Background()
	id, err := q.Enqueue(ctx, testEnvelope(1), []byte("m"))
	if err != nil {
		t.Fatal(err)
	}
	if got := takeNotified(); !reflect.DeepEqual(got, []string{id}) {
		t.Fatalf("OnCommit after Enqueue: %v", got)
	}
	if err := q.Hold(id, "loop detected"); err != nil {
		t.Fatal(err)
	}
	env, _ := q.Get(id)
	if !env.Held || env.HeldReason != "loop detected" {
		t.Fatalf("after Hold: %+v", env)
	}
	// Held survives a restart.
	q.Close()
	q = openTest(t, dir, Options{OnCommit: onCommit})
	defer q.Close()
	env, _ = q.Get(id)
	if !env.Held || env.HeldReason != "loop detected" {
		t.Fatalf("after reopen: %+v", env)
	}
	if err := q.Release(id); err != nil {
		t.Fatal(err)
	}
	if got := takeNotified(); !reflect.DeepEqual(got, []string{id}) {
		t.Fatalf("OnCommit after Release: %v", got)
	}
	env, _ = q.Get(id)
	if env.Held || env.HeldReason != "" {
		t.Fatalf("after Release: %+v", env)
	}
	if err := q.Release(id); err != nil { // not held: nothing to do, no notification
		t.Fatal(err)
	}
	if err := q.Delete(id); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Get(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	for name, err := range map[string]error{
		"Delete": q.Delete(id), "Hold": q.Hold(id, "x"), "Release": q.Release(id),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s of deleted message: %v", name, err)
		}
	}
	mu.Lock()
	if len(notified) != 0 {
		t.Errorf("unexpected notifications: %v", notified)
	}
	mu.Unlock()
}

func held(e *Envelope) string {
	if e.Held {
		return " HELD"
	}
	return ""
}

func TestWalkStops(t *testing.T) {
	q := openTest(t, t.TempDir(), Options{})
	defer q.Close()
	// More than one Walk chunk; concurrent so that group commit keeps it quick.
	var (
		mu   sync.Mutex
		want []string
		wg   sync.WaitGroup
	)
	for w := 0; w < 25; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				id, err := q.Enqueue(context.Background(), testEnvelope(i), nil)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				want = append(want, id)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Strings(want)
	var got []string
	q.Walk(func(e *Envelope) bool { got = append(got, e.ID); return true })
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Walk returned %d ids, want %d in order", len(got), len(want))
	}
	n := 0
	q.Walk(func(e *Envelope) bool { n++; return n < 1500 })
	if n != 1500 {
		t.Fatalf("Walk did not stop: %d calls", n)
	}
}

func TestClose(t *testing.T) {
	q := openTest(t, t.TempDir(), Options{})
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(context.Background(), testEnvelope(1), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Enqueue after Close: %v", err)
	}
	if err := q.Update("x", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Update after Close: %v", err)
	}
	if _, err := q.Get("x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if err := q.Walk(func(*Envelope) bool { return true }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Walk after Close: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestEnqueueRejects(t *testing.T) {
	q := openTest(t, t.TempDir(), Options{})
	defer q.Close()
	if _, err := q.Enqueue(context.Background(), &Envelope{From: "a@b"}, nil); err == nil {
		t.Error("Enqueue without recipients succeeded")
	}
	done := &Envelope{Rcpts: []Recipient{{Addr: "a@b", State: Delivered}}}
	if _, err := q.Enqueue(context.Background(), done, nil); err == nil {
		t.Error("Enqueue without a pending recipient succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// A cancelled context may still win the race with the hand-off; either outcome is
	// fine, but a nil error must mean the message is really there.
	id, err := q.Enqueue(ctx, testEnvelope(1), nil)
	if err == nil {
		if _, err := q.Get(id); err != nil {
			t.Errorf("acknowledged %s missing: %v", id, err)
		}
	} else if !errors.Is(err, context.Canceled) {
		t.Errorf("Enqueue with cancelled ctx: %v", err)
	}
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	q := openTest(t, dir, Options{})
	defer q.Close()
	if _, err := Open(dir, Options{lockTimeout: 50 * time.Millisecond}); err == nil {
		t.Fatal("second Open of the same queue succeeded")
	}
}

// failingSegment injects write errors: the hook for "disk full" and I/O errors.
type failingSegment struct {
	segFile
	fail *failSwitch
}

type failSwitch struct {
	mu                sync.Mutex
	write, sync, open bool
}

func (s *failSwitch) get() (w, sy, o bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.write, s.sync, s.open
}

var errNoSpaceLeft = errors.New("write: no space left on device")

func (f failingSegment) Write(p []byte) (int, error) {
	if w, _, _ := f.fail.get(); w {
		// A partial write, as a filling disk gives.
		n, _ := f.segFile.Write(p[:len(p)/2])
		return n, errNoSpaceLeft
	}
	return f.segFile.Write(p)
}

func (f failingSegment) Sync() error {
	if _, s, _ := f.fail.get(); s {
		return errors.New("fsync: input/output error")
	}
	return f.segFile.Sync()
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	sw := &failSwitch{}
	// One segment per batch, so that every batch needs a new file (and can fail to get one).
	opts := Options{segmentSize: 1, createSegment: func(path string) (segFile, error) {
		if _, _, o := sw.get(); o {
			return nil, errNoSpaceLeft
		}
		f, err := createSegmentFile(path)
		if err != nil {
			return nil, err
		}
		return failingSegment{f, sw}, nil
	}}
	q := openTest(t, dir, opts)
	ctx := context.Background()
	acked := make(map[string]string)
	enqueue := func(tag string) (string, error) {
		body := tag + " " + string(bytes.Repeat([]byte("x"), 3000))
		id, err := q.Enqueue(ctx, testEnvelope(1), []byte(body))
		if err == nil {
			acked[id] = body
		}
		return id, err
	}
	if _, err := enqueue("before"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		set  func()
	}{
		{"write fails", func() { sw.write = true }},
		{"fsync fails", func() { sw.sync = true }},
		{"cannot create segment", func() { sw.open = true }},
	}
	for _, tt := range cases {
		sw.mu.Lock()
		sw.write, sw.sync, sw.open = false, false, false
		tt.set()
		sw.mu.Unlock()
		// Several concurrent enqueues in the failing batch(es): all must fail with 452.
		var wg sync.WaitGroup
		errs := make([]error, 5)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = q.Enqueue(ctx, testEnvelope(i), []byte("doomed"))
			}()
		}
		wg.Wait()
		for _, err := range errs {
			s := status.From(err)
			if err == nil || s.Code != 452 || s.Enhanced != "4.3.1" {
				t.Errorf("%s: Enqueue error %v, want 452 4.3.1", tt.name, err)
			}
		}
		// Space returns: the queue keeps working.
		sw.mu.Lock()
		sw.write, sw.sync, sw.open = false, false, false
		sw.mu.Unlock()
		if _, err := enqueue("after " + tt.name); err != nil {
			t.Fatalf("%s: Enqueue after recovery: %v", tt.name, err)
		}
	}
	// An index commit failure after the journal fsync is not a failure of the
	// message: it was acknowledged, stays in the journal and reaches the index when
	// the index can be written again, by a later commit or by the next start.
	fail := true
	var failMu sync.Mutex
	setFail := func(v bool) {
		failMu.Lock()
		fail = v
		failMu.Unlock()
	}
	q.Close()
	opts.beforeCommit = func() error {
		failMu.Lock()
		defer failMu.Unlock()
		if fail {
			return errors.New("mmap: no space left on device")
		}
		return nil
	}
	q = openTest(t, dir, opts)
	late, err := enqueue("indexed by a later commit")
	if err != nil {
		t.Fatalf("index failure refused a journaled message: %v", err)
	}
	setFail(false)
	if _, err := q.Get(late); err != nil {
		t.Fatalf("message journaled while the index failed: %v", err)
	}
	setFail(true)
	if _, err := enqueue("indexed by the next start"); err != nil {
		t.Fatalf("index failure refused a journaled message: %v", err)
	}
	q.Close() // the index still fails: the message is only in the journal
	setFail(false)
	q = openTest(t, dir, opts)
	if _, err := enqueue("after commit failure"); err != nil {
		t.Fatal(err)
	}
	q.Close()

	q = openTest(t, dir, Options{})
	defer q.Close()
	if qi := q.Quarantined(); len(qi) != 0 {
		t.Fatalf("quarantined after write errors: %+v", qi)
	}
	n := 0
	q.Walk(func(e *Envelope) bool {
		n++
		if _, ok := acked[e.ID]; !ok {
			t.Errorf("message %s was never acknowledged but is queued", e.ID)
		}
		return true
	})
	if n != len(acked) {
		t.Errorf("%d messages queued, %d acknowledged", n, len(acked))
	}
	for id, body := range acked {
		if got := string(readAll(t, q, id)); got != body {
			t.Errorf("%s: content damaged", id)
		}
	}
}

func TestRecoveryQuarantines(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, dir, seg string, loc contentLoc)
		reason string
	}{
		{"content byte flipped", func(t *testing.T, dir, seg string, loc contentLoc) {
			flipByte(t, seg, loc.Off+loc.Len/2)
		}, "content checksum mismatch"},
		{"record header damaged", func(t *testing.T, dir, seg string, loc contentLoc) {
			flipByte(t, seg, loc.Off-recHeaderLen+6)
		}, "header checksum mismatch"},
		{"segment truncated", func(t *testing.T, dir, seg string, loc contentLoc) {
			if err := os.Truncate(seg, loc.Off+loc.Len-1); err != nil {
				t.Fatal(err)
			}
		}, "segment truncated"},
		{"segment missing", func(t *testing.T, dir, seg string, loc contentLoc) {
			if err := os.Remove(seg); err != nil {
				t.Fatal(err)
			}
		}, "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// One segment per message, so the damage hits only the last one.
			q := openTest(t, dir, Options{segmentSize: 1})
			ctx := context.Background()
			good, err := q.Enqueue(ctx, testEnvelope(1), []byte("good message"))
			if err != nil {
				t.Fatal(err)
			}
			env := testEnvelope(2)
			env.MessageID = "<victim@example.com>"
			victim, err := q.Enqueue(ctx, env, bytes.Repeat([]byte("victim "), 100))
			if err != nil {
				t.Fatal(err)
			}
			_, loc, err := q.get(victim)
			if err != nil {
				t.Fatal(err)
			}
			q.Close()
			tt.damage(t, dir, segPath(filepath.Join(dir, "segments"), loc.Seg), loc)

			q = openTest(t, dir, Options{})
			defer q.Close()
			if got := string(readAll(t, q, good)); got != "good message" {
				t.Errorf("good message content %q", got)
			}
			if _, err := q.Get(victim); !errors.Is(err, ErrNotFound) {
				t.Errorf("damaged message still queued: %v", err)
			}
			qi := q.Quarantined()
			if len(qi) != 1 || qi[0].ID != victim || qi[0].Envelope == nil ||
				qi[0].Envelope.MessageID != "<victim@example.com>" || !bytes.Contains([]byte(qi[0].Reason), []byte(tt.reason)) {
				t.Fatalf("Quarantined() = %+v, want %s with reason %q", qi, victim, tt.reason)
			}
			// Quarantine is durable and recovery does not repeat it.
			q.Close()
			q = openTest(t, dir, Options{})
			if qi := q.Quarantined(); len(qi) != 1 {
				t.Fatalf("after reopen: %+v", qi)
			}
		})
	}
}

func TestContentDetectsLateCorruption(t *testing.T) {
	dir := t.TempDir()
	q := openTest(t, dir, Options{})
	defer q.Close()
	id, err := q.Enqueue(context.Background(), testEnvelope(1), []byte("precious bytes"))
	if err != nil {
		t.Fatal(err)
	}
	_, loc, _ := q.get(id)
	flipByte(t, segPath(filepath.Join(dir, "segments"), loc.Seg), loc.Off+3)
	if _, err := q.Content(id); err == nil || !errors.Is(err, errRecord) {
		t.Fatalf("Content of corrupted message: %v", err)
	}
}

func TestCorruptEnvelopeQuarantined(t *testing.T) {
	dir := t.TempDir()
	q := openTest(t, dir, Options{})
	id, err := q.Enqueue(context.Background(), testEnvelope(1), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	// Damage the stored envelope value itself.
	q.awaitIndex() // the index trails the acknowledgement by one commit
	if err := q.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMsgs)
		v := bytes.Clone(b.Get([]byte(id)))
		v[3] ^= 1
		return b.Put([]byte(id), v)
	}); err != nil {
		t.Fatal(err)
	}
	q.Close()
	q = openTest(t, dir, Options{})
	defer q.Close()
	qi := q.Quarantined()
	if len(qi) != 1 || qi[0].ID != id || qi[0].Envelope != nil {
		t.Fatalf("Quarantined() = %+v", qi)
	}
	if _, err := q.Get(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get: %v", err)
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentUpdates(t *testing.T) {
	dir := t.TempDir()
	q := openTest(t, dir, Options{segmentSize: 4096})
	defer q.Close()
	const n = 200
	ids := make([]string, n)
	var wg sync.WaitGroup
	for w := 0; w < 50; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 50 {
				id, err := q.Enqueue(context.Background(), testEnvelope(i), bytes.Repeat([]byte{byte(i)}, 1000))
				if err != nil {
					t.Error(err)
					return
				}
				ids[i] = id
			}
		}()
	}
	wg.Wait()
	if len(segFiles(t, dir)) < 2 {
		t.Fatal("test needs several segments")
	}
	// First a partial update of everything, then the final one, 50 deliveries at a time.
	for _, ups := range [][]Update{
		{{Rcpt: 1, State: Pending, Attempts: 1, LastError: "451 later"}},
		{{Rcpt: 0, State: Delivered, Attempts: 1}, {Rcpt: 1, State: Returned, Attempts: 2}},
	} {
		for w := 0; w < 50; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 50 {
					if err := q.Update(ids[i], ups); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
	}
	q.Walk(func(e *Envelope) bool { t.Errorf("%s still queued", e.ID); return true })
	// Every segment but the one still open for appending is gone.
	if segs := segFiles(t, dir); len(segs) > 1 {
		t.Errorf("segments left: %v", segs)
	}
	if st := q.Stats(); st.Segments > 1 {
		t.Errorf("Stats.Segments = %d", st.Segments)
	}
}

func TestHeldOnArrivalNotNotified(t *testing.T) {
	var mu sync.Mutex
	var got []string
	q := openTest(t, t.TempDir(), Options{OnCommit: func(envs []*Envelope) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range envs {
			got = append(got, e.ID)
		}
	}})
	env := testEnvelope(1)
	env.Held, env.HeldReason = true, "holdlimit"
	held, err := q.Enqueue(context.Background(), env, nil)
	if err != nil {
		t.Fatal(err)
	}
	free, err := q.Enqueue(context.Background(), testEnvelope(2), nil)
	if err != nil {
		t.Fatal(err)
	}
	q.Close() // flushes the notifier
	if !reflect.DeepEqual(got, []string{free}) {
		t.Fatalf("OnCommit saw %v, want only %s (not held %s)", got, free, held)
	}
}

func TestDeleteQuarantined(t *testing.T) {
	dir := t.TempDir()
	q := openTest(t, dir, Options{})
	id, err := q.Enqueue(context.Background(), testEnvelope(1), []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	_, loc, _ := q.get(id)
	q.Close()
	flipByte(t, segPath(filepath.Join(dir, "segments"), loc.Seg), loc.Off)
	q = openTest(t, dir, Options{})
	defer q.Close()
	if len(q.Quarantined()) != 1 {
		t.Fatal("not quarantined")
	}
	if err := q.DeleteQuarantined(id); err != nil {
		t.Fatal(err)
	}
	if err := q.DeleteQuarantined(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second DeleteQuarantined: %v", err)
	}
	if len(q.Quarantined()) != 0 {
		t.Fatal("still quarantined")
	}
}

func FuzzCheckRecHeader(f *testing.F) {
	content := []byte("hello")
	id := "06H0K3B440000Z41"
	f.Add(appendRecHeader(nil, id, content, 7))
	f.Add(make([]byte, recHeaderLen))
	f.Fuzz(func(t *testing.T, h []byte) {
		loc := contentLoc{Len: int64(len(content)), CRC: 7}
		if checkRecHeader(h, id, loc) == nil && !bytes.Equal(h, appendRecHeader(nil, id, content, 7)) {
			t.Fatalf("accepted a header that differs from the real one: %x", h)
		}
	})
}
