package main

import (
	"fmt"
	"path/filepath"
	"time"

	"mtad.dev/mta/maillog"
)

// cmdPurge is the product's `imsimta purge` for the debug transcripts in
// DATA/log (slave_debug, master_debug, qm run): they are never rotated by mtad,
// and an administrator who leaves slave_debug on fills the disk without it. It
// works on the files only, so it runs whether or not mtad does.
func cmdPurge(a *app, args []string) int {
	fs := a.flags("purge")
	num := fs.Int("num", maillog.DefaultPurgeKeep, "keep the newest `N` versions of each transcript name")
	days := fs.Int("day", 0, "instead, delete versions older than `D` days")
	hours := fs.Int("hour", 0, "instead, delete versions older than `H` hours (added to -day)")
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() > 1 || *num <= 0 || *days < 0 || *hours < 0 {
		fmt.Fprintln(a.stderr, "usage: mtactl purge [-num=N | -day=D -hour=H] [PATTERN]   (e.g. 'tcp_local_*')")
		return 2
	}
	dir := filepath.Join(a.dataDir, "log")
	opts := maillog.PurgeOptions{
		Pattern: fs.Arg(0),
		Keep:    *num,
		MaxAge:  time.Duration(*days)*24*time.Hour + time.Duration(*hours)*time.Hour,
		Now:     a.now(),
	}
	removed, err := maillog.Purge(dir, opts)
	for _, p := range removed {
		fmt.Fprintf(a.stdout, "deleted %s\n", p)
	}
	if err != nil {
		fmt.Fprintf(a.stderr, "mtactl purge: %v\n", err)
		return 1
	}
	fmt.Fprintf(a.stdout, "%s deleted from %s\n", plural(len(removed), "transcript"), dir)
	return 0
}
