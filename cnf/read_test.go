package cnf

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
)

// errStrings renders an ErrorList for comparison.
func errStrings(l ErrorList) []string {
	out := make([]string, len(l))
	for i, e := range l {
		out[i] = e.Error()
	}
	return out
}

func checkErrs(t *testing.T, got ErrorList, want []string) {
	t.Helper()
	g := errStrings(got)
	if strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n got  %q\n want %q", g, want)
	}
}

func TestPhysicalLines(t *testing.T) {
	long := strings.Repeat("x", 253)
	tests := []struct {
		name string
		cfg  lineConfig
		src  string
		want []string // "LINE:text" or "LINE:<blank>", with "+L" for continuation lines
		errs []string
	}{
		{"comment is not blank", imtaLines, "a\n! c\nb\n", []string{"1:a", "3:b"}, nil},
		{"bang elsewhere is text", imtaLines, " !x\n", []string{"1: !x"}, nil},
		{"blank and blanks-only", imtaLines, "a\n\n \t\nb", []string{"1:a", "2:<blank>", "3:<blank>", "4:b"}, nil},
		{"crlf", imtaLines, "a b\r\n\r\nc\r\n", []string{"1:a b", "2:<blank>", "3:c"}, nil},
		{"continuation", imtaLines, "a \\\n  b\nc", []string{"1:a   b+2", "3:c"}, nil},
		{"continuation splits a token", imtaLines, "ab\\\ncd\n", []string{"1:abcd+2"}, nil},
		{"backslash then blanks continues", imtaLines, "a\\  \t\nb\n", []string{"1:ab+2"}, nil},
		{"comment inside continuation skipped", optionLines, "A=1,\\\n; note\n2\n", []string{"1:A=1,2+3"}, nil},
		{"blank ends continuation and stays blank", imtaLines, "a \\\n\nb\n", []string{"1:a ", "2:<blank>", "3:b"}, nil},
		{"continuation at end of file", imtaLines, "a\\", []string{"1:a"}, nil},
		{"include line inside continuation is text", imtaLines, "a\\\n<b\n", []string{"1:a<b+2"}, nil},
		{"option comment chars", optionLines, ";x\n#y\n!z\nA=1\n", []string{"4:A=1"}, nil},
		{"semicolon is text in imta.cnf", imtaLines, ";x\n", []string{"1:;x"}, nil},
		{"252 bytes ok", imtaLines, strings.Repeat("y", 252) + "\n", []string{"1:" + strings.Repeat("y", 252)}, nil},
		{"253 bytes too long", imtaLines, long + "\n", []string{"1:" + long}, []string{"f:1: line too long (253 bytes; the limit is 252)"}},
		{"CR not counted", imtaLines, strings.Repeat("y", 252) + "\r\n", []string{"1:" + strings.Repeat("y", 252)}, nil},
		{"mappings 4096", mappingLines, strings.Repeat("m", 4097), []string{"1:" + strings.Repeat("m", 4097)}, []string{"f:1: line too long (4097 bytes; the limit is 4096)"}},
		{"aliases 1024", aliasLines, strings.Repeat("a", 1025), []string{"1:" + strings.Repeat("a", 1025)}, []string{"f:1: line too long (1025 bytes; the limit is 1024)"}},
		{"include without opener", imtaLines, "<x\n", nil, []string{"f:1: cannot open include file: x: includes are not available here"}},
		{"include without name", aliasLines, "< \n", nil, []string{"f:1: cannot open alias include file: no file name after \"<\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines, errs := readLines(tt.cfg, "f", []byte(tt.src), nil)
			var got []string
			for _, l := range lines {
				s := fmt.Sprintf("%d:%s", l.Pos.Line, l.Text)
				if l.Blank {
					s = fmt.Sprintf("%d:<blank>", l.Pos.Line)
				}
				for _, c := range l.conts {
					s += fmt.Sprintf("+%d", c.line)
				}
				got = append(got, s)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("lines:\n got  %q\n want %q", got, tt.want)
			}
			checkErrs(t, errs, tt.errs)
		})
	}
}

func TestIncludes(t *testing.T) {
	fsys := fstest.MapFS{
		"one":       {Data: []byte("1a\n<sub/two\n1b\n")},
		"sub/two":   {Data: []byte("2a\n<three\n")},
		"three":     {Data: []byte("3a\n<four\n")},
		"four":      {Data: []byte("4a\n")},
		"self":      {Data: []byte("<self\n")},
		"loop_a":    {Data: []byte("x\n<loop_b\n")},
		"loop_b":    {Data: []byte("<loop_a\n")},
		"shallow_a": {Data: []byte("<shallow_b\n")},
		"shallow_b": {Data: []byte("<shallow_c\n")},
		"shallow_c": {Data: []byte("c\n")},
	}
	tests := []struct {
		name string
		src  string
		want string
		errs []string
	}{
		{"spliced in order with their own positions", "a\n<shallow_b\nz\n", "top:1:a shallow_c:1:c top:3:z", nil},
		{"three levels is the limit", "<shallow_a\n", "shallow_c:1:c", nil},
		{"fourth level is an error", "<one\n", "one:1:1a sub/two:1:2a three:1:3a one:3:1b",
			[]string{`three:2: include nesting too deep: "four" (at most 3 levels)`}},
		{"self include", "<self\n", "", []string{"self:1: include cycle: self -> self"}},
		{"top file in the cycle", "<top\n", "", []string{"top:1: include cycle: top -> top"}},
		{"two-file cycle", "<loop_a\n", "loop_a:1:x", []string{"loop_b:1: include cycle: loop_a -> loop_b -> loop_a"}},
		{"missing", "<nope\n", "", []string{"top:1: cannot open include file: nope: open nope: file does not exist"}},
	}
	fsys["top"] = &fstest.MapFile{Data: []byte("<top\n")}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines, errs := readLines(imtaLines, "top", []byte(tt.src), FSOpener(fsys))
			var got []string
			for _, l := range lines {
				got = append(got, fmt.Sprintf("%s:%s", l.Pos, l.Text))
			}
			if g := strings.Join(got, " "); g != tt.want {
				t.Errorf("lines:\n got  %q\n want %q", g, tt.want)
			}
			sortErrors(errs)
			checkErrs(t, errs, tt.errs)
		})
	}
}
