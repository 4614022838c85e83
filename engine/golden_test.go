package engine

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const goldenSep = "\n-----\n"

// TestGoldenTraces runs the addresses listed at the top of each testdata/*.trace file
// against the worked-example configuration (section8Rules) and compares the -debug
// trace with the text below the separator. Input lines: address, then optional
// "source=chan" and "kind=envelope-from|header-to|header-from". Run with -update to
// regenerate.
func TestGoldenTraces(t *testing.T) {
	rs := compileRules(t, section8Rules, section8Channels())
	files, _ := filepath.Glob("testdata/*.trace")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	kinds := map[string]Kind{"envelope-to": EnvelopeTo, "envelope-from": EnvelopeFrom, "header-to": HeaderTo, "header-from": HeaderFrom}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			in, want, _ := strings.Cut(string(b), goldenSep)
			var out strings.Builder
			for _, line := range strings.Split(strings.TrimSpace(in), "\n") {
				fields := strings.Fields(line)
				if len(fields) == 0 || strings.HasPrefix(line, "#") {
					continue
				}
				req := Request{Address: fields[0], Trace: true}
				for _, f := range fields[1:] {
					k, v, _ := strings.Cut(f, "=")
					switch k {
					case "source":
						req.SourceChannel = v
					case "kind":
						req.Kind = kinds[v]
					}
				}
				res := rs.Resolve(req)
				out.WriteString("> " + line + "\n")
				out.WriteString(traceText(res.Trace))
				if res.Err != nil {
					out.WriteString("= error " + res.Err.Error() + "\n")
				}
				for _, r := range res.Recipients {
					out.WriteString("= " + r.Channel + " " + r.Address + " (" + r.Rule + ")\n")
				}
			}
			if *update {
				if err := os.WriteFile(f, []byte(strings.TrimSpace(in)+goldenSep+out.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if out.String() != want {
				t.Errorf("%s differs (go test -run TestGoldenTraces -update to regenerate):\n%s", f, out.String())
			}
		})
	}
}
