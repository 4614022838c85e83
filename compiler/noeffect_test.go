package compiler

import (
	"go/ast"
	"go/types"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/engine"
	"mtad.dev/mta/jobctl"
	"mtad.dev/mta/smtpserver"
)

// TestKeywordTable: every keyword is declared once, with a setter or an effect
// class (or both), a reason exactly when it has a class, and is found by lookup.
func TestKeywordTable(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range keywordSpecs {
		switch {
		case e.name == "" || e.name != strings.ToLower(e.name):
			t.Errorf("keyword %q: names are lower case", e.name)
		case seen[e.name]:
			t.Errorf("keyword %q is declared twice", e.name)
		}
		seen[e.name] = true
		if e.set == nil && e.effect == 0 {
			t.Errorf("keyword %q is accepted but has neither a setter nor an effect class", e.name)
		}
		if e.effect > notImplemented || (e.effect != 0) != (e.why != "") {
			t.Errorf("keyword %q: an effect class goes with a reason, and only then (class %d, why %q)", e.name, e.effect, e.why)
		}
		if len(e.asArgs) > 0 && e.effect != notImplemented {
			t.Errorf("keyword %q: asArgs only mean something for a keyword that is not implemented", e.name)
		}
		if e.check != nil && e.args != argWord && e.args != argChannel {
			t.Errorf("keyword %q: check applies to one-word arguments only", e.name)
		}
		if name, spec, ok := lookupKeyword(strings.ToUpper(e.name)); !ok || name != e.name || spec.name != e.name {
			t.Errorf("lookupKeyword(%q) = %q, %v", strings.ToUpper(e.name), name, ok)
		}
	}
}

// subsystemSettings are the types the compiler hands the subsystems
// (subsystems.go). Every field of each must be read outside the compiler: a
// setting the subsystem ignores is a keyword or option silently ignored.
var subsystemSettings = []any{channels.SMTPSettings{}, channels.PipeSettings{}, smtpserver.ChannelPolicy{}, smtpserver.Timeouts{}, jobctl.Channel{}, engine.Channel{}}

// notSettings are fields of subsystemSettings that carry no configuration, so
// that nothing reading them is no keyword ignored.
var notSettings = map[string]string{
	"mtad.dev/mta/smtpserver.ChannelPolicy.Name": "the channel's name, already the key of Policy.Channels",
}

// TestKeywordEffects: no channel keyword may be silently ignored. With the
// module's non-test code type-checked, a ChannelConfig field is acted on when
// code outside the compiler reads it (mtactl, which only shows the
// configuration, does not count), or when subsystems.go reads it into a
// subsystem's settings; every field a keyword's setter writes must be acted on,
// unless all the keywords that write it declare an effect class. Every field of
// a subsystem's settings must be read outside the compiler, and every function
// of subsystems.go that makes one must be called.
func TestKeywordEffects(t *testing.T) {
	if testing.Short() {
		t.Skip("type-checks the module")
	}
	pkgs := scanModule(t)
	reads := fieldReads(pkgs)
	const self = "mtad.dev/mta/compiler"
	actedOn := func(field string) bool {
		for _, r := range reads[self+".ChannelConfig."+field] {
			if r.pkg == self && r.file == "subsystems.go" ||
				r.pkg != self && r.pkg != "mtad.dev/mta/cmd/mtactl" {
				return true
			}
		}
		return false
	}
	writers := keywordWrites(t, pkgs)
	for _, e := range keywordSpecs {
		if e.set != nil && len(writers.byKeyword[e.name]) == 0 {
			t.Errorf("keyword %q: its setter writes no ChannelConfig field this test can see; assign the fields in the setter itself", e.name)
		}
	}
	for field, kws := range writers.byField {
		var claiming []string // keywords that say they have an effect
		for _, k := range kws {
			if keywordIndex[k].effect == 0 {
				claiming = append(claiming, k)
			}
		}
		switch {
		case !actedOn(field) && len(claiming) > 0:
			t.Errorf("ChannelConfig.%s is read by no subsystem, but keywords %q set it without an effect class: implement them (subsystems.go) or give them one in keywordtable.go", field, claiming)
		case actedOn(field) && len(claiming) == 0:
			t.Errorf("ChannelConfig.%s is acted on now, but every keyword that sets it (%q) declares no effect: update keywordtable.go and docs/configuration.md", field, kws)
		}
	}
	for _, v := range subsystemSettings {
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			name := typ.PkgPath() + "." + typ.Name() + "." + typ.Field(i).Name
			if _, ok := notSettings[name]; !ok && !slices.ContainsFunc(reads[name], func(r fieldRead) bool { return r.pkg != self }) {
				t.Errorf("%s is read by no code outside the compiler: the subsystem ignores it", name)
			}
		}
	}
	checkSubsystemFuncsCalled(t, pkgs)
}

// keywordSetters are the ChannelConfig fields each keyword's setter writes, and
// the keywords that write each field.
type keywordSetters struct {
	byKeyword map[string][]string
	byField   map[string][]string
}

// keywordWrites reads the setters of keywordSpecs from the type-checked compiler
// package: a function literal in the table, or a function of the package that it
// names.
func keywordWrites(t *testing.T, pkgs []scannedPkg) keywordSetters {
	t.Helper()
	i := slices.IndexFunc(pkgs, func(p scannedPkg) bool { return p.path == "mtad.dev/mta/compiler" })
	if i < 0 {
		t.Fatal("the compiler package was not scanned")
	}
	p := pkgs[i]
	funcs := map[types.Object]*ast.FuncDecl{}
	var table *ast.CompositeLit
	for _, f := range p.files {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				funcs[p.info.Defs[d.Name]] = d
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					if vs, ok := spec.(*ast.ValueSpec); ok && len(vs.Names) == 1 && vs.Names[0].Name == "keywordSpecs" {
						table, _ = vs.Values[0].(*ast.CompositeLit)
					}
				}
			}
		}
	}
	if table == nil || len(table.Elts) != len(keywordSpecs) {
		t.Fatal("keywordSpecs not found in the compiler's source, or not one literal per keyword")
	}
	out := keywordSetters{byKeyword: map[string][]string{}, byField: map[string][]string{}}
	for _, elt := range table.Elts {
		name, body := "", ast.Node(nil)
		for _, kv := range elt.(*ast.CompositeLit).Elts {
			kv := kv.(*ast.KeyValueExpr)
			switch kv.Key.(*ast.Ident).Name {
			case "name":
				name, _ = strconv.Unquote(kv.Value.(*ast.BasicLit).Value)
			case "set":
				switch v := kv.Value.(type) {
				case *ast.FuncLit:
					body = v.Body
				case *ast.Ident:
					if fd := funcs[p.info.Uses[v]]; fd != nil {
						body = fd.Body
					}
				}
			}
		}
		if body == nil {
			continue
		}
		for se := range writtenSelectors(body) {
			sel, ok := p.info.Selections[se]
			if !ok {
				continue
			}
			if owner, field, ok := fieldOwner(sel); ok && owner == "mtad.dev/mta/compiler.ChannelConfig" && !slices.Contains(out.byKeyword[name], field) {
				out.byKeyword[name] = append(out.byKeyword[name], field)
				out.byField[field] = append(out.byField[field], name)
			}
		}
	}
	if len(out.byField) < 30 {
		t.Fatalf("found %d ChannelConfig fields written by keyword setters; the scan is broken", len(out.byField))
	}
	return out
}

// checkSubsystemFuncsCalled: a function of subsystems.go that makes a
// subsystem's settings must be called from the module's non-test code, or the
// reads it makes stand for an effect nobody gets.
func checkSubsystemFuncsCalled(t *testing.T, pkgs []scannedPkg) {
	t.Helper()
	// Keyed by full name: the compiler's own objects and those other packages
	// see through export data are not the same pointers.
	called := map[string]bool{}
	use := func(info *types.Info, id *ast.Ident) {
		if fn, ok := info.Uses[id].(*types.Func); ok {
			called[fn.FullName()] = true
		}
	}
	var makers []*ast.FuncDecl
	var defs *types.Info
	for _, p := range pkgs {
		for i, f := range p.files {
			ast.Inspect(f, func(n ast.Node) bool {
				if call, ok := n.(*ast.CallExpr); ok {
					switch fn := call.Fun.(type) {
					case *ast.Ident:
						use(p.info, fn)
					case *ast.SelectorExpr:
						use(p.info, fn.Sel)
					}
				}
				return true
			})
			if p.path != "mtad.dev/mta/compiler" || p.names[i] != "subsystems.go" {
				continue
			}
			defs = p.info
			for _, d := range f.Decls {
				if fd, ok := d.(*ast.FuncDecl); ok && makesSettings(p.info, fd) {
					makers = append(makers, fd)
				}
			}
		}
	}
	if len(makers) < 5 {
		t.Fatalf("found %d functions making subsystem settings in subsystems.go; the scan is broken", len(makers))
	}
	for _, fd := range makers {
		if !called[defs.Defs[fd.Name].(*types.Func).FullName()] {
			t.Errorf("subsystems.go: %s makes a subsystem's settings, but nothing calls it", fd.Name.Name)
		}
	}
}

// makesSettings says whether a function returns one of subsystemSettings.
func makesSettings(info *types.Info, fd *ast.FuncDecl) bool {
	obj, ok := info.Defs[fd.Name].(*types.Func)
	if !ok {
		return false
	}
	res := obj.Type().(*types.Signature).Results()
	for i := range res.Len() {
		named, ok := res.At(i).Type().(*types.Named)
		if !ok || named.Obj().Pkg() == nil {
			continue
		}
		for _, v := range subsystemSettings {
			typ := reflect.TypeOf(v)
			if named.Obj().Pkg().Path() == typ.PkgPath() && named.Obj().Name() == typ.Name() {
				return true
			}
		}
	}
	return false
}

func TestNoEffectWarnings(t *testing.T) {
	tests := []struct {
		name  string
		line  string // keywords of tcp_local
		warns []string
	}{
		{name: "implemented limits", line: "transactionlimit 10 recipientcutoff 5 linelimit 100 tlsswitchchannel tcp_local disconnectbadcommandlimit 3"},
		{name: "irrelevant", line: "single_sys subdirs 20 filesperjob 2 addrsperjob 3 immediate periodic immnonurgent logging cacheeverything"},
		{name: "as built", line: "noinner noremotehost identnonenumeric nodefaulthost noloopcheck nosendpost smtp_crlf maytlsserver"},
		{
			name: "not implemented", line: "alternatechannel tcp_local maxlines 9 inner",
			warns: []string{
				`imta.cnf:7: channel keyword "alternatechannel" is not implemented in this version; it has no effect (over-limit mail is not diverted)`,
				`imta.cnf:7: channel keyword "maxlines" is not implemented in this version; it has no effect (messages are never fragmented (linelimit refuses instead))`,
				`imta.cnf:7: channel keyword "inner" is not implemented in this version; it has no effect (embedded message/rfc822 headers are not rewritten)`,
			},
		},
		{name: "argument decides: as built", line: "missingrecipientpolicy 0 missingrecipientpolicy 1"},
		{
			name: "argument decides: not implemented", line: "missingrecipientpolicy 6",
			warns: []string{`imta.cnf:7: channel keyword "missingrecipientpolicy" is not implemented in this version; it has no effect (messages without To:, Cc: or Bcc: pass unchanged (policies 0 and 1))`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := build(t, map[string]string{"imta.cnf": strings.Replace(baseIMTA, "tcp_local smtp mx", "tcp_local smtp mx "+tc.line, 1)})
			if len(r.Errors) > 0 {
				t.Fatalf("errors: %v", messages(r.Errors))
			}
			if got := messages(r.Warnings); !slices.Equal(got, tc.warns) {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.warns, "\n"))
			}
		})
	}
}

// TestNoEffectWarningOncePerLine: a defaults line is applied to every later
// channel but warned about once, at its own line; Build still succeeds.
func TestNoEffectWarningOncePerLine(t *testing.T) {
	r := build(t, map[string]string{"imta.cnf": `.             $U%$H@tcp-daemon

defaults loopcheck

l
mail.example.com

tcp_local smtp mx
tcp-daemon

tcp_other smtp mx loopcheck
tcp_other-daemon
`})
	if len(r.Errors) > 0 || r.Image == nil {
		t.Fatalf("errors: %v", messages(r.Errors))
	}
	want := []string{
		`imta.cnf:3: channel keyword "loopcheck" is not implemented in this version; it has no effect (no XLOOP; loops are caught by counting Received: fields)`,
		`imta.cnf:11: channel keyword "loopcheck" is not implemented in this version; it has no effect (no XLOOP; loops are caught by counting Received: fields)`,
	}
	if got := messages(r.Warnings); !slices.Equal(got, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestNoEffectKeywordsDocumented: docs/configuration.md lists every keyword with
// an effect class, with the right status, and no other.
func TestNoEffectKeywordsDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	const heading = "\n## Channel keywords accepted without effect\n"
	doc := string(b)
	i := strings.Index(doc, heading)
	if i < 0 {
		t.Fatalf("docs/configuration.md has no %q section", strings.TrimSpace(heading))
	}
	section := doc[i+len(heading):]
	if j := strings.Index(section, "\n## "); j >= 0 {
		section = section[:j]
	}
	rows := map[string]string{} // keyword -> its table row
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.Contains(cells[1], "`") {
			continue
		}
		for _, k := range strings.Split(cells[1], ",") {
			rows[strings.Trim(strings.TrimSpace(k), "`")] = line
		}
	}
	for _, e := range keywordSpecs {
		if e.effect == 0 {
			continue
		}
		k := e.name
		row, ok := rows[k]
		switch {
		case !ok:
			t.Errorf("keyword %q missing from the table of docs/configuration.md", k)
		case strings.Contains(row, "not implemented") != (e.effect == notImplemented):
			t.Errorf("keyword %q: status in docs/configuration.md does not match keywordtable.go: %s", k, row)
		}
	}
	for k := range rows {
		if e, ok := keywordIndex[k]; !ok || e.effect == 0 {
			t.Errorf("docs/configuration.md lists %q, which keywordtable.go gives no effect class", k)
		}
	}
}
