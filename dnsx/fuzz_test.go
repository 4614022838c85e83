package dnsx

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// FuzzAnswers feeds arbitrary DNS messages (outside input) to the answer
// handling: CNAME walking, negative caching, record extraction.
func FuzzAnswers(f *testing.F) {
	seed := func(rrs ...string) {
		m := new(dns.Msg)
		m.SetQuestion("a.test.", dns.TypeMX)
		for _, r := range rrs {
			m.Answer = append(m.Answer, mustRR(r))
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed("a.test. 60 IN MX 10 mx.test.")
	seed("a.test. 60 IN CNAME b.test.", "b.test. 60 IN CNAME a.test.")
	seed("a.test. 60 IN CNAME b.test.", "b.test. 5 IN A 192.0.2.1", "b.test. 5 IN AAAA 2001:db8::1")
	seed()
	f.Fuzz(func(t *testing.T, raw []byte) {
		in := new(dns.Msg)
		if err := in.Unpack(raw); err != nil {
			return
		}
		c, err := New(Config{Servers: []string{"127.0.0.1"}, Now: func() time.Time { return time.Unix(1e9, 0) }})
		if err != nil {
			t.Fatal(err)
		}
		var calls atomic.Int32
		c.ask = func(_ context.Context, name string, qtype uint16) (*dns.Msg, error) {
			calls.Add(1)
			m := in.Copy()
			m.Question = []dns.Question{{Name: name, Qtype: qtype, Qclass: dns.ClassINET}}
			return m, nil
		}
		// 2 MX and 2x2 address resolutions, each at most maxCNAME+1 queries.
		ctx := context.Background()
		for _, name := range []string{"a.test", "b.test"} {
			if mx, err := c.LookupMX(ctx, name); err == nil {
				for _, r := range mx {
					if r.Host != canon(r.Host) {
						t.Fatalf("host %q not canonical", r.Host)
					}
				}
			}
			if addrs, err := c.LookupHost(ctx, name); err == nil && len(addrs) == 0 {
				t.Fatal("LookupHost: no error and no address")
			}
		}
		if n := int(calls.Load()); n > 6*(c.maxCNAME+1) {
			t.Fatalf("%d queries: CNAME walk not bounded", n)
		}
	})
}
