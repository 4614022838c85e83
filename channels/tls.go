package channels

// STARTTLS in the SMTP/LMTP client (RFC 3207). The package doc's SMTP section
// holds for TLS connections too; this file adds the policy.
//
// How it works: open says EHLO, and when the policy is not TLSNone and the
// server offers STARTTLS, it sends STARTTLS alone (nothing pipelined), checks
// the server sent nothing behind its 220, handshakes under the EHLO timeout,
// and says EHLO again before any transaction. The connection then carries its
// tls.ConnectionState in the cache, so reuse is TLS too, and every Result.Reply
// from it ends in " (TLS1.3)" (or the version used) for mail.log.
//
//   - TLSMay: no STARTTLS offered, or a refusal (454) -> plaintext on the same
//     session; a failed handshake or certificate check -> that connection is
//     closed and the same address dialled again for a plaintext session that
//     does not try STARTTLS; its replies end in " (no TLS: why)".
//   - TLSMust: any of those -> QUIT (plaintext, nothing else) and a temporary
//     451 4.7.5 "TLS required but ..." for that address; the next address or
//     MX host is tried as for any connection failure. Never plaintext.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"mtad.dev/mta/status"
)

// TLSPolicy is the SMTP client's use of STARTTLS (RFC 3207): the channel
// keywords notls/notlsclient, maytls/maytlsclient, musttls/musttlsclient.
type TLSPolicy int

const (
	// TLSMay (the zero value) is opportunistic TLS (RFC 7435): STARTTLS when the
	// server offers it, plaintext when it does not or when the handshake fails
	// (then on a fresh connection, since a failed handshake leaves the session
	// in no known state).
	TLSMay TLSPolicy = iota
	// TLSNone never sends STARTTLS.
	TLSNone
	// TLSMust delivers only over TLS: a server that does not offer STARTTLS,
	// refuses it, or fails the handshake or the certificate check gets nothing
	// (temporary 4.7.5 for that host; the next host is tried).
	TLSMust
)

func (p TLSPolicy) String() string {
	switch p {
	case TLSMay:
		return "may"
	case TLSNone:
		return "none"
	case TLSMust:
		return "must"
	}
	return fmt.Sprintf("TLSPolicy(%d)", int(p))
}

// verifyTLS reports whether the server's certificate chain and name are
// checked. Under TLSMay only when TLSVerify asks (RFC 7435: opportunistic TLS
// cannot insist on a valid certificate, or it would be worse than plaintext,
// which it then falls back to). Under TLSMust always, unless the base
// TLSConfig says InsecureSkipVerify [inf]: a bool cannot tell "unset" from
// "false", and the tls.Config knob is the explicit, greppable way to opt out.
func (s *SMTP) verifyTLS() bool {
	if s.opts.TLS == TLSMust {
		return s.opts.TLSConfig == nil || !s.opts.TLSConfig.InsecureSkipVerify
	}
	return s.opts.TLSVerify
}

// clientTLSConfig is the base configuration specialised for one host: the
// name to verify (and send as SNI) is the host we meant to reach — the MX,
// smart host or literal — never what DNS or the server says about itself.
func (s *SMTP) clientTLSConfig(host string) *tls.Config {
	var cfg *tls.Config
	if s.opts.TLSConfig != nil {
		cfg = s.opts.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	name := strings.TrimSuffix(host, ".")
	if a, ok := parseLiteral(name); ok {
		name = a.String() // crypto/tls checks IP SANs and sends no SNI for an IP
	}
	cfg.ServerName = name
	cfg.InsecureSkipVerify = !s.verifyTLS()
	return cfg
}

// tlsRequired is the status of a TLSMust delivery that cannot have TLS from
// host. Always temporary: another host, or this one later, may do better, and
// it is never sent in plaintext instead [inf: 451 4.7.5, X.7.5 "cryptographic
// failure", for every case — not offered, refused, handshake, certificate].
func tlsRequired(format string, args ...any) *status.Status {
	return status.New(451, "4.7.5", "TLS required but %s", fmt.Sprintf(format, args...))
}

// starttls runs STARTTLS on c, which has just said EHLO, and the handshake,
// then EHLO again (RFC 3207 §4.2: forget everything learnt before). It is
// called before any transaction, so nothing has been pipelined ahead of it.
//
// refused is a non-220 reply to STARTTLS: the session is still in a known
// plaintext state and may go on under TLSMay. Any other error leaves the
// connection unusable.
func (s *SMTP) starttls(ctx context.Context, c *smtpConn, hello string) (refused *Reply, err error) {
	rep, err := c.cmd(s.to.Ehlo, "STARTTLS")
	if err != nil {
		return nil, fmt.Errorf("STARTTLS: %w", err)
	}
	if rep.Code != 220 {
		return &rep, nil
	}
	// Anything already read past the 220 was sent before the handshake: a
	// plaintext injection (CVE-2011-0411 in reverse) that must never be taken
	// as the server's word inside TLS.
	if n := c.r.Buffered(); n > 0 {
		return nil, fmt.Errorf("%w: %d bytes after the 220 to STARTTLS, before the handshake", errProtocol, n)
	}
	tc := tls.Client(c.dc, s.clientTLSConfig(c.host))
	// The handshake is bounded as a whole by the EHLO timeout (it stands in
	// for the server's greeting inside TLS), and each read/write by it too.
	c.dc.rd, c.dc.wr = s.to.Ehlo, s.to.Ehlo
	hctx, cancel := context.WithTimeout(ctx, s.to.Ehlo)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		var ne net.Error
		if ctx.Err() == nil && (hctx.Err() != nil || errors.As(err, &ne) && ne.Timeout()) {
			return nil, fmt.Errorf("TLS handshake: timeout after %v: %w", s.to.Ehlo, err)
		}
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	st := tc.ConnectionState()
	c.tls = &st
	c.r = bufio.NewReaderSize(tc, 4096)
	c.w = bufio.NewWriterSize(tc, 32*1024)
	c.ext = nil
	rep, err = c.cmd(s.to.Ehlo, hello+" "+s.opts.HeloName)
	if err != nil {
		return nil, fmt.Errorf("%s after STARTTLS: %w", hello, err)
	}
	if rep.Code != 250 {
		return nil, fmt.Errorf("%s after STARTTLS answered %s", hello, rep)
	}
	c.parseExt(rep)
	return nil, nil
}

// tlsTag is what a Result.Reply carries about the connection's protection, so
// mail.log shows it: " (TLS1.3)", or under TLSMay why the message went in
// plaintext although the server offered STARTTLS. Empty on a plaintext
// connection to a server that never offered it.
func (c *smtpConn) tlsTag() string {
	switch {
	case c.tls != nil:
		return " (" + tlsVersionName(c.tls.Version) + ")"
	case c.tlsNote != "":
		return " (no TLS: " + c.tlsNote + ")"
	}
	return ""
}

// tlsVersionName is "TLS1.3" (crypto/tls says "TLS 1.3"; a log field reads
// better without the space).
func tlsVersionName(v uint16) string {
	return strings.ReplaceAll(tls.VersionName(v), " ", "")
}
