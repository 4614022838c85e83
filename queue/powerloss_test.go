package queue

import (
	"context"
	"path/filepath"
	"testing"

	"mtad.dev/mta/internal/lazyfs"
)

// TestAcknowledgedSurvivesPowerCut runs the queue on a filesystem that forgets
// what was not fsync'd: a message Enqueue returned must be there after a power
// cut, with its content. The queue directory is new, as on a first start, so the
// test fails without the fsync of its parent in Open (the directory, and every
// message in it, would vanish), and without the segment's fsync.
func TestAcknowledgedSurvivesPowerCut(t *testing.T) {
	fs := lazyfs.MountForTest(t)
	dir := filepath.Join(fs.Dir(), "queue")
	q := openTest(t, dir, Options{})
	want := map[string]string{}
	for i := range 3 {
		content := []byte("Subject: power cut " + string(rune('a'+i)) + "\r\n\r\nbody\r\n")
		id, err := q.Enqueue(context.Background(), testEnvelope(i), content)
		if err != nil {
			t.Fatal(err)
		}
		want[id] = string(content)
	}
	// Close writes nothing durable a SIGKILL would not have left: the index commit
	// of the last batch, which the journal replays anyway.
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	loss, err := fs.PowerCut()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("power cut: %v", loss)
	q = openTest(t, dir, Options{})
	defer q.Close()
	for id, content := range want {
		if _, err := q.Get(id); err != nil {
			t.Errorf("%s: acknowledged, then lost in a power cut: %v", id, err)
			continue
		}
		if got := readAll(t, q, id); string(got) != content {
			t.Errorf("%s: content %q after the power cut, want %q", id, got, content)
		}
	}
}
