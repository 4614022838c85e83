package lazyfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// FS is a mounted lazy filesystem.
type FS struct {
	mountpoint string
	tree       string // backing directory of the mounted tree
	attic      string // hard links to files that lost their last name since the last cut
	dev        uint64 // device of the backing directory

	server *fuse.Server

	// mu guards the state below and is held across each operation that changes
	// it, so that the undo log records operations in the order they happened.
	mu    sync.Mutex
	files map[uint64]*fileState           // by inode: files written or cut since their last fsync
	dirs  map[uint64]map[string]nameState // by inode: directories changed since their last fsync
	syncs Syncs
	// fileSyncErr and dirSyncErr, when not 0, are what every fsync of a file or of
	// a directory returns (and it then makes nothing durable): a failing disk.
	fileSyncErr, dirSyncErr syscall.Errno
}

// fileState is what a file needs to go back to its last fsync.
type fileState struct {
	syncedSize int64
	undo       []undoRecord // oldest first
}

// undoRecord holds the bytes an operation replaced at off (as far as they lay
// within the synced size).
type undoRecord struct {
	off int64
	old []byte
}

// nameState is what a directory entry pointed to before its first change since
// the directory's last fsync.
type nameState struct {
	exists bool
	ino    uint64
	mode   uint32 // syscall.S_IFMT bits and permissions
}

// Syncs counts the fsyncs the filesystem received since it was mounted, for tests
// that want to see that a unit syncs what it should.
type Syncs struct {
	Files int // fsync or fdatasync of a file
	Dirs  int // fsync of a directory
}

// Loss says what a power cut threw away.
type Loss struct {
	FilesCut      int   // files whose content went back to their last fsync
	BytesLost     int64 // bytes of unsynced content dropped or restored
	NamesDropped  int   // names created or renamed into a directory not fsync'd since
	NamesRestored int   // names removed or renamed away, brought back
	// Names lists the first maxNames of those names, relative to the mount point,
	// with "-" (dropped) or "+" (restored) before each: what a test reports.
	Names []string
}

const maxNames = 20

func (l *Loss) name(sign, rel string) {
	if len(l.Names) < maxNames {
		l.Names = append(l.Names, sign+rel)
	}
}

// Add sums o into l (Names keeps the first ones).
func (l *Loss) Add(o Loss) {
	l.FilesCut += o.FilesCut
	l.BytesLost += o.BytesLost
	l.NamesDropped += o.NamesDropped
	l.NamesRestored += o.NamesRestored
	for _, n := range o.Names {
		if len(l.Names) < maxNames {
			l.Names = append(l.Names, n)
		}
	}
}

func (l Loss) String() string {
	s := fmt.Sprintf("%d files cut back (%d bytes), %d names dropped, %d names restored",
		l.FilesCut, l.BytesLost, l.NamesDropped, l.NamesRestored)
	if len(l.Names) > 0 {
		s += " " + fmt.Sprint(l.Names)
	}
	return s
}

// Mount mounts a lazy filesystem at mountpoint (an existing directory). Its
// content lives in backing (an existing directory, on one filesystem that allows
// hard links): backing/tree holds the files, backing/attic what PowerCut may have
// to bring back. A tree left by an earlier Mount is kept.
func Mount(mountpoint, backing string) (*FS, error) {
	f := &FS{
		mountpoint: mountpoint,
		tree:       filepath.Join(backing, "tree"),
		attic:      filepath.Join(backing, "attic"),
	}
	for _, d := range []string{f.tree, f.attic} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("lazyfs: %w", err)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(f.tree, &st); err != nil {
		return nil, fmt.Errorf("lazyfs: %w", err)
	}
	f.dev = st.Dev
	f.reset()
	if err := f.mount(); err != nil {
		return nil, err
	}
	return f, nil
}

// Dir is the mount point.
func (f *FS) Dir() string { return f.mountpoint }

// Syncs returns the fsyncs counted since the last mount.
func (f *FS) Syncs() Syncs {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncs
}

// FailSyncs makes every later fsync of a file fail with fileErr and every fsync
// of a directory with dirErr (0: succeed) and make nothing durable, as a failing
// disk would; a power cut or an unmount clears it.
func (f *FS) FailSyncs(fileErr, dirErr syscall.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fileSyncErr, f.dirSyncErr = fileErr, dirErr
}

func (f *FS) reset() {
	f.fileSyncErr, f.dirSyncErr = 0, 0
	f.files = map[uint64]*fileState{}
	f.dirs = map[uint64]map[string]nameState{}
	f.syncs = Syncs{}
}

func (f *FS) mount() error {
	rootData := &fs.LoopbackRoot{Path: f.tree, Dev: f.dev}
	root := &node{LoopbackNode: &fs.LoopbackNode{RootData: rootData}, lfs: f}
	rootData.RootNode = root
	// Short caches: everything goes through this mount, so the kernel's view stays
	// right; a remount after a cut starts with empty caches anyway.
	timeout := time.Second
	srv, err := fs.Mount(f.mountpoint, root, &fs.Options{
		EntryTimeout: &timeout,
		AttrTimeout:  &timeout,
		MountOptions: fuse.MountOptions{
			FsName:      "lazyfs",
			Name:        "lazyfs",
			DirectMount: true, // root can mount(2) without fusermount3
		},
	})
	if err != nil {
		return fmt.Errorf("lazyfs: mount %s: %w", f.mountpoint, err)
	}
	f.server = srv
	return nil
}

// unmount detaches the filesystem. A process that has just been killed may hold
// it busy for a moment while the kernel releases its files.
func (f *FS) unmount() error {
	if f.server == nil {
		return nil
	}
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err = f.server.Unmount(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lazyfs: unmount %s: %w", f.mountpoint, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.server.Wait()
	f.server = nil
	return nil
}

// Unmount is a clean shutdown: everything written is kept, as a sync at shutdown
// would. The FS cannot be used afterwards.
func (f *FS) Unmount() error {
	if err := f.unmount(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reset()
	return clearDir(f.attic)
}

// PowerCut simulates a power failure: it unmounts, throws away everything not
// fsync'd (see the package comment) and mounts again. Every process that used
// the filesystem must have exited.
func (f *FS) PowerCut() (Loss, error) {
	if err := f.unmount(); err != nil {
		return Loss{}, err
	}
	f.mu.Lock()
	loss, err := f.forget()
	f.reset()
	f.mu.Unlock()
	if err != nil {
		return loss, err
	}
	return loss, f.mount()
}

// clearDir removes what dir holds and keeps dir.
func clearDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("lazyfs: %w", err)
	}
	var errs []error
	for _, e := range ents {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lazyfs: %w", err)
	}
	return nil
}
