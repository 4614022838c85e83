package jobctl

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// HoldList is the persistent set of stopped channels (qm stop / qm start).
//
// Every change re-reads the file and rewrites it whole (temp file, fsync, rename,
// directory fsync) while holding both an in-process mutex and an flock on a
// sibling lock file, so concurrent callers in this process and in others (mtactl
// working while mtad is down) serialise instead of failing or losing updates: the
// product's QM-E-NOTSTOPPED race is not reproduced.
type HoldList struct {
	path   string // "" keeps the list in memory only
	noSync bool   // tests only: skip fsyncs to keep stress tests fast

	mu      sync.Mutex
	stopped map[string]bool
}

// OpenHoldList loads the list at path; a missing file is an empty list.
func OpenHoldList(path string) (*HoldList, error) {
	h := &HoldList{path: path, stopped: map[string]bool{}}
	if path == "" {
		return h, nil
	}
	set, err := readHoldFile(path)
	if err != nil {
		return nil, err
	}
	h.stopped = set
	return h, nil
}

// Stop adds channel to the list durably.
func (h *HoldList) Stop(channel string) error { return h.set(channel, true) }

// Start removes channel from the list durably.
func (h *HoldList) Start(channel string) error { return h.set(channel, false) }

// Stopped reports whether channel is on the list (as of this process's last read).
func (h *HoldList) Stopped(channel string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopped[channel]
}

// List returns the stopped channels, sorted.
func (h *HoldList) List() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.stopped))
	for c := range h.stopped {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

func (h *HoldList) set(channel string, stop bool) error {
	if channel == "" || strings.ContainsAny(channel, " \t\r\n") {
		return fmt.Errorf("hold list: invalid channel name %q", channel)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.path == "" {
		h.setLocked(channel, stop)
		return nil
	}
	unlock, err := lockFile(h.path + ".lock")
	if err != nil {
		return fmt.Errorf("hold list: %w", err)
	}
	defer unlock()
	// Another process may have changed the file since we read it.
	set, err := readHoldFile(h.path)
	if err != nil {
		return err
	}
	h.stopped = set
	h.setLocked(channel, stop)
	if err := writeHoldFile(h.path, h.stopped, !h.noSync); err != nil {
		// Keep memory and disk in agreement: reload what is really there.
		if set, rerr := readHoldFile(h.path); rerr == nil {
			h.stopped = set
		}
		return err
	}
	return nil
}

func (h *HoldList) setLocked(channel string, stop bool) {
	if stop {
		h.stopped[channel] = true
	} else {
		delete(h.stopped, channel)
	}
}

func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// readHoldFile parses one channel name per line; blank lines and "!" comments are
// ignored.
func readHoldFile(path string) (map[string]bool, error) {
	set := map[string]bool{}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return set, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read hold list: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "!") {
			continue
		}
		set[line] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read hold list: %w", err)
	}
	return set, nil
}

func writeHoldFile(path string, set map[string]bool, sync bool) error {
	names := make([]string, 0, len(set))
	for c := range set {
		names = append(names, c)
	}
	slices.Sort(names)
	var b bytes.Buffer
	b.WriteString("! channels stopped by qm stop; qm start removes them\n")
	for _, c := range names {
		b.WriteString(c)
		b.WriteByte('\n')
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".hold_list.tmp*")
	if err != nil {
		return fmt.Errorf("write hold list: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(b.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("write hold list: %w", err)
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return fmt.Errorf("write hold list: %w", err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write hold list: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write hold list: %w", err)
	}
	if !sync {
		return nil
	}
	// The rename is durable only once the directory is: until then a power cut
	// brings the old list back, so qm stop must not report success before it.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write hold list: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write hold list: sync %s: %w", dir, err)
	}
	return nil
}

// Reload re-reads the file, for changes made by another process.
func (h *HoldList) Reload() error {
	if h.path == "" {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	set, err := readHoldFile(h.path)
	if err != nil {
		return err
	}
	h.stopped = set
	return nil
}
