package sieve

import (
	"fmt"
	"strings"
	"testing"
)

// dumpFile renders a syntax tree compactly: command(args){block}, tests in
// parentheses, for comparing in tables.
func dumpFile(f *File) string {
	var parts []string
	for _, c := range f.Commands {
		parts = append(parts, dumpCommand(c))
	}
	return strings.Join(parts, " ")
}

func dumpCommand(c *Command) string {
	s := c.Name + dumpArgs(c.Args) + dumpTests(c.Tests, c.TestList)
	if c.HasBlock {
		var inner []string
		for _, sub := range c.Block {
			inner = append(inner, dumpCommand(sub))
		}
		s += "{" + strings.Join(inner, " ") + "}"
	}
	return s
}

func dumpTests(ts []*Test, list bool) string {
	var parts []string
	for _, t := range ts {
		parts = append(parts, t.Name+dumpArgs(t.Args)+dumpTests(t.Tests, t.TestList))
	}
	if list {
		return " (" + strings.Join(parts, ", ") + ")"
	}
	if len(parts) == 1 {
		return " " + parts[0]
	}
	return ""
}

func dumpArgs(as []*Argument) string {
	var s string
	for _, a := range as {
		switch a.Kind {
		case ArgTag:
			s += " :" + a.Tag
		case ArgNumber:
			s += fmt.Sprintf(" %d", a.Number)
		case ArgString:
			s += fmt.Sprintf(" %q", a.Strings[0])
		default:
			s += fmt.Sprintf(" %q", a.Strings)
		}
	}
	return s
}

func TestParse(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"empty", "", ""},
		{"comments", "# a comment\r\n/* a\r\n bracket comment */ keep; # trailing", "keep"},
		{"case of identifiers and tags", `FileInto :COPY "x";`, `fileinto :copy "x"`},
		{"numbers and quantifiers", "a 1 10K 2m 1G;", "a 1 10240 2097152 1073741824"},
		{"escapes", `a "q\"uote" "back\\slash" "other\a";`, `a "q\"uote" "back\\slash" "othera"`},
		{"string list", `a ["x", "y"] ["z"];`, `a ["x" "y"] ["z"]`},
		{"multi-line with dot-stuffing", "a text:\r\nline 1\r\n..dot\r\n.\r\n;", `a "line 1\r\n.dot\r\n"`},
		{"multi-line with LF and comment", "a text: # why\nx\n.\n;", `a "x\r\n"`},
		{"multi-line empty", "a text:\r\n.\r\n;", `a ""`},
		{"test and block", `if header :is "a" "b" { keep; }`, `if header :is "a" "b"{keep}`},
		{"test list", `if anyof (true, not false) {}`, `if anyof (true, not false){}`},
		{"elsif chain", "if true {} elsif false {} else { stop; }", "if true{} elsif false{} else{stop}"},
		{"nested blocks", "if true { if false { discard; } }", "if true{if false{discard}}"},
		{"tag with value", `header :comparator "i;octet" "a" "b";`, `header :comparator "i;octet" "a" "b"`},
		{"LF only", "keep;\ndiscard;\n", "keep discard"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse("t", []byte(c.src), Limits{})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := dumpFile(f)
			if got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

func TestParsePositions(t *testing.T) {
	src := "require \"fileinto\";\r\nif header :is \"subject\" \"x\" {\r\n  fileinto \"é\";\r\n}\r\n"
	f, err := Parse("p.sieve", []byte(src), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	ifc := f.Commands[1]
	got := []string{ifc.Pos.String(), ifc.Tests[0].Pos.String(), ifc.Tests[0].Args[0].Pos.String(),
		ifc.Tests[0].Args[1].Pos.String(), ifc.Block[0].Pos.String(), ifc.Block[0].Args[0].Pos.String()}
	want := []string{"p.sieve:2:1", "p.sieve:2:4", "p.sieve:2:11", "p.sieve:2:15", "p.sieve:3:3", "p.sieve:3:12"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("positions %v, want %v", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{`keep`, `1:5: syntax error: expected ";" after command "keep"`},
		{`if true { keep }`, `1:16: syntax error: expected ";" after command "keep"`},
		{`a "open`, `1:3: string is not closed`},
		{"a text:\r\nno end\r\n", `1:3: multi-line string is not closed by a line holding only "."`},
		{"a text: x\r\n.\r\n;", `1:3: text: must be followed by the end of the line`},
		{"/* open", `1:1: comment /* is not closed`},
		{"a 99999999999999999999;", `1:3: number 99999999999999999999 is too large`},
		{"a 9999999999G;", `1:3: number 9999999999G is too large`},
		{"a 12abc;", `1:3: number 12 is followed by 'a'`},
		{"a @;", `1:3: unexpected character '@'`},
		{"a : x;", `1:3: a tag needs a name after the colon`},
		{"a [];", `1:3: syntax error: unexpected "["`},
		{"keep;\n}", `2:1: syntax error: unexpected "}"`},
		{"if anyof(true, ) {}", `1:14: syntax error: unexpected ","`},
	}
	for _, c := range cases {
		_, err := Parse("", []byte(c.src), Limits{})
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want %s", c.src, err, c.want)
		}
	}
}

func TestParseLimits(t *testing.T) {
	if _, err := Parse("", []byte(strings.Repeat(" ", 101)), Limits{MaxScriptSize: 100}); err == nil ||
		!strings.Contains(err.Error(), "larger than 100 bytes") {
		t.Errorf("size limit: %v", err)
	}
	long := `a "` + strings.Repeat("x", 65) + `";`
	if _, err := Parse("", []byte(long), Limits{MaxStringLength: 64}); err == nil ||
		!strings.Contains(err.Error(), "longer than 64 bytes") {
		t.Errorf("string limit: %v", err)
	}
	deepIf := strings.Repeat("if true {", 70) + strings.Repeat("}", 70)
	if _, err := Parse("", []byte(deepIf), Limits{MaxNesting: 64}); err == nil ||
		!strings.Contains(err.Error(), "nesting deeper than 64") {
		t.Errorf("block nesting: %v", err)
	}
	deepNot := "if " + strings.Repeat("not ", 100) + "true {}"
	if _, err := Parse("", []byte(deepNot), Limits{}); err == nil || !strings.Contains(err.Error(), "nesting deeper") {
		t.Errorf("not chain: %v", err)
	}
	deepList := "if " + strings.Repeat("anyof(", 100) + "true" + strings.Repeat(")", 100) + " {}"
	if _, err := Parse("", []byte(deepList), Limits{}); err == nil || !strings.Contains(err.Error(), "nesting deeper") {
		t.Errorf("test lists: %v", err)
	}
	ok := strings.Repeat("if true {", 20) + strings.Repeat("}", 20)
	if _, err := Parse("", []byte(ok), Limits{}); err != nil {
		t.Errorf("20 levels should parse: %v", err)
	}
}
