package mappings

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// TestCompileErrorsGolden compiles every line of testdata/compile_errors.in as an
// entry and compares the error list with compile_errors.golden (the exact text
// mtactl cnbuild will print for each).
func TestCompileErrorsGolden(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "compile_errors.in"))
	if err != nil {
		t.Fatal(err)
	}
	ts := TableSource{Name: "T", Src: "mappings:0"}
	for i, line := range strings.Split(strings.TrimRight(string(in), "\n"), "\n") {
		if line == "" || line[0] == '!' {
			continue
		}
		pat, tmpl, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("line %d: no tab", i+1)
		}
		ts.Entries = append(ts.Entries, EntrySource{Pattern: pat, Template: tmpl, Src: fmt.Sprintf("mappings:%d", i+1)})
	}
	_, errs := Compile([]TableSource{ts})
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintln(&b, e)
	}
	golden := filepath.Join("testdata", "compile_errors.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if b.String() != string(want) {
		t.Errorf("compile errors differ from %s (go test -update to accept):\n--- got\n%s--- want\n%s", golden, b.String(), want)
	}
}
