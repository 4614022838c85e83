package daemon

import (
	"testing"
	"time"

	"mtad.dev/mta/compiler"
	"mtad.dev/mta/jobctl"
)

// The job controller's window, built from the compiler's, is open at exactly the
// same minutes of the day (wrap over midnight, 24:00, whole day included).
func TestWindowConversionKeepsMeaning(t *testing.T) {
	for _, text := range []string{"08:00-20:00", "22:00-06:00", "20:00-24:00", "00:00-00:00", "12:30-12:31"} {
		cw, err := compiler.ParseWindow(text)
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		jw := &jobctl.Window{Start: cw.Start, End: cw.End}
		day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
		for m := 0; m < 24*60; m++ {
			at := day.Add(time.Duration(m) * time.Minute)
			if cw.Contains(at) != jw.Open(at) {
				t.Errorf("%s at %s: compiler says %v, jobctl %v", text, at.Format("15:04"), cw.Contains(at), jw.Open(at))
			}
		}
	}
}
