package cnf

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func bigIMTA(rules int) []byte {
	var b strings.Builder
	for i := range rules {
		fmt.Fprintf(&b, "host%d.example.com   $U%%$D@tcp_%d-daemon\n", i, i%50)
	}
	b.WriteString("\nl\nmail.example.com\n")
	for i := range 50 {
		fmt.Fprintf(&b, "\ntcp_%d smtp mx single_sys pool SMTP_POOL backoff \"pt5m\" \"pt10m\"\ntcp_%d-daemon\n", i, i)
	}
	return []byte(b.String())
}

func bigMappings(entries int) []byte {
	var b strings.Builder
	b.WriteString("ORIG_SEND_ACCESS\n\n")
	for i := range entries {
		fmt.Fprintf(&b, "  tcp_local|*@sender%d.example|tcp_local|*   $NRelaying$ not$ allowed\n", i)
	}
	return []byte(b.String())
}

func BenchmarkParseIMTA10000Rules(b *testing.B) {
	src := bigIMTA(10000)
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		f, errs := ParseIMTA("imta.cnf", src, nil)
		if len(errs) != 0 || len(f.Rules) != 10000 {
			b.Fatalf("errs %v, %d rules", errs, len(f.Rules))
		}
	}
}

func BenchmarkParseMappings100000Entries(b *testing.B) {
	src := bigMappings(100000)
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		f, errs := ParseMappings("mappings", src, nil)
		if len(errs) != 0 || len(f.Tables[0].Entries) != 100000 {
			b.Fatalf("errs %v", errs)
		}
	}
}

// TestLargeFilesParseFast guards the fast paths: the whole cnbuild of 10 000 rules and
// a 100 000-entry table must take under a second, so the parse must be far below it.
// Sending every line through participle would take several seconds.
func TestLargeFilesParseFast(t *testing.T) {
	if testing.Short() {
		t.Skip("large input")
	}
	imta, maps := bigIMTA(10000), bigMappings(100000)
	start := time.Now()
	if _, errs := ParseIMTA("imta.cnf", imta, nil); len(errs) != 0 {
		t.Fatal(errs)
	}
	if _, errs := ParseMappings("mappings", maps, nil); len(errs) != 0 {
		t.Fatal(errs)
	}
	// Generous bound for a loaded machine; typically about 0.1 s.
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("parsing took %v", d)
	}
}
