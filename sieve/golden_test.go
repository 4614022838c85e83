package sieve

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/errors/*.golden with the checker's current output")

// TestErrorGolden compiles each testdata/errors/*.sieve and compares the error
// messages with the .golden file beside it. Run with -update to rewrite them
// after a deliberate change of wording, and read the diff.
func TestErrorGolden(t *testing.T) {
	paths, err := filepath.Glob("testdata/errors/*.sieve")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden scripts: %v", err)
	}
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".sieve")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			got := "ok\n"
			if _, err := Compile(filepath.Base(p), src, Options{Limits: Limits{MaxNesting: 32}}); err != nil {
				got = err.Error() + "\n"
			}
			golden := strings.TrimSuffix(p, ".sieve") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("errors of %s:\n%s\nwant:\n%s", p, got, want)
			}
		})
	}
}
