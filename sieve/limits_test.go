package sieve

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestGlob(t *testing.T) {
	cases := []struct {
		pattern, value string
		octet          bool
		ok             bool
		caps           string // ${0}|${1}|...
	}{
		{"*", "", false, true, "|"},
		{"", "", false, true, ""},
		{"", "a", false, false, ""},
		{"a*", "abc", false, true, "abc|bc"},
		{"*c", "abc", false, true, "abc|ab"},
		{"a*c", "abc", false, true, "abc|b"},
		{"a*c", "ab", false, false, ""},
		{"?", "é", false, true, "é|é"},
		{"?", "é", true, false, ""},
		{"??", "é", true, true, "é|\xc3|\xa9"},
		{"[*] *", "[acme-users] [fwd] version 1.0 is out", false, true, "[acme-users] [fwd] version 1.0 is out|acme-users|[fwd] version 1.0 is out"},
		{"*<*@*", "Acme <acme-users@lists.example.com>", false, true, "Acme <acme-users@lists.example.com>|Acme |acme-users|lists.example.com>"},
		{"a?c*d", "abcxd", false, true, "abcxd|b|x"},
		{"*a*a*", "xaya", false, true, "xaya|x|y|"},
		{"*a*a*", "xay", false, false, ""},
		{"\\*x", "*x", false, true, "*x"},
		{"\\*x", "ax", false, false, ""},
		{"a\\\\b", "a\\b", false, true, "a\\b"},
		{"*?", "ab", false, true, "ab|a|b"},
		{"?*?", "a", false, false, ""},
		{"ab*ba", "aba", false, false, ""},
	}
	for _, c := range cases {
		g := compileGlob(c.pattern)
		ok, caps, _ := g.match(c.value, c.value, c.octet, true)
		if ok != c.ok || (ok && strings.Join(caps, "|") != c.caps) {
			t.Errorf("%q ~ %q: %v %q, want %v %q", c.pattern, c.value, ok, strings.Join(caps, "|"), c.ok, c.caps)
		}
	}
}

// A pattern of many stars against a long value costs the value's length times
// the pattern's at worst: no backtracking blow-up.
func TestGlobNoBlowUp(t *testing.T) {
	value := strings.Repeat("a", 64<<10)
	pattern := strings.Repeat("*a", 40) + "*b"
	start := time.Now()
	ok, _, work := compileGlob(pattern).match(value, value, false, true)
	if ok {
		t.Fatal("matched")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	if work > 100*len(value) {
		t.Errorf("work %d", work)
	}
}

func TestWorkLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString(`require "variables";` + "\n")
	for i := 0; i < 50; i++ {
		b.WriteString(`if header :matches "subject" "*a*a*a*a*a*a*a*a*a*a*a*a*b" { keep; }` + "\n")
	}
	s, err := Compile("w.sieve", []byte(b.String()), Options{Limits: Limits{MaxWork: 1_000_000}})
	if err != nil {
		t.Fatal(err)
	}
	msg := "Subject: " + strings.Repeat("a", 60000) + "\r\n\r\n"
	r, err := s.Evaluate(context.Background(), []byte(msg), Env{})
	if err == nil || !strings.Contains(err.Error(), "work limit") || !r.ImplicitKeep {
		t.Errorf("got %v %s", err, render(r))
	}
}

func TestCommandAndVariableLimits(t *testing.T) {
	src := strings.Repeat("keep;\n", 11)
	if _, err := Compile("", []byte(src), Options{Limits: Limits{MaxCommands: 10}}); err == nil ||
		!strings.Contains(err.Error(), "more than 10 commands") {
		t.Errorf("commands: %v", err)
	}
	s, err := Compile("", []byte(`require "variables"; set "a" "1"; set "b" "2"; set "c" "3";`),
		Options{Limits: Limits{MaxVariables: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Evaluate(context.Background(), []byte(testMessage), Env{}); err == nil ||
		!strings.Contains(err.Error(), "too many variables") {
		t.Errorf("variables: %v", err)
	}
	s, _ = Compile("", []byte(`require ["variables", "fileinto"]; set "a" "0123456789"; set "b" "${a}${a}"; fileinto "${b}";`),
		Options{Limits: Limits{MaxStringLength: 15}})
	r, err := s.Evaluate(context.Background(), []byte(testMessage), Env{})
	if err != nil || r.Actions[0].(*FileInto).Folder != "012345678901234" {
		t.Errorf("long value: %v %s", err, render(r))
	}
}

func TestAllowedExtensions(t *testing.T) {
	_, err := Compile("s", []byte(`require "vacation";`), Options{Extensions: []string{"fileinto"}})
	if err == nil || err.Error() != `s:1:9: extension "vacation" is not allowed here` {
		t.Errorf("got %v", err)
	}
	s, err := Compile("s", []byte(`require "fileinto"; fileinto "a";`), Options{Extensions: []string{"fileinto"}})
	if err != nil || strings.Join(s.Requires(), ",") != "fileinto" {
		t.Errorf("got %v", err)
	}
}

func TestErrorList(t *testing.T) {
	_, err := Compile("m", []byte("frob;\nfileinto \"x\";\n"), Options{})
	list, ok := err.(ErrorList)
	if !ok || len(list) != 2 || list[0].Pos.Line != 1 || list[1].Pos.Line != 2 {
		t.Fatalf("got %#v", err)
	}
}

func TestParseAddressList(t *testing.T) {
	cases := map[string]string{
		`"Wile E. Coyote" <coyote@desert.example.org>`:              "coyote@desert.example.org",
		`a@example.com, B <b@example.com> (comment), c@example.com`: "a@example.com|b@example.com|c@example.com",
		`"Doe, John" <jd@example.com>`:                              "jd@example.com",
		`undisclosed-recipients:;`:                                  "",
		`team: a@x.example, b@x.example;, c@x.example`:              "a@x.example|b@x.example|c@x.example",
		`<@route.example:user@example.com>`:                         "user@example.com",
		`<>`:                                                        "",
		`user (the \) one) @ example.com`:                           "user@example.com",
		`"quoted local"@example.com`:                                `"quoted local"@example.com`,
		`broken <unclosed@example.com`:                              "unclosed@example.com",
	}
	for in, want := range cases {
		if got := strings.Join(parseAddressList(in), "|"); got != want {
			t.Errorf("%s: got %q, want %q", in, got, want)
		}
	}
}
