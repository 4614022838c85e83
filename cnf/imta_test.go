package cnf

import (
	"strings"
	"testing"
)

func TestParseIMTAErrors(t *testing.T) {
	long := strings.Repeat("h", 129)
	tests := []struct {
		name string
		src  string
		errs []string
	}{
		{"rule without template", "a.example\n", []string{`imta.cnf:1: rewrite rule has no template: "a.example"`}},
		{"rule with trailing blanks only", "a.example   \n", []string{`imta.cnf:1: rewrite rule has no template: "a.example"`}},
		{"no official host name", ". $U@l\n\nl\n", []string{`imta.cnf:3: no official host name for channel: "l"`}},
		{"blank between lines 1 and 2", ". $U@l\n\ntcp_local smtp\n\ntcp-daemon\n", []string{
			`imta.cnf:3: no official host name for channel: "tcp_local"`,
			`imta.cnf:5: no official host name for channel: "tcp-daemon"`}},
		{"official host name too long", ". $U@l\n\nl\n" + long + "\n", []string{
			`imta.cnf:4: official host name is too long: "` + long + `" (129 octets; the limit is 128)`}},
		{"128 octets is fine", ". $U@l\n\nl\n" + long[1:] + " \\\n" + long[1:] + "\n", nil},
		{"alias too long", ". $U@l\n\nl\nhost " + long + "\n", []string{
			`imta.cnf:4: local host alias or proper name too long for system: "` + long + `" (129 octets; the limit is 128)`}},
		{"proper name too long", ". $U@l\n\nl\nhost\nother " + long + "\n", []string{
			`imta.cnf:5: local host alias or proper name too long for system: "` + long + `" (129 octets; the limit is 128)`}},
		{"additional host too long", ". $U@l\n\nl\nhost\n" + long + "\n", []string{
			`imta.cnf:5: host name is too long: "` + long + `" (129 octets; the limit is 128)`}},
		{"three tokens on a host line", ". $U@l\n\nl\na b c\n", []string{
			`imta.cnf:4: too many names on host line: 3 (a host name and at most one alias or proper name): "a b c"`}},
		{"unterminated quote", ". $U@l\n\ntcp smtp backoff \"pt5m\ntcp-daemon\n", []string{`imta.cnf:3: unterminated quoted string`}},
		{"all errors in one file", "x\ny\n\nl\n\nm\n", []string{
			`imta.cnf:1: rewrite rule has no template: "x"`,
			`imta.cnf:2: rewrite rule has no template: "y"`,
			`imta.cnf:4: no official host name for channel: "l"`,
			`imta.cnf:6: no official host name for channel: "m"`}},
		{"defaults with extra lines is only a warning", ". $U@l\n\ndefaults mx\nextra\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := ParseIMTA("imta.cnf", []byte(tt.src), nil)
			checkErrs(t, errs, tt.errs)
		})
	}
}

func TestParseIMTAStructure(t *testing.T) {
	src := "! rules\n" +
		"a.example  $U@tcp-daemon\n" +
		"err.example   $?No mail  here, sorry   \n" +
		"\n\n" +
		"DEFAULTS Noswitchchannel\n" +
		"extra ignored\n" +
		"\n" +
		"tcp_local smtp backoff \"pt5m\" \\\n" +
		"  \"pt10m\" a\"b c\"d\n" +
		"tcp-daemon  firewall.example\n" +
		"x.example proper.example\n"
	f, errs := ParseIMTA("imta.cnf", []byte(src), nil)
	checkErrs(t, errs, nil)
	if len(f.Rules) != 2 || f.Rules[1].Template != "$?No mail  here, sorry" || f.Rules[1].Pos.Line != 3 {
		t.Errorf("rules = %+v", f.Rules)
	}
	if f.RulesEnd != (Pos{"imta.cnf", 4}) {
		t.Errorf("RulesEnd = %v", f.RulesEnd)
	}
	if len(f.Blocks) != 2 {
		t.Fatalf("blocks = %+v", f.Blocks)
	}
	d := f.Blocks[0]
	if d.Name != "defaults" || d.BlankBefore.Line != 5 || len(d.Hosts) != 0 || d.Words[0].Text != "Noswitchchannel" {
		t.Errorf("defaults block = %+v", d)
	}
	if len(f.Warnings) != 1 || f.Warnings[0].Pos.Line != 7 {
		t.Errorf("warnings = %v", f.Warnings)
	}
	b := f.Blocks[1]
	type w struct {
		text   string
		line   int
		quoted bool
	}
	want := []w{{"smtp", 9, false}, {"backoff", 9, false}, {"pt5m", 9, true}, {"pt10m", 10, true}, {"ab cd", 10, true}}
	if len(b.Words) != len(want) {
		t.Fatalf("words = %+v", b.Words)
	}
	for i, ww := range want {
		g := b.Words[i]
		if g.Text != ww.text || g.Pos.Line != ww.line || g.Quoted != ww.quoted {
			t.Errorf("word %d = %+v, want %+v", i, g, ww)
		}
	}
	if b.Pos.Line != 9 || b.BlankBefore.Line != 8 {
		t.Errorf("block pos %v blank %v", b.Pos, b.BlankBefore)
	}
	if len(b.Hosts) != 2 || b.Hosts[0] != (HostLine{Pos{"imta.cnf", 11}, "tcp-daemon", "firewall.example"}) ||
		b.Hosts[1] != (HostLine{Pos{"imta.cnf", 12}, "x.example", "proper.example"}) {
		t.Errorf("hosts = %+v", b.Hosts)
	}
}

func TestBlankLineNote(t *testing.T) {
	const note = "note: this blank line ended the rewrite rules; the lines after it are read as channel blocks"
	tests := []struct {
		name string
		src  string
		// want[i] is the line of the note for block i, 0 for none.
		want []int
	}{
		{"stray blank line, two rules with one pattern", "a $U@x\n\nsiroe.com $U@tcp1\nsiroe.com $U@tcp2\n\nl\nhost\n", []int{2, 0}},
		{"rule read as a host line", "a $U@x\n\nplain\n. $U%$H@tcp\n", []int{2}},
		{"blank first line", "\nrule.example x\nhost\n\nl\nhost\n", []int{1, 0}},
		{"healthy configuration", "a $U@x\n\nl\nhost\n\ntcp_local smtp\ntcp-daemon\n", []int{0, 0}},
		{"error rule with blanks in its template", "a $U@x\n\nspam.example $?No mail here\nhost\n", []int{2}},
		{"a dollar in a later keyword is not a rule", "a $U@x\n\nl k j$\nhost\n", []int{0}},
		{"no blank line at all", "a $U@x\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := ParseIMTA("imta.cnf", []byte(tt.src), nil)
			if len(f.Blocks) != len(tt.want) {
				t.Fatalf("blocks = %+v", f.Blocks)
			}
			for i := range f.Blocks {
				n := f.BlankLineNote(&f.Blocks[i])
				switch {
				case tt.want[i] == 0 && n != nil:
					t.Errorf("block %d: unexpected note %v", i, n)
				case tt.want[i] != 0 && n == nil:
					t.Errorf("block %d: no note", i)
				case n != nil && (n.Pos != Pos{"imta.cnf", tt.want[i]} || n.Msg != note):
					t.Errorf("block %d: note %v", i, n)
				}
			}
		})
	}
	var nilFile *IMTAFile
	if nilFile.BlankLineNote(&Block{}) != nil {
		t.Error("nil file gave a note")
	}
}
