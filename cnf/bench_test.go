package cnf

import (
	"fmt"
	"strings"
	"testing"
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
