package layout

import (
	"bufio"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "mtad.dev/mta/"

// pkgRow is one row of the package table of docs/design.md.
type pkgRow struct {
	dir     string   // "intake"
	imports []string // the module packages it may import; nil: any ("every package above")
	any     bool
}

// readTable reads the package table: rows "| `dir/` | owns | must not | may import |".
func readTable(t *testing.T, path string) []pkgRow {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []pkgRow
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 4 {
			t.Fatalf("%s: a package row has %d columns, want 4: %s", path, len(cells), line)
		}
		r := pkgRow{dir: strings.TrimSuffix(strings.Trim(strings.TrimSpace(cells[0]), "`"), "/")}
		switch imp := strings.TrimSpace(cells[3]); {
		case strings.HasPrefix(imp, "every package"):
			r.any = true
		case imp == "—":
		default:
			for _, p := range strings.Split(imp, ",") {
				r.imports = append(r.imports, strings.TrimSpace(p))
			}
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no package table", path)
	}
	return rows
}

// moduleImports lists the module packages the non-test files of dir import, and
// the name of its doc.go's package comment's first word after "Package".
func moduleImports(t *testing.T, dir string) (imports []string, docName string) {
	t.Helper()
	fset := token.NewFileSet()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		n := e.Name()
		if !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		if n == "doc.go" && f.Doc != nil {
			if fields := strings.Fields(f.Doc.Text()); len(fields) > 1 && fields[0] == "Package" {
				docName = fields[1]
			}
		}
		for _, is := range f.Imports {
			p := strings.Trim(is.Path.Value, `"`)
			if strings.HasPrefix(p, module) && !slices.Contains(imports, strings.TrimPrefix(p, module)) {
				imports = append(imports, strings.TrimPrefix(p, module))
			}
		}
	}
	return imports, docName
}

// packageDirs lists the directories of the module's library packages: those
// design.md describes (not cmd/, internal/, bench/, examples/, reliability/ or
// interop/).
func packageDirs(t *testing.T, root string) []string {
	t.Helper()
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range ents {
		switch n := e.Name(); {
		case !e.IsDir(), strings.HasPrefix(n, "."), n == "cmd", n == "internal", n == "bench",
			n == "examples", n == "reliability", n == "interop", n == "docs":
		default:
			gos, _ := filepath.Glob(filepath.Join(root, n, "*.go"))
			if len(gos) > 0 {
				dirs = append(dirs, n)
			}
		}
	}
	return dirs
}

// TestDesignMatchesCode: docs/design.md lists every package, each listed package
// exists with a doc.go, and imports only what its row allows.
func TestDesignMatchesCode(t *testing.T) {
	root := filepath.Join("..", "..")
	rows := readTable(t, filepath.Join(root, "docs", "design.md"))
	listed := map[string]bool{}
	for _, r := range rows {
		listed[r.dir] = true
		dir := filepath.Join(root, r.dir)
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("design.md lists %s/, which does not exist", r.dir)
			continue
		}
		imports, docName := moduleImports(t, dir)
		if docName != filepath.Base(r.dir) {
			t.Errorf("%s/doc.go does not begin \"Package %s\" (got %q)", r.dir, filepath.Base(r.dir), docName)
		}
		if r.any {
			continue
		}
		for _, imp := range imports {
			if !slices.Contains(r.imports, imp) {
				t.Errorf("%s imports %s, which design.md does not allow it (allowed: %v)", r.dir, imp, r.imports)
			}
		}
		for _, imp := range r.imports {
			if !listed[imp] && !slices.ContainsFunc(rows, func(o pkgRow) bool { return o.dir == imp }) {
				t.Errorf("%s's row allows %s, which design.md does not list", r.dir, imp)
			}
		}
	}
	for _, d := range packageDirs(t, root) {
		if !listed[d] {
			t.Errorf("package %s/ is missing from docs/design.md", d)
		}
	}
}
