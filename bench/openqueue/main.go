// Command openqueue times queue recovery (queue.Open) on an existing queue directory,
// with an optional CPU profile: where a restart with a big queue spends its time.
//
//	go run ./bench/openqueue -dir /var/tmp/mtad-scale/queue [-quick] [-cpuprofile cpu.prof]
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"mtad.dev/mta/queue"
)

func main() {
	dir := flag.String("dir", "", "queue `DIR`")
	quick := flag.Bool("quick", false, "QuickRecovery: check record headers, not content checksums")
	prof := flag.String("cpuprofile", "", "write a CPU profile to `FILE`")
	walk := flag.Bool("walk", true, "also time one Walk of the whole queue (what mtad's job controller does at start)")
	flag.Parse()
	if err := run(*dir, *quick, *prof, *walk); err != nil {
		fmt.Fprintln(os.Stderr, "openqueue:", err)
		os.Exit(1)
	}
}

func run(dir string, quick bool, prof string, walk bool) error {
	if prof != "" {
		f, err := os.Create(prof)
		if err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t0 := time.Now()
	q, err := queue.Open(dir, queue.Options{QuickRecovery: quick, Logger: logger})
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	open := time.Since(t0)
	var n int
	var walkT time.Duration
	if walk {
		t1 := time.Now()
		if err := q.Walk(func(*queue.Envelope) bool { n++; return true }); err != nil {
			return err
		}
		walkT = time.Since(t1)
	}
	if err := q.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	fmt.Printf("openqueue quick=%v open_s=%.2f walk_s=%.2f walked=%d\n", quick, open.Seconds(), walkT.Seconds(), n)
	return nil
}
