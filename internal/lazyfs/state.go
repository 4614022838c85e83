package lazyfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// The bookkeeping of what is not durable yet. Every method here is called with
// f.mu held, just before (or just after) the operation it records is passed on
// to the backing directory.

// file returns the state of inode ino; the first change after a sync (or after
// the mount) finds the file as it was made durable, so its current size is its
// synced size.
func (f *FS) file(ino uint64, currentSize func() (int64, error)) (*fileState, error) {
	if st := f.files[ino]; st != nil {
		return st, nil
	}
	size, err := currentSize()
	if err != nil {
		return nil, err
	}
	st := &fileState{syncedSize: size}
	f.files[ino] = st
	return st, nil
}

// created records a file made by this mount: nothing of it is durable.
func (f *FS) created(ino uint64) { f.files[ino] = &fileState{} }

// noteOverwrite saves what [off, off+n) of the file open as fd holds now, as far
// as it lies within the synced size: a write or a hole punched there replaces it.
func (f *FS) noteOverwrite(fd int, ino uint64, off, n int64) error {
	st, err := f.file(ino, func() (int64, error) { return fdSize(fd) })
	if err != nil {
		return err
	}
	end := min(off+n, st.syncedSize)
	if off >= end {
		return nil // past the synced size: the final cut drops it
	}
	old, err := preadAny(fd, off, end-off)
	if err != nil {
		return err
	}
	st.undo = append(st.undo, undoRecord{off: off, old: old})
	return nil
}

// noteTruncate saves what a cut of the file at path to size removes of its
// synced bytes.
func (f *FS) noteTruncate(path string, ino uint64, size int64) error {
	st, err := f.file(ino, func() (int64, error) { return pathSize(path) })
	if err != nil {
		return err
	}
	cur, err := pathSize(path)
	if err != nil {
		return err
	}
	end := min(cur, st.syncedSize)
	if size >= end {
		return nil
	}
	r, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("lazyfs: %w", err)
	}
	defer r.Close()
	old := make([]byte, end-size)
	n, err := r.ReadAt(old, size)
	if n < len(old) && err != nil {
		return fmt.Errorf("lazyfs: %w", err)
	}
	st.undo = append(st.undo, undoRecord{off: size, old: old[:n]})
	return nil
}

// fileSynced records an fsync or fdatasync of the file open as fd.
func (f *FS) fileSynced(fd int, ino uint64) error {
	size, err := fdSize(fd)
	if err != nil {
		return err
	}
	f.files[ino] = &fileState{syncedSize: size}
	f.syncs.Files++
	return nil
}

// noteName records, before a change of the entry name in the directory at
// dirPath, what it points to now, if this is the directory's first change of
// that name since its last fsync. It returns the entry as it is now.
func (f *FS) noteName(dirPath, name string) (nameState, error) {
	var dst syscall.Stat_t
	if err := syscall.Lstat(dirPath, &dst); err != nil {
		return nameState{}, err
	}
	now, err := lstatName(filepath.Join(dirPath, name))
	if err != nil {
		return nameState{}, err
	}
	names := f.dirs[dst.Ino]
	if names == nil {
		names = map[string]nameState{}
		f.dirs[dst.Ino] = names
	}
	if _, seen := names[name]; !seen {
		names[name] = now
	}
	return now, nil
}

// dirCreated records a directory made by this mount: it starts empty, and its
// entries are durable only once it is fsync'd (and it itself only once its
// parent is).
func (f *FS) dirCreated(path string) error {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return err
	}
	f.dirs[st.Ino] = map[string]nameState{}
	return nil
}

// dirSynced records an fsync of directory ino: its entries are durable as they are.
func (f *FS) dirSynced(ino uint64) {
	delete(f.dirs, ino)
	f.syncs.Dirs++
}

// keep hard-links the file that entry e names into the attic before the entry
// goes away, so that a cut can bring the name back. Directories are not kept: one
// is removed only when empty, and comes back as an empty directory.
func (f *FS) keep(path string, e nameState) error {
	if !e.exists || e.mode&syscall.S_IFMT == syscall.S_IFDIR {
		return nil
	}
	err := os.Link(path, filepath.Join(f.attic, strconv.FormatUint(e.ino, 10)))
	if err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("lazyfs: keep %s: %w", path, err)
	}
	return nil
}

func lstatName(path string) (nameState, error) {
	var st syscall.Stat_t
	err := syscall.Lstat(path, &st)
	if errors.Is(err, syscall.ENOENT) {
		return nameState{}, nil
	}
	if err != nil {
		return nameState{}, err
	}
	return nameState{exists: true, ino: st.Ino, mode: st.Mode}, nil
}

func fdSize(fd int) (int64, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return 0, err
	}
	return st.Size, nil
}

func pathSize(path string) (int64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Size, nil
}

// preadAny reads n bytes at off of the file open as fd, through a second
// descriptor when fd is open for writing only; it returns fewer bytes where the
// file ends first.
func preadAny(fd int, off, n int64) ([]byte, error) {
	buf := make([]byte, n)
	got, err := syscall.Pread(fd, buf, off)
	if errors.Is(err, syscall.EBADF) {
		r, oerr := os.Open("/proc/self/fd/" + strconv.Itoa(fd))
		if oerr != nil {
			return nil, fmt.Errorf("lazyfs: reopen for reading: %w", oerr)
		}
		defer r.Close()
		got, err = r.ReadAt(buf, off)
		if errors.Is(err, io.EOF) {
			err = nil // a short file: what is there is what was there
		}
	}
	if err != nil {
		return nil, fmt.Errorf("lazyfs: read before overwrite: %w", err)
	}
	return buf[:got], nil
}
