package mappings

import (
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// TestDecodeSetMatchesCompiled decodes without a copy (DecodeSet, what image
// loading uses) and checks every table answers exactly as the compiled Set does,
// the randomized index table included, so stored metas and item ranges are right.
func TestDecodeSetMatchesCompiled(t *testing.T) {
	line := 0
	r := rand.New(rand.NewPCG(5, 6))
	s := mustCompile(t,
		tbl("IPS", &line, "$(10.0.0.0/8) $Y", "${2001:db8::/32} $Y", "$<127.0.0.0/8> $Y", "* $N"),
		tbl("GLOBS", &line, "$A*$D% $0-$1", "$[a-c\\-]*x* $1$0", "$_*@$@*.$^$H* $1$0", "$S*|$0* yes", "*lit*eral* $0$1$2"),
		randomTable(r, 400))
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeSet(string(b))
	if err != nil {
		t.Fatal(err)
	}
	probes := []struct{ table, in string }{
		{"IPS", "10.9.8.7"}, {"IPS", "2001:DB8::1"}, {"IPS", "127.255.0.1"}, {"IPS", "192.0.2.1"},
		{"GLOBS", "abc7"}, {"GLOBS", "ab-cxyz"}, {"GLOBS", "Ann@Mail.Example.F00"}, {"GLOBS", "a_b|rest"},
		{"GLOBS", "xLITyERALz"}, {"GLOBS", "none"},
	}
	for q := 0; q < 300; q++ {
		probes = append(probes, struct{ table, in string }{"R", randomWord(r, "abAB", 12)})
	}
	for _, p := range probes {
		for _, fl := range []Flags{0, Flag('A')} {
			r1, _ := s.Map(p.table, p.in, fl, nil)
			r2, _ := d.Map(p.table, p.in, fl, nil)
			if r1 != r2 {
				t.Errorf("%s %q: compiled %+v, DecodeSet %+v", p.table, p.in, r1, r2)
			}
		}
	}
	// Same compiled form, metas included.
	for i, tb := range s.tables {
		for k := range tb.entries {
			e, e2 := &tb.entries[k].pat, &d.tables[i].entries[k].pat
			if (e.meta == nil) != (e2.meta == nil) || e.meta != nil && *e.meta != *e2.meta {
				t.Fatalf("table %s entry %d: meta %+v, decoded %+v", tb.name, k, e.meta, e2.meta)
			}
		}
	}
}

// TestDecodeRejectsBadItems: item ranges outside their pattern's data, or of the
// wrong length for their kind, are refused at load time rather than trusted by
// the matcher.
func TestDecodeRejectsBadItems(t *testing.T) {
	line := 0
	s := mustCompile(t, tbl("T", &line, "$(10.0.0.0/8)x $Y"))
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// The IPv4 item's range is "off end" = 0 8 right after its kind and bits.
	i := strings.Index(string(b), string([]byte{byte(kIP4), itemSave, 0, 8}))
	if i < 0 {
		t.Fatal("IPv4 item not found in the encoding")
	}
	for _, bad := range [][2]byte{{0, 7}, {2, 10}, {0, 60}, {8, 0}} {
		c := append([]byte(nil), b...)
		c[i+2], c[i+3] = bad[0], bad[1]
		if _, err := DecodeSet(string(c)); err == nil || !strings.Contains(err.Error(), "bad item data range") {
			t.Errorf("range %v: err = %v", bad, err)
		}
	}
}

// TestDecodeChunked decodes a table of several chunks (decoded in parallel) and
// checks every entry comes back in its place, then that damage inside a late
// chunk is still an error.
func TestDecodeChunked(t *testing.T) {
	ts := TableSource{Name: "BIG", Src: "mappings:1"}
	n := 3*chunkEntries + 5
	for k := range n {
		e := EntrySource{Src: "mappings:" + strconv.Itoa(k+3)}
		if k%3 == 0 {
			e.Pattern, e.Template = "user"+strconv.Itoa(k)+"@example.com", "$Y"+strconv.Itoa(k)
		} else {
			e.Pattern, e.Template = "*|*@dom"+strconv.Itoa(k)+".example|*", "$N$0"
		}
		ts.Entries = append(ts.Entries, e)
	}
	s := mustCompile(t, ts)
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeSet(string(b))
	if err != nil {
		t.Fatal(err)
	}
	te, de := s.tables[0].entries, d.tables[0].entries
	if len(te) != len(de) {
		t.Fatalf("%d entries decoded, want %d", len(de), len(te))
	}
	for k := range te {
		if !reflect.DeepEqual(te[k].pat.items, de[k].pat.items) || te[k].pat.data != de[k].pat.data ||
			!reflect.DeepEqual(te[k].tmpl, de[k].tmpl) || te[k].src != de[k].src {
			t.Fatalf("entry %d differs after decode", k)
		}
	}
	for _, in := range []string{"user3@example.com", "user" + strconv.Itoa(n-2) + "@example.com", "a|b@dom" + strconv.Itoa(n-1) + ".example|c", "nothing"} {
		r1, _ := s.Map("BIG", in, 0, nil)
		r2, _ := d.Map("BIG", in, 0, nil)
		if r1 != r2 {
			t.Errorf("%q: compiled %+v, decoded %+v", in, r1, r2)
		}
	}
	last := strings.LastIndex(string(b), "mappings:"+strconv.Itoa(n-10))
	c := append([]byte(nil), b...)
	c[last-1]++ // the length of that entry's src
	if _, err := DecodeSet(string(c)); err == nil {
		t.Error("damaged last chunk decoded without error")
	}
}
