package channels

// Opening a session: connect to one address of a host, read the greeting, say
// EHLO (or HELO, or LHLO), and STARTTLS as the TLS policy says (tls.go). Every
// failure here is temporary: a host that will not talk to us now says nothing
// final about the message, and the next address or host may do better.

import (
	"context"
	"errors"
	"net"

	"mtad.dev/mta/status"
)

// open connects to addr and prepares a session for transactions. Under TLSMay a
// failed handshake costs the connection (its state is unknown), so addr is
// dialled once more for a plaintext session that does not try STARTTLS; the
// reason stays on the connection for Result.Reply.
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
	nc, st := s.dial(ctx, host, addr)
	if st != nil {
		return nil, st, nil
	}
	c := newSMTPConn(nc, host, s.timeouts, s.opts.LMTP)
	c.ended = s.connClosed
	s.connOpened(c)
	stop := c.watch(ctx)
	defer stop()
	if st := s.greet(c); st != nil {
		return nil, st, nil
	}
	if !tryTLS {
		return c, nil, nil
	}
	return s.negotiateTLS(ctx, c)
}

// dial connects to addr within the Connect timeout. A failure writes the
// connection record Y.
func (s *SMTP) dial(ctx context.Context, host, addr string) (net.Conn, *status.Status) {
	dctx, cancel := context.WithTimeout(ctx, s.timeouts.Connect)
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
	if err == nil {
		return nc, nil
	}
	s.connectFailed(host, s.opts.Network, addr, err)
	if errors.Is(err, context.DeadlineExceeded) {
		if ctx.Err() == nil {
			// Our Connect limit, not the caller's deadline: say which.
			return nil, status.New(451, "4.4.2", "%s: timeout connecting to %s after %v", host, addr, s.timeouts.Connect)
		}
		return nil, status.New(451, "4.4.2", "connect to %s (%s): %v", host, addr, err)
	}
	return nil, status.New(451, "4.4.1", "connect to %s (%s): %v", host, addr, err)
}

// greet reads the greeting and says hello. On failure c is closed.
func (s *SMTP) greet(c *smtpConn) *status.Status {
	rep, err := c.greeting()
	if err != nil {
		c.close()
		return sessionFailure(c.host, "greeting", err)
	}
	if rep.Code != 220 {
		// 421 or 554 at the greeting: this host will not talk to us now; the
		// next one may (RFC 5321 §3.1).
		return s.hangUp(c, sessionRefused(rep, c.host, "greeting"))
	}
	verb, rep, err := c.hello(s.opts.HeloName)
	if err != nil {
		c.close()
		return sessionFailure(c.host, verb, err)
	}
	if rep.Code != 250 {
		return s.hangUp(c, sessionRefused(rep, c.host, verb))
	}
	return nil
}

// hangUp ends a session this host cannot serve: QUIT, close, and st says why.
func (s *SMTP) hangUp(c *smtpConn, st *status.Status) *status.Status {
	c.quit()
	c.close()
	return st
}
