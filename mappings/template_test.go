package mappings

import (
	"strings"
	"testing"
)

func TestTemplateErrors(t *testing.T) {
	tests := []struct {
		tmpl  string
		nsave int
		want  string
	}{
		{"$", 0, "lone $"},
		{"abc$", 0, "lone $"},
		{"$0", 0, "substitution $0 at offset 0: the pattern saves no wildcards"},
		{"$3", 2, "substitution $3"},
		{"${abc", 0, "unterminated ${...} database lookup"},
		{"$|T;x", 0, "unterminated $|table;argument| mapping call"},
		{"$|T", 0, "missing ;"},
		{"$|T|x", 0, "missing ;"},
		{"$|;x|", 0, "no table name"},
		{"$?50", 0, "unterminated $?x? percentage"},
		{"$?x?", 0, "bad $?x? percentage"},
		{"$?101?", 0, "bad $?x? percentage"},
		{"$:", 0, "needs a flag letter"},
		{"$;1", 0, "needs a flag letter"},
		{"${$:A}", 0, "not allowed inside"},
		{"${$Y}", 0, "not allowed inside"},
		{"$+2E", 0, "only $+1E"},
		{"$]ldap:///o=x[", 0, "LDAP URL lookups ($]...[) are not supported"},
		{"$[lib.so,fn,arg]", 0, "site-supplied routine callouts ($[...]) are not supported"},
		{"$}dom,attr{", 0, "domain attribute lookups ($}...{) are not supported"},
		{"$#seq#", 0, "sequence number substitutions ($#...#) are not supported"},
		{"$%", 0, "invalid $% sequence"},
		{strings.Repeat("a", MaxTemplateLen+1), 0, "template too long"},
	}
	for _, tc := range tests {
		_, err := CompileTemplate(tc.tmpl, tc.nsave)
		if err == nil {
			t.Errorf("CompileTemplate(%q): no error, want %q", tc.tmpl, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CompileTemplate(%q) = %q, want it to contain %q", tc.tmpl, err, tc.want)
		}
	}
}

func TestTemplateCompilesOnce(t *testing.T) {
	// Flag tests are hoisted out of the op list; text is merged into runs.
	tp, err := CompileTemplate("$:A$;Tab$ c$Y", 0)
	if err != nil {
		t.Fatal(err)
	}
	if tp.need != Flag('A') || tp.forbid != Flag('T') {
		t.Errorf("need/forbid = %v/%v", tp.need, tp.forbid)
	}
	if len(tp.ops) != 2 || tp.ops[0].kind != oText || tp.text(&tp.ops[0]) != "ab c" || tp.ops[1].kind != oFlag {
		t.Errorf("ops = %+v", tp.ops)
	}
}

func TestTemplateNestingLimit(t *testing.T) {
	ok := strings.Repeat("${", maxSubDepth) + "x" + strings.Repeat("}", maxSubDepth)
	if _, err := CompileTemplate(ok, 0); err != nil {
		t.Errorf("depth %d: %v", maxSubDepth, err)
	}
	deep := "${" + ok + "}"
	if _, err := CompileTemplate(deep, 0); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Errorf("depth %d: err = %v", maxSubDepth+1, err)
	}
}
