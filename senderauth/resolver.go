package senderauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"

	"mtad.dev/mta/dnsx"
)

// Resolver is the DNS the checks ask: *dnsx.Client, whose cache honours TTLs
// and whose errors say temporary or not found. Implementations must be safe for
// concurrent use.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, domain string) ([]dnsx.MX, error)
	LookupHost(ctx context.Context, host string) ([]netip.Addr, error)
	LookupAddr(ctx context.Context, ip netip.Addr) ([]string, error)
}

var _ Resolver = (*dnsx.Client)(nil)

// Query is one DNS question a check asked and what came back, for `mtactl
// test -auth`: Answer lists the records (TXT texts, MX hosts, addresses,
// names), Err is "" or what failed ("NXDOMAIN", a timeout ...).
type Query struct {
	Type, Name string
	Answer     []string
	Err        string
}

func (q Query) String() string {
	switch {
	case q.Err != "":
		return fmt.Sprintf("%s %s: %s", q.Type, q.Name, q.Err)
	case len(q.Answer) == 0:
		return fmt.Sprintf("%s %s: no records", q.Type, q.Name)
	}
	return fmt.Sprintf("%s %s: %s", q.Type, q.Name, strings.Join(q.Answer, " | "))
}

// Recorder is a Resolver that notes every question and answer of the one it
// wraps. Only `mtactl test -auth` uses it: the daemon does not record.
type Recorder struct {
	R Resolver

	mu      sync.Mutex
	queries []Query
}

// Queries lists the questions asked so far, in order.
func (r *Recorder) Queries() []Query {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Query(nil), r.queries...)
}

func (r *Recorder) note(typ, name string, answer []string, err error) {
	q := Query{Type: typ, Name: name, Answer: answer}
	if err != nil {
		q.Err = err.Error()
		var de *dnsx.Error
		if errors.As(err, &de) {
			q.Err = de.Err
		}
	}
	r.mu.Lock()
	r.queries = append(r.queries, q)
	r.mu.Unlock()
}

func (r *Recorder) LookupTXT(ctx context.Context, name string) ([]string, error) {
	txts, err := r.R.LookupTXT(ctx, name)
	quoted := make([]string, len(txts))
	for i, t := range txts {
		quoted[i] = fmt.Sprintf("%q", t)
	}
	r.note("TXT", name, quoted, err)
	return txts, err
}

func (r *Recorder) LookupMX(ctx context.Context, domain string) ([]dnsx.MX, error) {
	mxs, err := r.R.LookupMX(ctx, domain)
	var ans []string
	for _, mx := range mxs {
		ans = append(ans, fmt.Sprintf("%d %s", mx.Pref, mx.Host))
	}
	r.note("MX", domain, ans, err)
	return mxs, err
}

func (r *Recorder) LookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	addrs, err := r.R.LookupHost(ctx, host)
	var ans []string
	for _, a := range addrs {
		ans = append(ans, a.String())
	}
	r.note("A/AAAA", host, ans, err)
	return addrs, err
}

func (r *Recorder) LookupAddr(ctx context.Context, ip netip.Addr) ([]string, error) {
	names, err := r.R.LookupAddr(ctx, ip)
	r.note("PTR", ip.String(), names, err)
	return names, err
}

// netError turns our resolver's errors into the *net.DNSError the SPF and
// DKIM libraries classify: not found (NXDOMAIN, no address) or temporary.
func netError(name string, err error) error {
	if err == nil {
		return nil
	}
	return &net.DNSError{Err: err.Error(), Name: name, IsNotFound: dnsx.IsNotFound(err),
		IsTemporary: dnsx.IsTemporary(err), IsTimeout: errors.Is(err, context.DeadlineExceeded)}
}

// libResolver adapts a Resolver to blitiri.com.ar/go/spf's DNSResolver (the
// shape of *net.Resolver). The SPF_LOCAL override answers the first TXT
// question of a check, which is always the record of the domain checked: the
// product's documentation says the table replaces the DNS record of that
// domain, and that a redirect= it contains is looked up in DNS only.
type libResolver struct {
	r Resolver

	local      string // SPF_LOCAL's record for the checked domain; "" none
	localUsed  bool
	txtAsked   int // TXT questions so far: the record fetches of a check
	maxRecords int // SPF_MAX_RECURSION: records a check may fetch after the first; 0 no bound
}

// errTooDeep ends a check that follows more include: and redirect= than
// SPF_MAX_RECURSION allows; the library turns it into permerror.
var errTooDeep = errors.New("SPF_MAX_RECURSION exceeded")

func (l *libResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	l.txtAsked++
	if l.txtAsked == 1 && l.local != "" {
		l.localUsed = true
		return []string{l.local}, nil
	}
	if l.maxRecords > 0 && l.txtAsked > l.maxRecords+1 {
		return nil, errTooDeep
	}
	txts, err := l.r.LookupTXT(ctx, name)
	return txts, netError(name, err)
}

func (l *libResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	mxs, err := l.r.LookupMX(ctx, name)
	if err != nil {
		return nil, netError(name, err)
	}
	out := make([]*net.MX, 0, len(mxs))
	for _, mx := range mxs {
		if mx.Host == "" {
			continue // a null MX (RFC 7505) names no host
		}
		out = append(out, &net.MX{Host: mx.Host, Pref: mx.Pref})
	}
	return out, nil
}

func (l *libResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	addrs, err := l.r.LookupHost(ctx, host)
	if err != nil {
		return nil, netError(host, err)
	}
	out := make([]net.IPAddr, len(addrs))
	for i, a := range addrs {
		out[i] = net.IPAddr{IP: net.IP(a.AsSlice())}
	}
	return out, nil
}

func (l *libResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: "not an IP address", Name: addr, IsNotFound: true}
	}
	names, err := l.r.LookupAddr(ctx, ip)
	if err != nil {
		return nil, netError(addr, err)
	}
	// The library compares names with a trailing dot, as net.Resolver gives them.
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + "."
	}
	return out, nil
}
