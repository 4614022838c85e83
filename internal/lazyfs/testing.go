package lazyfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Available says why a lazy filesystem cannot be mounted here, or nil: FUSE needs
// root (or fusermount3) and /dev/fuse.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root to mount FUSE")
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("no usable /dev/fuse: %w", err)
	}
	f.Close()
	return nil
}

// MountForTest mounts a lazy filesystem on a new temporary directory for the
// test and unmounts it when the test ends. It skips the test, with a one-line
// reason, where FUSE is not available.
func MountForTest(t testing.TB) *FS {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("lazyfs: %v", err)
	}
	base := t.TempDir()
	mnt, backing := filepath.Join(base, "mnt"), filepath.Join(base, "backing")
	for _, d := range []string{mnt, backing} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Mount(mnt, backing)
	if err != nil {
		t.Skipf("lazyfs: FUSE mount failed: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Errorf("lazyfs: %v", err)
		}
	})
	return f
}
