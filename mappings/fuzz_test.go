package mappings

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// FuzzCompilePattern compiles arbitrary patterns and matches them against
// arbitrary input: no panic, bounded time, and captures that are consistent.
func FuzzCompilePattern(f *testing.F) {
	for _, s := range [][2]string{
		{"*@*", "a@b@c"}, {"$_*@*", "a@b@c"}, {"PSI$%*::*", "PSI%1234::USER"},
		{"TCP|*|*|$(192.0.2.0/24)|*", "TCP|1.2.3.4|25|192.0.2.9|5"},
		{"$<1.2.3.4/2>", "1.2.3.6"}, {"${2001:db8::/32}", "2001:db8::1"},
		{"$[a\\-z]*$D%$H*$O%$S*$T*$A%$B*", "a-z1fF7x \tA0"},
		{"*|$0*$@*$^%", "ab|abcd"}, {strings.Repeat("*a", 12) + "b", strings.Repeat("a", 60)},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pat, in string) {
		p, err := CompilePattern(pat)
		if err != nil {
			return
		}
		if len(in) > 512 {
			in = in[:512]
		}
		start := time.Now()
		caps, ok := p.Match(in)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("Match(%q, %q) took %v", pat, in, d)
		}
		if !ok {
			return
		}
		if len(caps) != p.nsave {
			t.Fatalf("Match(%q, %q): %d captures, pattern saves %d", pat, in, len(caps), p.nsave)
		}
		total := 0
		for _, c := range caps {
			if !strings.Contains(in, c) {
				t.Fatalf("capture %q is not part of %q", c, in)
			}
			total += len(c)
		}
		if total > len(in) {
			t.Fatalf("captures %q longer than input %q", caps, in)
		}
		if p.literal && !strings.EqualFold(lowerASCII(in), lowerASCII(litText(p))) {
			t.Fatalf("literal pattern %q matched %q", pat, in)
		}
	})
}

func litText(p *Pattern) string {
	if len(p.items) == 0 {
		return ""
	}
	return p.data
}

// FuzzTemplate compiles arbitrary templates behind a two-wildcard pattern and runs
// them, nested tables and general lookups included: no panic, and the result
// obeys Map's contract.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		"$1@$0.psi.siroe.com", "$C$|INNER;$0|$Y$E", "${$0}$Y", "$?50?$N$D30|x",
		"$\\$0$^$1$_$0", "$:A$;T$Y", "$+1E$N", "$<$>$!", "$X4.2.1|$NHost$ blocked", "$0$R", "$1$L",
		"$|T;$|INNER;$1|x|", "${${$0}}",
	} {
		f.Add(s, "ab@cd")
	}
	f.Fuzz(func(t *testing.T, tmpl, in string) {
		if len(in) > 256 {
			in = in[:256]
		}
		tm := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("SLOW %q %q", tmpl, in)) })
		defer tm.Stop()
		s, errs := Compile([]TableSource{
			{Name: "INNER", Src: "m:1", Entries: []EntrySource{{Pattern: "*", Template: "<$0>$Y", Src: "m:2"}}},
			{Name: "T", Src: "m:4", Entries: []EntrySource{
				{Pattern: "*@*", Template: tmpl, Src: "m:5"},
				{Pattern: "*", Template: tmpl, Src: "m:6"},
			}},
		})
		if errs != nil {
			for _, err := range errs {
				if _, ok := err.(*SourceError); !ok {
					t.Fatalf("error %T %v", err, err)
				}
			}
			return
		}
		env := &Env{General: func(k string) (string, bool) { return k + k, len(k)%2 == 0 }, Percent: func() int { return 42 }}
		r, ok := s.Map("t", in, Flag('A'), env)
		if !ok {
			t.Fatal("table T not found")
		}
		if !r.Matched && r.Output != "" && r.Output != in {
			t.Fatalf("unmatched result with output %q for input %q", r.Output, in)
		}
		DecodeAccess(r)
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var s2 Set
		if err := s2.UnmarshalBinary(b); err != nil {
			t.Fatalf("round trip: %v", err)
		}
		if r2, _ := s2.Map("T", in, Flag('A'), env); r2 != r && !strings.Contains(tmpl, "$?") {
			t.Fatalf("decoded set differs: %+v vs %+v", r2, r)
		}
	})
}

// FuzzUnmarshalSet feeds corrupt images to the decoder: errors, never panics.
func FuzzUnmarshalSet(f *testing.F) {
	line := 0
	s := mustCompile(f, tbl("T", &line, "*@$(10.0.0.0/8) $C${$0}$Y", "$[a-c]%* $|T;$0|$N"))
	b, _ := s.MarshalBinary()
	f.Add(b)
	f.Add([]byte("MTAM"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Set
		if err := s.UnmarshalBinary(data); err != nil {
			return
		}
		for _, ti := range s.Tables() {
			s.Map(ti.Name, "a@10.1.2.3", 0, &Env{General: func(k string) (string, bool) { return k, true }})
		}
	})
}
