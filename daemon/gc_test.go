package daemon

import "testing"

func TestGCPercentFor(t *testing.T) {
	for _, tt := range []struct {
		n        int
		complete bool
		want     int
	}{
		{0, true, gcSmallQueuePercent},
		{gcLargeQueue - 1, true, gcSmallQueuePercent},
		{gcLargeQueue, true, 100},
		{1_000_000, true, 100},
		{0, false, 100}, // the start-up read of the queue is still building the index
	} {
		if got := gcPercentFor(tt.n, tt.complete); got != tt.want {
			t.Errorf("gcPercentFor(%d, %t) = %d, want %d", tt.n, tt.complete, got, tt.want)
		}
	}
}
