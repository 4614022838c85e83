// Package dnstest is an in-process DNS server for tests: it answers from a
// zone the test writes (records in zone-file syntax), on 127.0.0.1 over UDP and
// TCP, so that nothing a test resolves ever reaches real DNS.
//
// A name with records of other types answers NODATA, a name with none (and no
// name below it) NXDOMAIN, both with an SOA so that resolvers may cache them; a
// CNAME answers every type. Drop makes a question go unanswered (a timeout) and
// Fail answers it SERVFAIL.
package dnstest

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server is one running server. Its methods are safe for concurrent use.
type Server struct {
	// Addr is the server's "127.0.0.1:port", for dnsx.Config.Servers.
	Addr string

	mu      sync.Mutex
	records map[string][]dns.RR // by lower-case FQDN
	drop    map[string]bool     // "name.|TYPE" never answered
	fail    map[string]bool     // "name.|TYPE" answered SERVFAIL
	asked   []string            // "name.|TYPE" in the order asked
}

// soa is the authority of every negative answer: 60 s of negative caching.
const soa = ". 60 IN SOA ns.test. hostmaster.test. 1 600 300 86400 60"

// Start runs a server until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{records: map[string][]dns.RR{}, drop: map[string]bool{}, fail: map[string]bool{}}
	var pc net.PacketConn
	var l net.Listener
	for try := 0; ; try++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if try > 20 {
			t.Fatal(err)
		}
	}
	s.Addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(s.serve)
	servers := []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}}
	var wg sync.WaitGroup
	for _, srv := range servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		wg.Go(func() { srv.ActivateAndServe() })
		<-started
	}
	t.Cleanup(func() {
		for _, srv := range servers {
			srv.Shutdown()
		}
		wg.Wait()
	})
	return s
}

// Add puts records in the zone, each in zone-file syntax
// ("example.test. 300 IN TXT \"v=spf1 -all\""); a record it cannot parse fails
// the test.
func (s *Server) Add(t testing.TB, records ...string) {
	t.Helper()
	for _, text := range records {
		rr, err := dns.NewRR(text)
		if err != nil {
			t.Fatalf("dnstest: %q: %v", text, err)
		}
		name := canon(rr.Header().Name)
		s.mu.Lock()
		s.records[name] = append(s.records[name], rr)
		s.mu.Unlock()
	}
}

// Drop leaves every question for (name, type) unanswered; type is "TXT", "A" ...
func (s *Server) Drop(name, qtype string) { s.set(s.drop, name, qtype) }

// Fail answers every question for (name, type) with SERVFAIL.
func (s *Server) Fail(name, qtype string) { s.set(s.fail, name, qtype) }

func (s *Server) set(m map[string]bool, name, qtype string) {
	s.mu.Lock()
	m[key(name, qtype)] = true
	s.mu.Unlock()
}

// Asked lists the questions received so far, "name.|TYPE", in order.
func (s *Server) Asked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.asked...)
}

func key(name, qtype string) string { return canon(name) + "|" + strings.ToUpper(qtype) }

// canon is a name as the server files it: lower-case, fully qualified, in the
// escaped form miekg/dns reads names in ("a\032b." for a name with a space),
// so that a name given raw and the same name asked compare equal.
func canon(name string) string {
	name = dns.Fqdn(strings.ToLower(name))
	var wire [256]byte
	n, err := dns.PackDomainName(name, wire[:], 0, nil, false)
	if err != nil {
		return name
	}
	if out, _, err := dns.UnpackDomainName(wire[:n], 0); err == nil {
		return out
	}
	return name
}

func (s *Server) serve(w dns.ResponseWriter, r *dns.Msg) {
	if len(r.Question) != 1 {
		return
	}
	q := r.Question[0]
	name := canon(q.Name)
	k := key(name, dns.TypeToString[q.Qtype])
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	s.mu.Lock()
	s.asked = append(s.asked, k)
	drop, fail := s.drop[k], s.fail[k]
	rrs, exists := s.answer(name, q.Qtype)
	s.mu.Unlock()
	switch {
	case drop:
		return
	case fail:
		m.Rcode = dns.RcodeServerFailure
	case len(rrs) > 0:
		m.Answer = rrs
	case exists:
		m.Ns = []dns.RR{mustSOA()}
	default:
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{mustSOA()}
	}
	w.WriteMsg(m)
}

// answer is the records of name for qtype (a CNAME answers any type) and
// whether the name exists: it has records, or a name below it has.
func (s *Server) answer(name string, qtype uint16) ([]dns.RR, bool) {
	var out []dns.RR
	for _, rr := range s.records[name] {
		if t := rr.Header().Rrtype; t == qtype || t == dns.TypeCNAME {
			out = append(out, dns.Copy(rr))
		}
	}
	if len(out) > 0 || len(s.records[name]) > 0 {
		return out, true
	}
	for n := range s.records {
		if strings.HasSuffix(n, "."+name) {
			return nil, true
		}
	}
	return nil, false
}

func mustSOA() dns.RR {
	rr, err := dns.NewRR(soa)
	if err != nil {
		panic(err)
	}
	return rr
}

// AddRR puts records built by the test in the zone (for names or texts the
// zone-file syntax cannot carry, such as a TXT string over 255 octets).
func (s *Server) AddRR(rrs ...dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rr := range rrs {
		name := canon(rr.Header().Name)
		s.records[name] = append(s.records[name], rr)
	}
}
