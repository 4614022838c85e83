package lazyfs

import (
	"context"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is a loopback node that records, before passing them on, the operations
// that change what a power cut must undo: the changes of names in a directory and
// the truncations of a file. Writes and fsyncs go through the file handles
// (handle, dirHandle).
type node struct {
	*fs.LoopbackNode
	lfs *FS
}

var (
	_ fs.NodeWrapChilder     = (*node)(nil)
	_ fs.NodeCreater         = (*node)(nil)
	_ fs.NodeOpener          = (*node)(nil)
	_ fs.NodeOpendirHandler  = (*node)(nil)
	_ fs.NodeMkdirer         = (*node)(nil)
	_ fs.NodeMknoder         = (*node)(nil)
	_ fs.NodeSymlinker       = (*node)(nil)
	_ fs.NodeLinker          = (*node)(nil)
	_ fs.NodeUnlinker        = (*node)(nil)
	_ fs.NodeRmdirer         = (*node)(nil)
	_ fs.NodeRenamer         = (*node)(nil)
	_ fs.NodeSetattrer       = (*node)(nil)
	_ fs.NodeCopyFileRanger  = (*node)(nil)
	_ fs.NodeAllocater       = (*node)(nil)
	_ fs.NodeFsyncer         = (*node)(nil)
	_ fs.FileWriter          = (*handle)(nil)
	_ fs.FileWritever        = (*handle)(nil)
	_ fs.FileFsyncer         = (*handle)(nil)
	_ fs.FileAllocater       = (*handle)(nil)
	_ fs.FilePassthroughFder = (*handle)(nil)
	_ fs.FileFsyncdirer      = (*dirHandle)(nil)
)

// WrapChild makes every node of the tree a lazyfs node.
func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), lfs: n.lfs}
}

// backing is the node's path in the backing tree.
func (n *node) backing() string { return filepath.Join(n.lfs.tree, n.Path(nil)) }

func (n *node) child(name string) string { return filepath.Join(n.backing(), name) }

// noteName records the entry name of this directory before a change.
func (n *node) noteName(name string) (nameState, syscall.Errno) {
	e, err := n.lfs.noteName(n.backing(), name)
	return e, fs.ToErrno(err)
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	n.lfs.mu.Lock()
	defer n.lfs.mu.Unlock()
	before, errno := n.noteName(name)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	if before.exists && flags&syscall.O_TRUNC != 0 {
		if err := n.lfs.noteTruncate(n.child(name), before.ino, 0); err != nil {
			return nil, nil, 0, fs.ToErrno(err)
		}
	}
	ch, fh, fuseFlags, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	h, errno := n.lfs.wrap(fh)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	if !before.exists {
		n.lfs.created(h.ino)
	}
	return ch, h, fuseFlags, 0
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	n.lfs.mu.Lock()
	defer n.lfs.mu.Unlock()
	if flags&syscall.O_TRUNC != 0 {
		p := n.backing()
		e, err := lstatName(p)
		if err != nil {
			return nil, 0, fs.ToErrno(err)
		}
		if err := n.lfs.noteTruncate(p, e.ino, 0); err != nil {
			return nil, 0, fs.ToErrno(err)
		}
	}
	fh, fuseFlags, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	h, errno := n.lfs.wrap(fh)
	return h, fuseFlags, errno
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	var st syscall.Stat_t
	if err := syscall.Lstat(n.backing(), &st); err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	fh, fuseFlags, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &dirHandle{inner: fh, lfs: n.lfs, ino: st.Ino}, fuseFlags, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.lfs.mu.Lock()
	defer n.lfs.mu.Unlock()
	if _, errno := n.noteName(name); errno != 0 {
		return nil, errno
	}
	ch, errno := n.LoopbackNode.Mkdir(ctx, name, mode, out)
	if errno != 0 {
		return nil, errno
	}
	return ch, fs.ToErrno(n.lfs.dirCreated(n.child(name)))
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.lfs.mu.Lock()
	defer n.lfs.mu.Unlock()
	if _, errno := n.noteName(name); errno != 0 {
		return nil, errno
	}
	ch, errno := n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
	if errno == 0 && mode&syscall.S_IFMT == syscall.S_IFREG {
		if e, err := lstatName(n.child(name)); err == nil {
			n.lfs.created(e.ino)
		}
	}
	return ch, errno
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.lfs.mu.Lock()
	defer n.lfs.mu.Unlock()
	if _, errno := n.noteName(name); errno != 0 {
		return nil, errno
	}
	return n.LoopbackNode.Symlink(ctx, target, name, out)
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.lfs.mu.Lock()
	defer n.lfs.mu.Unlock()
	if _, errno := n.noteName(name); errno != 0 {
		return nil, errno
	}
	return n.LoopbackNode.Link(ctx, target, name, out)
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	n.lfs.mu.Lock()
	defer n.lfs.mu.Unlock()
	before, errno := n.noteName(name)
	if errno != 0 {
		return errno
	}
	if err := n.lfs.keep(n.child(name), before); err != nil {
		return fs.ToErrno(err)
	}
	return n.LoopbackNode.Unlink(ctx, name)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	n.lfs.mu.Lock()
	defer n.lfs.mu.Unlock()
	if _, errno := n.noteName(name); errno != 0 {
		return errno
	}
	return n.LoopbackNode.Rmdir(ctx, name)
}

// Rename records both names: the source's, which goes away (or, for an exchange,
// changes), and the target's, which now names the source's file; a file the
// target named before loses that name and is kept in the attic.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	to, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	n.lfs.mu.Lock()
	defer n.lfs.mu.Unlock()
	if _, errno := n.noteName(name); errno != 0 {
		return errno
	}
	replaced, errno := to.noteName(newName)
	if errno != 0 {
		return errno
	}
	if flags&fs.RENAME_EXCHANGE == 0 {
		if err := n.lfs.keep(to.child(newName), replaced); err != nil {
			return fs.ToErrno(err)
		}
	}
	return n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
}

// Setattr records a change of size (truncate, ftruncate) before it is made.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	n.lfs.mu.Lock()
	defer n.lfs.mu.Unlock()
	if size, ok := in.GetSize(); ok {
		p, ino := n.backing(), uint64(0)
		if h, ok := f.(*handle); ok {
			// Through the handle's descriptor: the file may have no name any more.
			p, ino = "/proc/self/fd/"+strconv.Itoa(h.fd), h.ino
		} else {
			e, err := lstatName(p)
			if err != nil {
				return fs.ToErrno(err)
			}
			ino = e.ino
		}
		if err := n.lfs.noteTruncate(p, ino, int64(size)); err != nil {
			return fs.ToErrno(err)
		}
	}
	return n.LoopbackNode.Setattr(ctx, f, in, out)
}

// CopyFileRange is refused: the kernel then copies with reads and writes, which
// the handles record.
func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle, offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOTSUP
}

// Allocate and Fsync arrive here when the node is asked without a handle of ours.
func (n *node) Allocate(ctx context.Context, f fs.FileHandle, off uint64, size uint64, mode uint32) syscall.Errno {
	if h, ok := f.(*handle); ok {
		return h.Allocate(ctx, off, size, mode)
	}
	return syscall.ENOTSUP
}

func (n *node) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	switch h := f.(type) {
	case *handle:
		return h.Fsync(ctx, flags)
	case *dirHandle:
		return h.Fsyncdir(ctx, flags)
	}
	return syscall.ENOTSUP
}
