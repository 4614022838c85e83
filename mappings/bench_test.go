package mappings

import (
	"fmt"
	"testing"
	"time"
)

// cpuPerOp measures process CPU time around the timed loop (see processCPU).
type cpuPerOp struct{ start time.Duration }

func startCPU(b *testing.B) cpuPerOp {
	b.ResetTimer()
	return cpuPerOp{processCPU()}
}

func (c cpuPerOp) report(b *testing.B) {
	if d := processCPU() - c.start; d > 0 && b.N > 0 {
		b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// bigTable is 100 000 entries: mostly literal, with a wildcard entry every 1000th
// (a third of them with a literal prefix, a third with a literal suffix, a third
// with literal at neither end), the shape of a large access or reverse table.
func bigTable(n int) TableSource {
	ts := TableSource{Name: "BIG", Src: "mappings:1"}
	for k := 0; k < n; k++ {
		e := EntrySource{Src: fmt.Sprintf("mappings:%d", k+3)}
		switch {
		case k%3000 == 500:
			e.Pattern, e.Template = fmt.Sprintf("spam%d*", k), "$N"
		case k%3000 == 1500:
			e.Pattern, e.Template = fmt.Sprintf("*@junk%d.example", k), "$N"
		case k%3000 == 2500:
			e.Pattern, e.Template = fmt.Sprintf("*|*@blocked%d.example|*|*", k), "$NBlocked"
		default:
			e.Pattern = fmt.Sprintf("user%d@example.com", k)
			e.Template = fmt.Sprintf("$YUser%d@mail.example.com", k)
		}
		ts.Entries = append(ts.Entries, e)
	}
	return ts
}

func BenchmarkMapLiteralHit(b *testing.B) {
	s := mustCompile(b, bigTable(100000))
	b.ReportAllocs()
	c := startCPU(b)
	for b.Loop() {
		r, _ := s.Map("BIG", "User98765@Example.com", 0, nil)
		if !r.Matched {
			b.Fatal("no match")
		}
	}
	c.report(b)
}

// BenchmarkMapLiteralHitNoWildcardBefore is the pure indexed path: no wildcard
// entry precedes the hit, so only the hash probes and the template run.
func BenchmarkMapLiteralHitNoWildcardBefore(b *testing.B) {
	s := mustCompile(b, bigTable(100000))
	b.ReportAllocs()
	c := startCPU(b)
	for b.Loop() {
		r, _ := s.Map("BIG", "user42@example.com", 0, nil)
		if !r.Matched {
			b.Fatal("no match")
		}
	}
	c.report(b)
}

func BenchmarkMapMiss(b *testing.B) {
	s := mustCompile(b, bigTable(100000))
	b.ReportAllocs()
	c := startCPU(b)
	for b.Loop() {
		if r, _ := s.Map("BIG", "tcp_local|nobody@nowhere.example|tcp_local|x@y", 0, nil); r.Matched {
			b.Fatal("matched")
		}
	}
	c.report(b)
}

func BenchmarkMapAccessWildcards(b *testing.B) {
	line := 0
	s := mustCompile(b, tbl("SEND_ACCESS", &line,
		"*|Elvis1@sesta.com|*|* $Y", "*|Nelson7@sesta.com|*|* $Y", "*|AkiraK@sesta.com|*|* $Y",
		"*|*@sesta.com|*|* $NMail$ Blocked", "tcp_local|*|tcp_local|* $N$D30|Relaying$ not$ allowed"))
	b.ReportAllocs()
	c := startCPU(b)
	for b.Loop() {
		s.Map("SEND_ACCESS", "tcp_local|joe@example.org|tcp_local|ann@other.example", 0, nil)
	}
	c.report(b)
}

func BenchmarkUnmarshal100k(b *testing.B) {
	s := mustCompile(b, bigTable(100000))
	data, err := s.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	c := startCPU(b)
	for b.Loop() {
		var s2 Set
		if err := s2.UnmarshalBinary(data); err != nil {
			b.Fatal(err)
		}
	}
	c.report(b)
}

func BenchmarkCompile100k(b *testing.B) {
	src := []TableSource{bigTable(100000)}
	for b.Loop() {
		if _, errs := Compile(src); errs != nil {
			b.Fatal(errs)
		}
	}
}

// TestBigTableLookups keeps the benchmark's table honest in the normal test run.
func TestBigTableLookups(t *testing.T) {
	n := 100000
	if testing.Short() {
		n = 10000
	}
	s := mustCompile(t, bigTable(n))
	tests := []struct{ in, out, flags string }{
		{"user4@example.com", "User4@mail.example.com", "Y"},
		{"spam500xyz", "", "N"},
		{"spam501xyz", "", ""},
		{"a@JUNK1500.example", "", "N"},
		{"tcp_local|a@blocked2500.example|l|b", "Blocked", "N"},
	}
	for _, tc := range tests {
		r, _ := s.Map("BIG", tc.in, 0, nil)
		if r.Output != tc.out || r.Flags.String() != tc.flags {
			t.Errorf("%q: %q %q, want %q %q", tc.in, r.Output, r.Flags, tc.out, tc.flags)
		}
	}
}

// BenchmarkDecodeWildcard100k decodes the table of compiler's BenchmarkLoad: 100 000
// wildcard entries sharing one literal prefix, decoded without a copy (DecodeSet),
// the worst case for image loading (every entry has items, a meta and ops).
func BenchmarkDecodeWildcard100k(b *testing.B) {
	ts := TableSource{Name: "BIG_ACCESS", Src: "mappings:1"}
	for k := range 100000 {
		ts.Entries = append(ts.Entries, EntrySource{Src: fmt.Sprintf("mappings:%d", k+3),
			Pattern:  fmt.Sprintf("tcp_local|*@sender%d.example|*|*", k),
			Template: fmt.Sprintf("$NBlocked$ %d", k)})
	}
	s := mustCompile(b, ts)
	data, err := s.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	str := string(data)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	c := startCPU(b)
	for b.Loop() {
		if _, err := DecodeSet(str); err != nil {
			b.Fatal(err)
		}
	}
	c.report(b)
}
