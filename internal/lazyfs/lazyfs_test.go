package lazyfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The filesystem's own proof: each kind of change it must forget is forgotten by
// a power cut, and each kind it must keep (fsync'd data, names in fsync'd
// directories) is kept.

func write(t *testing.T, path, content string, syncFile bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if syncFile {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func appendTo(t *testing.T, path, content string, syncFile bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if syncFile {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

func syncDir(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

func cut(t *testing.T, f *FS) Loss {
	t.Helper()
	loss, err := f.PowerCut()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("power cut: %v", loss)
	return loss
}

// want checks that path holds content, or is missing when content is "<missing>".
func want(t *testing.T, path, content string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if content == "<missing>" {
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: want it gone, got %q (err %v)", filepath.Base(path), b, err)
		}
		return
	}
	if err != nil {
		t.Errorf("%s: %v", filepath.Base(path), err)
		return
	}
	if string(b) != content {
		t.Errorf("%s: got %q, want %q", filepath.Base(path), b, content)
	}
}

// durableFile creates path with content, fsync'd together with its directory.
func durableFile(t *testing.T, path, content string) {
	t.Helper()
	write(t, path, content, true)
	syncDir(t, filepath.Dir(path))
}

func TestUnsyncedAppendIsLost(t *testing.T) {
	f := MountForTest(t)
	p := filepath.Join(f.Dir(), "log")
	durableFile(t, p, "synced ")
	appendTo(t, p, "and more", false)
	want(t, p, "synced and more") // before the cut, the page cache shows everything
	loss := cut(t, f)
	want(t, p, "synced ")
	if loss.FilesCut != 1 || loss.BytesLost != int64(len("and more")) {
		t.Errorf("loss %+v", loss)
	}
}

func TestSyncedAppendIsKept(t *testing.T) {
	f := MountForTest(t)
	p := filepath.Join(f.Dir(), "log")
	durableFile(t, p, "synced ")
	appendTo(t, p, "and more", true)
	cut(t, f)
	want(t, p, "synced and more")
}

func TestUnsyncedOverwriteIsLost(t *testing.T) {
	f := MountForTest(t)
	p := filepath.Join(f.Dir(), "db")
	durableFile(t, p, "aaaaaaaa")
	w, err := os.OpenFile(p, os.O_WRONLY, 0) // write-only: the old bytes are read another way
	if err != nil {
		t.Fatal(err)
	}
	w.WriteAt([]byte("bb"), 2)
	w.WriteAt([]byte("cccc"), 3) // overlaps the first overwrite
	w.WriteAt([]byte("dddd"), 6) // half past the end
	w.Close()
	want(t, p, "aabcccdddd")
	cut(t, f)
	want(t, p, "aaaaaaaa")
}

func TestFdatasyncKeepsOverwrite(t *testing.T) {
	f := MountForTest(t)
	p := filepath.Join(f.Dir(), "db")
	durableFile(t, p, "aaaaaaaa")
	w, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteAt([]byte("bb"), 2)
	if err := syscall.Fdatasync(int(w.Fd())); err != nil {
		t.Fatal(err)
	}
	w.WriteAt([]byte("cc"), 5) // after the sync: lost
	w.Close()
	cut(t, f)
	want(t, p, "aabbaaaa")
}

func TestUnsyncedTruncateIsUndone(t *testing.T) {
	f := MountForTest(t)
	p := filepath.Join(f.Dir(), "seg")
	durableFile(t, p, "0123456789")
	if err := os.Truncate(p, 4); err != nil {
		t.Fatal(err)
	}
	appendTo(t, p, "xy", false)
	want(t, p, "0123xy")
	cut(t, f)
	want(t, p, "0123456789")

	// The same with O_TRUNC on open (os.WriteFile).
	if err := os.WriteFile(p, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	cut(t, f)
	want(t, p, "0123456789")
}

func TestNewFileWithoutDirSyncVanishes(t *testing.T) {
	f := MountForTest(t)
	unsynced := filepath.Join(f.Dir(), "unsynced")
	fileOnly := filepath.Join(f.Dir(), "file-synced")
	write(t, unsynced, "hello", false)
	write(t, fileOnly, "hello", true) // its content is durable, its name is not
	loss := cut(t, f)
	want(t, unsynced, "<missing>")
	want(t, fileOnly, "<missing>")
	if loss.NamesDropped != 2 {
		t.Errorf("loss %+v", loss)
	}
}

func TestNewFileWithDirSync(t *testing.T) {
	f := MountForTest(t)
	both := filepath.Join(f.Dir(), "both")
	dirOnly := filepath.Join(f.Dir(), "dir-only")
	write(t, both, "hello", true)
	write(t, dirOnly, "hello", false)
	syncDir(t, f.Dir())
	cut(t, f)
	want(t, both, "hello")
	want(t, dirOnly, "") // the name is durable, the data was never synced
}

func TestUnsyncedRenameIsUndone(t *testing.T) {
	f := MountForTest(t)
	dir := f.Dir()
	durableFile(t, filepath.Join(dir, "old"), "content")
	durableFile(t, filepath.Join(dir, "target"), "replaced")
	if err := os.Rename(filepath.Join(dir, "old"), filepath.Join(dir, "new")); err != nil {
		t.Fatal(err)
	}
	// Replace-by-rename, as an atomic file update does it, without the directory fsync.
	write(t, filepath.Join(dir, "tmp"), "update", true)
	if err := os.Rename(filepath.Join(dir, "tmp"), filepath.Join(dir, "target")); err != nil {
		t.Fatal(err)
	}
	loss := cut(t, f)
	want(t, filepath.Join(dir, "old"), "content")
	want(t, filepath.Join(dir, "new"), "<missing>")
	want(t, filepath.Join(dir, "target"), "replaced")
	want(t, filepath.Join(dir, "tmp"), "<missing>")
	if loss.NamesDropped != 2 || loss.NamesRestored != 2 {
		t.Errorf("loss %+v", loss)
	}

	// With the directory fsync'd, the renames are durable.
	os.Rename(filepath.Join(dir, "old"), filepath.Join(dir, "new"))
	write(t, filepath.Join(dir, "tmp"), "update", true)
	os.Rename(filepath.Join(dir, "tmp"), filepath.Join(dir, "target"))
	syncDir(t, dir)
	cut(t, f)
	want(t, filepath.Join(dir, "old"), "<missing>")
	want(t, filepath.Join(dir, "new"), "content")
	want(t, filepath.Join(dir, "target"), "update")
}

// TestRenameAcrossDirectories is a Maildir delivery: a file written in tmp/,
// fsync'd, renamed into new/. Each directory keeps what its own fsync made durable.
func TestRenameAcrossDirectories(t *testing.T) {
	f := MountForTest(t)
	tmp, nw := filepath.Join(f.Dir(), "tmp"), filepath.Join(f.Dir(), "new")
	for _, d := range []string{tmp, nw} {
		os.Mkdir(d, 0o700)
	}
	syncDir(t, f.Dir())
	write(t, filepath.Join(tmp, "m1"), "message 1", true)
	syncDir(t, tmp) // tmp/m1 durable
	os.Rename(filepath.Join(tmp, "m1"), filepath.Join(nw, "m1"))
	cut(t, f) // neither directory synced after the rename: back in tmp/
	want(t, filepath.Join(tmp, "m1"), "message 1")
	want(t, filepath.Join(nw, "m1"), "<missing>")

	os.Rename(filepath.Join(tmp, "m1"), filepath.Join(nw, "m1"))
	syncDir(t, nw) // new/ synced, tmp/ not: the file has both names
	cut(t, f)
	want(t, filepath.Join(tmp, "m1"), "message 1")
	want(t, filepath.Join(nw, "m1"), "message 1")
}

func TestUnsyncedUnlinkIsUndone(t *testing.T) {
	f := MountForTest(t)
	p := filepath.Join(f.Dir(), "gone")
	durableFile(t, p, "still here")
	appendTo(t, p, " and this is not", false)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	loss := cut(t, f)
	want(t, p, "still here")
	if loss.NamesRestored != 1 {
		t.Errorf("loss %+v", loss)
	}
	os.Remove(p)
	syncDir(t, f.Dir())
	cut(t, f)
	want(t, p, "<missing>")
}

func TestUnsyncedMkdirVanishesWithItsContent(t *testing.T) {
	f := MountForTest(t)
	d := filepath.Join(f.Dir(), "a")
	if err := os.MkdirAll(filepath.Join(d, "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	durableFile(t, filepath.Join(d, "b", "f"), "x") // b synced, a synced, the root not
	syncDir(t, d)
	cut(t, f)
	if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a: want it gone, err %v", err)
	}

	// The same tree made durable from the top.
	os.MkdirAll(filepath.Join(d, "b"), 0o755)
	durableFile(t, filepath.Join(d, "b", "f"), "x")
	syncDir(t, d)
	syncDir(t, f.Dir())
	cut(t, f)
	want(t, filepath.Join(d, "b", "f"), "x")
}

func TestUnsyncedRmdirIsUndone(t *testing.T) {
	f := MountForTest(t)
	d := filepath.Join(f.Dir(), "d")
	os.Mkdir(d, 0o750)
	durableFile(t, filepath.Join(d, "f"), "kept")
	syncDir(t, f.Dir())
	os.Remove(filepath.Join(d, "f"))
	os.Remove(d)
	cut(t, f)
	want(t, filepath.Join(d, "f"), "kept")
	if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("d: %v %v", fi.Mode(), err)
	}
}

func TestCleanUnmountKeepsEverything(t *testing.T) {
	base := t.TempDir()
	if err := Available(); err != nil {
		t.Skipf("lazyfs: %v", err)
	}
	mnt, backing := filepath.Join(base, "mnt"), filepath.Join(base, "backing")
	os.Mkdir(mnt, 0o755)
	os.Mkdir(backing, 0o755)
	f, err := Mount(mnt, backing)
	if err != nil {
		t.Skipf("lazyfs: FUSE mount failed: %v", err)
	}
	write(t, filepath.Join(mnt, "f"), "never synced", false)
	if err := f.Unmount(); err != nil {
		t.Fatal(err)
	}
	f, err = Mount(mnt, backing)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Unmount()
	want(t, filepath.Join(mnt, "f"), "never synced")
}

// TestCutsAreIndependent: what was durable before a cut stays durable through the
// next ones, and the filesystem works normally between them.
func TestCutsAreIndependent(t *testing.T) {
	f := MountForTest(t)
	p := filepath.Join(f.Dir(), "f")
	durableFile(t, p, "one ")
	for range 3 {
		appendTo(t, p, "lost ", false)
		cut(t, f)
		want(t, p, "one ")
	}
	appendTo(t, p, "two", true)
	cut(t, f)
	want(t, p, "one two")
	if s := f.Syncs(); s != (Syncs{}) {
		t.Errorf("syncs after a cut: %+v, want none counted yet", s)
	}
	appendTo(t, p, "!", true)
	syncDir(t, f.Dir())
	if s := f.Syncs(); s.Files != 1 || s.Dirs != 1 {
		t.Errorf("syncs %+v", s)
	}
}

// TestMmapReadsSeeWrites: bbolt reads its file through a shared mapping while it
// writes with pwrite; the mapping must show the writes.
func TestMmapReadsSeeWrites(t *testing.T) {
	f := MountForTest(t)
	p := filepath.Join(f.Dir(), "db")
	durableFile(t, p, string(bytes.Repeat([]byte{'a'}, 8192)))
	rw, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	m, err := syscall.Mmap(int(rw.Fd()), 0, 8192, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	rw.WriteAt([]byte("zz"), 4096)
	if string(m[4096:4098]) != "zz" {
		t.Errorf("mapping shows %q after the write", m[4096:4098])
	}
}

// TestFailSyncs: a failing disk's fsync returns the error and makes nothing durable.
func TestFailSyncs(t *testing.T) {
	f := MountForTest(t)
	p := filepath.Join(f.Dir(), "f")
	durableFile(t, p, "kept")
	f.FailSyncs(syscall.EIO, syscall.EIO)
	w, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString(" lost")
	if err := w.Sync(); !errors.Is(err, syscall.EIO) {
		t.Errorf("file fsync: %v, want EIO", err)
	}
	w.Close()
	write(t, filepath.Join(f.Dir(), "new"), "x", false)
	d, err := os.Open(f.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); !errors.Is(err, syscall.EIO) {
		t.Errorf("directory fsync: %v, want EIO", err)
	}
	d.Close()
	cut(t, f)
	want(t, p, "kept")
	want(t, filepath.Join(f.Dir(), "new"), "<missing>")
}

// TestTruncateOfUnlinkedFile: a file cut through its descriptor after its name is
// gone (not yet durable) comes back whole.
func TestTruncateOfUnlinkedFile(t *testing.T) {
	f := MountForTest(t)
	p := filepath.Join(f.Dir(), "seg")
	durableFile(t, p, "0123456789")
	w, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(p)
	if err := w.Truncate(3); err != nil {
		t.Fatal(err)
	}
	w.Close()
	cut(t, f)
	want(t, p, "0123456789")
}
