package queue

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// TestWindowReader holds the read-ahead window to the answers of the file itself:
// same bytes, same count, and an error exactly when the file gives one.
func TestWindowReader(t *testing.T) {
	data := make([]byte, 10000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	src := bytes.NewReader(data)
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		win  int
		off  int64
		n    int
	}{
		{"start", 1024, 0, 100},
		{"inside window after fill", 1024, 50, 100},
		{"crosses window end", 1024, 1000, 100},
		{"larger than half the window", 1024, 10, 600},
		{"ends at EOF", 1024, 9900, 100},
		{"past EOF", 1024, 9950, 100},
		{"starts at EOF", 1024, 10000, 10},
		{"far past EOF", 1024, 20000, 10},
	}
	w := newWindowReader(src, 1024)
	check := func(name string, off int64, n int) {
		t.Helper()
		want := make([]byte, n)
		wn, werr := src.ReadAt(want, off)
		got := make([]byte, n)
		gn, gerr := w.ReadAt(got, off)
		if gn != wn || !bytes.Equal(got[:gn], want[:wn]) || (gerr == nil) != (werr == nil) {
			t.Errorf("%s: ReadAt(%d, %d) = %d, %v; file gives %d, %v", name, n, off, gn, gerr, wn, werr)
		}
		if gerr != nil && !errors.Is(gerr, io.EOF) && !errors.Is(gerr, io.ErrUnexpectedEOF) {
			t.Errorf("%s: unexpected error %v", name, gerr)
		}
	}
	for _, tc := range tests {
		check(tc.name, tc.off, tc.n)
	}
	// Sequential record-like reads (what recovery does), then random ones.
	for off := int64(0); off < 10000; off += 37 {
		check("sequential", off, 36)
	}
	for i := 0; i < 2000; i++ {
		check("random", rng.Int64N(10100), rng.IntN(700))
	}
}
