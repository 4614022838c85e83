package reliability

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeDNS is an authoritative-looking server on 127.0.0.1 (UDP and TCP on the
// same port) answering from a fixed zone, with a few misbehaviours by name.
type fakeDNS struct {
	addr  string
	mu    sync.Mutex
	tcp   int            // queries that came over TCP
	asked map[string]int // queries per "name type"
	// ttlA is the address mx.ttl.test has now; ttl.test's MX and that A record
	// carry the TTL ttlSecs.
	ttlA    string
	ttlSecs int
}

// newFakeDNS listens on addr. The channel keyword nameservers takes IP addresses
// only (port 53), so the server needs port 53 on a loopback address of its own
// (127.0.53.53: Linux routes all of 127/8 to lo); without the privilege, or with
// the port taken, the test is skipped.
func newFakeDNS(t *testing.T, addr string) *fakeDNS {
	t.Helper()
	f := &fakeDNS{addr: addr, asked: map[string]int{}, ttlA: "127.0.0.1", ttlSecs: 60}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s/udp for a fake name server: %v", addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		t.Skipf("cannot listen on %s/tcp for a fake name server: %v", addr, err)
	}
	udp := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) { f.answer(w, r, false) })}
	tcp := &dns.Server{Listener: l, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) { f.answer(w, r, true) })}
	for _, s := range []*dns.Server{udp, tcp} {
		go s.ActivateAndServe()
		t.Cleanup(func() { s.Shutdown() })
	}
	return f
}

func (f *fakeDNS) answer(w dns.ResponseWriter, r *dns.Msg, overTCP bool) {
	if len(r.Question) != 1 {
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	rr := func(s string) {
		x, err := dns.NewRR(s)
		if err != nil {
			panic(err)
		}
		m.Answer = append(m.Answer, x)
	}
	a := func(host string) {
		if q.Qtype == dns.TypeA {
			rr(host + " 60 IN A 127.0.0.1")
		}
	}
	mx := func(target string) {
		if q.Qtype == dns.TypeMX {
			rr(name + " 60 IN MX 10 " + target)
		}
	}
	f.mu.Lock()
	if overTCP {
		f.tcp++
	}
	f.asked[name+" "+dns.TypeToString[q.Qtype]]++
	ttlA, ttl := f.ttlA, f.ttlSecs
	f.mu.Unlock()
	switch name {
	case "ok.test.":
		mx("mx.ok.test.")
	case "mx.ok.test.", "mx.tc.test.", "real.cname.test.":
		a(name)
	case "tc.test.":
		// The MX answer does not fit over UDP: only TCP gets it.
		if !overTCP {
			m.Truncated = true
		} else {
			mx("mx.tc.test.")
		}
	case "cname.test.":
		mx("alias.cname.test.") // an MX pointing at a CNAME (RFC 2181 10.3 forbids, everyone copes)
	case "alias.cname.test.":
		rr(name + " 60 IN CNAME real.cname.test.")
		a("real.cname.test.")
	case "loop.test.":
		mx("a.loop.test.")
	case "a.loop.test.":
		rr(name + " 60 IN CNAME b.loop.test.")
	case "b.loop.test.":
		rr(name + " 60 IN CNAME a.loop.test.")
	case "chain.test.":
		mx("c1.chain.test.") // MX -> CNAME -> CNAME -> CNAME -> A: within the limit of 8
	case "c1.chain.test.", "c2.chain.test.", "c3.chain.test.":
		// A recursive server answers the whole chain at once; the resolver may use
		// it or query each link: both are served.
		n := name
		for ; strings.HasPrefix(n, "c"); n = chainNext(n) {
			rr(n + " 60 IN CNAME " + chainNext(n))
		}
		a(n)
	case "real.chain.test.":
		a(name)
	case "ttl.test.":
		if q.Qtype == dns.TypeMX {
			rr(fmt.Sprintf("%s %d IN MX 10 mx.ttl.test.", name, ttl))
		}
	case "mx.ttl.test.":
		if q.Qtype == dns.TypeA {
			rr(fmt.Sprintf("%s %d IN A %s", name, ttl, ttlA))
		}
	case "nowhere.test.":
		mx("nothing.nowhere.test.")
	case "nothing.nowhere.test.", "nx.test.":
		m.Rcode = dns.RcodeNameError
	case "servfail.test.":
		m.Rcode = dns.RcodeServerFailure
	case "timeout.test.":
		return // never answers
	default:
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}

// chainNext is the link after name in chain.test's CNAME chain c1 -> c2 -> c3 -> real.
func chainNext(name string) string {
	switch name {
	case "c1.chain.test.":
		return "c2.chain.test."
	case "c2.chain.test.":
		return "c3.chain.test."
	}
	return "real.chain.test."
}

// TestDNSFaults routes every domain by MX through a fake DNS server; the MX
// hosts' addresses are 127.0.0.1 and the channel's port is a healthy sink.
func TestDNSFaults(t *testing.T) {
	t.Parallel()
	ns := newFakeDNS(t, "127.0.53.53:53")
	sk := newSink(t)
	cfg := t.TempDir()
	writeFiles(t, cfg, map[string]string{"imta.cnf": fmt.Sprintf(`! reliability: DNS faults
.test        $U%%$H$D@tcp_dns-daemon

l
localhost

tcp_local smtp nomx single_sys
tcp-daemon

tcp_dns smtp mx single_sys nameservers 127.0.53.53 port %d
tcp_dns-daemon
`, sk.port),
		// A query nobody answers costs 2 attempts of this, not of the default 5 s.
		"option.dat": "DNS_TIMEOUT=500ms\n",
	})
	d, data := startDaemon(t, cfg)
	cases := []struct {
		domain, code string
		diag         []string
	}{
		{"ok.test", "D", nil},
		{"tc.test", "D", nil},    // truncated UDP answer, retried over TCP
		{"cname.test", "D", nil}, // MX target is a CNAME: followed
		{"chain.test", "D", nil}, // MX target is a chain of 3 CNAMEs: followed
		{"servfail.test", "Q", []string{"4.4.3", "SERVFAIL"}},
		{"nx.test", "R", []string{"5.1.2", "NXDOMAIN"}},
		{"loop.test", "Q", []string{"4.4.3", "CNAME chain"}}, // a loop may be fixed: retry
		{"nowhere.test", "R", []string{"5.4.4", "nothing.nowhere.test"}},
		{"timeout.test", "Q", []string{"4.4.3", "timeout"}}, // 2 attempts x DNS_TIMEOUT
	}
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	for _, tc := range cases {
		content, _ := message("dns-"+tc.domain, 200)
		if r := c.Attempt("alice@localhost", []string{"u@" + tc.domain}, []byte(content)); !strings.HasPrefix(r, "250") {
			t.Fatalf("%s: %q", tc.domain, r)
		}
	}
	c.Cmd("QUIT", "221")
	for _, tc := range cases {
		t.Run(tc.domain, func(t *testing.T) {
			rcpt := "u@" + tc.domain
			var got string
			deadline := time.Now().Add(30 * time.Second)
			for got == "" && time.Now().Before(deadline) {
				for _, l := range readLog(data) {
					for _, code := range []string{"D", "Q", "R"} {
						if isEntry(l, "tcp_dns", code, rcpt) {
							got = l
						}
					}
				}
				time.Sleep(25 * time.Millisecond)
			}
			if got == "" {
				t.Fatalf("no delivery entry for %s in 30 s:\n%s", rcpt, strings.Join(readLog(data), "\n"))
			}
			if !isEntry(got, "tcp_dns", tc.code, rcpt) {
				t.Errorf("%s: %s, want %s", rcpt, got, tc.code)
			}
			for _, want := range tc.diag {
				if !strings.Contains(got, want) {
					t.Errorf("%s: entry lacks %q: %s", rcpt, want, got)
				}
			}
			if tc.code == "D" && len(sk.copies("dns-"+tc.domain)) != 1 {
				t.Errorf("%s: not at the sink", rcpt)
			}
			t.Logf("%s", got)
		})
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.tcp == 0 {
		t.Errorf("the truncated answer was never retried over TCP")
	}
}

// sinkPair starts two sinks on one port of two loopback addresses: the channel's
// port is fixed, so the DNS answer alone decides which one gets a message.
func sinkPair(t *testing.T, ipA, ipB string) (a, b *sink) {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", ipA+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ipB, port))
		l.Close()
		if err != nil {
			continue // taken on ipB: another port
		}
		l2.Close()
		return newSinkOn(t, fmt.Sprintf("%s:%d", ipA, port)), newSinkOn(t, fmt.Sprintf("%s:%d", ipB, port))
	}
	t.Fatalf("no port free on both %s and %s", ipA, ipB)
	return nil, nil
}

// TestDNSTTL changes the address of a destination's MX host under a running mtad:
// before the TTL of the first answer runs out the next delivery follows the cached
// answer without asking again, after it the new one.
func TestDNSTTL(t *testing.T) {
	t.Parallel()
	const ttl = 2 * time.Second
	ns := newFakeDNS(t, "127.0.53.54:53")
	old, cur := sinkPair(t, "127.0.0.2", "127.0.0.3")
	ns.mu.Lock()
	ns.ttlA, ns.ttlSecs = "127.0.0.2", int(ttl/time.Second)
	ns.mu.Unlock()
	cfg := t.TempDir()
	writeFiles(t, cfg, map[string]string{"imta.cnf": fmt.Sprintf(`! reliability: DNS TTL
ttl.test     $U%%$D@tcp_ttl-daemon

l
localhost

tcp_local smtp nomx single_sys
tcp-daemon

tcp_ttl smtp mx single_sys nameservers 127.0.53.54 port %d
tcp_ttl-daemon
`, old.port),
		// One message per connection: a cached connection to the old address
		// would otherwise be reused (for its idle 30 s) without any lookup, which
		// is the connection cache at work, not the DNS cache under test.
		"tcp_ttl_option": "ATTEMPT_TRANSACTIONS_PER_SESSION=1\n",
	})
	d, _ := startDaemon(t, cfg)
	asked := func() int {
		ns.mu.Lock()
		defer ns.mu.Unlock()
		return ns.asked["mx.ttl.test. A"]
	}
	// send delivers one message and returns the sink that got it and when.
	send := func(tok string) (*sink, time.Time) {
		t.Helper()
		c := dial(t, d.Addr().String())
		c.Cmd("EHLO client.test", "250")
		content, _ := message(tok, 200)
		if r := c.Attempt("alice@localhost", []string{"u@ttl.test"}, []byte(content)); !strings.HasPrefix(r, "250") {
			t.Fatalf("%s: %q", tok, r)
		}
		c.Cmd("QUIT", "221")
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			switch {
			case len(old.copies(tok)) > 0:
				return old, time.Now()
			case len(cur.copies(tok)) > 0:
				return cur, time.Now()
			}
		}
		t.Fatalf("%s delivered nowhere in 30 s", tok)
		return nil, time.Time{}
	}

	// The first answer is cached from a moment after this instant on.
	before := time.Now()
	if got, _ := send("ttl-1"); got != old {
		t.Fatalf("ttl-1 went to 127.0.0.3 before the answer changed")
	}
	queried := asked()
	if queried == 0 {
		t.Fatalf("mx.ttl.test was never looked up")
	}
	ns.mu.Lock()
	ns.ttlA = "127.0.0.3"
	ns.mu.Unlock()

	got, at := send("ttl-2")
	switch {
	case at.After(before.Add(ttl)):
		// The machine was too slow for the window: nothing can be said of ttl-2.
		t.Logf("ttl-2 delivered %v after the first lookup, past the TTL: not judged", at.Sub(before))
	case got != old:
		t.Errorf("ttl-2 went to the new address within the TTL (%v after the first lookup)", at.Sub(before))
	case asked() != queried:
		t.Errorf("mx.ttl.test looked up again within the TTL: %d queries, was %d", asked(), queried)
	}

	// After the TTL (counted from the first delivery's end, which is after the
	// answer was stored) the next delivery must ask again and follow the answer.
	time.Sleep(time.Until(at.Add(ttl + 200*time.Millisecond)))
	if got, _ := send("ttl-3"); got != cur {
		t.Errorf("ttl-3 went to the old address after the TTL expired")
	}
	if asked() == queried {
		t.Errorf("mx.ttl.test not looked up again after the TTL expired")
	}
	for _, tok := range []string{"ttl-1", "ttl-2", "ttl-3"} {
		if n := len(old.copies(tok)) + len(cur.copies(tok)); n != 1 {
			t.Errorf("%s delivered %d times", tok, n)
		}
	}
}
