package engine

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// bigConfig generates n rules in the shapes real configurations use: exact hosts,
// leading-dot domains, a few condition pairs, a literal and the "." default.
func bigConfig(n int) Config {
	cfg := Config{Channels: []Channel{
		ch("l", "mail.example.net"),
		ch("tcp_local", "tcp_local-daemon"),
		ch("tcp_intranet", "tcp_intranet-daemon"),
		ch("verify", "verify-daemon"),
	}}
	for i := 0; len(cfg.Rules) < n-4; i++ {
		src := func() string { return fmt.Sprintf("imta.cnf:%d", len(cfg.Rules)+1) }
		switch i % 4 {
		case 0:
			cfg.Rules = append(cfg.Rules, RuleSource{Pattern: fmt.Sprintf("host%d.example.com", i), Template: "$U%$D@tcp_intranet-daemon", Src: src()})
		case 1:
			cfg.Rules = append(cfg.Rules, RuleSource{Pattern: fmt.Sprintf(".dom%d.org", i), Template: "$U%$H$D@tcp_intranet-daemon", Src: src()})
		case 2:
			cfg.Rules = append(cfg.Rules, RuleSource{Pattern: fmt.Sprintf("site%d.net", i), Template: "$U%$D@verify-daemon$Nverify", Src: src()})
			cfg.Rules = append(cfg.Rules, RuleSource{Pattern: fmt.Sprintf("site%d.net", i), Template: "$U%$D@tcp_local-daemon", Src: src()})
		case 3:
			cfg.Rules = append(cfg.Rules, RuleSource{Pattern: fmt.Sprintf("*.zone%d.com", i), Template: "$0U%$&0.zone.com@tcp_intranet-daemon", Src: src()})
		}
	}
	for _, r := range [][2]string{
		{"mail.example.net", "$U%$D@mail.example.net"},
		{"[]", "$U%[$L]@tcp_intranet-daemon"},
		{".strip", "$U%$H"},
		{".", "$U%$H@tcp_local-daemon"},
	} {
		cfg.Rules = append(cfg.Rules, RuleSource{Pattern: r[0], Template: r[1], Src: fmt.Sprintf("imta.cnf:%d", len(cfg.Rules)+1)})
	}
	return cfg
}

// benchAddresses is a mix of ordinary envelope-To addresses.
var benchAddresses = []string{
	"jdoe@host400.example.com",
	"ann@a.b.dom401.org",
	"bob@site402.net",
	"carl+tag@x.zone403.com",
	"dan@mail.example.net",
	"eve@gmail.com",
	"fred@[192.0.2.7]",
	"gus@Some.Host.Example.ORG",
	"hal@x.y.strip",
	"ivy%host8.example.com@mail.example.net",
}

func TestBigConfig(t *testing.T) {
	rs := mustCompile(t, bigConfig(10000))
	if rs.NumRules() != 10000 {
		t.Fatalf("NumRules %d", rs.NumRules())
	}
	want := map[string][2]string{
		"jdoe@host400.example.com":               {"jdoe@host400.example.com", "tcp_intranet"},
		"ann@a.b.dom401.org":                     {"ann@a.b.dom401.org", "tcp_intranet"},
		"bob@site402.net":                        {"bob@site402.net", "verify"},
		"carl+tag@x.zone403.com":                 {"carl@x.zone.com", "tcp_intranet"},
		"dan@mail.example.net":                   {"dan@mail.example.net", "l"},
		"eve@gmail.com":                          {"eve@gmail.com", "tcp_local"},
		"fred@[192.0.2.7]":                       {"fred@[192.0.2.7]", "tcp_intranet"},
		"gus@Some.Host.Example.ORG":              {"gus@Some.Host.Example.ORG", "tcp_local"},
		"hal@x.y.strip":                          {"hal@x.y", "tcp_local"},
		"ivy%host8.example.com@mail.example.net": {"ivy@host8.example.com", "tcp_intranet"},
	}
	for _, a := range benchAddresses {
		res := rs.Rewrite(Request{Address: a})
		if w := want[a]; res.Err != nil || res.Address != w[0] || res.Channel != w[1] {
			t.Errorf("%s: %q %q %v, want %q", a, res.Address, res.Channel, res.Err, w)
		}
	}
}

func BenchmarkRewrite(b *testing.B) {
	rs := mustCompile(b, bigConfig(10000))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, ok := processCPU()
	for i := 0; i < b.N; i++ {
		res := rs.Rewrite(Request{Address: benchAddresses[i%len(benchAddresses)]})
		if res.Err != nil {
			b.Fatal(res.Err)
		}
	}
	if cpu1, ok1 := processCPU(); ok && ok1 {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
	}
}

func BenchmarkRewriteParallel(b *testing.B) {
	rs := mustCompile(b, bigConfig(10000))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			rs.Rewrite(Request{Address: benchAddresses[i%len(benchAddresses)]})
			i++
		}
	})
}

func BenchmarkRewriteTrace(b *testing.B) {
	rs := mustCompile(b, bigConfig(10000))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		rs.Rewrite(Request{Address: benchAddresses[i%len(benchAddresses)], Trace: true})
	}
}

func BenchmarkUnmarshal10k(b *testing.B) {
	rs := mustCompile(b, bigConfig(10000))
	data, err := rs.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, ok := processCPU()
	for i := 0; i < b.N; i++ {
		var d RuleSet
		if err := d.UnmarshalBinary(data); err != nil {
			b.Fatal(err)
		}
	}
	if cpu1, ok1 := processCPU(); ok && ok1 {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
	}
}

func BenchmarkCompile10k(b *testing.B) {
	cfg := bigConfig(10000)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		mustCompile(b, cfg)
	}
}

// TestBinaryRoundTrip: a decoded RuleSet (through gob, as the image stores it)
// rewrites exactly as the original, traces included.
func TestBinaryRoundTrip(t *testing.T) {
	cfg := bigConfig(2000)
	cfg.General = map[string]string{"eng": "$u%eng.siroe.com@tcp_local-daemon"}
	cfg.Rules = append(rulesFrom(section8Rules+".SIROENET $($H)\n"), cfg.Rules...)
	cfg.Channels = append(cfg.Channels[:0:0], section8Channels()...)
	cfg.Channels[0].Hosts = []Host{{Name: "localhost"}, {Name: "mailhost", Proper: "mail.example.net"}}
	cfg.Channels = append(cfg.Channels, ch("tcp_intranet2", "tcp_intranet2-daemon"))
	cfg.Channels[1].ViaAliasRequired, cfg.Channels[2].BangOverPercent, cfg.Channels[3].RouteLocal = true, true, true
	cfg.Options = Options{UnknownHostText: "go away", MaxAliasLevels: 3, SubaddressChar: '-', MaxRewritePasses: 7, LocalHost: "mail.example.net"}
	rs := mustCompile(t, cfg)
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(rs); err != nil {
		t.Fatal(err)
	}
	var d RuleSet
	if err := gob.NewDecoder(&buf).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rs.Channels(), d.Channels()) || rs.Options() != d.Options() || !reflect.DeepEqual(rs.Rules(), d.Rules()) {
		t.Fatalf("decoded RuleSet differs")
	}
	addrs := append([]string{"jdoe@hostA.host1.siroe.com", "jdoe@eng.siroenet", "u@nowhere.bad", "u@x.removable.removable", "joe@mailhost", "dan@[10.1.2.3]", "ann@example.net"}, benchAddresses...)
	for _, a := range addrs {
		for _, src := range []string{"", "verify"} {
			r1 := rs.Rewrite(Request{Address: a, SourceChannel: src, Trace: true})
			r2 := d.Rewrite(Request{Address: a, SourceChannel: src, Trace: true})
			if !reflect.DeepEqual(r1, r2) {
				t.Errorf("%s: original %+v\ndecoded %+v", a, r1, r2)
			}
		}
	}
	// Corrupt input is an error, never a panic.
	data, _ := rs.MarshalBinary()
	for _, cut := range []int{0, 3, len(data) / 2, len(data) - 1} {
		var x RuleSet
		if err := x.UnmarshalBinary(data[:cut]); err == nil {
			t.Errorf("truncated at %d: no error", cut)
		}
	}
	if err := new(RuleSet).UnmarshalBinary(append(data, 0)); err == nil {
		t.Errorf("trailing byte: no error")
	}
}

// BenchmarkUnmarshal10kCPU reports the process CPU time of decoding 10 000 rules
// (wall time on a shared machine mostly measures the other processes). The target,
// recorded in docs/performance.md, is under 10 ms; it is measured, never asserted.
func BenchmarkUnmarshal10kCPU(b *testing.B) {
	rs, errs := Compile(bigConfig(10000))
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	data, err := rs.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	c0, ok := processCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var d RuleSet
		if err := d.UnmarshalBinary(data); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if c1, ok1 := processCPU(); ok && ok1 {
		b.ReportMetric(float64((c1-c0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
	b.SetBytes(int64(len(data)))
}

func FuzzUnmarshalBinary(f *testing.F) {
	rs, _ := Compile(Config{Rules: rulesFrom(section8Rules), Channels: section8Channels(), General: map[string]string{"k": "$U%x@y"}})
	data, _ := rs.MarshalBinary()
	f.Add(data)
	f.Fuzz(func(t *testing.T, b []byte) {
		var d RuleSet
		if d.UnmarshalBinary(b) == nil {
			d.Rewrite(Request{Address: "u@a.siroe.com", Trace: true})
		}
	})
}

// TestConcurrentRewrite: one RuleSet serves many goroutines (pooled scratch
// state must never leak between calls). Run with -race.
func TestConcurrentRewrite(t *testing.T) {
	rs := mustCompile(t, bigConfig(1000))
	want := make([]Result, len(benchAddresses))
	for i, a := range benchAddresses {
		want[i] = rs.Rewrite(Request{Address: a, Trace: i%2 == 0})
	}
	done := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for n := 0; n < 200; n++ {
				i := (n + g) % len(benchAddresses)
				got := rs.Rewrite(Request{Address: benchAddresses[i], Trace: i%2 == 0})
				if !reflect.DeepEqual(got, want[i]) {
					done <- fmt.Errorf("%s: %+v, want %+v", benchAddresses[i], got, want[i])
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestRewriteAllocs guards the hot path: without Trace a rewrite allocates only
// its result strings: one template output per spec rewritten and the formatted
// address (so 3 for the addresses here that need two specs or an A%B pass).
func TestRewriteAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	rs := mustCompile(t, bigConfig(1000))
	for _, a := range benchAddresses {
		req := Request{Address: a}
		if res := rs.Rewrite(req); res.Trace != nil {
			t.Fatalf("%s: trace without Request.Trace", a)
		}
		want := 2.0
		if strings.Contains(a, "%") || strings.HasSuffix(a, ".strip") { // two specs, or an A%B pass
			want = 3
		}
		if n := testing.AllocsPerRun(50, func() { rs.Rewrite(req) }); n > want {
			t.Errorf("%s: %v allocs per rewrite, want <= %v", a, n, want)
		}
	}
}
