package dnsx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"mtad.dev/mta/metrics"
)

// Resolver is what the SMTP channel needs from DNS. Implementations must be safe
// for concurrent use.
type Resolver interface {
	// LookupMX returns the MX records of domain as published, unsorted. A domain
	// that exists but has no MX returns (nil, nil): the caller applies the
	// implicit MX rule. NXDOMAIN returns an *Error with NotFound set.
	LookupMX(ctx context.Context, domain string) ([]MX, error)
	// LookupHost returns the IPv4 then IPv6 addresses of host. No address at all
	// (NXDOMAIN, or no A and no AAAA) returns an *Error with NotFound set.
	LookupHost(ctx context.Context, host string) ([]netip.Addr, error)
}

// MX is one MX record. Host is lower-cased, without the trailing dot; the null
// MX of RFC 7505 ("0 .") has Host "".
type MX struct {
	Host string
	Pref uint16
}

// Error is a failed lookup.
type Error struct {
	Name     string // the name asked for
	Type     string // "MX", "A", "AAAA"
	Err      string // what went wrong: "NXDOMAIN", "SERVFAIL", "i/o timeout", ...
	NotFound bool   // the name (or, for LookupHost, any address of it) does not exist
	Temp     bool   // worth asking again later
}

func (e *Error) Error() string {
	return fmt.Sprintf("lookup %s %s: %s", e.Type, e.Name, e.Err)
}

// Temporary reports whether the failure may go away: everything but NXDOMAIN
// and "no such record".
func (e *Error) Temporary() bool { return e.Temp }

// IsNotFound reports whether err says the name or record does not exist.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.NotFound
}

// IsTemporary reports whether err is a temporary DNS failure. An error that is
// not an *Error counts as temporary.
func IsTemporary(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Temp
	}
	return err != nil
}

// Config configures a Client. The zero value uses /etc/resolv.conf.
type Config struct {
	// Servers are "ip" or "ip:port" (port 53 by default). Empty: the nameservers
	// of ResolvConf.
	Servers []string
	// ResolvConf is the file read when Servers is empty; default /etc/resolv.conf.
	ResolvConf string
	// Timeout bounds one query to one server (default 5 s).
	Timeout time.Duration
	// Attempts is how many rounds over all servers a query makes (default 2).
	Attempts int
	// MaxCNAME bounds a CNAME chain (default 8).
	MaxCNAME int
	// MaxEntries bounds the cache (default 100000); when full, expired entries are
	// dropped, and if none are, the cache is emptied (correct, merely slower).
	MaxEntries int
	// Now is the clock, for tests; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Metrics counts cache hits and misses (one per (name, type) answer wanted:
	// LookupHost is two); nil: not counted.
	Metrics *metrics.Hooks
}

// Client is a caching stub resolver. It is safe for concurrent use.
type Client struct {
	servers  []string
	timeout  time.Duration
	attempts int
	maxCNAME int
	maxEnt   int
	now      func() time.Time
	log      *slog.Logger
	metrics  *metrics.Hooks

	// ask sends one question to the servers; a field so the fuzz test can feed
	// arbitrary answers to the answer handling.
	ask func(ctx context.Context, name string, qtype uint16) (*dns.Msg, error)

	mu    sync.Mutex
	cache map[cacheKey]*entry
}

var _ Resolver = (*Client)(nil)

type cacheKey struct {
	name  string
	qtype uint16
}

// entry is a final answer for a (name, type): the records of that type at the
// end of the CNAME chain, or a negative answer.
type entry struct {
	rrs     []dns.RR
	rcode   int // dns.RcodeSuccess (rrs may be empty: NODATA) or dns.RcodeNameError
	expires time.Time
}

// New builds a Client.
func New(cfg Config) (*Client, error) {
	c := &Client{
		timeout:  cfg.Timeout,
		attempts: cfg.Attempts,
		maxCNAME: cfg.MaxCNAME,
		maxEnt:   cfg.MaxEntries,
		now:      cfg.Now,
		log:      cfg.Logger,
		metrics:  cfg.Metrics,
		cache:    make(map[cacheKey]*entry),
	}
	servers := cfg.Servers
	if len(servers) == 0 {
		path := cfg.ResolvConf
		if path == "" {
			path = "/etc/resolv.conf"
		}
		rc, err := dns.ClientConfigFromFile(path)
		if err != nil {
			return nil, fmt.Errorf("dnsx: reading %s: %w", path, err)
		}
		for _, s := range rc.Servers {
			servers = append(servers, net.JoinHostPort(s, rc.Port))
		}
		if cfg.Timeout == 0 && rc.Timeout > 0 {
			c.timeout = time.Duration(rc.Timeout) * time.Second
		}
		if cfg.Attempts == 0 && rc.Attempts > 0 {
			c.attempts = rc.Attempts
		}
	}
	for _, s := range servers {
		hp, err := normServer(s)
		if err != nil {
			return nil, err
		}
		c.servers = append(c.servers, hp)
	}
	if len(c.servers) == 0 {
		return nil, errors.New("dnsx: no nameservers configured")
	}
	if c.timeout <= 0 {
		c.timeout = 5 * time.Second
	}
	if c.attempts <= 0 {
		c.attempts = 2
	}
	if c.maxCNAME <= 0 {
		c.maxCNAME = 8
	}
	if c.maxEnt <= 0 {
		c.maxEnt = 100000
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.ask = c.exchange
	return c, nil
}

func normServer(s string) (string, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.String(), nil
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return netip.AddrPortFrom(a, 53).String(), nil
	}
	return "", fmt.Errorf("dnsx: nameserver %q: not an IP address or IP:port", s)
}

// Flush empties the cache (mtactl cache -flush, or after a DNS change).
func (c *Client) Flush() {
	c.mu.Lock()
	clear(c.cache)
	c.mu.Unlock()
}

// LookupMX implements Resolver.
func (c *Client) LookupMX(ctx context.Context, domain string) ([]MX, error) {
	rrs, err := c.resolve(ctx, domain, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	var out []MX
	for _, rr := range rrs {
		if mx, ok := rr.(*dns.MX); ok {
			out = append(out, MX{Host: canon(mx.Mx), Pref: mx.Preference})
		}
	}
	return out, nil
}

// LookupHost implements Resolver. IP literals are returned as they are.
func (c *Client) LookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	// A and AAAA in parallel: two goroutines per uncached host, bounded.
	type res struct {
		rrs []dns.RR
		err error
	}
	var v6 res
	var v4rrs []dns.RR
	var v4err error
	if e := c.lookupCache(cacheKey{dns.Fqdn(strings.ToLower(host)), dns.TypeAAAA}); e != nil {
		// The common case, answered from the cache: no goroutine.
		c.metrics.DNSLookup(true)
		v6.rrs, v6.err = e.result(canon(host), "AAAA")
		v4rrs, v4err = c.resolve(ctx, host, dns.TypeA)
	} else {
		done := make(chan struct{})
		go func() {
			defer close(done)
			v6.rrs, v6.err = c.resolve(ctx, host, dns.TypeAAAA)
		}()
		v4rrs, v4err = c.resolve(ctx, host, dns.TypeA)
		<-done
	}

	var addrs []netip.Addr
	for _, rr := range append(v4rrs, v6.rrs...) {
		switch r := rr.(type) {
		case *dns.A:
			if a, ok := netip.AddrFromSlice(r.A.To4()); ok {
				addrs = append(addrs, a)
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(r.AAAA.To16()); ok {
				addrs = append(addrs, a.Unmap())
			}
		}
	}
	if len(addrs) > 0 {
		// One family answering is enough; the other's failure does not matter.
		return addrs, nil
	}
	for _, err := range []error{v4err, v6.err} {
		if err != nil && IsTemporary(err) {
			return nil, err
		}
	}
	if v4err != nil {
		return nil, v4err
	}
	if v6.err != nil {
		return nil, v6.err
	}
	return nil, &Error{Name: canon(host), Type: "A", Err: "no address records", NotFound: true}
}

func canon(name string) string {
	return strings.TrimSuffix(strings.ToLower(name), ".")
}

// resolve returns the records of type qtype for name, following CNAMEs, from the
// cache or the network. NODATA is (nil, nil).
func (c *Client) resolve(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	qname := dns.Fqdn(strings.ToLower(name))
	typ := dns.TypeToString[qtype]
	if _, ok := dns.IsDomainName(qname); !ok {
		return nil, &Error{Name: canon(name), Type: typ, Err: "invalid domain name", NotFound: true}
	}
	key := cacheKey{qname, qtype}
	if e := c.lookupCache(key); e != nil {
		c.metrics.DNSLookup(true)
		return e.result(canon(name), typ)
	}
	c.metrics.DNSLookup(false)

	now := c.now()
	minTTL := uint32(1<<31 - 1)
	cur := qname
	links := 0
	tooLong := func() error {
		return &Error{Name: canon(name), Type: typ, Err: fmt.Sprintf("CNAME chain longer than %d", c.maxCNAME), Temp: true}
	}
	for queries := 0; ; queries++ {
		if queries > c.maxCNAME {
			return nil, tooLong()
		}
		asked := cur
		msg, err := c.ask(ctx, asked, qtype)
		if err != nil {
			return nil, &Error{Name: canon(name), Type: typ, Err: err.Error(), Temp: true}
		}
		if msg.Rcode == dns.RcodeNameError {
			e := &entry{rcode: dns.RcodeNameError}
			if ttl, ok := negTTL(msg); ok {
				c.store(key, e, now, min(minTTL, ttl))
			}
			return e.result(canon(name), typ)
		}
		// Walk the chain inside the answer: records of qtype owned by cur, or a
		// CNAME from cur to the next name.
		for {
			var rrs []dns.RR
			next := ""
			for _, rr := range msg.Answer {
				h := rr.Header()
				if !sameName(h.Name, cur) {
					continue
				}
				switch {
				case h.Rrtype == qtype:
					rrs = append(rrs, rr)
					minTTL = min(minTTL, h.Ttl)
				case h.Rrtype == dns.TypeCNAME && next == "":
					next = strings.ToLower(rr.(*dns.CNAME).Target)
					minTTL = min(minTTL, h.Ttl)
				}
			}
			if len(rrs) > 0 {
				c.store(key, &entry{rcode: dns.RcodeSuccess, rrs: rrs}, now, minTTL)
				return rrs, nil
			}
			if next == "" {
				break
			}
			links++
			if links > c.maxCNAME {
				return nil, tooLong()
			}
			cur = next
		}
		if cur != asked {
			// The chain leaves this answer: ask for its end.
			continue
		}
		// NODATA at the end of the chain.
		e := &entry{rcode: dns.RcodeSuccess}
		if ttl, ok := negTTL(msg); ok {
			c.store(key, e, now, min(minTTL, ttl))
		}
		return nil, nil
	}
}

func (e *entry) result(name, typ string) ([]dns.RR, error) {
	if e.rcode == dns.RcodeNameError {
		return nil, &Error{Name: name, Type: typ, Err: "NXDOMAIN", NotFound: true}
	}
	return e.rrs, nil
}

// negTTL is the negative-caching TTL of RFC 2308 §5: the SOA's own TTL capped by
// its MINIMUM field; without an SOA the answer must not be cached.
func negTTL(msg *dns.Msg) (uint32, bool) {
	for _, rr := range msg.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return min(soa.Hdr.Ttl, soa.Minttl), true
		}
	}
	return 0, false
}

func (c *Client) lookupCache(key cacheKey) *entry {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.cache[key]
	if e == nil {
		return nil
	}
	if !now.Before(e.expires) {
		delete(c.cache, key)
		return nil
	}
	return e
}

func (c *Client) store(key cacheKey, e *entry, now time.Time, ttl uint32) {
	if ttl == 0 {
		return // TTL 0: use once, never cache (RFC 1035 §3.2.1)
	}
	// Expiry counts from when the question was asked, so network latency never
	// stretches an entry past its TTL.
	e.expires = now.Add(time.Duration(ttl) * time.Second)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cache) >= c.maxEnt {
		t := c.now()
		for k, v := range c.cache {
			if !t.Before(v.expires) {
				delete(c.cache, k)
			}
		}
		if len(c.cache) >= c.maxEnt {
			clear(c.cache)
		}
	}
	c.cache[key] = e
}

// exchange asks the servers in turn. A NOERROR or NXDOMAIN answer ends the
// search; anything else is remembered and the next server is tried.
func (c *Client) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.RecursionDesired = true
	q.SetEdns0(1232, false)

	var last error
	for round := 0; round < c.attempts; round++ {
		for _, srv := range c.servers {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			r, err := c.exchangeOne(ctx, q, srv)
			if err == nil {
				switch r.Rcode {
				case dns.RcodeSuccess, dns.RcodeNameError:
					return r, nil
				}
				err = fmt.Errorf("%s from %s", dns.RcodeToString[r.Rcode], srv)
			}
			c.log.Debug("dns query failed", "name", name, "type", dns.TypeToString[qtype], "server", srv, "err", err)
			last = err
		}
	}
	return nil, last
}

func (c *Client) exchangeOne(ctx context.Context, q *dns.Msg, srv string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cl := &dns.Client{Net: "udp", Timeout: c.timeout, UDPSize: 1232}
	r, _, err := cl.ExchangeContext(ctx, q, srv)
	if err == nil && r.Truncated {
		// RFC 7766: a truncated UDP answer is asked again over TCP.
		cl.Net = "tcp"
		r, _, err = cl.ExchangeContext(ctx, q, srv)
	}
	if err != nil {
		return nil, err
	}
	if len(r.Question) != 1 || !sameName(r.Question[0].Name, q.Question[0].Name) || r.Question[0].Qtype != q.Question[0].Qtype {
		return nil, fmt.Errorf("answer from %s does not match the question", srv)
	}
	return r, nil
}

// LookupTXT returns the TXT records of name, each record's strings joined
// without separators (RFC 7208 §3.3, RFC 6376 §3.6.2.2: a record split into
// several strings is one text). A name that exists without TXT records returns
// (nil, nil); NXDOMAIN returns an *Error with NotFound set. Sender
// authentication (SPF, DKIM keys, DMARC policies) asks this.
func (c *Client) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := c.resolve(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range rrs {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out, nil
}

// LookupAddr returns the names the PTR records of ip's reverse name give,
// lower-cased, without the trailing dot: SPF's ptr mechanism and %{p} macro ask
// it. No PTR record is (nil, nil); a reverse name that does not exist returns
// an *Error with NotFound set.
func (c *Client) LookupAddr(ctx context.Context, ip netip.Addr) ([]string, error) {
	rev, err := dns.ReverseAddr(ip.Unmap().String())
	if err != nil {
		return nil, &Error{Name: ip.String(), Type: "PTR", Err: err.Error(), NotFound: true}
	}
	rrs, err := c.resolve(ctx, rev, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range rrs {
		if p, ok := rr.(*dns.PTR); ok {
			out = append(out, canon(p.Ptr))
		}
	}
	return out, nil
}

// sameName compares two domain names as DNS does: octet by octet, ASCII case
// ignored. Names are compared in wire form, since miekg/dns writes the names it
// reads with escapes ("a\032b" for a space) that the name we asked may not
// have: SPF macros make names with such octets.
func sameName(a, b string) bool {
	if strings.EqualFold(a, b) {
		return true
	}
	var wa, wb [256]byte
	na, errA := dns.PackDomainName(dns.Fqdn(a), wa[:], 0, nil, false)
	nb, errB := dns.PackDomainName(dns.Fqdn(b), wb[:], 0, nil, false)
	return errA == nil && errB == nil && bytes.EqualFold(wa[:na], wb[:nb])
}
