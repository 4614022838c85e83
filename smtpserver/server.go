package smtpserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mtad.dev/mta/auth"
	"mtad.dev/mta/intake"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/mappings"
	"mtad.dev/mta/metrics"
)

// Config configures a Server.
type Config struct {
	// Policy returns the current policy snapshot; it must never return nil once
	// serving (a nil policy makes connections answer 421).
	Policy func() *Policy
	Queue  Enqueuer
	Log    *maillog.Logger // mail.log; nil writes nothing
	TLS    *tls.Config     // nil: no STARTTLS
	// TLSOffered, when set, decides per session whether STARTTLS is offered (TLS
	// must be set too): the daemon turns STARTTLS on or off at a reload when a
	// certificate is added to or removed from the configuration. nil: offered
	// whenever TLS is set.
	TLSOffered func() bool

	MaxConns      int // simultaneous connections (MAX_PROCS*MAX_CONNS); 0: DefaultMaxConns
	MaxConnsPerIP int // simultaneous connections from one client IP; 0: DefaultMaxConnsPerIP
	// PerIPExempt lists client networks the per-IP cap does not apply to, the way
	// Postfix exempts $mynetworks: a trusted relay client or a local load generator
	// opens many sessions at once and reconnects before our side has counted the
	// previous close. mtad exempts loopback.
	PerIPExempt []netip.Prefix

	// Auth verifies SMTP AUTH passwords (*auth.Store). nil: AUTH is not offered on
	// any channel, whatever its SASL keyword.
	Auth Authenticator
	// AuthLimiter counts failed AUTHs per client address across connections; an
	// address over its limit is answered 454 4.7.0 without its password being
	// checked. nil: no per-address limit (the per-connection one still applies).
	AuthLimiter *auth.Limiter

	// Metrics receives the SMTP hook metrics (sessions, messages, rejections,
	// Enqueue's wait, rewrite time); nil: none, at the cost of a nil check.
	Metrics *metrics.Hooks
	// DebugDir is where slave_debug transcripts go (DATA/log):
	// <channel>_slave.log-<session id>. "": no transcripts, whatever the channels say.
	DebugDir string

	Logger *slog.Logger // diagnostics; nil discards
}

// Server is the SMTP service. Serve may be called for several listeners.
type Server struct {
	cfg Config
	log *slog.Logger

	intake *intake.Intake // accepts the messages of every session

	closing  atomic.Bool
	sessions sync.WaitGroup // connection goroutines; Add under mu while !closing
	dataBufs sync.Pool      // *bytes.Buffer for DATA (getDataBuf)
	readers  sync.Pool      // *bufio.Reader of readBufSize (getReader)

	// baseCtx bounds Enqueue; cancelled when Shutdown gives up waiting.
	baseCtx context.Context
	cancel  context.CancelFunc

	mu        sync.Mutex // guards the fields below
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	perIP     map[netip.Addr]int
	nconns    int
	// byListener counts admitted sessions by the address of the listener that
	// accepted them (mtactl process); nconns also counts connections still being
	// admitted or refused.
	byListener map[string]int
}

// New builds a Server; nothing listens until Serve.
func New(cfg Config) *Server {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxConnsPerIP <= 0 {
		cfg.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:        cfg,
		log:        lg,
		listeners:  make(map[net.Listener]struct{}),
		conns:      make(map[*conn]struct{}),
		perIP:      make(map[netip.Addr]int),
		byListener: make(map[string]int),
	}
	s.intake = &intake.Intake{Queue: cfg.Queue, MailLog: cfg.Log, Log: lg, Metrics: cfg.Metrics}
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Serve accepts connections on l until ctx is cancelled, l fails or Shutdown is
// called. It returns nil after Shutdown, ctx.Err() after cancellation.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()

	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()

	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("smtpserver: accept on %s: %w", l.Addr(), err)
			}
			// EMFILE and the like pass; the listener must survive them.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "listener", l.Addr(), "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		delay = 0
		go s.admitOn(c, l.Addr().String())
	}
}

// admit is admitOn for a connection no listener accepted (a pipe in tests): its
// session is counted under the listener address "".
func (s *Server) admit(c net.Conn) { s.admitOn(c, "") }

// admitOn runs the dispatcher's checks on a connection accepted by the listener at
// address lis (caps, PORT_ACCESS), then serves it on this goroutine.
func (s *Server) admitOn(nc net.Conn, lis string) {
	var c *conn
	defer func() {
		// A panic in admission (the session has its own: conn.recoverPanic) must
		// not take the server down.
		if r := recover(); r != nil {
			s.log.Error("panic admitting connection", "remote", nc.RemoteAddr(), "panic", r, "stack", string(debug.Stack()))
			if c != nil {
				c.Close()
			} else {
				nc.Close()
			}
		}
	}()
	pol := s.policy()
	remote := addrPort(nc.RemoteAddr())
	local := addrPort(nc.LocalAddr())

	if pol == nil {
		rejectRaw(nc, "421 4.3.0 Service not available, configuration not loaded")
		return
	}
	if msg := s.acquire(remote.Addr(), pol); msg != "" {
		if !s.closing.Load() {
			s.cfg.Metrics.Rejection("connection_limit")
			s.logRefused(pol, local, remote, msg)
		}
		rejectRaw(nc, msg)
		return
	}
	defer s.sessions.Done()
	c = newConn(s, nc, pol, local, remote)
	c.listener = lis
	// PORT_ACCESS, before the banner: $N/$F text goes down the socket raw with
	// CRLF appended, then the connection is closed.
	if t := pol.tables(); t != nil {
		if a, ok := t.Access("PORT_ACCESS", c.portProbe, 0); ok && a.Reject {
			s.log.Info("PORT_ACCESS rejected", "conn", c.id, "probe", c.portProbe, "entry", a.Src)
			s.cfg.Metrics.Rejection("port_access")
			s.logRefused(pol, local, remote, strings.TrimSpace("PORT_ACCESS "+a.Text))
			if a.Text != "" {
				c.writeRaw(a.Text + "\r\n")
			}
			c.Close()
			return
		}
	}
	c.src = s.sourceChannel(pol, remote.Addr())
	c.opened(pol)
	c.serve()
}

// logRefused writes the X record of a connection refused before the banner
// (LOG_CONNECTION bit 2). Its channel is the default source channel: switchchannel
// has not been applied to a connection we do not serve.
func (s *Server) logRefused(pol *Policy, local, remote netip.AddrPort, why string) {
	if pol.LogConnection&LogConnRecords == 0 {
		return
	}
	s.cfg.Log.LogConn(maillog.ConnRecord{
		Channel: pol.DefaultSource, Code: maillog.CodeConnRefused, Transport: portProbe(local, remote), Diag: why,
	})
}

// sourceChannel applies switchchannel: the client IP literal is rewritten with the
// rules and, when it routes to a channel that allows being switched to, that
// channel becomes the session's source. The product's documentation does not say
// which address the literal is rewritten as; we rewrite "postmaster@[IP]" as an
// envelope To address from the initial channel, so ordinary rules for "[IP]" apply.
func (s *Server) sourceChannel(pol *Policy, ip netip.Addr) string {
	src := pol.DefaultSource
	cp, ok := pol.Channels[src]
	if !ok || !cp.SwitchChannel || cp.NoSwitchChannel || !ip.IsValid() {
		return src
	}
	r := pol.rules()
	if r == nil {
		return src
	}
	res := r.Rewrite(engineRequestLiteral(ip, src))
	if res.Err != nil || res.Channel == "" || res.Channel == src {
		return src
	}
	if to, ok := pol.Channels[res.Channel]; ok && to.AllowSwitchChannel && !to.NoSwitchChannel {
		return res.Channel
	}
	return src
}

func (s *Server) policy() *Policy {
	if s.cfg.Policy == nil {
		return nil
	}
	return s.cfg.Policy()
}

// acquire counts a connection against the caps and in Server.sessions; it
// returns the refusal line, or "". A server shutting down takes no new session.
func (s *Server) acquire(ip netip.Addr, pol *Policy) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		// Checked under mu, as Shutdown sets it: no sessions.Add after its Wait began.
		return "421 4.3.2 " + pol.hostname() + " Service shutting down"
	}
	if s.nconns >= s.cfg.MaxConns {
		return "421 4.3.2 Too many connections, try again later"
	}
	if s.perIP[ip] >= s.cfg.MaxConnsPerIP && !s.exempt(ip) {
		return "421 4.3.2 Too many connections from your address, try again later"
	}
	s.nconns++
	s.perIP[ip]++
	s.sessions.Add(1)
	return ""
}

// SetMaxConns changes the cap on simultaneous connections (a reload of
// dispatcher.cnf); n <= 0 is DefaultMaxConns. It applies to connections admitted
// from now on: sessions already over a lowered cap are not cut, they finish, and
// new ones are refused until the count is back under it.
func (s *Server) SetMaxConns(n int) {
	if n <= 0 {
		n = DefaultMaxConns
	}
	s.mu.Lock()
	s.cfg.MaxConns = n
	s.mu.Unlock()
}

// MaxConns returns the cap in force on simultaneous connections.
func (s *Server) MaxConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.MaxConns
}

// Sessions returns the number of open SMTP sessions (admitted, not yet ended) by
// the address of the listener that accepted them (net.Listener.Addr().String()).
// Listeners with no session are absent.
func (s *Server) Sessions() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.byListener))
	for k, n := range s.byListener {
		out[k] = n
	}
	return out
}

// sessionOpened counts an admitted session; release uncounts it. Both run under
// s.mu with the caps' own count, so Sessions and the cap agree at every moment:
// a session Sessions no longer shows no longer holds a slot either.
func (s *Server) sessionOpened(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.released {
		c.counted = true
		s.byListener[c.listener]++
	}
}

func (s *Server) exempt(ip netip.Addr) bool {
	for _, p := range s.cfg.PerIPExempt {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (s *Server) release(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nconns--
	c.released = true
	if c.counted {
		if n := s.byListener[c.listener] - 1; n > 0 {
			s.byListener[c.listener] = n
		} else {
			delete(s.byListener, c.listener)
		}
	}
	ip := c.remote.Addr()
	if s.perIP[ip] <= 1 {
		delete(s.perIP, ip)
	} else {
		s.perIP[ip]--
	}
	delete(s.conns, c)
}

func (s *Server) register(c *conn) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
}

// getReader and putReader recycle the connections' read buffers: one
// readBufSize allocation per connection was most of a short session's garbage.
func (s *Server) getReader(r io.Reader) *bufio.Reader {
	if br, ok := s.readers.Get().(*bufio.Reader); ok {
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, readBufSize)
}

func (s *Server) putReader(br *bufio.Reader) {
	br.Reset(nil)
	s.readers.Put(br)
}

// Shutdown stops accepting, tells idle sessions goodbye (421), lets sessions inside a
// transaction finish, and when ctx expires closes whatever remains.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	for _, c := range s.openConnList() {
		c.wakeIfIdle()
	}
	done := make(chan struct{})
	go func() {
		s.sessions.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
	}
	s.cancel()
	for _, c := range s.openConnList() {
		c.Close()
	}
	return fmt.Errorf("smtpserver: shutdown: %w", ctx.Err())
}

// openConnList is a copy of the set of connections, to act on outside s.mu.
func (s *Server) openConnList() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		list = append(list, c)
	}
	return list
}

// rejectRaw answers a connection we will not serve, without blocking on a slow client.
func rejectRaw(c net.Conn, line string) {
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte(line + "\r\n"))
	c.Close()
}

func addrPort(a net.Addr) netip.AddrPort {
	if a == nil {
		return netip.AddrPort{}
	}
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}
	}
	return ap
}

// portProbe is the PORT_ACCESS probe, also the first five fields of the MAIL and
// FROM_ACCESS probes: TCP|server-ip|server-port|client-ip|client-port.
func portProbe(local, remote netip.AddrPort) string { return intake.PortProbe(local, remote) }

// inFlags are the access tables' input flags, which a table entry can test: E
// EHLO, T TLS, A SASL.
func inFlags(ehlo, tls, auth bool) mappings.Flags {
	var f mappings.Flags
	if auth {
		f |= mappings.Flag('A')
	}
	if ehlo {
		f |= mappings.Flag('E')
	}
	if tls {
		f |= mappings.Flag('T')
	}
	return f
}

// openConns is how many connections are counted against the caps.
func (s *Server) openConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nconns
}

// tlsOn tells whether STARTTLS is offered now.
func (s *Server) tlsOn() bool {
	return s.cfg.TLS != nil && (s.cfg.TLSOffered == nil || s.cfg.TLSOffered())
}
