package dnsx

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// A TXT record split into several strings is one text; several records are
// several texts; a name without TXT is no text and no error; NXDOMAIN is not
// found. The answers are cached like any other.
func TestLookupTXT(t *testing.T) {
	s := startServer(t)
	s.set("split.test", dns.TypeTXT, reply{ans: []string{`split.test. 60 IN TXT "v=spf1 " "ip4:192.0.2.1 " "-all"`}})
	s.set("two.test", dns.TypeTXT, reply{ans: []string{`two.test. 60 IN TXT "one"`, `two.test. 60 IN TXT "two"`}})
	s.set("empty.test", dns.TypeTXT, reply{ns: []string{soa}})
	c := newTestClient(t, nil, s.addr)
	for _, tt := range []struct {
		name, want string
		notFound   bool
	}{
		{"split.test", "[v=spf1 ip4:192.0.2.1 -all]", false},
		{"two.test", "[one two]", false},
		{"empty.test", "[]", false},
		{"nx.test", "", true},
	} {
		got, err := c.LookupTXT(ctx(t), tt.name)
		if tt.notFound {
			if !IsNotFound(err) {
				t.Errorf("%s: err %v, want not found", tt.name, err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != tt.want {
			t.Errorf("%s: got %v, %v; want %s", tt.name, got, err, tt.want)
		}
	}
	c.LookupTXT(ctx(t), "split.test")
	if n := s.count("split.test", dns.TypeTXT, "udp"); n != 1 {
		t.Errorf("split.test asked %d times, want 1 (cached)", n)
	}
}

// LookupAddr asks the reverse name of an IPv4 or IPv6 address and returns the
// names without their trailing dot.
func TestLookupAddr(t *testing.T) {
	s := startServer(t)
	s.set("1.2.0.192.in-addr.arpa", dns.TypePTR, reply{ans: []string{"1.2.0.192.in-addr.arpa. 60 IN PTR Mail.Example.test."}})
	rev6, _ := dns.ReverseAddr("2001:db8::1")
	s.set(rev6, dns.TypePTR, reply{ans: []string{rev6 + " 60 IN PTR six.example.test."}})
	c := newTestClient(t, nil, s.addr)
	for ip, want := range map[string]string{"192.0.2.1": "[mail.example.test]", "2001:db8::1": "[six.example.test]", "::ffff:192.0.2.1": "[mail.example.test]"} {
		got, err := c.LookupAddr(ctx(t), netip.MustParseAddr(ip))
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("%s: got %v, %v; want %s", ip, got, err, want)
		}
	}
	if _, err := c.LookupAddr(ctx(t), netip.MustParseAddr("192.0.2.9")); !IsNotFound(err) {
		t.Errorf("no reverse name: err %v, want not found", err)
	}
}
