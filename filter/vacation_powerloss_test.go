package filter

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"mtad.dev/mta/internal/lazyfs"
)

// TestVacationSurvivesPowerCut: once Answer returned, a power cut that forgets
// everything not fsync'd leaves its record, and the same sender is not answered
// again: at the first answer of all (DATA/vacation is new), at a mailbox's first
// answer (its directory is new) and at a new sender of a mailbox that answered
// before. The data directory exists and is durable, as the daemon makes it.
func TestVacationSurvivesPowerCut(t *testing.T) {
	lfs := lazyfs.MountForTest(t)
	data := filepath.Join(lfs.Dir(), "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syncDir(lfs.Dir()); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	answer := func(mailbox, sender string) bool {
		t.Helper()
		store := NewVacationStore(filepath.Join(data, "vacation")) // a new one, as after a restart
		sent, err := store.Answer(mailbox, "away", sender, 7, now, func() error { return nil })
		if err != nil {
			t.Fatalf("%s answering %s: %v", mailbox, sender, err)
		}
		return sent
	}
	for _, c := range []struct{ what, mailbox, sender string }{
		{"the first answer of all", "bob", "ann@example.org"},
		{"a new sender", "bob", "cy@example.org"},
		{"a mailbox's first answer", "eve", "ann@example.org"},
	} {
		if !answer(c.mailbox, c.sender) {
			t.Fatalf("%s: %s did not answer %s", c.what, c.mailbox, c.sender)
		}
		loss, err := lfs.PowerCut()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s, then a power cut: %v", c.what, loss)
		if answer(c.mailbox, c.sender) {
			t.Errorf("%s: after a power cut %s answered %s again", c.what, c.mailbox, c.sender)
		}
	}
}

// TestVacationReportsSyncFailure: a record that cannot be made durable is an
// error (mtad logs that the answer was sent but not recorded), not a silent
// success.
func TestVacationReportsSyncFailure(t *testing.T) {
	lfs := lazyfs.MountForTest(t)
	store := NewVacationStore(filepath.Join(lfs.Dir(), "vacation"))
	lfs.FailSyncs(0, syscall.EIO)
	sent, err := store.Answer("bob", "away", "ann@example.org", 7, time.Now(), func() error { return nil })
	if !sent || err == nil {
		t.Errorf("with directory fsyncs failing: sent %v, err %v; want sent and an error", sent, err)
	}
}
