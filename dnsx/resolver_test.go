package dnsx

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testServer is an authoritative-looking DNS server on 127.0.0.1 (UDP and TCP on
// the same port) answering from a table; nothing reaches real DNS.
type testServer struct {
	addr string

	mu       sync.Mutex
	answers  map[string]reply // "name.|TYPE"
	queries  map[string]int   // "name.|TYPE|udp"
	truncate map[string]bool  // answer UDP with TC set, no records
	drop     map[string]bool  // never answer
	servfail bool             // SERVFAIL everything
}

type reply struct {
	rcode int
	ans   []string
	ns    []string
}

func key(name string, t uint16) string { return dns.Fqdn(name) + "|" + dns.TypeToString[t] }

func startServer(t *testing.T) *testServer {
	t.Helper()
	s := &testServer{answers: map[string]reply{}, queries: map[string]int{}, truncate: map[string]bool{}, drop: map[string]bool{}}
	var pc net.PacketConn
	var l net.Listener
	for try := 0; ; try++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if try > 20 {
			t.Fatal(err)
		}
	}
	s.addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(s.serve)
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: l, Handler: h}
	var wg sync.WaitGroup
	for _, srv := range []*dns.Server{udp, tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		wg.Add(1)
		go func() { defer wg.Done(); srv.ActivateAndServe() }()
		<-started
	}
	t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown(); wg.Wait() })
	return s
}

func (s *testServer) serve(w dns.ResponseWriter, r *dns.Msg) {
	q := r.Question[0]
	k := key(strings.ToLower(q.Name), q.Qtype)
	proto := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	s.mu.Lock()
	s.queries[k+"|"+proto]++
	rep, ok := s.answers[k]
	trunc, drop, fail := s.truncate[k], s.drop[k], s.servfail
	s.mu.Unlock()
	if drop {
		return
	}
	m := new(dns.Msg)
	m.SetReply(r)
	switch {
	case fail:
		m.Rcode = dns.RcodeServerFailure
	case trunc && proto == "udp":
		m.Truncated = true
	case !ok:
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{mustRR("test. 300 IN SOA ns.test. host.test. 1 600 300 86400 60")}
	default:
		m.Rcode = rep.rcode
		for _, a := range rep.ans {
			m.Answer = append(m.Answer, mustRR(a))
		}
		for _, a := range rep.ns {
			m.Ns = append(m.Ns, mustRR(a))
		}
	}
	w.WriteMsg(m)
}

func (s *testServer) set(name string, t uint16, r reply) {
	s.mu.Lock()
	s.answers[key(name, t)] = r
	s.mu.Unlock()
}

func (s *testServer) count(name string, t uint16, proto string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[key(name, t)+"|"+proto]
}

func mustRR(s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		panic(err)
	}
	return rr
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestClient(t *testing.T, clk *clock, servers ...string) *Client {
	t.Helper()
	cfg := Config{Servers: servers, Timeout: 300 * time.Millisecond, Attempts: 1}
	if clk != nil {
		cfg.Now = clk.now
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

const soa = "example.test. 300 IN SOA ns.example.test. host.example.test. 1 600 300 86400 60"

func TestLookupMX(t *testing.T) {
	s := startServer(t)
	s.set("example.test", dns.TypeMX, reply{ans: []string{
		"example.test. 3600 IN MX 20 MX2.example.test.",
		"example.test. 3600 IN MX 10 mx1.example.test.",
	}})
	s.set("nodata.test", dns.TypeMX, reply{ns: []string{soa}})
	s.set("null.test", dns.TypeMX, reply{ans: []string{"null.test. 3600 IN MX 0 ."}})
	c := newTestClient(t, nil, s.addr)
	tests := []struct {
		domain   string
		want     []MX
		notFound bool
	}{
		{"example.test", []MX{{"mx2.example.test", 20}, {"mx1.example.test", 10}}, false},
		{"Example.Test.", []MX{{"mx2.example.test", 20}, {"mx1.example.test", 10}}, false},
		{"nodata.test", nil, false},
		{"null.test", []MX{{"", 0}}, false},
		{"nxdomain.test", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			got, err := c.LookupMX(ctx(t), tt.domain)
			if tt.notFound {
				if !IsNotFound(err) || IsTemporary(err) {
					t.Fatalf("err %v, want permanent not-found", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// Seed 001: an answer is never served past its TTL.
func TestCacheHonoursTTL(t *testing.T) {
	s := startServer(t)
	s.set("ttl.test", dns.TypeA, reply{ans: []string{"ttl.test. 30 IN A 192.0.2.1"}})
	s.set("ttl.test", dns.TypeAAAA, reply{ns: []string{soa}})
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	c := newTestClient(t, clk, s.addr)
	look := func() string {
		a, err := c.LookupHost(ctx(t), "ttl.test")
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(a)
	}
	if got := look(); got != "[192.0.2.1]" {
		t.Fatalf("got %s", got)
	}
	clk.add(29 * time.Second)
	look()
	if n := s.count("ttl.test", dns.TypeA, "udp"); n != 1 {
		t.Fatalf("%d queries within TTL, want 1", n)
	}
	s.set("ttl.test", dns.TypeA, reply{ans: []string{"ttl.test. 30 IN A 192.0.2.2"}})
	clk.add(time.Second) // exactly at expiry: stale
	if got := look(); got != "[192.0.2.2]" {
		t.Fatalf("after TTL got %s, want the new address", got)
	}
	if n := s.count("ttl.test", dns.TypeA, "udp"); n != 2 {
		t.Fatalf("%d queries, want 2", n)
	}
	c.Flush()
	look()
	if n := s.count("ttl.test", dns.TypeA, "udp"); n != 3 {
		t.Fatalf("after Flush %d queries, want 3", n)
	}
}

func TestZeroTTLNotCached(t *testing.T) {
	s := startServer(t)
	s.set("zero.test", dns.TypeMX, reply{ans: []string{"zero.test. 0 IN MX 10 mx.zero.test."}})
	c := newTestClient(t, &clock{t: time.Unix(1_700_000_000, 0)}, s.addr)
	for i := 0; i < 2; i++ {
		if _, err := c.LookupMX(ctx(t), "zero.test"); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.count("zero.test", dns.TypeMX, "udp"); n != 2 {
		t.Fatalf("%d queries, want 2", n)
	}
}

// RFC 2308: NXDOMAIN/NODATA cached for min(SOA TTL, MINIMUM); not at all without SOA.
func TestNegativeCache(t *testing.T) {
	s := startServer(t)
	s.set("nosoa.test", dns.TypeMX, reply{})
	s.set("nodata.test", dns.TypeMX, reply{ns: []string{soa}})
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	c := newTestClient(t, clk, s.addr)
	for _, name := range []string{"gone.test", "nodata.test", "nosoa.test"} {
		c.LookupMX(ctx(t), name)
	}
	clk.add(59 * time.Second)
	for _, name := range []string{"gone.test", "nodata.test", "nosoa.test"} {
		c.LookupMX(ctx(t), name)
	}
	want := map[string]int{"gone.test": 1, "nodata.test": 1, "nosoa.test": 2}
	for name, n := range want {
		if got := s.count(name, dns.TypeMX, "udp"); got != n {
			t.Errorf("%s: %d queries, want %d", name, got, n)
		}
	}
	clk.add(time.Second) // MINIMUM 60 reached
	_, err := c.LookupMX(ctx(t), "gone.test")
	if !IsNotFound(err) {
		t.Fatalf("err %v", err)
	}
	if got := s.count("gone.test", dns.TypeMX, "udp"); got != 2 {
		t.Errorf("gone.test after MINIMUM: %d queries, want 2", got)
	}
}

// Seed 001: a CNAME where an MX is expected is followed to the target's MX.
func TestCNAMEFollowing(t *testing.T) {
	s := startServer(t)
	// The server gives only the CNAME: the target must be asked for.
	s.set("alias.test", dns.TypeMX, reply{ans: []string{"alias.test. 351 IN CNAME real.test."}})
	s.set("real.test", dns.TypeMX, reply{ans: []string{"real.test. 1800 IN MX 10 mx.real.test."}})
	// The server gives the whole chain.
	s.set("chain.test", dns.TypeA, reply{ans: []string{
		"chain.test. 100 IN CNAME b.test.", "b.test. 50 IN CNAME c.test.", "c.test. 300 IN A 192.0.2.7",
	}})
	s.set("chain.test", dns.TypeAAAA, reply{ns: []string{soa}})
	s.set("loop1.test", dns.TypeMX, reply{ans: []string{"loop1.test. 100 IN CNAME loop2.test."}})
	s.set("loop2.test", dns.TypeMX, reply{ans: []string{"loop2.test. 100 IN CNAME loop1.test."}})
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	c := newTestClient(t, clk, s.addr)

	mx, err := c.LookupMX(ctx(t), "alias.test")
	if err != nil || !slices.Equal(mx, []MX{{"mx.real.test", 10}}) {
		t.Fatalf("alias.test: %v %v", mx, err)
	}
	a, err := c.LookupHost(ctx(t), "chain.test")
	if err != nil || fmt.Sprint(a) != "[192.0.2.7]" {
		t.Fatalf("chain.test: %v %v", a, err)
	}
	// The chain's cache life is its shortest link (50 s).
	clk.add(50 * time.Second)
	c.LookupHost(ctx(t), "chain.test")
	if n := s.count("chain.test", dns.TypeA, "udp"); n != 2 {
		t.Errorf("chain.test: %d queries, want 2 (shortest TTL in the chain)", n)
	}
	_, err = c.LookupMX(ctx(t), "loop1.test")
	if err == nil || !IsTemporary(err) || !strings.Contains(err.Error(), "CNAME chain") {
		t.Fatalf("loop: %v", err)
	}
}

func TestServfailAndRetryAcrossServers(t *testing.T) {
	bad := startServer(t)
	bad.mu.Lock()
	bad.servfail = true
	bad.mu.Unlock()
	good := startServer(t)
	good.set("x.test", dns.TypeMX, reply{ans: []string{"x.test. 60 IN MX 5 mx.x.test."}})

	c := newTestClient(t, nil, bad.addr)
	_, err := c.LookupMX(ctx(t), "x.test")
	if err == nil || !IsTemporary(err) || IsNotFound(err) {
		t.Fatalf("SERVFAIL: %v, want temporary", err)
	}
	// SERVFAIL is not cached: a second ask goes out again.
	c.LookupMX(ctx(t), "x.test")
	if n := bad.count("x.test", dns.TypeMX, "udp"); n != 2 {
		t.Errorf("%d queries, want 2", n)
	}

	c = newTestClient(t, nil, bad.addr, good.addr)
	mx, err := c.LookupMX(ctx(t), "x.test")
	if err != nil || len(mx) != 1 {
		t.Fatalf("with a good second server: %v %v", mx, err)
	}
}

func TestTimeoutIsTemporary(t *testing.T) {
	s := startServer(t)
	s.mu.Lock()
	s.drop[key("slow.test", dns.TypeMX)] = true
	s.mu.Unlock()
	c := newTestClient(t, nil, s.addr)
	start := time.Now()
	_, err := c.LookupMX(ctx(t), "slow.test")
	if err == nil || !IsTemporary(err) {
		t.Fatalf("got %v, want temporary", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestTruncatedRetriesOverTCP(t *testing.T) {
	s := startServer(t)
	s.mu.Lock()
	s.truncate[key("big.test", dns.TypeMX)] = true
	s.mu.Unlock()
	s.set("big.test", dns.TypeMX, reply{ans: []string{"big.test. 60 IN MX 1 mx.big.test."}})
	c := newTestClient(t, nil, s.addr)
	mx, err := c.LookupMX(ctx(t), "big.test")
	if err != nil || len(mx) != 1 {
		t.Fatalf("%v %v", mx, err)
	}
	if s.count("big.test", dns.TypeMX, "tcp") != 1 {
		t.Error("no TCP query after truncation")
	}
}

func TestLookupHost(t *testing.T) {
	s := startServer(t)
	s.set("both.test", dns.TypeA, reply{ans: []string{"both.test. 60 IN A 192.0.2.1"}})
	s.set("both.test", dns.TypeAAAA, reply{ans: []string{"both.test. 60 IN AAAA 2001:db8::1"}})
	s.set("none.test", dns.TypeA, reply{ns: []string{soa}})
	s.set("none.test", dns.TypeAAAA, reply{ns: []string{soa}})
	s.set("v6fail.test", dns.TypeA, reply{ans: []string{"v6fail.test. 60 IN A 192.0.2.5"}})
	s.mu.Lock()
	s.drop[key("v6fail.test", dns.TypeAAAA)] = true
	s.mu.Unlock()
	c := newTestClient(t, nil, s.addr)
	tests := []struct {
		host     string
		want     string
		notFound bool
	}{
		{"both.test", "[192.0.2.1 2001:db8::1]", false},
		{"[192.0.2.9]", "[192.0.2.9]", false},
		{"::1", "[::1]", false},
		{"v6fail.test", "[192.0.2.5]", false},
		{"none.test", "", true},
		{"nx.test", "", true},
		{"bad..name", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			got, err := c.LookupHost(ctx(t), tt.host)
			if tt.notFound {
				if !IsNotFound(err) || IsTemporary(err) {
					t.Fatalf("err %v, want not found", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != tt.want {
				t.Errorf("got %v, want %s", got, tt.want)
			}
		})
	}
}

func TestNewConfig(t *testing.T) {
	if _, err := New(Config{Servers: []string{"not an ip"}}); err == nil {
		t.Error("bad server accepted")
	}
	c, err := New(Config{Servers: []string{"127.0.0.1", "[::1]:5353"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.1:53", "[::1]:5353"}; !slices.Equal(c.servers, want) {
		t.Errorf("servers %v, want %v", c.servers, want)
	}
	if _, err := New(Config{ResolvConf: "/nonexistent/resolv.conf"}); err == nil {
		t.Error("missing resolv.conf accepted")
	}
}
