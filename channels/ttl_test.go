package channels

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"mtad.dev/mta/dnsx"
)

// zoneServer is a DNS server on 127.0.0.1 (UDP) answering from records the
// test can replace while it runs; it counts the questions per name and type.
type zoneServer struct {
	addr    string
	mu      sync.Mutex
	rrs     map[string][]string // "name.|TYPE" -> records in zone-file syntax
	queries map[string]int
}

func startZoneServer(t *testing.T) *zoneServer {
	t.Helper()
	z := &zoneServer{rrs: map[string][]string{}, queries: map[string]int{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	z.addr = pc.LocalAddr().String()
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(z.serve), NotifyStartedFunc: func() { close(started) }}
	done := make(chan struct{})
	go func() { defer close(done); srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { srv.Shutdown(); <-done })
	return z
}

func (z *zoneServer) serve(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	k := name + "|" + dns.TypeToString[q.Qtype]
	z.mu.Lock()
	z.queries[k]++
	recs := z.rrs[k]
	known := false
	for key := range z.rrs {
		if strings.HasPrefix(key, name+"|") {
			known = true
		}
	}
	z.mu.Unlock()
	if !known {
		m.Rcode = dns.RcodeNameError
	}
	for _, s := range recs {
		rr, err := dns.NewRR(s)
		if err != nil {
			panic(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	w.WriteMsg(m) // a known name without records of the type: NODATA
}

// set replaces the records of one name and type.
func (z *zoneServer) set(name string, qtype uint16, rrs ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.rrs[dns.Fqdn(name)+"|"+dns.TypeToString[qtype]] = rrs
}

func (z *zoneServer) asked(name string, qtype uint16) int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.queries[dns.Fqdn(name)+"|"+dns.TypeToString[qtype]]
}

// TestSMTPFollowsDNSChangeAfterTTL guards against a DNS cache that ignores
// TTLs, which keeps sending a domain's mail to a host it has moved away from and
// leaves its queue stuck. A domain's MX, or its MX host's address, has a short
// TTL; the answer changes after a first delivery. Within the TTL the cached
// answer is used; once the TTL has passed the next delivery follows the new
// answer. The
// real dnsx resolver talks to a miekg/dns server on loopback; the two "hosts"
// 127.0.0.1 and 127.0.0.2 are two sinks (the dial hook maps them to ports).
func TestSMTPFollowsDNSChangeAfterTTL(t *testing.T) {
	t.Parallel()
	const ttl = 1 * time.Second // the short TTL of the records below
	cases := []struct {
		name   string
		setup  func(z *zoneServer)
		change func(z *zoneServer)
		// watched is the record whose TTL is short and that changes.
		watched string
		qtype   uint16
	}{
		{
			name: "MX target changes",
			setup: func(z *zoneServer) {
				z.set("ttl.test", dns.TypeMX, "ttl.test. 1 IN MX 10 mx1.ttl.test.")
				z.set("mx1.ttl.test", dns.TypeA, "mx1.ttl.test. 300 IN A 127.0.0.1")
				z.set("mx2.ttl.test", dns.TypeA, "mx2.ttl.test. 300 IN A 127.0.0.2")
			},
			change: func(z *zoneServer) {
				z.set("ttl.test", dns.TypeMX, "ttl.test. 1 IN MX 10 mx2.ttl.test.")
			},
			watched: "ttl.test", qtype: dns.TypeMX,
		},
		{
			name: "MX host address changes",
			setup: func(z *zoneServer) {
				z.set("ttl.test", dns.TypeMX, "ttl.test. 300 IN MX 10 mx.ttl.test.")
				z.set("mx.ttl.test", dns.TypeA, "mx.ttl.test. 1 IN A 127.0.0.1")
			},
			change: func(z *zoneServer) {
				z.set("mx.ttl.test", dns.TypeA, "mx.ttl.test. 1 IN A 127.0.0.2")
			},
			watched: "mx.ttl.test", qtype: dns.TypeA,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			z := startZoneServer(t)
			tc.setup(z)
			res, err := dnsx.New(dnsx.Config{Servers: []string{z.addr}, Timeout: time.Second, Attempts: 2})
			if err != nil {
				t.Fatal(err)
			}
			sink1, sink2 := &sink{}, &sink{}
			p1, p2 := startSink(t, sink1, nil), startSink(t, sink2, nil)
			var dials []string
			var mu sync.Mutex
			c := newClient(t, 25, func(o *SMTPOptions) {
				o.Daemon = ""
				o.Resolver = res
				o.Dial = dialMap(map[string]int{"127.0.0.1": p1, "127.0.0.2": p2}, &dials, &mu)
				// No connection cache: a connection to the old address, kept
				// by host name, is not what this test is about.
				o.MaxIdlePerHost = -1
			})
			content := []byte("Subject: ttl\r\n\r\nbody\r\n")
			deliver := func(step string) {
				t.Helper()
				if r := c.Deliver(testCtx(t), msgOf(content, "s@d", "u@ttl.test"))[0]; r.Err != nil {
					t.Fatalf("%s: %v", step, r.Err)
				}
			}

			start := time.Now()
			deliver("first delivery")
			answered := time.Now() // the answer was cached at some point before this
			if n := len(sink1.received()); n != 1 {
				t.Fatalf("first delivery: sink 1 has %d messages, want 1", n)
			}
			asked := z.asked(tc.watched, tc.qtype)
			tc.change(z)

			// Within the TTL the cached answer serves. Checked only when the
			// machine was quick enough for "within" to hold for sure.
			deliver("delivery within the TTL")
			if time.Since(start) < ttl/2 {
				if n := len(sink1.received()); n != 2 {
					t.Errorf("within the TTL: sink 1 has %d messages, want 2 (cached answer)", n)
				}
				if n := z.asked(tc.watched, tc.qtype); n != asked {
					t.Errorf("within the TTL the resolver asked again (%d questions, want %d)", n, asked)
				}
			} else {
				t.Logf("the delivery within the TTL came too late to check the cache (%v)", time.Since(start))
			}

			time.Sleep(time.Until(answered.Add(ttl + 100*time.Millisecond)))
			before := len(sink2.received())
			deliver("delivery after the TTL")
			if n := len(sink2.received()) - before; n != 1 {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("after the TTL: sink 2 got %d messages, want 1 (the new answer); dialled %v", n, dials)
			}
			if n := z.asked(tc.watched, tc.qtype); n <= asked {
				t.Errorf("after the TTL the resolver did not ask again (%d questions)", n)
			}
		})
	}
}
