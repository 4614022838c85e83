package maillog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// PurgeOptions select the debug transcripts Purge deletes (mtactl purge, the
// product's `imsimta purge`). A transcript's base name is its file name without
// the "-<id>" suffix ("tcp_local_master.log"); its versions are the files of
// that base, newest first by modification time.
type PurgeOptions struct {
	// Pattern selects base names (path.Match syntax); "" selects all.
	Pattern string
	// Keep is how many versions of each base name stay when MaxAge is zero (the
	// product's -num, default 5).
	Keep int
	// MaxAge, when set, deletes every version older than it instead (-day, -hour).
	MaxAge time.Duration
	Now    time.Time
}

// DefaultPurgeKeep is the product's default version count.
const DefaultPurgeKeep = 5

// Purge deletes transcripts in dir ("<name>.log-<id>" files, as DebugPath names
// them) by opts and returns the paths it removed. mail.log is never touched:
// logrotate owns it. A missing dir is not an error (nothing was ever logged).
func Purge(dir string, opts PurgeOptions) ([]string, error) {
	if opts.Pattern != "" {
		if _, err := filepath.Match(opts.Pattern, ""); err != nil {
			return nil, fmt.Errorf("purge pattern %q: %w", opts.Pattern, err)
		}
	}
	if opts.Keep <= 0 {
		opts.Keep = DefaultPurgeKeep
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("purge: %w", err)
	}
	type version struct {
		path string
		mod  time.Time
	}
	bases := map[string][]version{}
	for _, e := range entries {
		base, _, ok := strings.Cut(e.Name(), ".log-")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		base += ".log"
		if opts.Pattern != "" {
			if m, _ := filepath.Match(opts.Pattern, base); !m {
				continue
			}
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		bases[base] = append(bases[base], version{filepath.Join(dir, e.Name()), info.ModTime()})
	}
	var removed []string
	var errs []error
	for _, vs := range bases {
		slices.SortFunc(vs, func(a, b version) int { return b.mod.Compare(a.mod) }) // newest first
		for i, v := range vs {
			old := i >= opts.Keep
			if opts.MaxAge > 0 {
				old = opts.Now.Sub(v.mod) > opts.MaxAge
			}
			if !old {
				continue
			}
			if err := os.Remove(v.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, v.path)
		}
	}
	slices.Sort(removed)
	return removed, errors.Join(errs...)
}
