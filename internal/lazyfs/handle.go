package lazyfs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// handle is an open file: a loopback file whose writes save what they overwrite of
// the synced content, and whose fsync records the file as durable instead of
// syncing the backing file (whose own durability does not matter to a test).
type handle struct {
	*fs.LoopbackFile
	lfs *FS
	ino uint64
	fd  int
}

// wrap turns a loopback file handle into a lazyfs handle.
func (f *FS) wrap(fh fs.FileHandle) (*handle, syscall.Errno) {
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok {
		return nil, syscall.EIO
	}
	// The descriptor stays open until Release; the handle only uses it in
	// operations the kernel makes before that.
	fd, ok := lf.PassthroughFd()
	if !ok {
		return nil, syscall.EBADF
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, fs.ToErrno(err)
	}
	return &handle{LoopbackFile: lf, lfs: f, ino: st.Ino, fd: fd}, 0
}

// PassthroughFd refuses the kernel's passthrough mode, in which writes would go
// to the backing file without passing here.
func (h *handle) PassthroughFd() (int, bool) { return 0, false }

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	h.lfs.mu.Lock()
	defer h.lfs.mu.Unlock()
	if err := h.lfs.noteOverwrite(h.fd, h.ino, off, int64(len(data))); err != nil {
		return 0, fs.ToErrno(err)
	}
	return h.LoopbackFile.Write(ctx, data, off)
}

func (h *handle) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	n := 0
	for _, d := range data {
		n += len(d)
	}
	h.lfs.mu.Lock()
	defer h.lfs.mu.Unlock()
	if err := h.lfs.noteOverwrite(h.fd, h.ino, off, int64(n)); err != nil {
		return 0, fs.ToErrno(err)
	}
	return h.LoopbackFile.Writev(ctx, data, off)
}

// Allocate may zero or punch a range, or grow the file: the range is saved like
// a write's.
func (h *handle) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	h.lfs.mu.Lock()
	defer h.lfs.mu.Unlock()
	if err := h.lfs.noteOverwrite(h.fd, h.ino, int64(off), int64(size)); err != nil {
		return fs.ToErrno(err)
	}
	return h.LoopbackFile.Allocate(ctx, off, size, mode)
}

// Fsync covers fsync and fdatasync alike: both make the data and the size durable.
func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	h.lfs.mu.Lock()
	defer h.lfs.mu.Unlock()
	if h.lfs.fileSyncErr != 0 {
		return h.lfs.fileSyncErr
	}
	return fs.ToErrno(h.lfs.fileSynced(h.fd, h.ino))
}

// dirHandle is an open directory; its fsync makes its entries durable.
type dirHandle struct {
	inner fs.FileHandle
	lfs   *FS
	ino   uint64
}

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if r, ok := d.inner.(fs.FileReaddirenter); ok {
		return r.Readdirent(ctx)
	}
	return nil, syscall.ENOTSUP
}

func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if s, ok := d.inner.(fs.FileSeekdirer); ok {
		return s.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	if r, ok := d.inner.(fs.FileReleasedirer); ok {
		r.Releasedir(ctx, flags)
	}
}

func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	d.lfs.mu.Lock()
	defer d.lfs.mu.Unlock()
	if d.lfs.dirSyncErr != 0 {
		return d.lfs.dirSyncErr
	}
	d.lfs.dirSynced(d.ino)
	return 0
}
