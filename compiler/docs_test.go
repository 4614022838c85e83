package compiler

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateDocs = flag.Bool("update", false, "rewrite the generated tables of docs/configuration.md")

// docTables are the parts of docs/configuration.md generated from the compiler's
// tables, each between a BEGIN and an END marker line.
var docTables = []struct {
	name   string
	render func() string
}{
	{"channel keywords accepted without effect", KeywordEffectTable},
	{"option keys accepted without effect", OptionEffectTable},
}

// TestDocTables: the tables of docs/configuration.md are what the keyword and
// option tables say, so the documentation cannot drift from the code. Run
// `go test ./compiler -run TestDocTables -update` after changing either table.
func TestDocTables(t *testing.T) {
	path := filepath.Join("..", "docs", "configuration.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, tab := range docTables {
		begin := "<!-- BEGIN generated: " + tab.name + " (go test ./compiler -run TestDocTables -update) -->\n"
		end := "<!-- END generated: " + tab.name + " -->\n"
		i := strings.Index(doc, begin)
		j := strings.Index(doc, end)
		if i < 0 || j < i {
			t.Errorf("docs/configuration.md lacks the markers of the generated %s:\n%s%s", tab.name, begin, end)
			continue
		}
		got, want := doc[i+len(begin):j], tab.render()
		if got == want {
			continue
		}
		if *updateDocs {
			doc = doc[:i+len(begin)] + want + doc[j:]
			continue
		}
		t.Errorf("docs/configuration.md: the %s differ from the compiler's table; run go test ./compiler -run TestDocTables -update\ngot:\n%swant:\n%s", tab.name, got, want)
	}
	if *updateDocs && doc != string(b) {
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
