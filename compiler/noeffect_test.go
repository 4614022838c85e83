package compiler

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// channelConfigFields is every field of ChannelConfig, from the source.
func channelConfigFields(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "channel.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != "ChannelConfig" {
			return true
		}
		for _, fld := range ts.Type.(*ast.StructType).Fields.List {
			for _, name := range fld.Names {
				out = append(out, name.Name)
			}
		}
		return false
	})
	if len(out) < 50 {
		t.Fatalf("found %d ChannelConfig fields in channel.go; the parse is broken", len(out))
	}
	return out
}

// appliedKeywords is every keyword that has a case in ChannelConfig.apply.
func appliedKeywords(t *testing.T) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "channel.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Name.Name != "apply" {
			continue
		}
		ast.Inspect(fd, func(n ast.Node) bool {
			if cc, ok := n.(*ast.CaseClause); ok {
				for _, e := range cc.List {
					if bl, ok := e.(*ast.BasicLit); ok && bl.Kind == token.STRING {
						s, _ := strconv.Unquote(bl.Value)
						out[s] = true
					}
				}
			}
			return true
		})
	}
	if len(out) < 100 {
		t.Fatalf("found %d keyword cases in apply; the parse is broken", len(out))
	}
	return out
}

// selectorsOutsideCompiler is every name used after a dot (x.Name) in the
// module's non-test Go files outside this package: what the rest of the code can
// possibly read of a ChannelConfig. Parsing, not grepping, so that comments and
// strings do not count.
func selectorsOutsideCompiler(t *testing.T) map[string]bool {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found above the compiler package: %v", err)
	}
	self, _ := filepath.Abs(".")
	out := map[string]bool{}
	files := 0
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == self || (path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		ast.Inspect(f, func(n ast.Node) bool {
			if se, ok := n.(*ast.SelectorExpr); ok {
				out[se.Sel.Name] = true
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 20 || !out["SASLSwitchChannel"] {
		t.Fatalf("scanned %d files outside the compiler; the scan is broken", files)
	}
	return out
}

// TestKeywordEffects: no channel keyword may be silently ignored. A ChannelConfig
// field that nothing outside the compiler reads must be in unreadFields with the
// keywords that set it, each in noEffectKeywords; every keyword is interpreted by
// apply or listed in noEffectKeywords; and the tables hold nothing stale.
func TestKeywordEffects(t *testing.T) {
	read := selectorsOutsideCompiler(t)
	fields := channelConfigFields(t)
	for _, f := range fields {
		kws, listed := unreadFields[f]
		switch {
		case !read[f] && !listed:
			t.Errorf("ChannelConfig.%s is read nowhere outside the compiler: implement its keywords or list it in unreadFields (noeffect.go) with them", f)
		case read[f] && listed:
			t.Errorf("ChannelConfig.%s is now read outside the compiler: remove it from unreadFields and its keywords from noEffectKeywords (or explain why they still have no effect)", f)
		}
		for _, k := range kws {
			if _, ok := noEffectKeywords[k]; !ok {
				t.Errorf("unreadFields[%s]: keyword %q is not in noEffectKeywords", f, k)
			}
		}
	}
	for f := range unreadFields {
		if !slices.Contains(fields, f) {
			t.Errorf("unreadFields names %q, which is not a ChannelConfig field", f)
		}
	}
	applied := appliedKeywords(t)
	for k := range keywords {
		if _, ok := noEffectKeywords[k]; !ok && !applied[k] {
			t.Errorf("keyword %q is accepted but neither interpreted by apply nor listed in noEffectKeywords", k)
		}
	}
	for k, e := range noEffectKeywords {
		if _, ok := keywords[k]; !ok {
			t.Errorf("noEffectKeywords lists %q, which is not a channel keyword", k)
		}
		if e.class < irrelevant || e.class > notImplemented || e.why == "" {
			t.Errorf("noEffectKeywords[%q] = %+v: class and reason required", k, e)
		}
	}
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

// TestNoEffectKeywordsDocumented: docs/configuration.md lists every keyword of
// noEffectKeywords, with the right status, and no other.
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
	for k, e := range noEffectKeywords {
		row, ok := rows[k]
		switch {
		case !ok:
			t.Errorf("keyword %q missing from the table of docs/configuration.md", k)
		case strings.Contains(row, "not implemented") != (e.class == notImplemented):
			t.Errorf("keyword %q: status in docs/configuration.md does not match noeffect.go: %s", k, row)
		}
	}
	for k := range rows {
		if _, ok := noEffectKeywords[k]; !ok {
			t.Errorf("docs/configuration.md lists %q, which is not in noEffectKeywords", k)
		}
	}
}
