package mappings

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		name, pat, in string
		ok            bool
		caps          []string
	}{
		// Literals, whole-string, case-insensitive.
		{"literal", "abc", "abc", true, []string{}},
		{"literal case", "AbC", "aBc", true, []string{}},
		{"literal anchored end", "abc", "abcd", false, nil},
		{"literal anchored start", "bcd", "abcd", false, nil},
		{"empty pattern empty input", "", "", true, []string{}},
		// * and %.
		{"star all", "*", "anything", true, []string{"anything"}},
		{"star empty", "*", "", true, []string{""}},
		{"star keeps case", "a*", "AxYz", true, []string{"xYz"}},
		{"percent one", "a%c", "abc", true, []string{"b"}},
		{"percent not zero", "a%c", "ac", false, nil},
		{"percent not two", "a%c", "abbc", false, nil},
		// Binding of wildcards to captures, as documented.
		{"greedy earliest first", "*@*", "a@b@c", true, []string{"a@b", "c"}},
		{"lazy first star", "$_*@*", "a@b@c", true, []string{"a", "b@c"}},
		{"lazy second star", "*@$_*", "a@b@c", true, []string{"a@b", "c"}},
		{"three stars", "*.*.*", "a.b.c.d", true, []string{"a.b", "c", "d"}},
		// Quoting.
		{"literal star", "a$*b", "a*b", true, []string{}},
		{"literal star not wild", "a$*b", "axb", false, nil},
		{"literal percent", "PSI$%*::*", "PSI%1234::USER", true, []string{"1234", "USER"}},
		{"literal percent no match", "PSI$%*::*", "PSIABC::DEF", false, nil},
		{"literal dollar", "a$$b", "a$b", true, []string{}},
		{"literal space", "a$ b", "a b", true, []string{}},
		{"literal tab", "a$\tb", "a\tb", true, []string{}},
		// $@ and $^.
		{"unsaved", "$@*@*", "a@b", true, []string{"b"}},
		{"unsaved middle", "*@$@*.*", "u@h.d.com", true, []string{"u", "com"}},
		{"explicit save", "$^*@*", "a@b", true, []string{"a", "b"}},
		{"lazy unsaved", "$_$@*@*", "a@b@c", true, []string{"b@c"}},
		// Back-match.
		{"backmatch", "*|$0*", "abc|ABC", true, []string{"abc"}},
		{"backmatch differs", "*|$0*", "abc|abd", false, nil},
		{"backmatch second", "*@*|$1*", "u@h|h", true, []string{"u", "h"}},
		// Globs.
		{"alpha one", "$A%1", "x1", true, []string{"x"}},
		{"alpha one digit", "$A%1", "11", false, nil},
		{"alpha many", "$A*", "AbC", true, []string{"AbC"}},
		{"alpha many digit", "$A*", "Ab1", false, nil},
		{"binary", "$B*", "0110", true, []string{"0110"}},
		{"binary bad", "$B*", "012", false, nil},
		{"decimal", "a$D*z", "a2024z", true, []string{"2024"}},
		{"decimal empty", "a$D*z", "az", true, []string{""}},
		{"decimal bad", "a$D*z", "a20x4z", false, nil},
		{"hex", "$H*", "DeadBeef09", true, []string{"DeadBeef09"}},
		{"hex X synonym", "$X%", "f", true, []string{"f"}},
		{"hex bad", "$H*", "fg", false, nil},
		{"octal", "$O*", "0717", true, []string{"0717"}},
		{"octal bad", "$O*", "8", false, nil},
		{"symbol", "$S*", "ab_$09Z", true, []string{"ab_$09Z"}},
		{"symbol bad", "$S*", "a-b", false, nil},
		{"space class", "a$T*b", "a \t\vb", true, []string{" \t\v"}},
		{"space class bad", "a$T*b", "a\nb", false, nil},
		{"set one", "$[abc]%", "B", true, []string{"B"}},
		{"set one bad", "$[abc]%", "d", false, nil},
		{"set range", "$[a-f]*", "faced", true, []string{"faced"}},
		{"set range bad", "$[a-f]*", "fag", false, nil},
		{"set escaped hyphen", "$[a\\-z]*", "a-z", true, []string{"a-z"}},
		{"set escaped hyphen no range", "$[a\\-z]%", "m", false, nil},
		{"set escaped bracket", "$[\\]x]*", "]x]", true, []string{"]x]"}},
		{"set single char", "$[.]*", "...", true, []string{"..."}},
		{"lowercase glob letter", "$d*", "42", true, []string{"42"}},
		{"glob greedy then literal", "$D*1", "1111", true, []string{"111"}},
		{"glob lazy then star", "$_$D**", "123", true, []string{"", "123"}},
		// The product's test -match example.
		{"match example", "$_*@*.$[a-z]*", "a@b.example.com", true, []string{"a", "b.example", "com"}},
		// IP address matchers, with the product's examples.
		{"ip prefix", "$(123.45.67.0/24)", "123.45.67.200", true, []string{"123.45.67.200"}},
		{"ip prefix out", "$(123.45.67.0/24)", "123.45.68.1", false, nil},
		{"ip ignore 8", "$<123.45.67.0/8>", "123.45.67.9", true, []string{"123.45.67.9"}},
		{"ip ignore 2 in", "$<123.45.67.4/2>", "123.45.67.7", true, []string{"123.45.67.7"}},
		{"ip ignore 2 low", "$<123.45.67.4/2>", "123.45.67.3", false, nil},
		{"ip ignore 2 high", "$<123.45.67.4/2>", "123.45.67.8", false, nil},
		{"ip exact", "$(10.1.2.3)", "10.1.2.3", true, []string{"10.1.2.3"}},
		{"ip exact other", "$(10.1.2.3)", "10.1.2.4", false, nil},
		{"ip not an address", "$(10.0.0.0/8)", "10.x", false, nil},
		{"ip zero bits", "$(0.0.0.0/0)", "203.0.113.9", true, []string{"203.0.113.9"}},
		{"ip in probe", "TCP|*|*|$(192.0.2.0/24)|*", "TCP|10.0.0.5|25|192.0.2.200|51515", true,
			[]string{"10.0.0.5", "25", "192.0.2.200", "51515"}},
		{"ip ignore in probe", "TCP|*|*|$<192.0.2.4/2>|*", "TCP|10.0.0.5|25|192.0.2.6|1", true,
			[]string{"10.0.0.5", "25", "192.0.2.6", "1"}},
		{"ip ignore in probe out", "TCP|*|*|$<192.0.2.4/2>|*", "TCP|10.0.0.5|25|192.0.2.8|1", false, nil},
		{"ip followed by digits", "$(1.2.3.0/24)5", "1.2.3.45", true, []string{"1.2.3.4"}},
		{"ip unsaved", "$@$(10.0.0.0/8)|*", "10.9.9.9|x", true, []string{"x"}},
		// IPv6.
		{"ip6 prefix", "${2001:db8::/32}", "2001:DB8:1::5", true, []string{"2001:DB8:1::5"}},
		{"ip6 out", "${2001:db8::/32}", "2001:db9::5", false, nil},
		{"ip6 v4 input", "${2001:db8::/32}", "10.0.0.1", false, nil},
		{"ip6 in probe", "TCP|*|*|${::1}|*", "TCP|::1|25|::1|999", true, []string{"::1", "25", "::1", "999"}},
		// Access-table shaped probes.
		// A documented pitfall. As printed, the product's example cannot match: nothing
		// follows "@sesta.com" in the probe, and the pattern needs "|*|*" after it.
		{"pitfall as printed", "*|*@sesta.com|*|*", "tcp_local|a@b.org|l|u@x.org|rfc822;z@sesta.com", false, nil},
		// The pitfall itself: a recipient pattern is satisfied by the ORCPT field
		// because * crosses |.
		{"star crosses bars", "*|*|*|*@sesta.com", "tcp_local|a@b.org|l|u@x.org|rfc822;z@sesta.com", true,
			[]string{"tcp_local|a@b.org", "l", "u@x.org", "rfc822;z"}},
		{"port probe", "TCP|*|25|192.0.2.66|*", "TCP|10.0.0.5|25|192.0.2.66|51515", true,
			[]string{"10.0.0.5", "51515"}},
		{"port probe wrong port", "TCP|*|25|192.0.2.66|*", "TCP|10.0.0.5|587|192.0.2.66|51515", false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := CompilePattern(tc.pat)
			if err != nil {
				t.Fatalf("CompilePattern(%q): %v", tc.pat, err)
			}
			caps, ok := p.Match(tc.in)
			if ok != tc.ok {
				t.Fatalf("Match(%q, %q) ok = %v, want %v", tc.pat, tc.in, ok, tc.ok)
			}
			if ok && !reflect.DeepEqual(caps, tc.caps) {
				t.Errorf("Match(%q, %q) captures = %q, want %q", tc.pat, tc.in, caps, tc.caps)
			}
		})
	}
}

func TestPatternErrors(t *testing.T) {
	tests := []struct{ pat, want string }{
		{"a$", "lone $"},
		{"$(10.0.0.0/8", "unterminated $( IP matcher"},
		{"$<10.0.0.0/8", "unterminated $< IP matcher"},
		{"${::1", "unterminated ${ IP matcher"},
		{"$(10.0.0/8)", "bad IP prefix"},
		{"$(10.0.0.0/33)", "bad IP prefix"},
		{"$(::1)", "bad IP prefix"},
		{"${10.0.0.1}", "bad IP prefix"},
		{"${::1/129}", "bad IP prefix"},
		{"$[abc", "unterminated $[ glob"},
		{"$[]%", "empty $[]"},
		{"$[z-a]%", "reversed"},
		{"$[abc]x", "bad glob"},
		{"$Q*", "bad glob $Q"},
		{"$D", "bad glob $D"},
		{"$Dx", "bad glob $D"},
		{"$0*", "refers to a wildcard not saved"},
		{"*$1*", "refers to a wildcard not saved"},
		{"*$0", "must be written $0*"},
		{"$_a", "must be followed by a wildcard"},
		{"a$@", "modifies no wildcard"},
		{"$!", "invalid $! sequence"},
		{strings.Repeat("a", MaxPatternLen+1), "pattern too long"},
	}
	for _, tc := range tests {
		_, err := CompilePattern(tc.pat)
		if err == nil {
			t.Errorf("CompilePattern(%q): no error, want %q", tc.pat, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CompilePattern(%q) = %q, want it to contain %q", tc.pat, err, tc.want)
		}
	}
}

func TestMatchDetail(t *testing.T) {
	p, err := CompilePattern("$_*@*.$[a-z]*")
	if err != nil {
		t.Fatal(err)
	}
	ok, caps := p.MatchDetail("a@b.example.com")
	want := []Capture{{0, "a"}, {1, "b.example"}, {2, "com"}}
	if !ok || !reflect.DeepEqual(caps, want) {
		t.Fatalf("MatchDetail = %v %v, want %v", ok, caps, want)
	}
	if ok, caps := p.MatchDetail("nope"); ok || caps != nil {
		t.Fatalf("MatchDetail(nope) = %v %v", ok, caps)
	}
}

// TestMatchHostileBounded guards the memo/budget: patterns that backtrack
// exponentially in a naive matcher must finish quickly.
func TestMatchHostileBounded(t *testing.T) {
	long := strings.Repeat("a", 200)
	tests := []struct{ pat, in string }{
		{strings.Repeat("*a", 20) + "b", long},
		{strings.Repeat("$_*a", 20) + "b", long},
		{strings.Repeat("$A*", 30) + "!", long},
		{"*" + strings.Repeat("%*", 30) + "b", long},
		{"*|$0*" + strings.Repeat("*a", 10) + "b", long + "|" + long},
	}
	for _, tc := range tests {
		p, err := CompilePattern(tc.pat)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, ok := p.Match(tc.in); ok {
			t.Errorf("%q matched %q", tc.pat, tc.in)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%q took %v", tc.pat, d)
		}
	}
	// With the memo the answer is still right when a match exists late.
	p, _ := CompilePattern(strings.Repeat("*a", 20) + "b")
	if _, ok := p.Match(long + "b"); !ok {
		t.Error("hostile pattern failed to match a matching input")
	}
}
