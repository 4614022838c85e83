package smtpserver

import (
	"bytes"
	"encoding/base64"
	"io"
	"strings"
	"time"

	"mtad.dev/mta/maillog"
)

// SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms. The guard
// runs the whole exchange itself, as it does STARTTLS: go-smtp never sees an AUTH
// line, so its own AUTH code (which decides "TLS" by a *tls.Conn type assertion
// our wrapped connection never satisfies, and answers a cancelled exchange without
// counting anything) stays out of the way.

// authMechs is the EHLO keyword's argument, in our order of preference.
const authMechs = "PLAIN LOGIN"

// Replies of the AUTH exchange.
const (
	replyAuthOK        = "235 2.7.0 Authentication successful"
	replyAuthBad       = "535 5.7.8 Error: authentication failed"
	replyAuthTemp      = "454 4.7.0 Temporary authentication failure"
	replyAuthEncrypt   = "538 5.7.11 Encryption required for requested authentication mechanism"
	replyAuthCancelled = "501 5.7.0 Authentication cancelled"
)

// authChannel reports whether the connection's current source channel accepts
// AUTH at all (maysaslserver or mustsaslserver, and a password store configured).
func (g *guard) authChannel() bool {
	if g.srv.cfg.Auth == nil {
		return false
	}
	cp, ok := g.pol.Channels[g.src]
	return ok && cp.SASL != SASLNone
}

// authOffered reports whether EHLO lists AUTH now: the channel allows it, the
// session has not authenticated yet, and the password would not cross the network
// in the clear (TLS, or the channel's loopback exception).
func (g *guard) authOffered() bool {
	return g.authChannel() && !g.auth && g.authSecure()
}

func (g *guard) authSecure() bool {
	if g.tls {
		return true
	}
	cp := g.pol.Channels[g.src]
	return cp.AllowPlainAuthLoopback && g.remote.Addr().Unmap().IsLoopback()
}

// doAuth runs one AUTH command; args is what follows the verb. A non-nil error
// ends the connection.
func (g *guard) doAuth(args string) error {
	switch {
	case g.auth:
		// before the channel test: the channel switched to may not offer AUTH
		g.replyError("503 5.5.1 Error: already authenticated")
		return nil
	case !g.authChannel():
		g.replyError("503 5.5.1 Error: authentication not enabled")
		return nil
	case g.needHelo || !g.ehlo:
		// RFC 4954 §4: AUTH is an ESMTP command; HELO sessions never saw it offered.
		g.replyError("503 5.5.1 Error: send EHLO first")
		return nil
	case g.inTx.Load():
		g.replyError("503 5.5.1 Error: MAIL transaction in progress")
		return nil
	case !g.authSecure():
		g.writeRaw(replyAuthEncrypt + "\r\n")
		return nil
	}
	f := strings.Fields(args)
	if len(f) == 0 || len(f) > 2 {
		g.replyError("501 5.5.4 Syntax: AUTH mechanism [initial-response]")
		return nil
	}
	mech := strings.ToUpper(f[0])
	if mech != "PLAIN" && mech != "LOGIN" {
		g.replyError("504 5.5.4 Unrecognized authentication type")
		return nil
	}
	ip := g.remote.Addr()
	if lim := g.srv.cfg.AuthLimiter; lim != nil && !lim.Allow(ip) {
		// Refused before any password is read or checked: an address guessing
		// passwords learns nothing more and costs us no bcrypt.
		g.logAuth(mech, "", replyAuthTemp)
		g.writeRaw(replyAuthTemp + "\r\n")
		return nil
	}

	var initial []byte
	hasInitial := len(f) == 2
	if hasInitial {
		var ok bool
		if initial, ok = decodeSASL(f[1]); !ok {
			g.replyError("501 5.5.2 Error: cannot decode initial response")
			return nil
		}
	}

	var user, pass string
	switch mech {
	case "PLAIN":
		resp := initial
		if !hasInitial {
			var err error
			var done bool
			if resp, done, err = g.authStep(""); err != nil || done {
				return err
			}
		}
		var ok bool
		if user, pass, ok = parsePlain(resp); !ok {
			return g.authFailed(mech, user)
		}
	case "LOGIN":
		// draft-murchison-sasl-login: "Username:" and "Password:" challenges; the
		// username may come as the initial response.
		u := initial
		if !hasInitial {
			var err error
			var done bool
			if u, done, err = g.authStep("Username:"); err != nil || done {
				return err
			}
		}
		p, done, err := g.authStep("Password:")
		if err != nil || done {
			return err
		}
		user, pass = string(u), string(p)
	}
	if user == "" || !g.srv.cfg.Auth.Verify(user, pass) {
		return g.authFailed(mech, user)
	}
	if lim := g.srv.cfg.AuthLimiter; lim != nil {
		lim.Succeed(ip)
	}
	// logged in the channel the client authenticated in, before saslswitchchannel
	g.logAuth(mech, user, replyAuthOK)
	g.authUser = user
	if g.sess != nil {
		g.sess.authenticated()
	} else {
		g.auth = true
	}
	g.srv.log.Info("authenticated", "conn", g.id, "remote", g.remote, "user", user, "mech", mech, "source", g.src)
	g.writeRaw(replyAuthOK + "\r\n")
	return nil
}

// authStep sends one 334 challenge and reads the client's answer. done is true
// when the exchange has been answered here (cancelled, undecodable, or refused
// for pipelining); err ends the connection.
func (g *guard) authStep(challenge string) (resp []byte, done bool, err error) {
	if g.br.Buffered() > 0 {
		// RFC 4954 §4: AUTH must be the last command of a pipelined group, and the
		// answer to a challenge cannot be sent before the challenge is read. Bytes
		// already here were written blind; they are dropped, not taken as
		// credentials or as commands.
		g.br.Discard(g.br.Buffered())
		g.replyError("503 5.5.1 Error: AUTH must be the last command in a pipelined group")
		return nil, true, nil
	}
	g.writeRaw("334 " + base64.StdEncoding.EncodeToString([]byte(challenge)) + "\r\n")
	g.conn.SetReadDeadline(time.Now().Add(g.pol.Timeouts.command()))
	g.reading.Store(true)
	if g.srv.closing.Load() {
		g.reading.Store(false)
		g.bye("421 4.3.2 " + g.pol.hostname() + " Service shutting down")
		return nil, true, io.EOF
	}
	line, tooLong, rerr := g.readLine()
	g.reading.Store(false)
	if rerr != nil {
		g.readFailed(rerr, "AUTH")
		return nil, true, io.EOF
	}
	switch {
	case tooLong:
		g.replyError("500 5.5.6 Authentication exchange line is too long")
		return nil, true, nil
	case string(bytes.TrimSpace(line)) == "*":
		g.writeRaw(replyAuthCancelled + "\r\n")
		return nil, true, nil
	}
	resp, ok := decodeSASL(string(bytes.TrimSpace(line)))
	if !ok {
		g.replyError("501 5.5.2 Error: cannot decode response")
		return nil, true, nil
	}
	return resp, false, nil
}

// authFailed answers a wrong user or password, counting it per connection and per
// client address; the disconnectbadauthlimit-th failure is answered 421 and the
// connection closed.
func (g *guard) authFailed(mech, user string) error {
	if lim := g.srv.cfg.AuthLimiter; lim != nil {
		lim.Fail(g.remote.Addr())
	}
	g.authFails.Limit = g.pol.Channels[g.src].DisconnectBadAuthLimit
	if g.authFails.Fail() {
		line := "421 4.7.0 " + g.pol.hostname() + " Error: too many failed authentications"
		g.logAuth(mech, user, line)
		g.srv.log.Info("too many failed AUTHs", "conn", g.id, "remote", g.remote, "failures", g.authFails.Failures())
		g.bye(line)
		return io.EOF
	}
	g.logAuth(mech, user, replyAuthBad)
	g.writeRaw(replyAuthBad + "\r\n")
	return nil
}

// logAuth writes the mail.log U record of one AUTH outcome: the user in the
// envelope-From column, the mechanism, client and reply as the diagnostic. [inf]
// The reference names the U code but not its layout; this one keeps the columns of
// the other records so that scripts splitting on spaces still work. The password
// is never logged; a user name the client made up is logged as sent (mail.log
// replaces spaces and control characters).
func (g *guard) logAuth(mech, user, replyLine string) {
	switch {
	case strings.HasPrefix(replyLine, "5"):
		g.srv.cfg.Metrics.Rejection("access")
	case strings.HasPrefix(replyLine, "4"):
		g.srv.cfg.Metrics.Rejection("temporary")
	}
	code := "U"
	if g.ehlo {
		code += "E"
	}
	if g.tls {
		code += "S"
	}
	g.srv.cfg.Log.Log(maillog.Record{
		Source: g.src,
		Code:   code,
		From:   orStr(user, "-"),
		Diag:   "AUTH " + mech + " (" + g.portProbe + ") " + replyLine,
	})
}

// decodeSASL decodes one base64 SASL response; "=" is the empty response.
func decodeSASL(s string) ([]byte, bool) {
	if s == "=" {
		return []byte{}, true
	}
	b, err := base64.StdEncoding.DecodeString(s)
	return b, err == nil
}

// parsePlain splits a PLAIN response, authzid NUL authcid NUL password (RFC 4616
// §2). [inf] An authorization identity other than the user itself is refused: we
// have no notion of one user acting for another.
func parsePlain(b []byte) (user, pass string, ok bool) {
	p := bytes.Split(b, []byte{0})
	if len(p) != 3 {
		return "", "", false
	}
	user, pass = string(p[1]), string(p[2])
	if len(p[0]) > 0 && string(p[0]) != user {
		return user, "", false
	}
	return user, pass, user != ""
}
