package channels

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"mtad.dev/mta/dnsx"
	"mtad.dev/mta/mailaddr"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/status"
)

// SMTP is the SMTP client channel program (tcp_* channels' master). It keeps a
// cache of idle connections per destination host; it is safe for concurrent use
// and must be closed with Close.
type SMTP struct {
	opts  SMTPOptions
	to    Timeouts
	log   *slog.Logger
	proto string // "smtp" or "lmtp", prefix of Result.Reply

	mu     sync.Mutex
	pools  map[string]*hostPool
	closed bool
}

var _ Program = (*SMTP)(nil)

// NewSMTP returns an SMTP client channel.
func NewSMTP(opts SMTPOptions) *SMTP {
	if opts.Port == 0 {
		opts.Port = 25
	}
	if opts.HeloName == "" {
		opts.HeloName = "localhost"
	}
	if opts.MaxConnsPerHost <= 0 {
		opts.MaxConnsPerHost = 10
	}
	if opts.MaxIdlePerHost == 0 {
		opts.MaxIdlePerHost = opts.MaxConnsPerHost
	}
	if opts.MaxMessagesPerConn <= 0 {
		opts.MaxMessagesPerConn = 100
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 30 * time.Second
	}
	if opts.Network == "" {
		opts.Network = "tcp"
	}
	s := &SMTP{opts: opts, to: opts.Timeouts.withDefaults(), log: opts.Logger, proto: "smtp", pools: map[string]*hostPool{}}
	if opts.LMTP {
		s.proto = "lmtp"
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// NewLMTP returns an LMTP client channel: opts.Daemon is the server ("host",
// "[ip]", or with Network "unix" a socket path).
func NewLMTP(opts SMTPOptions) *SMTP {
	opts.LMTP = true
	return NewSMTP(opts)
}

// Close sends QUIT on every cached connection and closes it. Deliver may not be
// called after Close.
func (s *SMTP) Close() error {
	s.mu.Lock()
	s.closed = true
	pools := s.pools
	s.pools = map[string]*hostPool{}
	s.mu.Unlock()
	for _, p := range pools {
		p.closeIdle()
	}
	return nil
}

// DropIdle closes the cached idle connections (the program stays usable): the next
// deliveries open fresh connections, which `qm run` needs to show their dialogue.
func (s *SMTP) DropIdle() {
	s.mu.Lock()
	pools := make([]*hostPool, 0, len(s.pools))
	for _, p := range s.pools {
		pools = append(pools, p)
	}
	s.mu.Unlock()
	for _, p := range pools {
		p.dropIdle()
	}
}

// Deliver implements Program. Recipients are grouped by destination (all of
// them when Daemon is set); each group is one transaction on one connection.
func (s *SMTP) Deliver(ctx context.Context, m *Message) []Result {
	out := make([]Result, len(m.Rcpts))
	if s.opts.Daemon != "" {
		idx := make([]int, len(m.Rcpts))
		for i := range idx {
			idx[i] = i
		}
		s.deliverGroup(ctx, m, s.opts.Daemon, idx, out)
		return out
	}
	var order []string
	groups := map[string][]int{}
	for i, r := range m.Rcpts {
		d := strings.ToLower(strings.TrimSuffix(r.Host, "."))
		if d == "" {
			if at := strings.LastIndexByte(r.Addr, '@'); at >= 0 {
				d = strings.ToLower(r.Addr[at+1:])
			}
		}
		if _, ok := groups[d]; !ok {
			order = append(order, d)
		}
		groups[d] = append(groups[d], i)
	}
	for _, d := range order {
		s.deliverGroup(ctx, m, d, groups[d], out)
	}
	return out
}

// hop is one host to try: an MX host, the domain itself (implicit MX / nomx),
// the smart host, or an address literal (addrs already known).
type hop struct {
	name     string
	addrs    []netip.Addr
	implicit bool // the destination domain itself: its NXDOMAIN is the domain's
	// configured is a host from the channel's configuration (daemon,
	// lastresort): its DNS failing is the configuration's problem, not the
	// message's, so it defers and never bounces [inf].
	configured bool
}

func (s *SMTP) deliverGroup(ctx context.Context, m *Message, dest string, idx []int, out []Result) {
	fail := func(st *status.Status) {
		for _, i := range idx {
			out[i] = Result{Err: st, Reply: s.proto + ";" + st.Error()}
		}
	}
	if dest == "" {
		fail(status.New(550, "5.1.2", "recipient has no domain"))
		return
	}
	hops, st := s.route(ctx, dest)
	if st != nil {
		fail(st)
		return
	}
	pending := idx
	var lastErr, lastTemp *status.Status
	note := func(st *status.Status) {
		if st == nil {
			return
		}
		lastErr = st
		if st.Temporary() {
			lastTemp = st
		}
	}
	for _, h := range hops {
		if len(pending) == 0 {
			return
		}
		if err := ctx.Err(); err != nil {
			note(status.New(451, "4.4.7", "delivery cancelled: %v", err))
			break
		}
		next, st := s.tryHop(ctx, m, h, pending, out)
		if !next {
			return
		}
		note(st)
		pending = stillPending(pending, out)
	}
	if len(pending) == 0 {
		return
	}
	if lastTemp != nil {
		// Some host failed only temporarily: it may work later, so no bounce,
		// and its reason is the one worth reporting.
		lastErr = lastTemp
	}
	if lastErr == nil {
		lastErr = status.New(451, "4.4.4", "no host to deliver to for %s", dest)
	}
	for _, i := range pending {
		out[i] = Result{Err: lastErr, Remote: out[i].Remote, Reply: s.proto + ";" + lastErr.Error()}
	}
}

// stillPending drops the recipients that got a definitive answer (a 5xx RCPT
// before a later connection failure): they keep it; the rest go on.
func stillPending(pending []int, out []Result) []int {
	var still []int
	for _, i := range pending {
		if out[i].Err == nil || out[i].Err.Temporary() {
			still = append(still, i)
		}
	}
	return still
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
		for i := 0; i < len(real); {
			j := i
			for j < len(real) && real[j].Pref == real[i].Pref {
				j++
			}
			grp := real[i:j]
			rand.Shuffle(len(grp), func(a, b int) { grp[a], grp[b] = grp[b], grp[a] })
			i = j
		}
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

// tryHop delivers to pending recipients through host h: a cached connection
// when one is alive, else each of h's addresses in turn. next reports that no
// transaction reached a definitive outcome, so the caller should try the next
// host; st is then the reason.
func (s *SMTP) tryHop(ctx context.Context, m *Message, h hop, pending []int, out []Result) (next bool, st *status.Status) {
	pool := s.pool(h.name)
	for {
		c, err := pool.get(ctx)
		if err != nil {
			return true, status.New(451, "4.4.7", "waiting for a connection to %s: %v", h.name, err)
		}
		if c == nil {
			break // we hold a slot: dial
		}
		// Seed 000: a cached connection may have died while idle. Check it with
		// RSET, and on any doubt drop it and go on: it must never fail the
		// message. With PIPELINING the RSET goes in the same write as MAIL and
		// RCPT (RFC 2920 §3.1 allows it), saving a round trip; transact then
		// reports a failed check as staleConn.
		if c.has("PIPELINING") {
			c.checkPending = true
		} else if err := c.rset(ctx, s.to.Rset); err != nil {
			s.log.Debug("cached connection failed RSET, reconnecting", "host", h.name, "remote", c.remote, "err", err)
			pool.discard(c)
			continue
		}
		res := s.transact(ctx, c, m, pending, out)
		if res.staleConn {
			// It died between RSET and the first reply: as good as stale.
			pool.discard(c)
			continue
		}
		s.finish(pool, c, res)
		return res.next, res.st
	}

	// We hold a connection slot; release it unless a connection keeps it.
	kept := false
	defer func() {
		if !kept {
			pool.release()
		}
	}()
	addrs := h.addrs
	if addrs == nil && s.opts.Network != "unix" {
		if s.opts.Resolver == nil {
			return true, status.New(451, "4.3.5", "no resolver configured to look up %s", h.name)
		}
		var err error
		addrs, err = s.opts.Resolver.LookupHost(ctx, h.name)
		if err != nil {
			if dnsx.IsNotFound(err) {
				if h.configured {
					return true, status.New(451, "4.4.4", "configured host %s not found: %v", h.name, err)
				}
				if h.implicit {
					return true, status.New(550, "5.1.2", "host %s not found: %v", h.name, err)
				}
				return true, status.New(550, "5.4.4", "MX host %s not found: %v", h.name, err)
			}
			return true, status.New(451, "4.4.3", "address lookup for %s failed: %v", h.name, err)
		}
	}
	targets := make([]string, 0, len(addrs))
	if s.opts.Network == "unix" {
		targets = append(targets, h.name)
	}
	for _, a := range addrs {
		targets = append(targets, netip.AddrPortFrom(a, uint16(s.opts.Port)).String())
	}
	var last *status.Status
	for _, t := range targets {
		c, st := s.open(ctx, h.name, t)
		if st != nil {
			s.log.Info("connection failed", "msg", m.ID, "host", h.name, "addr", t, "err", st)
			last = st
			for _, i := range pending {
				out[i] = Result{Err: st, Remote: h.name, Reply: s.proto + ";" + st.Error()}
			}
			continue
		}
		res := s.transact(ctx, c, m, pending, out)
		kept = true
		s.finish(pool, c, res)
		if !res.next {
			return false, nil
		}
		last = res.st
		if pending = stillPending(pending, out); len(pending) == 0 {
			return false, nil
		}
		if pool.acquireNow() {
			kept = false
			continue
		}
		// Our connections to this host are all busy: leave the rest for the
		// next host rather than wait.
		return true, last
	}
	if last == nil {
		last = status.New(451, "4.4.4", "host %s has no address", h.name)
	}
	return true, last
}

// finish returns a connection to the cache or closes it.
func (s *SMTP) finish(pool *hostPool, c *smtpConn, res txResult) {
	if res.broken || c.msgs >= s.opts.MaxMessagesPerConn || s.opts.MaxIdlePerHost < 0 {
		if !res.broken {
			c.quit(s.to.Quit)
		}
		pool.discard(c)
		return
	}
	pool.put(c)
}

func (s *SMTP) pool(name string) *hostPool {
	key := name + "|" + strconv.Itoa(s.opts.Port)
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pools[key]
	if p == nil {
		p = newHostPool(s.opts.MaxConnsPerHost, s.opts.MaxIdlePerHost, s.opts.IdleTimeout, s.to.Quit)
		if s.closed {
			p.maxIdle = -1
		}
		s.pools[key] = p
	}
	return p
}

// open connects to addr, reads the greeting, says EHLO (or HELO) and, as the
// TLS policy says, STARTTLS and EHLO again. Under TLSMay a failed handshake
// costs the connection (its state is unknown), so addr is dialled once more
// for a plaintext session that does not try STARTTLS; the reason stays on the
// connection for Result.Reply.
func (s *SMTP) open(ctx context.Context, host, addr string) (*smtpConn, *status.Status) {
	c, st, tlsFailed := s.session(ctx, host, addr, s.opts.TLS != TLSNone)
	if tlsFailed == nil {
		return c, st
	}
	note := tlsFailed.Error()
	s.log.Warn("TLS failed, retrying in plaintext", "host", host, "addr", addr, "err", note)
	c, st, _ = s.session(ctx, host, addr, false)
	if c != nil {
		c.tlsNote = note
	}
	return c, st
}

// session is open's one attempt. tlsFailed is set, with c and st nil, when
// tryTLS, the policy is TLSMay and the handshake failed: the caller may retry
// without TLS.
func (s *SMTP) session(ctx context.Context, host, addr string, tryTLS bool) (_ *smtpConn, _ *status.Status, tlsFailed error) {
	dctx, cancel := context.WithTimeout(ctx, s.to.Connect)
	defer cancel()
	var nc net.Conn
	var err error
	switch {
	case s.opts.Dial != nil:
		nc, err = s.opts.Dial(dctx, s.opts.Network, addr)
	default:
		d := net.Dialer{}
		if s.opts.LocalAddr.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: s.opts.LocalAddr.AsSlice()}
		}
		nc, err = d.DialContext(dctx, s.opts.Network, addr)
	}
	if err != nil {
		s.connFailed(host, s.opts.Network, addr, err)
		if errors.Is(err, context.DeadlineExceeded) {
			if ctx.Err() == nil {
				// Our Connect limit, not the caller's deadline: say which.
				return nil, status.New(451, "4.4.2", "%s: timeout connecting to %s after %v", host, addr, s.to.Connect), nil
			}
			return nil, status.New(451, "4.4.2", "connect to %s (%s): %v", host, addr, err), nil
		}
		return nil, status.New(451, "4.4.1", "connect to %s (%s): %v", host, addr, err), nil
	}
	c := newSMTPConn(nc, host)
	c.ended = s.connClosed
	s.connOpened(c)
	fail := func(stage string, err error) (*smtpConn, *status.Status, error) {
		st := ioStatus(host, stage, err)
		c.close()
		return nil, st, nil
	}
	// refuse ends a session this host cannot serve under the policy.
	refuse := func(st *status.Status) (*smtpConn, *status.Status, error) {
		c.quit(s.to.Quit)
		c.close()
		return nil, st, nil
	}
	stop := c.watch(ctx)
	defer stop()
	rep, err := c.read(s.to.Greeting)
	if err != nil {
		return fail("greeting", err)
	}
	if rep.Code != 220 {
		// 421 or 554 at the greeting: this host will not talk to us now; the
		// next one may (RFC 5321 §3.1). Never permanent for the message.
		c.quit(s.to.Quit)
		c.close()
		st := rep.Status()
		if !st.Temporary() {
			st = &status.Status{Code: 451, Enhanced: "4.4.2", Text: fmt.Sprintf("%s greeting: %s", host, rep)}
		}
		return nil, st, nil
	}
	hello := "EHLO"
	if s.opts.LMTP {
		hello = "LHLO"
	}
	rep, err = c.cmd(s.to.Ehlo, hello+" "+s.opts.HeloName)
	if err != nil {
		return fail(hello, err)
	}
	switch {
	case rep.Code == 250:
		c.parseExt(rep)
	case !s.opts.LMTP && rep.Code >= 500 && rep.Code != 554:
		// An old server without ESMTP (RFC 5321 §3.2).
		rep, err = c.cmd(s.to.Ehlo, "HELO "+s.opts.HeloName)
		if err != nil {
			return fail("HELO", err)
		}
		if rep.Code != 250 {
			return refuse(tempOf(rep, host, "HELO"))
		}
	default:
		return refuse(tempOf(rep, host, hello))
	}
	if !tryTLS {
		return c, nil, nil
	}
	if !c.has("STARTTLS") {
		if s.opts.TLS == TLSMust {
			return refuse(tlsRequired("not offered by %s", host))
		}
		return c, nil, nil
	}
	refused, err := s.starttls(ctx, c, hello)
	c.tlsStarted()
	switch {
	case refused != nil && s.opts.TLS == TLSMust:
		return refuse(tlsRequired("STARTTLS refused by %s: %s", host, refused))
	case refused != nil:
		// RFC 3207 §4: the session goes on in plaintext, as if never offered
		// — but the refusal is worth a word in the log.
		c.tlsNote = "STARTTLS refused: " + refused.String()
		return c, nil, nil
	case err != nil && s.opts.TLS == TLSMust:
		c.close()
		return nil, tlsRequired("TLS with %s failed: %v", host, err), nil
	case err != nil:
		c.close()
		return nil, nil, err
	}
	return c, nil, nil
}

// sevenBit returns m with 7-bit content for a server that did not offer 8BITMIME.
// What cannot be converted (raw 8-bit headers, message/partial ...) is sent as it
// is [inf], unless the channel is eightstrict: then the message is returned with
// 5.6.3, since sending it would violate the server's stated limits.
func (s *SMTP) sevenBit(m *Message, host string) (*Message, *status.Status) {
	out, size, changed, err := SevenBitAt(m.Content, m.Size)
	var sbe *SevenBitError
	if err != nil && !errors.As(err, &sbe) {
		return nil, status.New(451, "4.3.0", "reading the message for 7-bit conversion: %v", err)
	}
	if sbe != nil && s.opts.EightStrict {
		return nil, sbe.Status(host)
	}
	if !changed {
		return m, nil
	}
	conv := *m
	conv.Content, conv.Size, conv.EightBit = out, size, false
	return &conv, nil
}

// tempOf turns a session-level refusal into a temporary status: a host refusing
// our session says nothing final about the message.
func tempOf(rep Reply, host, stage string) *status.Status {
	st := rep.Status()
	if st.Temporary() {
		return st
	}
	return &status.Status{Code: 451, Enhanced: "4.4.2", Text: fmt.Sprintf("%s %s: %s", host, stage, rep)}
}

func ioStatus(host, stage string, err error) *status.Status {
	var ne net.Error
	code := "4.4.2"
	if errors.As(err, &ne) && ne.Timeout() {
		if stage == "DATA content" {
			// A write that made no progress: the server stopped reading.
			return status.New(451, code, "%s: timeout sending DATA content", host)
		}
		return status.New(451, code, "%s: timeout waiting for %s reply", host, stage)
	}
	if errors.Is(err, errProtocol) {
		code = "4.5.0"
	}
	return status.New(451, code, "%s: connection lost at %s: %v", host, stage, err)
}

// txResult is how one transaction ended.
type txResult struct {
	next      bool           // no definitive outcome: try another host
	st        *status.Status // why, when next
	broken    bool           // the connection is unusable
	staleConn bool           // broken before the server answered anything: retry on a fresh one
}

// transact runs one mail transaction for rcpts on c and fills out.
func (s *SMTP) transact(ctx context.Context, c *smtpConn, m *Message, rcpts []int, out []Result) txResult {
	stop := c.watch(ctx)
	defer stop()
	remote := c.remote
	tag := c.tlsTag()
	set := func(i int, st *status.Status, rep string) {
		out[i] = Result{Err: st, Remote: remote, Reply: s.proto + ";" + rep + tag}
	}
	setAll := func(idx []int, st *status.Status) {
		for _, i := range idx {
			set(i, st, st.Error())
		}
	}
	// connFail marks every recipient of the transaction temporary, except those
	// that already got a definitive (5xx) RCPT reply.
	connFail := func(st *status.Status, answered bool) txResult {
		for _, i := range rcpts {
			if out[i].Remote == remote && out[i].Err != nil && !out[i].Err.Temporary() {
				continue
			}
			set(i, st, st.Error())
		}
		return txResult{next: true, st: st, broken: true, staleConn: c.reused && !answered}
	}

	if max := c.sizeLimit(); max > 0 && m.Size > max {
		st := status.New(552, "5.3.4", "message size %d exceeds %s's limit %d", m.Size, c.host, max)
		setAll(rcpts, st)
		return txResult{}
	}
	// RFC 6152: a server without 8BITMIME gets a 7-bit rendering of the content (only
	// the parts that need it are re-encoded); the sevenbit keyword asks for it always.
	if s.opts.SevenBit || !c.has("8BITMIME") {
		conv, st := s.sevenBit(m, c.host)
		if st != nil {
			setAll(rcpts, st)
			return txResult{}
		}
		m = conv
	}
	utf8 := m.SMTPUTF8 && c.has("SMTPUTF8")
	if m.SMTPUTF8 && !utf8 && !envelopeASCII(m, rcpts) {
		// RFC 6531 §3.2: without the extension a UTF-8 envelope cannot be sent.
		st := status.New(553, "5.6.7", "%s does not support SMTPUTF8", c.host)
		setAll(rcpts, st)
		return txResult{}
	}

	var mail strings.Builder
	mail.WriteString("MAIL FROM:<" + mailaddr.Quote(m.From) + ">")
	if c.has("SIZE") {
		fmt.Fprintf(&mail, " SIZE=%d", m.Size)
	}
	if m.EightBit && c.has("8BITMIME") {
		mail.WriteString(" BODY=8BITMIME")
	}
	if utf8 {
		mail.WriteString(" SMTPUTF8")
	}
	dsn := c.has("DSN")
	if dsn {
		if m.RET != "" {
			mail.WriteString(" RET=" + strings.ToUpper(m.RET))
		}
		if m.EnvID != "" {
			mail.WriteString(" ENVID=" + xtext(m.EnvID))
		}
	}
	lines := []string{mail.String()}
	for _, i := range rcpts {
		r := m.Rcpts[i]
		l := "RCPT TO:<" + mailaddr.Quote(r.Addr) + ">"
		if dsn {
			if r.Notify != "" {
				l += " NOTIFY=" + strings.ToUpper(r.Notify)
			}
			if typ, addr, ok := strings.Cut(r.ORCPT, ";"); ok && addr != "" {
				l += " ORCPT=" + typ + ";" + xtext(addr)
			}
		}
		lines = append(lines, l)
	}

	// MAIL and RCPTs: one write with PIPELINING (RFC 2920), else lock-step.
	pipelined := c.has("PIPELINING")
	if pipelined {
		check := c.checkPending
		c.checkPending = false
		if check {
			c.w.WriteString("RSET\r\n")
		}
		for _, l := range lines {
			c.w.WriteString(l)
			c.w.WriteString("\r\n")
		}
		// DATA ends the group (RFC 2920 §3.1: it may be the last command of one):
		// one write and one round trip fewer per message. If no recipient is
		// accepted the server refuses DATA (503/554), read below.
		c.w.WriteString("DATA\r\n")
		c.dc.wr = s.to.Mail
		if err := c.w.Flush(); err != nil {
			return connFail(ioStatus(c.host, "MAIL", err), false)
		}
		if check {
			rep, err := c.read(s.to.Rset)
			if err == nil && rep.Code != 250 {
				err = fmt.Errorf("RSET answered %s", rep)
			}
			if err != nil {
				return connFail(ioStatus(c.host, "RSET", err), false)
			}
		}
	}
	var accepted []int
	mailOK := false
	for n, l := range lines {
		timeout := s.to.Rcpt
		if n == 0 {
			timeout = s.to.Mail
		}
		var rep Reply
		var err error
		if pipelined {
			rep, err = c.read(timeout)
		} else {
			rep, err = c.cmd(timeout, l)
		}
		if err != nil {
			stage := "MAIL"
			if n > 0 {
				stage = "RCPT"
			}
			return connFail(ioStatus(c.host, stage, err), n > 0)
		}
		if rep.Code == 421 {
			// A 421 to MAIL on a cached connection is the server's idle
			// timeout: stale, not the message's failure.
			return connFail(rep.Status(), n > 0)
		}
		if n == 0 {
			if rep.Code/100 == 2 {
				mailOK = true
				continue
			}
			setAll(rcpts, rep.Status())
			if !pipelined {
				break
			}
			continue // drain the RCPT replies (503s)
		}
		i := rcpts[n-1]
		if !mailOK {
			continue
		}
		if rep.Code/100 == 2 {
			accepted = append(accepted, i)
			continue
		}
		set(i, rep.Status(), rep.String())
	}
	var dataRep Reply
	if pipelined {
		var err error
		dataRep, err = c.read(s.to.DataInit)
		if err != nil {
			return connFail(ioStatus(c.host, "DATA", err), true)
		}
		if dataRep.Code == 354 && (!mailOK || len(accepted) == 0) {
			// A server that answers 354 with no valid recipient (RFC 2920 §3.1
			// says it must not): end the empty message, do not deliver it.
			rep, err := c.cmd(s.to.DataEnd, ".")
			if err != nil || rep.Code == 421 {
				return txResult{broken: true}
			}
		}
	}
	if !mailOK || len(accepted) == 0 {
		if err := c.rsetNow(s.to.Rset); err != nil {
			return txResult{broken: true}
		}
		c.msgs++
		if !mailOK && out[rcpts[0]].Err.Temporary() {
			// MAIL refused for now (4xx): another host may take it.
			return txResult{next: true, st: out[rcpts[0]].Err}
		}
		return txResult{}
	}

	rep := dataRep
	var err error
	if !pipelined {
		rep, err = c.cmd(s.to.DataInit, "DATA")
		if err != nil {
			return connFail(ioStatus(c.host, "DATA", err), true)
		}
	}
	if rep.Code == 421 {
		return connFail(rep.Status(), true)
	}
	if rep.Code != 354 {
		st := rep.Status()
		if rep.Code/100 == 2 {
			st = &status.Status{Code: 451, Enhanced: "4.5.0", Text: fmt.Sprintf("unexpected reply to DATA: %s", rep)}
		}
		for _, i := range accepted {
			set(i, st, rep.String())
		}
		if err := c.rsetNow(s.to.Rset); err != nil {
			return txResult{broken: true}
		}
		c.msgs++
		return txResult{}
	}

	// The content. From here on a failure means "maybe delivered": temporary
	// for every accepted recipient (a duplicate beats a loss), no other host.
	c.dc.wr = s.to.DataBlock
	dw := newDotWriter(c.w)
	if c.buf == nil {
		c.buf = make([]byte, 32*1024)
	}
	if n, err := io.CopyBuffer(dw, io.NewSectionReader(m.Content, 0, m.Size), c.buf); err != nil || n != m.Size {
		if err == nil {
			err = fmt.Errorf("content is %d bytes, expected %d", n, m.Size)
		}
		st := ioStatus(c.host, "DATA content", err)
		for _, i := range accepted {
			set(i, st, st.Error())
		}
		return txResult{broken: true}
	}
	err = dw.Close()
	if err == nil {
		err = c.w.Flush()
	}
	if err != nil {
		st := ioStatus(c.host, "DATA content", err)
		for _, i := range accepted {
			set(i, st, st.Error())
		}
		return txResult{broken: true}
	}
	c.msgs++
	if s.opts.LMTP {
		// RFC 2033 §4.2: one reply per accepted recipient, in order.
		for n, i := range accepted {
			rep, err := c.read(s.to.DataEnd)
			if err != nil {
				st := ioStatus(c.host, "end of DATA", err)
				for _, j := range accepted[n:] {
					set(j, st, st.Error())
				}
				return txResult{broken: true}
			}
			if rep.Code/100 == 2 {
				set(i, nil, rep.String())
			} else {
				set(i, rep.Status(), rep.String())
			}
		}
		return txResult{}
	}
	rep, err = c.read(s.to.DataEnd)
	if err != nil {
		st := ioStatus(c.host, "end of DATA", err)
		for _, i := range accepted {
			set(i, st, st.Error())
		}
		return txResult{broken: true}
	}
	var st *status.Status
	if rep.Code/100 != 2 {
		st = rep.Status()
	}
	for _, i := range accepted {
		set(i, st, rep.String())
	}
	return txResult{broken: rep.Code == 421}
}

func envelopeASCII(m *Message, rcpts []int) bool {
	if !isASCII(m.From) {
		return false
	}
	for _, i := range rcpts {
		if !isASCII(m.Rcpts[i].Addr) {
			return false
		}
	}
	return true
}

// smtpConn is one client connection.
type smtpConn struct {
	nc     net.Conn
	dc     *deadlineConn
	r      *bufio.Reader
	w      *bufio.Writer
	host   string            // the host name we connected to (MX, daemon, literal)
	remote string            // "host (TCP|lip|lport|rip|rport)" for Result.Remote
	ext    map[string]string // EHLO keywords (upper case) and their parameters
	msgs   int               // transactions started on this connection
	reused bool              // came from the cache for the current transaction
	// checkPending asks transact to pipeline the reuse check (RSET) in front
	// of MAIL.
	checkPending bool
	buf          []byte // copy buffer, reused across this connection's messages
	// tls is the handshake's outcome once STARTTLS succeeded; the connection
	// keeps it in the cache, so reuse stays TLS.
	tls *tls.ConnectionState
	// tlsNote says why a connection to a server offering STARTTLS is plaintext
	// (TLSMay: refused, or the handshake failed on an earlier connection).
	tlsNote string

	// connection records and master_debug (smtplog.go)
	ended     func(*smtpConn) // called once by close; nil: nothing to record
	closeOnce sync.Once
	quitSent  bool
	logConn   bool
	transport string
	dbg       *maillog.DebugLog
}

func newSMTPConn(nc net.Conn, host string) *smtpConn {
	dc := &deadlineConn{Conn: nc}
	c := &smtpConn{
		nc:   nc,
		dc:   dc,
		r:    bufio.NewReaderSize(dc, 4096),
		w:    bufio.NewWriterSize(dc, 32*1024),
		host: host,
	}
	c.remote = host + " (" + describeConn(nc) + ")"
	return c
}

func describeConn(nc net.Conn) string {
	l, r := nc.LocalAddr(), nc.RemoteAddr()
	if r == nil || r.Network() == "unix" {
		name := ""
		if r != nil {
			name = r.String()
		}
		return "UNIX|" + name
	}
	split := func(a net.Addr) (string, string) {
		if a == nil {
			return "", ""
		}
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return ap.Addr().Unmap().String(), strconv.Itoa(int(ap.Port()))
		}
		h, p, _ := net.SplitHostPort(a.String())
		return h, p
	}
	lh, lp := split(l)
	rh, rp := split(r)
	return "TCP|" + lh + "|" + lp + "|" + rh + "|" + rp
}

// watch makes ctx's cancellation interrupt blocked I/O on c. Call the result
// when done.
func (c *smtpConn) watch(ctx context.Context) func() {
	if ctx.Done() == nil {
		return func() {}
	}
	c.dc.ctx = ctx
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Now()) })
	return func() {
		stop()
		c.dc.ctx = nil
	}
}

func (c *smtpConn) read(timeout time.Duration) (Reply, error) {
	c.dc.rd = timeout
	return ReadReply(c.r)
}

func (c *smtpConn) cmd(timeout time.Duration, line string) (Reply, error) {
	c.dc.wr = timeout
	c.w.WriteString(line)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return Reply{}, err
	}
	return c.read(timeout)
}

// rset checks a cached connection before reuse.
func (c *smtpConn) rset(ctx context.Context, timeout time.Duration) error {
	stop := c.watch(ctx)
	defer stop()
	return c.rsetNow(timeout)
}

func (c *smtpConn) rsetNow(timeout time.Duration) error {
	rep, err := c.cmd(timeout, "RSET")
	if err != nil {
		return err
	}
	if rep.Code != 250 {
		return fmt.Errorf("RSET answered %s", rep)
	}
	return nil
}

func (c *smtpConn) quit(timeout time.Duration) {
	c.dc.ctx = nil
	c.quitSent = true
	if _, err := c.cmd(timeout, "QUIT"); err != nil {
		return
	}
}

func (c *smtpConn) close() {
	c.closeOnce.Do(func() {
		c.nc.Close()
		if c.ended != nil {
			c.ended(c)
		}
	})
}

func (c *smtpConn) parseExt(rep Reply) {
	c.ext = map[string]string{}
	for _, l := range rep.Lines[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
		c.ext[strings.ToUpper(k)] = v
	}
}

func (c *smtpConn) has(ext string) bool {
	_, ok := c.ext[ext]
	return ok
}

func (c *smtpConn) sizeLimit() int64 {
	v, ok := c.ext["SIZE"]
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}
