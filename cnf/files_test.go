package cnf

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

func TestParseMappings(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		entries string // "TABLE:LINE:pattern=>template;..."
		errs    []string
	}{
		{"quoted blanks do not split", "T\n\n  a$ b   c$\td$ \n", `T:3:a$ b=>c$	d$ `, nil},
		{"no blank after the name", "T\n  a b\n", "T:2:a=>b", nil},
		{"tab indentation", "T\n\n\ta\tb\n", "T:3:a=>b", nil},
		{"comment inside a table", "T\n  a b\n! c\n  c d\n", "T:2:a=>b;T:4:c=>d", nil},
		{"dollar-dollar then blank splits", "T\n  a$$ b\n", "T:2:a$$=>b", nil},
		{"blank ends the table", "T\n  a b\n\n  c d\n", "T:2:a=>b", []string{`m:4: mapping entry outside of any table: the blank line at m:3 ended table "T"`}},
		{"indented line first", "  a b\n", "", []string{"m:1: mapping entry outside of any table: a table name must start in column 1 before it"}},
		{"entry without template", "T\n  lonely\n", "", []string{`m:2: mapping entry has no template: "lonely"`}},
		{"unquoted blank in template", "T\n  a $Nno way\n", "", []string{`m:2: mapping entry has text after its template: "way" (write a blank inside a pattern or template as "$ ")`}},
		{"duplicate name case-insensitive", "T\n  a b\n\nt\n  c d\n", "T:2:a=>b;t:5:c=>d", []string{`m:4: duplicate mapping name found: "t" (first at m:1)`}},
		{"name too long", strings.Repeat("N", 33) + "\n  a b\n", strings.Repeat("N", 33) + ":2:a=>b", []string{`m:1: mapping name is too long: "` + strings.Repeat("N", 33) + `" (33 characters; the limit is 32; an entry that is not indented is read as a table name)`}},
		{"32 is fine", strings.Repeat("N", 32) + "\n  a b\n", strings.Repeat("N", 32) + ":2:a=>b", nil},
		{"non-letter name candidate", "*|x\n  a b\n", "*|x:2:a=>b", nil},
		{"unindented entry after entries", "T\n  a b\nc d\n", "T:2:a=>b", []string{
			`m:3: mapping format error: "c d" starts in column 1 right after entries of table "T": indent entries with a space or tab, and put a blank line before the next table name`}},
		{"text after a table name", "T junk\n  a b\n", "T:2:a=>b", []string{`m:1: unexpected text after mapping table name "T": "junk" (entries must be indented)`}},
		{"pattern too long", "T\n  " + strings.Repeat("p", 257) + " b\n", "", []string{"m:2: mapping pattern is too long (257 characters; the limit is 256)"}},
		{"template too long", "T\n  a " + strings.Repeat("t", 1025) + "\n", "", []string{"m:2: mapping template is too long (1025 characters; the limit is 1024)"}},
		{"continued entry", "T\n  a \\\n  b\n", "T:2:a=>b", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, errs := ParseMappings("m", []byte(tt.src), nil)
			var got []string
			for _, tb := range f.Tables {
				for _, e := range tb.Entries {
					got = append(got, tb.Name+":"+strconv.Itoa(e.Pos.Line)+":"+e.Pattern+"=>"+e.Template)
				}
			}
			if g := strings.Join(got, ";"); g != tt.entries {
				t.Errorf("entries:\n got  %q\n want %q", g, tt.entries)
			}
			checkErrs(t, errs, tt.errs)
		})
	}
}

func TestParseAliases(t *testing.T) {
	fsys := fstest.MapFS{
		"list.dis": {Data: []byte("! staff\na@x\n\n  b@x  \n")},
		"more":     {Data: []byte("inc: i@x\n")},
	}
	tests := []struct {
		name string
		src  string
		want string // "name=target|target;..." with lists as <file[members]
		errs []string
	}{
		{"commas and blanks", "a: b, c d ,e\n", "a=b|c|d|e", nil},
		{"quoted local part survives", `q: "a b"@x, "c,d"@y` + "\n", `q="a b"@x|"c,d"@y`, nil},
		{"quoted alias name", `"a b"@x: y` + "\n", `"a b"@x=y`, nil},
		{"angle address", "a: <b@x>\n", "a=b@x", nil},
		{"list file", "a: <list.dis, z\n", "a=<list.dis[a@x b@x]|z", nil},
		{"include list", "a: :include:list.dis\n", "a=<list.dis[a@x b@x]", nil},
		{"continuation", "a: b, \\\n  c\n", "a=b|c", nil},
		{"file include", "<more\nz: y\n", "inc=i@x;z=y", nil},
		{"duplicate case-insensitive", "a: b\nA: c\n", "a=b;A=c", []string{`f:2: duplicate aliases found: "A" (first at f:1)`}},
		{"no right side", "a:\n", "", []string{`f:1: no equivalence addresses for alias: "a"`}},
		{"no colon", "a b c\n", "", []string{`f:1: bad equivalence for alias: "a": no ":" after the alias name`}},
		{"empty name", ": b\n", "", []string{`f:1: bad equivalence for alias: "": empty alias name`}},
		{"unbalanced quote", "a: \"b@x\n", "", []string{`f:1: bad equivalence for alias: "a": unbalanced '"' in "\"b@x"`}},
		{"unbalanced angle", "a: b<c\n", "", []string{`f:1: bad equivalence for alias: "a": unbalanced '<' in "b<c"`}},
		{"missing list", "a: <none.dis\n", "a=<none.dis[]", []string{"f:1: cannot open alias include file: none.dis: open none.dis: file does not exist"}},
		{"missing include", "<none\n", "", []string{"f:1: cannot open alias include file: none: open none: file does not exist"}},
		{"all errors reported", "a:\nb c\na: x\n", "a=x", []string{
			`f:1: no equivalence addresses for alias: "a"`,
			`f:2: bad equivalence for alias: "b": no ":" after the alias name`,
			`f:3: duplicate aliases found: "a" (first at f:1)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, errs := ParseAliases("f", []byte(tt.src), FSOpener(fsys))
			var got []string
			for _, a := range f.Aliases {
				var ts []string
				for _, tg := range a.Targets {
					if tg.List != "" {
						var ms []string
						for _, m := range tg.Members {
							ms = append(ms, m.Addr)
						}
						ts = append(ts, "<"+tg.List+"["+strings.Join(ms, " ")+"]")
					} else {
						ts = append(ts, tg.Addr)
					}
				}
				got = append(got, a.Name+"="+strings.Join(ts, "|"))
			}
			if g := strings.Join(got, ";"); g != tt.want {
				t.Errorf("aliases:\n got  %q\n want %q", g, tt.want)
			}
			checkErrs(t, errs, tt.errs)
		})
	}
}

func TestParseOptions(t *testing.T) {
	f, errs := ParseOptions("option.dat", []byte("! c\n; c\n# c\nA = 1 \nb=x=y\nSECRET=never mind\nNOPE\nLONG=\\\n"+
		strings.Repeat("v", 200)+"\\\n"+strings.Repeat("v", 200)+"\\\n"+strings.Repeat("v", 200)+"\\\n"+
		strings.Repeat("v", 200)+"\\\n"+strings.Repeat("v", 200)+"\\\n"+strings.Repeat("v", 100)+"\n"), nil)
	want := []Option{{Pos{"option.dat", 4}, "A", "1"}, {Pos{"option.dat", 5}, "b", "x=y"}, {Pos{"option.dat", 6}, "SECRET", "never mind"}}
	if !reflect.DeepEqual(f.Options, want) {
		t.Errorf("options = %+v", f.Options)
	}
	checkErrs(t, errs, []string{`option.dat:7: option line has no "=": "NOPE"`,
		"option.dat:8: option value is too long: LONG (1100 characters; the limit is 1024)"})

	s, errs := ParseSections("job_controller.cnf", []byte("G=1\n[pool = P1]\nJOB_LIMIT=2\n[CHANNEL=tcp_*]\nMASTER_COMMAND=x y\n"), nil)
	checkErrs(t, errs, nil)
	wantS := &SectionFile{
		Global: []Option{{Pos{"job_controller.cnf", 1}, "G", "1"}},
		Sections: []Section{
			{Pos{"job_controller.cnf", 2}, "POOL", "P1", []Option{{Pos{"job_controller.cnf", 3}, "JOB_LIMIT", "2"}}},
			{Pos{"job_controller.cnf", 4}, "CHANNEL", "tcp_*", []Option{{Pos{"job_controller.cnf", 5}, "MASTER_COMMAND", "x y"}}},
		},
	}
	if !reflect.DeepEqual(s, wantS) {
		t.Errorf("sections = %+v", s)
	}

	g, errs := ParseGeneral("general.txt", []byte("k1 v one\nk2\n"), nil)
	checkErrs(t, errs, nil)
	wantG := []GeneralEntry{{Pos{"general.txt", 1}, "k1", "v one"}, {Pos{"general.txt", 2}, "k2", ""}}
	if !reflect.DeepEqual(g.Entries, wantG) {
		t.Errorf("general = %+v", g.Entries)
	}
}

func TestParseDir(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inside := filepath.Join(dir, "rules", "in.rules")
	out := filepath.Join(outside, "out.rules")
	write(inside, "in.example $U@l\n")
	write(out, "out.example $U@l\n")
	relOut, err := filepath.Rel(dir, out)
	if err != nil {
		t.Fatal(err)
	}
	// Absolute inside, absolute outside, relative inside, relative leaving the directory.
	write(filepath.Join(dir, "imta.cnf"), "<"+inside+"\n<"+out+"\n<rules/in.rules\n<"+relOut+"\n\nl\nlocalhost\n")
	write(filepath.Join(dir, "tcp_local_option"), "A=1\n")
	write(filepath.Join(dir, "mappings"), "T\n  a\n")
	c, err := ParseDir(dir)
	el, ok := err.(ErrorList)
	if !ok || len(el) != 1 || el[0].Error() != `mappings:2: mapping entry has no template: "a"` {
		t.Fatalf("err = %v", err)
	}
	var files []string
	for _, r := range c.IMTA.Rules {
		files = append(files, r.Pos.File)
	}
	want := []string{"rules/in.rules", out, "rules/in.rules", out}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("rule files = %q, want %q", files, want)
	}
	var srcs []string
	for _, s := range c.Sources {
		srcs = append(srcs, s.Path)
	}
	if wantS := []string{"imta.cnf", "rules/in.rules", out, "mappings", "tcp_local_option"}; !reflect.DeepEqual(srcs, wantS) {
		t.Errorf("sources = %q, want %q", srcs, wantS)
	}
	if c.ChannelOptions["tcp_local"] == nil || c.Dir != dir {
		t.Errorf("channel options %v, dir %q", c.ChannelOptions, c.Dir)
	}

	_, err = ParseDir(t.TempDir())
	if err == nil || err.Error() != "imta.cnf:0: cannot open the MTA configuration file: file does not exist" {
		t.Errorf("empty dir: %v", err)
	}
}

func TestErrorsSortedAcrossFiles(t *testing.T) {
	fsys := fstest.MapFS{
		"imta.cnf": {Data: []byte("<b.rules\nx\n")},
		"b.rules":  {Data: []byte("y\n")},
		"aliases":  {Data: []byte("a:\n")},
	}
	_, err := ParseFS(fsys)
	want := "aliases:1: no equivalence addresses for alias: \"a\"\n" +
		"b.rules:1: rewrite rule has no template: \"y\"\n" +
		"imta.cnf:2: rewrite rule has no template: \"x\""
	if err == nil || err.Error() != want {
		t.Errorf("err =\n%v\nwant\n%s", err, want)
	}
}
