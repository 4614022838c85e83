package main

import (
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"mtad.dev/mta/compiler"
)

// cmdCnbuild compiles the configuration: every error and warning goes to stderr as
// FILE:LINE: message; the image is written atomically unless -check or errors.
func cmdCnbuild(a *app, args []string) int {
	fs := flag.NewFlagSet("cnbuild", flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	check := fs.Bool("check", false, "check only; do not write the image")
	show := fs.Bool("show", false, "print a summary of the compiled configuration")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(a.stderr, "mtactl cnbuild: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	r, err := a.check()
	if err != nil {
		fmt.Fprintf(a.stderr, "mtactl cnbuild: %v\n", err)
		return 1
	}
	a.printDiagnostics(r)
	if len(r.Errors) > 0 {
		fmt.Fprintf(a.stderr, "mtactl cnbuild: %s, %s; no image written\n", plural(len(r.Errors), "error"), plural(len(r.Warnings), "warning"))
		return 1
	}
	img := r.Image
	img.Header.BuildTime = a.now().UTC()
	if *show {
		showImage(a.stdout, img)
	}
	switch {
	case *check:
	case a.configDir == "":
		fmt.Fprintln(a.stderr, "mtactl cnbuild: note: the built-in configuration is compiled into the programs; nothing written (use -config DIR)")
	default:
		if err := compiler.Write(a.imagePath(), img); err != nil {
			fmt.Fprintf(a.stderr, "mtactl cnbuild: %v\n", err)
			return 1
		}
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintf(a.stderr, "mtactl cnbuild: %s\n", plural(len(r.Warnings), "warning"))
	}
	return 0
}

// showImage prints the summary of cnbuild -show.
func showImage(w io.Writer, img *compiler.Image) {
	h := img.Header
	fmt.Fprintln(w, "Image header:")
	fmt.Fprintf(w, "  magic           = %s\n", h.Magic)
	fmt.Fprintf(w, "  format version  = %d\n", h.FormatVersion)
	fmt.Fprintf(w, "  built by        = %s\n", h.BuiltBy)
	fmt.Fprintf(w, "  build time      = %s\n", h.BuildTime.Format(time.RFC3339))
	fmt.Fprintf(w, "  source hash     = %s\n", hex.EncodeToString(h.SourceHash[:]))
	nrules := 0
	if img.Rules != nil {
		nrules = img.Rules.NumRules()
	}
	fmt.Fprintf(w, "Rewrite rules: %d\n", nrules)
	fmt.Fprintf(w, "Channels: %d\n", len(img.Channels))
	for i := range img.Channels {
		c := &img.Channels[i]
		pool := img.PoolFor(c.Name)
		fmt.Fprintf(w, "  %s (%s)\n", c.Name, c.Pos)
		fmt.Fprintf(w, "    official host = %s", c.Official)
		if c.Alias != "" {
			fmt.Fprintf(w, " (local host alias %s)", c.Alias)
		}
		fmt.Fprintln(w)
		for _, hst := range c.Hosts {
			if hst.Proper != "" {
				fmt.Fprintf(w, "    host          = %s -> %s\n", hst.Name, hst.Proper)
			} else {
				fmt.Fprintf(w, "    host          = %s\n", hst.Name)
			}
		}
		fmt.Fprintf(w, "    keywords      = %s\n", keywordLine(c.Keywords))
		fmt.Fprintf(w, "    pool          = %s (job_limit %d), maxjobs %d, threaddepth %d\n", pool.Name, pool.JobLimit, img.MaxJobs(c.Name), c.ThreadDepth)
		fmt.Fprintf(w, "    backoff       = %s\n", backoffLine(c))
		fmt.Fprintf(w, "    notices       = %s\n", noticesLine(c))
	}
	fmt.Fprintf(w, "Pools: %d\n", len(img.Jobs.Pools))
	for i, p := range img.Jobs.Pools {
		def := ""
		if i == 0 {
			def = " (default)"
		}
		fmt.Fprintf(w, "  %-12s job_limit %d%s\n", p.Name, p.JobLimit, def)
	}
	for _, s := range img.Jobs.Channels {
		fmt.Fprintf(w, "  [CHANNEL=%s] master_command=%s", s.Pattern, s.MasterCommand)
		for p, win := range s.Windows {
			if win.Set {
				fmt.Fprintf(w, " %s_delivery=%s", compiler.Priority(p), win)
			}
		}
		fmt.Fprintln(w)
	}
	var tables int
	if img.Mappings != nil {
		tables = len(img.Mappings.Tables())
	}
	fmt.Fprintf(w, "Mapping tables: %d\n", tables)
	if img.Mappings != nil {
		for _, t := range img.Mappings.Tables() {
			fmt.Fprintf(w, "  %-20s %s (%s)\n", t.Name, plural(t.Entries, "entry", "entries"), t.Src)
		}
	}
	naliases := 0
	if img.Aliases != nil {
		naliases = img.Aliases.Len()
	}
	fmt.Fprintf(w, "Aliases: %d\n", naliases)
	fmt.Fprintf(w, "Services: %d\n", len(img.Dispatcher.Services))
	for _, s := range img.Dispatcher.Services {
		addr := s.InterfaceAddress
		if addr == "" {
			addr = "*"
		}
		var ports []string
		for _, p := range s.Port {
			ports = append(ports, fmt.Sprint(p))
		}
		fmt.Fprintf(w, "  %s on %s port %s, max_procs %d x max_conns %d\n", s.Name, addr, strings.Join(ports, ","), s.MaxProcs, s.MaxConns)
	}
	var names []string
	for n := range img.ChannelOptions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "Channel options: %s (%d set)\n", n, len(img.ChannelOptions[n].Raw))
	}
	fmt.Fprintf(w, "Warnings: %d\n", len(img.Warnings))
}

func keywordLine(kws []compiler.Keyword) string {
	var parts []string
	for _, k := range kws {
		parts = append(parts, k.String())
	}
	return strings.Join(parts, " ")
}

func backoffLine(c *compiler.ChannelConfig) string {
	var parts []string
	for p := range compiler.NumPriorities {
		var ds []string
		for _, d := range c.Backoff[p] {
			ds = append(ds, shortDuration(d))
		}
		parts = append(parts, compiler.Priority(p).String()+" "+strings.Join(ds, " "))
	}
	return strings.Join(parts, "; ")
}

func noticesLine(c *compiler.ChannelConfig) string {
	if equalInts(c.Notices[0], c.Notices[1]) && equalInts(c.Notices[1], c.Notices[2]) {
		return ints(c.Notices[0])
	}
	var parts []string
	for p := range compiler.NumPriorities {
		parts = append(parts, compiler.Priority(p).String()+" "+ints(c.Notices[p]))
	}
	return strings.Join(parts, "; ")
}

func ints(v []int) string {
	var s []string
	for _, n := range v {
		s = append(s, fmt.Sprint(n))
	}
	return strings.Join(s, " ")
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func shortDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
