package channels

// STARTTLS in the SMTP/LMTP client (RFC 3207): the policy. The package doc's
// SMTP section holds for TLS connections too; the command and the handshake
// are the protocol client's (smtpConn.startTLS in client.go).
//
// How it works: open (dial.go) says EHLO, and when the policy is not TLSNone and
// the server offers STARTTLS, it sends STARTTLS alone (nothing pipelined), checks
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
	"context"
	"crypto/tls"
	"fmt"
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
// TLSConfig says InsecureSkipVerify. The documentation is silent on opting out;
// we chose the tls.Config knob because a bool option cannot tell "unset" from
// "false", and the knob is the explicit, greppable way to do it.
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
// it is never sent in plaintext instead. The documentation gives no code; we
// chose 451 4.7.5 (X.7.5, "cryptographic failure") for every case: not
// offered, refused, handshake, certificate.
func tlsRequired(format string, args ...any) *status.Status {
	return status.New(451, "4.7.5", "TLS required but %s", fmt.Sprintf(format, args...))
}

// negotiateTLS applies the policy to a session that has just said EHLO: STARTTLS
// when offered (client.go runs it), and under TLSMust a refusal of the session
// when TLS cannot be had. tlsFailed is set, with c and st nil, when the
// handshake failed under TLSMay: the caller may dial again for plaintext.
func (s *SMTP) negotiateTLS(ctx context.Context, c *smtpConn) (_ *smtpConn, _ *status.Status, tlsFailed error) {
	if !c.has("STARTTLS") {
		if s.opts.TLS == TLSMust {
			return nil, s.hangUp(c, tlsRequired("not offered by %s", c.host)), nil
		}
		return c, nil, nil
	}
	refused, err := c.startTLS(ctx, s.clientTLSConfig(c.host), s.opts.HeloName)
	c.tlsStarted()
	switch {
	case refused != nil && s.opts.TLS == TLSMust:
		return nil, s.hangUp(c, tlsRequired("STARTTLS refused by %s: %s", c.host, refused)), nil
	case refused != nil:
		// RFC 3207 §4: the session goes on in plaintext, as if never offered
		// — but the refusal is worth a word in the log.
		c.tlsNote = "STARTTLS refused: " + refused.String()
		return c, nil, nil
	case err != nil && s.opts.TLS == TLSMust:
		c.close()
		return nil, tlsRequired("TLS with %s failed: %v", c.host, err), nil
	case err != nil:
		c.close()
		return nil, nil, err
	}
	return c, nil, nil
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
