//go:build unix

package mappings

import (
	"syscall"
	"time"
)

// processCPU is the process's user+system CPU time. Benchmarks report CPU per
// operation besides wall time, because a shared build machine inflates wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
