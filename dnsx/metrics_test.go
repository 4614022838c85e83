package dnsx

import (
	"testing"
	"time"

	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"

	"mtad.dev/mta/metrics"
)

func TestCacheMetrics(t *testing.T) {
	s := startServer(t)
	s.set("example.test", dns.TypeMX, reply{ans: []string{"example.test. 3600 IN MX 10 mx1.example.test."}})
	s.set("host.test", dns.TypeA, reply{ans: []string{"host.test. 300 IN A 192.0.2.1"}})
	s.set("host.test", dns.TypeAAAA, reply{ns: []string{soa}})
	hooks := metrics.NewHooks()
	c, err := New(Config{Servers: []string{s.addr}, Timeout: 300 * time.Millisecond, Attempts: 1, Metrics: hooks})
	if err != nil {
		t.Fatal(err)
	}
	count := func(result string) float64 {
		var m dto.Metric
		if err := hooks.DNSCacheLookups.WithLabelValues(result).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.Counter.GetValue()
	}
	steps := []struct {
		name      string
		look      func() error
		hit, miss float64 // totals after the step
	}{
		{"MX, cold", func() error { _, err := c.LookupMX(ctx(t), "example.test"); return err }, 0, 1},
		{"MX, cached", func() error { _, err := c.LookupMX(ctx(t), "example.test"); return err }, 1, 1},
		// LookupHost wants two answers (A and AAAA): two lookups each time
		{"host, cold", func() error { _, err := c.LookupHost(ctx(t), "host.test"); return err }, 1, 3},
		{"host, cached", func() error { _, err := c.LookupHost(ctx(t), "host.test"); return err }, 3, 3},
		{"literal, no lookup", func() error { _, err := c.LookupHost(ctx(t), "[192.0.2.9]"); return err }, 3, 3},
	}
	for _, st := range steps {
		if err := st.look(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if h, m := count("hit"), count("miss"); h != st.hit || m != st.miss {
			t.Errorf("%s: hit %v miss %v, want %v %v", st.name, h, m, st.hit, st.miss)
		}
	}
}
