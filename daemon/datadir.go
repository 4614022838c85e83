package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// makeDataDir creates the data directory, and any missing parent, like
// os.MkdirAll, and makes each one's entry durable with an fsync of the directory
// that holds it. Without that, a power cut soon after the first start can take
// the new data directory and every acknowledged message in its queue (the
// power-loss test of the reliability suite found it). The data directory's parent
// is synced at every start, even when nothing was created: one fsync, and it
// covers a data directory an installer created a moment before without one.
//
// A data directory it creates gets mode 0751 whatever the umask: others may
// search it (not list it), so that local users reach the maildrop; everything in
// it has a mode of its own. An existing directory keeps its mode.
func makeDataDir(dir string) error {
	dir = filepath.Clean(dir)
	_, statErr := os.Stat(dir)
	if err := mkdirDurable(dir, 0o751); err != nil {
		return err
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		if err := os.Chmod(dir, 0o751); err != nil {
			return err
		}
	}
	return syncDir(filepath.Dir(dir))
}

// mkdirDurable creates dir and its missing parents; each one it creates is
// made durable in its parent before the next one is made inside it.
func mkdirDurable(dir string, perm os.FileMode) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s: not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirDurable(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

// syncDir makes the entries of directory dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
