package smtpserver

import (
	"bytes"
	"encoding/base64"
	"strings"

	"mtad.dev/mta/maillog"
)

// SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms, run to its
// end by the connection: the command, the 334 challenges and their answers.

// authMechs is the EHLO keyword's argument, in our order of preference.
const authMechs = "PLAIN LOGIN"

// Replies of the AUTH exchange.
var (
	replyAuthOK          = newReply(235, 2, 7, 0, "Authentication successful")
	replyAuthBad         = newReply(535, 5, 7, 8, "Error: authentication failed")
	replyAuthTemp        = newReply(454, 4, 7, 0, "Temporary authentication failure")
	replyAuthEncrypt     = newReply(538, 5, 7, 11, "Encryption required for requested authentication mechanism")
	replyAuthCancelled   = newReply(501, 5, 7, 0, "Authentication cancelled")
	replyAuthAgain       = newReply(503, 5, 5, 1, "Error: already authenticated")
	replyAuthNotEnabled  = newReply(503, 5, 5, 1, "Error: authentication not enabled")
	replyAuthNeedEHLO    = newReply(503, 5, 5, 1, "Error: send EHLO first")
	replyAuthInTx        = newReply(503, 5, 5, 1, "Error: MAIL transaction in progress")
	replyAuthSyntax      = newReply(501, 5, 5, 4, "Syntax: AUTH mechanism [initial-response]")
	replyAuthMechanism   = newReply(504, 5, 5, 4, "Unrecognized authentication type")
	replyAuthBadInitial  = newReply(501, 5, 5, 2, "Error: cannot decode initial response")
	replyAuthBadResponse = newReply(501, 5, 5, 2, "Error: cannot decode response")
	replyAuthPipelined   = newReply(503, 5, 5, 1, "Error: AUTH must be the last command in a pipelined group")
	replyAuthLineTooLong = newReply(500, 5, 5, 6, "Authentication exchange line is too long")
)

func replyAuthTooMany(host string) *smtpReply {
	return newReply(421, 4, 7, 0, host+" Error: too many failed authentications")
}

// authChannel reports whether the connection's current source channel accepts
// AUTH at all (maysaslserver or mustsaslserver, and a password store configured).
func (c *conn) authChannel() bool {
	if c.srv.cfg.Auth == nil {
		return false
	}
	cp, ok := c.pol.Channels[c.src]
	return ok && cp.SASL != SASLNone
}

// authOffered reports whether EHLO lists AUTH now: the channel allows it, the
// session has not authenticated yet, and the password would not cross the network
// in the clear (TLS, or the channel's loopback exception).
func (c *conn) authOffered() bool {
	return c.authChannel() && !c.auth && c.authSecure()
}

func (c *conn) authSecure() bool {
	if c.tls {
		return true
	}
	cp := c.pol.Channels[c.src]
	return cp.AllowPlainAuthLoopback && c.remote.Addr().Unmap().IsLoopback()
}

// doAuth runs one AUTH command; args is what follows the verb.
func (c *conn) doAuth(args string) {
	switch {
	case c.auth:
		// before the channel test: the channel switched to may not offer AUTH
		c.reply(replyAuthAgain)
		return
	case !c.authChannel():
		c.reply(replyAuthNotEnabled)
		return
	case c.needHelo || !c.ehlo:
		// RFC 4954 §4: AUTH is an ESMTP command; HELO sessions never saw it offered.
		c.reply(replyAuthNeedEHLO)
		return
	case c.mailOK:
		c.reply(replyAuthInTx)
		return
	case !c.authSecure():
		c.reply(replyAuthEncrypt)
		return
	}
	f := strings.Fields(args)
	if len(f) == 0 || len(f) > 2 {
		c.reply(replyAuthSyntax)
		return
	}
	mech := strings.ToUpper(f[0])
	if mech != "PLAIN" && mech != "LOGIN" {
		c.reply(replyAuthMechanism)
		return
	}
	ip := c.remote.Addr()
	if lim := c.srv.cfg.AuthLimiter; lim != nil && !lim.Allow(ip) {
		// Refused before any password is read or checked: an address guessing
		// passwords learns nothing more and costs us no bcrypt.
		c.logAuth(mech, "", replyAuthTemp)
		c.reply(replyAuthTemp)
		return
	}
	user, pass, done := c.authCredentials(mech, f[1:])
	switch {
	case done:
		return
	case user == "" || !c.srv.cfg.Auth.Verify(user, pass):
		c.authFailed(mech, user)
		return
	}
	if lim := c.srv.cfg.AuthLimiter; lim != nil {
		lim.Succeed(ip)
	}
	// logged in the channel the client authenticated in, before saslswitchchannel
	c.logAuth(mech, user, replyAuthOK)
	c.authUser = user
	c.sess.authenticated()
	c.srv.log.Info("authenticated", "conn", c.id, "remote", c.remote, "user", user, "mech", mech, "source", c.src)
	c.reply(replyAuthOK)
}

// authCredentials runs the mechanism's exchange from its optional initial
// response. done is true when the exchange has been answered here: cancelled,
// undecodable, refused for pipelining, a PLAIN response that does not parse (a
// failed authentication), or the connection ended.
func (c *conn) authCredentials(mech string, initialArg []string) (user, pass string, done bool) {
	var initial []byte
	hasInitial := len(initialArg) == 1
	if hasInitial {
		var ok bool
		if initial, ok = decodeSASL(initialArg[0]); !ok {
			c.reply(replyAuthBadInitial)
			return "", "", true
		}
	}
	switch mech {
	case "PLAIN":
		resp := initial
		if !hasInitial {
			if resp, done = c.authStep(""); done {
				return "", "", true
			}
		}
		user, pass, ok := parsePlain(resp)
		if !ok {
			c.authFailed(mech, user)
			return "", "", true
		}
		return user, pass, false
	default: // LOGIN
		// draft-murchison-sasl-login: "Username:" and "Password:" challenges; the
		// username may come as the initial response.
		u := initial
		if !hasInitial {
			if u, done = c.authStep("Username:"); done {
				return "", "", true
			}
		}
		p, done := c.authStep("Password:")
		if done {
			return "", "", true
		}
		return string(u), string(p), false
	}
}

// authStep sends one 334 challenge and reads the client's answer. done is true
// when the exchange has been answered here (cancelled, undecodable, or refused
// for pipelining) or the connection ended.
func (c *conn) authStep(challenge string) (resp []byte, done bool) {
	if c.br.Buffered() > 0 {
		// RFC 4954 §4: AUTH must be the last command of a pipelined group, and the
		// answer to a challenge cannot be sent before the challenge is read. Bytes
		// already here were written blind; they are dropped, not taken as
		// credentials or as commands.
		c.br.Discard(c.br.Buffered())
		c.reply(replyAuthPipelined)
		return nil, true
	}
	c.reply(&smtpReply{Code: 334, EnhancedCode: noEnhancedCode, Message: base64.StdEncoding.EncodeToString([]byte(challenge))})
	line, tooLong, ok := c.readLineWithin(c.timeouts().command(), "AUTH")
	switch {
	case !ok:
		return nil, true
	case tooLong:
		c.reply(replyAuthLineTooLong)
		return nil, true
	case string(bytes.TrimSpace(line)) == "*":
		c.reply(replyAuthCancelled)
		return nil, true
	}
	resp, ok = decodeSASL(string(bytes.TrimSpace(line)))
	if !ok {
		c.reply(replyAuthBadResponse)
		return nil, true
	}
	return resp, false
}

// authFailed answers a wrong user or password, counting it per connection and per
// client address; the disconnectbadauthlimit-th failure is answered 421 and the
// connection closed.
func (c *conn) authFailed(mech, user string) {
	if lim := c.srv.cfg.AuthLimiter; lim != nil {
		lim.Fail(c.remote.Addr())
	}
	c.authFails.Limit = c.pol.Channels[c.src].DisconnectBadAuthLimit
	if c.authFails.Fail() {
		r := replyAuthTooMany(c.pol.hostname())
		c.logAuth(mech, user, r)
		c.srv.log.Info("too many failed AUTHs", "conn", c.id, "remote", c.remote, "failures", c.authFails.Failures())
		c.bye(r)
		return
	}
	c.logAuth(mech, user, replyAuthBad)
	c.reply(replyAuthBad)
}

// logAuth writes the mail.log U record of one AUTH outcome: the user in the
// envelope-From column, the mechanism, client and reply as the diagnostic. The
// product's documentation names the U code but not its layout; this one keeps
// the columns of the other records so that scripts splitting on spaces still
// work. The password is never logged; a user name the client made up is logged
// as sent (mail.log replaces spaces and control characters).
func (c *conn) logAuth(mech, user string, r *smtpReply) {
	switch r.Code / 100 {
	case 5:
		c.srv.cfg.Metrics.Rejection("access")
	case 4:
		c.srv.cfg.Metrics.Rejection("temporary")
	}
	c.srv.cfg.Log.Log(maillog.Record{
		Source: c.src,
		Code:   maillog.CodeAuthenticated + c.modifiers(false),
		From:   orStr(user, "-"),
		Diag:   "AUTH " + mech + " (" + c.portProbe + ") " + r.String(),
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
// §2). An authorization identity other than the user itself is refused: mtad has
// no notion of one user acting for another.
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

// modifiers are the product's modifiers that follow the code of an E or U record:
// E when the session used EHLO, S when it runs under TLS, A when the client
// authenticated (and authenticated says to show it).
func (c *conn) modifiers(authenticated bool) string {
	m := ""
	if c.ehlo {
		m += maillog.ModESMTP
	}
	if c.tls {
		m += maillog.ModTLS
	}
	if authenticated && c.auth {
		m += maillog.ModSASL
	}
	return m
}
