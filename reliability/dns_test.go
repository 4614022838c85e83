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
	addr string
	mu   sync.Mutex
	tcp  int // queries that came over TCP
}

// newFakeDNS listens on addr. The channel keyword nameservers takes IP addresses
// only (port 53), so the server needs port 53 on a loopback address of its own
// (127.0.53.53: Linux routes all of 127/8 to lo); without the privilege, or with
// the port taken, the test is skipped.
func newFakeDNS(t *testing.T, addr string) *fakeDNS {
	t.Helper()
	f := &fakeDNS{addr: addr}
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
	if overTCP {
		f.mu.Lock()
		f.tcp++
		f.mu.Unlock()
	}
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
`, sk.port)})
	d, data := startDaemon(t, cfg)
	cases := []struct {
		domain, code string
		diag         []string
		soakOnly     bool
	}{
		{"ok.test", "D", nil, false},
		{"tc.test", "D", nil, false},    // truncated UDP answer, retried over TCP
		{"cname.test", "D", nil, false}, // MX target is a CNAME: followed
		{"servfail.test", "Q", []string{"4.4.3", "SERVFAIL"}, false},
		{"nx.test", "R", []string{"5.1.2", "NXDOMAIN"}, false},
		{"loop.test", "Q", []string{"4.4.3", "CNAME chain"}, false}, // [inf] a loop may be fixed: retry
		{"nowhere.test", "R", []string{"5.4.4", "nothing.nowhere.test"}, false},
		{"timeout.test", "Q", []string{"4.4.3"}, true}, // 2 attempts x 5 s per query
	}
	c := dial(t, d.Addr().String())
	c.cmd("EHLO client.test", "250")
	for _, tc := range cases {
		if tc.soakOnly && !soak {
			continue
		}
		content, _ := message("dns-"+tc.domain, 200)
		if r := c.send("alice@localhost", []string{"u@" + tc.domain}, content); !strings.HasPrefix(r, "250") {
			t.Fatalf("%s: %q", tc.domain, r)
		}
	}
	c.cmd("QUIT", "221")
	for _, tc := range cases {
		t.Run(tc.domain, func(t *testing.T) {
			if tc.soakOnly && !soak {
				t.Skip("the resolver's timeout (5 s, 2 attempts) is not configurable from imta.cnf: soak only")
			}
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
