package compiler

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The tests that keep "no keyword or option silently ignored" honest look at
// the module's non-test code as the compiler sees it, types and all: a field
// counts as read only where the selector's receiver really is that struct, not
// wherever some other struct has a field of the same name.

// scannedPkg is one of the module's packages, parsed and type-checked.
type scannedPkg struct {
	path  string
	files []*ast.File
	names []string // each file's base name, in the order of files
	info  *types.Info
}

var moduleScan struct {
	once sync.Once
	pkgs []scannedPkg
	err  error
}

// scanModule type-checks the module's non-test packages once per test binary.
func scanModule(t *testing.T) []scannedPkg {
	t.Helper()
	moduleScan.once.Do(func() { moduleScan.pkgs, moduleScan.err = loadModule(t) })
	if moduleScan.err != nil {
		t.Fatal(moduleScan.err)
	}
	return moduleScan.pkgs
}

func loadModule(t *testing.T) ([]scannedPkg, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("go", "list", "-e", "-deps", "-export", "-json=ImportPath,Dir,GoFiles,Export,Module,Standard", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, errors.New("go list: " + err.Error() + "\n" + stderr.String())
	}
	type pkg struct {
		ImportPath, Dir, Export string
		GoFiles                 []string
		Standard                bool
		Module                  *struct{ Path string }
	}
	exports := map[string]string{}
	var mine []pkg
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, errors.New("go list output: " + err.Error())
		}
		exports[p.ImportPath] = p.Export
		if !p.Standard && p.Module != nil && p.Module.Path == "mtad.dev/mta" {
			mine = append(mine, p)
		}
	}
	if len(mine) < 5 {
		return nil, errors.New("go list found too few packages of the module")
	}
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		if exports[path] == "" {
			return nil, os.ErrNotExist
		}
		return os.Open(exports[path])
	})
	var pkgs []scannedPkg
	for _, p := range mine {
		sp := scannedPkg{path: p.ImportPath, info: &types.Info{
			Selections: map[*ast.SelectorExpr]*types.Selection{},
			Uses:       map[*ast.Ident]types.Object{},
			Defs:       map[*ast.Ident]types.Object{},
		}}
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
			if err != nil {
				return nil, errors.New(p.ImportPath + ": " + err.Error())
			}
			sp.files = append(sp.files, f)
			sp.names = append(sp.names, name)
		}
		conf := types.Config{Importer: imp, Error: func(error) {}} // another engineer's broken file must not hide every read
		if _, err := conf.Check(p.ImportPath, fset, sp.files, sp.info); err != nil {
			t.Logf("type-checking %s: %v (reads there may be missed)", p.ImportPath, err)
		}
		pkgs = append(pkgs, sp)
	}
	return pkgs, nil
}

// fieldOwner is the struct type that declares the field a selection picks, with
// the field's name ("mtad.dev/mta/channels.SMTPSettings", "Daemon" for
// opts.Daemon, a field promoted from the embedded SMTPSettings); ok is false for
// anything but a field.
func fieldOwner(sel *types.Selection) (owner, field string, ok bool) {
	if sel.Kind() != types.FieldVal {
		return "", "", false
	}
	t := sel.Recv()
	idx := sel.Index()
	for k, i := range idx {
		if p, isPtr := t.Underlying().(*types.Pointer); isPtr {
			t = p.Elem()
		}
		st, isStruct := t.Underlying().(*types.Struct)
		if !isStruct {
			return "", "", false
		}
		if k == len(idx)-1 {
			named, isNamed := t.(*types.Named)
			if !isNamed || named.Obj().Pkg() == nil {
				return "", "", false
			}
			return named.Obj().Pkg().Path() + "." + named.Obj().Name(), sel.Obj().Name(), true
		}
		t = st.Field(i).Type()
	}
	return "", "", false
}

// writtenSelectors are the selectors a file assigns to (x.F = v, x.F[i] = v,
// x.F++, &x.F): their field is written there, not read.
func writtenSelectors(root ast.Node) map[*ast.SelectorExpr]bool {
	out := map[*ast.SelectorExpr]bool{}
	mark := func(e ast.Expr) {
		for {
			switch x := e.(type) {
			case *ast.SelectorExpr:
				out[x] = true
				return
			case *ast.IndexExpr:
				e = x.X
			case *ast.ParenExpr:
				e = x.X
			case *ast.StarExpr:
				e = x.X
			default:
				return
			}
		}
	}
	ast.Inspect(root, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			for _, l := range n.Lhs {
				mark(l)
			}
		case *ast.IncDecStmt:
			mark(n.X)
		case *ast.UnaryExpr:
			if n.Op == token.AND {
				mark(n.X)
			}
		}
		return true
	})
	return out
}

// fieldRead is where a field is read: the package and the file's base name.
type fieldRead struct{ pkg, file string }

// fieldReads maps "pkgpath.Type.Field" to every place of the module's non-test
// code that reads that field.
func fieldReads(pkgs []scannedPkg) map[string][]fieldRead {
	out := map[string][]fieldRead{}
	for _, p := range pkgs {
		for i, f := range p.files {
			written := writtenSelectors(f)
			ast.Inspect(f, func(n ast.Node) bool {
				se, ok := n.(*ast.SelectorExpr)
				if !ok || written[se] {
					return true
				}
				sel, ok := p.info.Selections[se]
				if !ok {
					return true
				}
				if owner, field, ok := fieldOwner(sel); ok {
					out[owner+"."+field] = append(out[owner+"."+field], fieldRead{pkg: p.path, file: p.names[i]})
				}
				return true
			})
		}
	}
	return out
}
