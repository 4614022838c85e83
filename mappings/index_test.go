package mappings

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// linearFind is the semantic definition the index must reproduce: the first entry
// at or after from that applies and matches.
func linearFind(t *table, cur string, from int, in Flags) (int, []int) {
	low := lowerASCII(cur)
	for k := from; k < len(t.entries); k++ {
		e := &t.entries[k]
		if in&e.tmpl.need != e.tmpl.need || in&e.tmpl.forbid != 0 {
			continue
		}
		if caps, ok := e.pat.match(cur, low, nil); ok {
			return k, caps
		}
	}
	return -1, nil
}

func randomWord(r *rand.Rand, alphabet string, max int) string {
	n := r.IntN(max + 1)
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// randomTable mixes all-literal, literal-prefix (short and longer than the key
// cut) and wildcard-leading patterns, with and without input-flag tests.
func randomTable(r *rand.Rand, n int) TableSource {
	ts := TableSource{Name: "R", Src: "m:1"}
	for k := 0; k < n; k++ {
		w := randomWord(r, "abAB", 10)
		var pat string
		switch r.IntN(6) {
		case 0, 1:
			pat = w
		case 2:
			pat = w + "*"
		case 3:
			pat = "*" + w
		case 4:
			pat = w + "%" + randomWord(r, "ab", 2) + "*"
		default:
			pat = "$_*" + w + "$A%"
		}
		if pat == "" {
			pat = "$@*"
		}
		tmpl := fmt.Sprintf("e%d", k)
		switch r.IntN(8) {
		case 0:
			tmpl += "$:A"
		case 1:
			tmpl += "$;A"
		}
		ts.Entries = append(ts.Entries, EntrySource{Pattern: pat, Template: tmpl, Src: fmt.Sprintf("m:%d", k+2)})
	}
	return ts
}

func TestIndexMatchesLinearScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 30; round++ {
		s := mustCompile(t, randomTable(r, 200))
		tb := s.tables[0]
		for q := 0; q < 300; q++ {
			in := randomWord(r, "abAB", 12)
			from := 0
			if q%3 == 0 {
				from = r.IntN(len(tb.entries) + 1)
			}
			var fl Flags
			if q%2 == 0 {
				fl = Flag('A')
			}
			k1, c1 := tb.find(in, lowerASCII(in), from, fl, nil)
			k2, c2 := linearFind(tb, in, from, fl)
			if k1 != k2 || (k1 >= 0 && !reflect.DeepEqual(c1, c2)) {
				t.Fatalf("round %d probe %q from %d: index %d %v, linear %d %v", round, in, from, k1, c1, k2, c2)
			}
		}
	}
}

func TestSetBinaryRoundTrip(t *testing.T) {
	line := 0
	r := rand.New(rand.NewPCG(3, 4))
	srcs := []TableSource{
		tbl("INTERNAL_IP", &line, "$(10.0.0.0/8) $Y", "${2001:db8::/32} $Y", "$<127.0.0.0/8> $Y", "* $N"),
		tbl("PORT_ACCESS", &line, "*|*|*|*|* $C$|INTERNAL_IP;$3|$Y$E", "* $YEXTERNAL"),
		tbl("T", &line, "$_*@$@*.$[a-z\\-]* $^$0$\\$1$_${$0}$Y$:A$;T", "*|$0* $?50?$X4.2.1|$N$<x",
			"$D*$H%$O*$B%$S*$T% $+1E", "a*b $0$R", "x* $1$0$L"),
		randomTable(r, 500),
	}
	// "x* $1$0$L" saves one item: fix the source so it compiles.
	srcs[2].Entries[4].Template = "$0$L"
	s := mustCompile(t, srcs...)
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var s2 Set
	if err := s2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Tables(), s2.Tables()) {
		t.Fatalf("tables differ: %v vs %v", s.Tables(), s2.Tables())
	}
	// Same compiled items and ops, entry by entry.
	for i, tb := range s.tables {
		tb2 := s2.tables[i]
		for k := range tb.entries {
			e, e2 := &tb.entries[k], &tb2.entries[k]
			if !reflect.DeepEqual(e.pat.items, e2.pat.items) || !reflect.DeepEqual(e.tmpl, e2.tmpl) || e.src != e2.src {
				t.Fatalf("table %s entry %d differs after decode", tb.name, k)
			}
		}
	}
	// And via gob, as the image does.
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(struct{ M *Set }{s}); err != nil {
		t.Fatal(err)
	}
	var dec struct{ M *Set }
	if err := gob.NewDecoder(&buf).Decode(&dec); err != nil {
		t.Fatal(err)
	}
	env := &Env{General: func(k string) (string, bool) { return strings.ToUpper(k), true }, Percent: func() int { return 10 }}
	probes := []struct{ table, in string }{
		{"PORT_ACCESS", "TCP|1.2.3.4|25|10.9.9.9|1"},
		{"PORT_ACCESS", "TCP|1.2.3.4|25|192.0.2.1|1"},
		{"INTERNAL_IP", "2001:db8::1"},
		{"INTERNAL_IP", "127.1.2.3"},
		{"T", "Ann@Mail.Example-X"},
		{"T", "ab|AB"},
		{"T", "12fab"},
		{"T", "aaab"},
	}
	for q := 0; q < 200; q++ {
		probes = append(probes, struct{ table, in string }{"R", randomWord(r, "abAB", 12)})
	}
	for _, p := range probes {
		for _, fl := range []Flags{0, Flag('A')} {
			r1, _ := s.Map(p.table, p.in, fl, env)
			r2, _ := dec.M.Map(p.table, p.in, fl, env)
			r3, _ := s2.Map(p.table, p.in, fl, env)
			if r1 != r2 || r1 != r3 {
				t.Errorf("%s %q: original %+v, gob %+v, binary %+v", p.table, p.in, r1, r2, r3)
			}
		}
	}
	// Corrupt input fails cleanly.
	for n := 0; n < len(b); n += 1 + n/50 {
		var bad Set
		if err := bad.UnmarshalBinary(b[:n]); err == nil {
			t.Errorf("truncated to %d bytes: no error", n)
		}
	}
	if err := new(Set).UnmarshalBinary(append(b, 0)); err == nil {
		t.Error("trailing byte: no error")
	}
}
