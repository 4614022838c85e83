package lazyfs

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"syscall"
)

// forget takes the backing directory back to its durable state; the filesystem is
// unmounted and f.mu held.
func (f *FS) forget() (Loss, error) {
	var loss Loss
	idx, err := indexInodes(f.tree, f.attic)
	if err != nil {
		return loss, err
	}
	// Contents first, through any name of each file (the attic's included): the
	// names are rebuilt below with hard links to the same inodes.
	for ino, st := range f.files {
		p, ok := idx.files[ino]
		if !ok {
			continue // neither named nor kept: it was created and removed since the last cut
		}
		lost, err := revertFile(p, st)
		if err != nil {
			return loss, err
		}
		if lost > 0 {
			loss.FilesCut++
			loss.BytesLost += lost
		}
	}
	// Then the names: a new tree made of the durable entries replaces the old one.
	fresh, old := f.tree+".cut", f.tree+".old"
	for _, d := range []string{fresh, old} {
		if err := os.RemoveAll(d); err != nil {
			return loss, fmt.Errorf("lazyfs: %w", err)
		}
	}
	var root syscall.Stat_t
	if err := syscall.Lstat(f.tree, &root); err != nil {
		return loss, fmt.Errorf("lazyfs: %w", err)
	}
	if err := os.Mkdir(fresh, os.FileMode(root.Mode&0o7777)); err != nil {
		return loss, fmt.Errorf("lazyfs: %w", err)
	}
	b := &builder{lfs: f, idx: idx, placed: map[uint64]bool{root.Ino: true}, loss: &loss}
	if err := b.build(fresh, f.tree, "", root.Ino); err != nil {
		return loss, err
	}
	if err := os.Rename(f.tree, old); err != nil {
		return loss, fmt.Errorf("lazyfs: %w", err)
	}
	if err := os.Rename(fresh, f.tree); err != nil {
		return loss, fmt.Errorf("lazyfs: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		return loss, fmt.Errorf("lazyfs: %w", err)
	}
	return loss, clearDir(f.attic)
}

// revertFile plays the undo log of the file at path backwards and cuts it to its
// synced size; it returns how many bytes that changed or dropped.
func revertFile(path string, st *fileState) (int64, error) {
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("lazyfs: revert %s: %w", path, err)
	}
	defer w.Close()
	var lost int64
	for i := len(st.undo) - 1; i >= 0; i-- {
		u := st.undo[i]
		if _, err := w.WriteAt(u.old, u.off); err != nil {
			return lost, fmt.Errorf("lazyfs: revert %s: %w", path, err)
		}
		lost += int64(len(u.old))
	}
	fi, err := w.Stat()
	if err != nil {
		return lost, fmt.Errorf("lazyfs: revert %s: %w", path, err)
	}
	if fi.Size() > st.syncedSize {
		lost += fi.Size() - st.syncedSize
	}
	if err := w.Truncate(st.syncedSize); err != nil {
		return lost, fmt.Errorf("lazyfs: revert %s: %w", path, err)
	}
	return lost, nil
}

// inodeIndex says where each inode is now: one path of every file (any type but a
// directory), and the path of every directory.
type inodeIndex struct {
	files map[uint64]string
	dirs  map[uint64]string
}

func indexInodes(tree, attic string) (inodeIndex, error) {
	idx := inodeIndex{files: map[uint64]string{}, dirs: map[uint64]string{}}
	for _, top := range []string{tree, attic} {
		err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			var st syscall.Stat_t
			if err := syscall.Lstat(p, &st); err != nil {
				return err
			}
			if d.IsDir() {
				idx.dirs[st.Ino] = p
			} else if _, ok := idx.files[st.Ino]; !ok {
				idx.files[st.Ino] = p
			}
			return nil
		})
		if err != nil {
			return idx, fmt.Errorf("lazyfs: index %s: %w", top, err)
		}
	}
	return idx, nil
}

// builder makes the durable tree.
type builder struct {
	lfs    *FS
	idx    inodeIndex
	placed map[uint64]bool // directories already made (a directory has one place)
	loss   *Loss
}

// build fills dst, a new directory, with the durable entries of directory ino,
// which is at cur now ("" if it was removed) and at rel in the durable tree: its
// present entries, corrected by what each name pointed to before its first
// change since the last fsync.
func (b *builder) build(dst, cur, rel string, ino uint64) error {
	present := map[string]nameState{}
	if cur != "" {
		ents, err := os.ReadDir(cur)
		if err != nil {
			return fmt.Errorf("lazyfs: %w", err)
		}
		for _, e := range ents {
			st, err := lstatName(filepath.Join(cur, e.Name()))
			if err != nil {
				return fmt.Errorf("lazyfs: %w", err)
			}
			present[e.Name()] = st
		}
	}
	durable := present
	if changed := b.lfs.dirs[ino]; len(changed) > 0 {
		durable = make(map[string]nameState, len(present))
		for name, e := range present {
			durable[name] = e
		}
		for name, before := range changed {
			now := present[name]
			switch {
			case !before.exists:
				delete(durable, name)
			default:
				durable[name] = before
			}
			if now.exists && (!before.exists || now.ino != before.ino) {
				b.loss.NamesDropped++
				b.loss.name("-", path.Join(rel, name))
			}
			if before.exists && (!now.exists || now.ino != before.ino) {
				b.loss.NamesRestored++
				b.loss.name("+", path.Join(rel, name))
			}
		}
	}
	names := make([]string, 0, len(durable))
	for name := range durable {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := b.place(filepath.Join(dst, name), path.Join(rel, name), durable[name]); err != nil {
			return err
		}
	}
	return nil
}

// place makes the durable entry e at path: a directory (built in turn) or a hard
// link to the file's inode.
func (b *builder) place(dst, rel string, e nameState) error {
	if e.mode&syscall.S_IFMT != syscall.S_IFDIR {
		src, ok := b.idx.files[e.ino]
		if !ok {
			return fmt.Errorf("lazyfs: %s: inode %d is nowhere to be found", rel, e.ino)
		}
		if err := os.Link(src, dst); err != nil {
			return fmt.Errorf("lazyfs: %w", err)
		}
		return nil
	}
	if b.placed[e.ino] {
		// A renamed directory whose two places were both durable.
		b.loss.NamesDropped++
		b.loss.name("-", rel)
		return nil
	}
	b.placed[e.ino] = true
	if err := os.Mkdir(dst, os.FileMode(e.mode&0o777)); err != nil {
		return fmt.Errorf("lazyfs: %w", err)
	}
	if err := os.Chmod(dst, os.FileMode(e.mode&0o777)); err != nil { // past the umask
		return fmt.Errorf("lazyfs: %w", err)
	}
	return b.build(dst, b.idx.dirs[e.ino], rel, e.ino)
}
