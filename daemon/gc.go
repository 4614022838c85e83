package daemon

import (
	"context"
	"os"
	"runtime/debug"
	"time"
)

// The garbage collector's pacing follows the queue. mtad's heap is mostly the job
// controller's index, which grows with the queue (about 250 MB for a million
// messages), plus short-lived garbage of the mail path. Go's default (GOGC=100)
// lets the heap grow to twice the live data before a collection: with a small
// queue that makes the GC run often for a few MB of garbage (about 10% of
// mtad's CPU at full SMTP load, measured with mtaload: GOGC=400 gave 7-8% more
// messages per second for 12 MB more RSS). With a large queue the same factor
// would multiply a large live heap, so the default comes back above
// gcLargeQueue messages and resident memory stays bounded (docs/performance.md,
// 1M messages under 1 GiB).
const (
	gcSmallQueuePercent = 400
	gcLargeQueue        = 200_000
	gcCheckEvery        = 5 * time.Second
)

// gcPercentFor is the GOGC value for a queue of n messages. Until the job
// controller has read the whole queue at start (complete false) the size is not
// known and the index is being built: the default, or a restart with a large
// queue would let the heap grow to five times the index before collecting.
func gcPercentFor(n int, complete bool) int {
	if !complete || n >= gcLargeQueue {
		return 100
	}
	return gcSmallQueuePercent
}

// tuneGC sets the GC percentage from the queue size until ctx ends. An
// administrator's GOGC in the environment wins: then nothing is changed.
func (d *Daemon) tuneGC(ctx context.Context, queued func() (n int, complete bool)) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	cur := -1
	t := time.NewTicker(gcCheckEvery)
	defer t.Stop()
	for {
		if want := gcPercentFor(queued()); want != cur {
			debug.SetGCPercent(want)
			if cur != -1 {
				d.log.Debug("GC percentage changed with the queue size", "gogc", want)
			}
			cur = want
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
