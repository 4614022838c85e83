package channels

// Where the SMTP client sends a message: recipients grouped by destination, and
// for each destination the hosts to try, in order, and their addresses. The
// smart host (daemon), an address literal, the MX records, the domain itself
// when it has none, and lastresort after everything else.

import (
	"cmp"
	"context"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"

	"mtad.dev/mta/dnsx"
	"mtad.dev/mta/status"
)

// hop is one host to try: an MX host, the domain itself (implicit MX / nomx),
// the smart host, or an address literal (addrs already known).
type hop struct {
	name     string
	addrs    []netip.Addr
	implicit bool // the destination domain itself: its NXDOMAIN is the domain's
	// configured is a host from the channel's configuration (daemon,
	// lastresort): its DNS failing is the configuration's problem, not the
	// message's, so it defers and never bounces. The documentation is silent;
	// we chose this so a typo in the configuration cannot bounce mail.
	configured bool
}

// destination is one group of recipients: one transaction.
type destination struct {
	name  string // the domain, or the smart host
	rcpts []int  // indexes into Message.Rcpts
}

// destinations groups m's recipients by destination domain, in the order the
// domains first appear; with a smart host every recipient goes to it in one
// group.
func (s *SMTP) destinations(m *Message) []destination {
	if s.opts.Daemon != "" {
		idx := make([]int, len(m.Rcpts))
		for i := range idx {
			idx[i] = i
		}
		return []destination{{name: s.opts.Daemon, rcpts: idx}}
	}
	var dests []destination
	index := map[string]int{} // domain -> its place in dests
	for i, r := range m.Rcpts {
		d := strings.ToLower(strings.TrimSuffix(r.Host, "."))
		if d == "" {
			if at := strings.LastIndexByte(r.Addr, '@'); at >= 0 {
				d = strings.ToLower(r.Addr[at+1:])
			}
		}
		k, ok := index[d]
		if !ok {
			k = len(dests)
			index[d] = k
			dests = append(dests, destination{name: d})
		}
		dests[k].rcpts = append(dests[k].rcpts, i)
	}
	return dests
}

// route turns a destination into the ordered hosts to try (RFC 5321 §5.1).
func (s *SMTP) route(ctx context.Context, dest string) ([]hop, *status.Status) {
	if s.opts.Network == "unix" {
		return []hop{{name: dest}}, nil
	}
	if a, ok := parseLiteral(dest); ok {
		return []hop{{name: dest, addrs: []netip.Addr{a}}}, nil
	}
	if strings.HasPrefix(dest, "[") {
		return nil, status.New(553, "5.1.2", "bad address literal %s", dest)
	}
	if s.opts.Daemon != "" {
		return s.withLastResort([]hop{{name: strings.ToLower(dest), configured: true}}), nil
	}
	if s.opts.MX == MXNone {
		return s.withLastResort([]hop{{name: dest, implicit: true}}), nil
	}
	if s.opts.Resolver == nil {
		return nil, status.New(451, "4.3.5", "no resolver configured to look up MX of %s", dest)
	}
	mxs, err := s.opts.Resolver.LookupMX(ctx, dest)
	if err != nil {
		if dnsx.IsNotFound(err) {
			return nil, status.New(550, "5.1.2", "domain %s does not exist: %v", dest, err)
		}
		return nil, status.New(451, "4.4.3", "MX lookup for %s failed: %v", dest, err)
	}
	if len(mxs) == 0 {
		// RFC 5321 §5.1: no MX, the domain itself is the implicit MX.
		return s.withLastResort([]hop{{name: dest, implicit: true}}), nil
	}
	var real []dnsx.MX
	for _, mx := range mxs {
		if mx.Host != "" {
			real = append(real, mx)
		}
	}
	if len(real) == 0 {
		// RFC 7505 §3: a null MX says the domain accepts no mail.
		return nil, status.New(556, "5.1.10", "domain %s does not accept mail (null MX)", dest)
	}
	slices.SortStableFunc(real, func(a, b dnsx.MX) int { return cmp.Compare(a.Pref, b.Pref) })
	if s.opts.MX == MXRandom {
		shuffleEqualPreferences(real)
	}
	var hops []hop
	seen := map[string]bool{}
	for _, mx := range real {
		if !seen[mx.Host] {
			seen[mx.Host] = true
			hops = append(hops, hop{name: mx.Host})
		}
	}
	return s.withLastResort(hops), nil
}

// shuffleEqualPreferences shuffles each run of MX records of one preference in
// mxs, which is sorted by preference (randommx).
func shuffleEqualPreferences(mxs []dnsx.MX) {
	for i := 0; i < len(mxs); {
		j := i
		for j < len(mxs) && mxs[j].Pref == mxs[i].Pref {
			j++
		}
		grp := mxs[i:j]
		rand.Shuffle(len(grp), func(a, b int) { grp[a], grp[b] = grp[b], grp[a] })
		i = j
	}
}

func (s *SMTP) withLastResort(h []hop) []hop {
	if s.opts.LastResort == "" {
		return h
	}
	lr := hop{name: strings.ToLower(s.opts.LastResort), configured: true}
	if a, ok := parseLiteral(lr.name); ok {
		lr.addrs = []netip.Addr{a}
	}
	return append(h, lr)
}

// parseLiteral reads "[1.2.3.4]" or "[IPv6:::1]".
func parseLiteral(s string) (netip.Addr, bool) {
	if len(s) < 3 || s[0] != '[' || s[len(s)-1] != ']' {
		return netip.Addr{}, false
	}
	in := s[1 : len(s)-1]
	if len(in) > 5 && strings.EqualFold(in[:5], "ipv6:") {
		in = in[5:]
	}
	a, err := netip.ParseAddr(in)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// dialTargets are the addresses to dial for h, in order: "ip:port", or the
// socket path for a Unix-domain LMTP server. A host that is not in DNS is
// permanent for the message, except the domain's own name or a configured host.
func (s *SMTP) dialTargets(ctx context.Context, h hop) ([]string, *status.Status) {
	if s.opts.Network == "unix" {
		return []string{h.name}, nil
	}
	addrs := h.addrs
	if addrs == nil {
		if s.opts.Resolver == nil {
			return nil, status.New(451, "4.3.5", "no resolver configured to look up %s", h.name)
		}
		var err error
		addrs, err = s.opts.Resolver.LookupHost(ctx, h.name)
		if err != nil {
			if dnsx.IsNotFound(err) {
				if h.configured {
					return nil, status.New(451, "4.4.4", "configured host %s not found: %v", h.name, err)
				}
				if h.implicit {
					return nil, status.New(550, "5.1.2", "host %s not found: %v", h.name, err)
				}
				return nil, status.New(550, "5.4.4", "MX host %s not found: %v", h.name, err)
			}
			return nil, status.New(451, "4.4.3", "address lookup for %s failed: %v", h.name, err)
		}
	}
	targets := make([]string, 0, len(addrs))
	for _, a := range addrs {
		targets = append(targets, netip.AddrPortFrom(a, uint16(s.opts.Port)).String())
	}
	return targets, nil
}
