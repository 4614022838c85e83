package compiler

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"mtad.dev/mta/cnf"
)

// bigConfig is a generated configuration: 10 000 rewrite rules and a 100 000-entry
// mapping table, the scale the brief sets for cnbuild and image loading.
func bigConfig(tb testing.TB) *cnf.Config {
	tb.Helper()
	var imta strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&imta, "host%d.example  $U%%$D@tcp_local-daemon\n", i)
	}
	imta.WriteString(".  $U%$H@tcp_local-daemon\n\nl\nmail.example.com\n\ntcp_local smtp mx\ntcp_local-daemon\n")
	var m strings.Builder
	m.WriteString("BIG_ACCESS\n\n")
	for i := range 100000 {
		fmt.Fprintf(&m, "  tcp_local|*@sender%d.example|*|*  $NBlocked$ %d\n", i, i)
	}
	cfg, err := cnf.ParseFS(fstest.MapFS{
		"imta.cnf": {Data: []byte(imta.String())},
		"mappings": {Data: []byte(m.String())},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}

func BenchmarkBuild(b *testing.B) {
	cfg := bigConfig(b)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Build(cfg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	img, err := Build(bigConfig(b))
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), ImageName)
	if err := Write(path, img); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := Load(path); err != nil {
			b.Fatal(err)
		}
	}
}
