package smtpserver

import (
	"crypto/tls"
	"strconv"
	"strings"
	"time"
)

// The commands of the conversation, one method each (AUTH is in sasl.go).

// hello runs HELO and EHLO: the domain is the argument's first word. A greeting
// resets the transaction (RFC 5321 §4.1.4) and ends the wait for one after STARTTLS.
func (c *conn) hello(arg string, ehlo bool) {
	arg = strings.TrimSpace(arg)
	domain, _, _ := strings.Cut(arg, " ")
	if domain == "" {
		c.reply(replyHeloSyntax)
		return
	}
	c.heloDomain = domain
	c.resetTx()
	if ehlo {
		c.reply(c.ehloReply(domain))
	} else {
		c.reply(newReply(250, 2, 0, 0, "Hello "+domain))
	}
	c.needHelo = false
	c.ehlo = ehlo
	c.heloName.Store(&arg)
}

// ehloReply lists our extensions: our host name first (RFC 5321 §4.1.1.1), SIZE
// of this connection's policy and source channel, STARTTLS and AUTH only when
// they could be used now. Never CHUNKING: BDAT is not implemented.
func (c *conn) ehloReply(domain string) *smtpReply {
	var b strings.Builder
	b.WriteString(c.pol.hostname() + " Hello " + domain)
	b.WriteString("\nPIPELINING\n8BITMIME\nENHANCEDSTATUSCODES\nSMTPUTF8\nDSN")
	if !c.tls && c.srv.tlsOn() {
		b.WriteString("\nSTARTTLS")
	}
	if c.authOffered() {
		b.WriteString("\nAUTH " + authMechs)
	}
	b.WriteString("\nSIZE " + strconv.FormatInt(c.pol.maxMessageBytes(c.src), 10))
	return &smtpReply{Code: 250, EnhancedCode: noEnhancedCode, Message: b.String()}
}

// resetTx forgets the transaction in progress, ours and the session's.
func (c *conn) resetTx() {
	c.mailOK, c.rcpts = false, 0
	c.sess.Reset()
}

func (c *conn) mail(arg string) {
	if c.limitReached("MAIL") {
		return
	}
	if c.heloDomain == "" || c.needHelo {
		c.reply(replyNeedHelo)
		return
	}
	from, opts, rep := parseMail(arg)
	if rep == nil {
		rep = c.sess.Mail(from, &opts)
	}
	if rep != nil {
		c.reply(rep)
		return
	}
	c.mailOK = true
	c.reply(replyMailOK)
}

func (c *conn) rcpt(arg string) {
	if !c.mailOK {
		c.reply(replyNeedMail)
		return
	}
	to, opts, rep := parseRcpt(arg)
	if rep == nil {
		rep = c.sess.Rcpt(to, &opts)
	}
	if rep != nil {
		c.reply(rep)
		return
	}
	c.rcpts++
	c.reply(replyRcptOK)
}

// dataCmd runs DATA: 354, then the session reads the message and decides the
// reply. Whatever of the message the session left unread is read and dropped up
// to its end, so that one DATA is always exactly one message.
func (c *conn) dataCmd(arg string) {
	switch {
	case arg != "":
		c.reply(replyDataArgs)
		return
	case !c.mailOK || c.rcpts == 0:
		c.reply(replyNeedRcpt)
		return
	}
	c.reply(replyStartData)
	// One byte over the size limit is read into the message (session.Data), and
	// earns session time like the rest.
	c.data = newDataReader(c, c.pol.maxMessageBytes(c.src)+1)
	rep := c.sess.Data(&c.data)
	if !c.data.done && c.data.read(nil, 0) != nil {
		return // the connection is gone
	}
	c.reply(rep)
	c.resetTx()
}

func (c *conn) rset() {
	if c.limitReached("RSET") {
		return
	}
	c.resetTx()
	c.reply(replyReset)
}

// limitReached checks the source channel's disconnect* limits at MAIL and RSET
// (the product's documentation checks them at these two commands) and ends the
// session with 421 when one is exceeded.
func (c *conn) limitReached(verb string) bool {
	why := c.disconnectLimit(verb)
	if why == "" {
		return false
	}
	c.srv.log.Info("session limit reached", "conn", c.id, "remote", c.remote, "channel", c.src, "limit", why)
	c.srv.cfg.Metrics.Rejection("temporary") // a 4xx of no class of its own (metrics.Hooks)
	c.bye(replyTooMany(c.pol.hostname(), why))
	return true
}

// disconnectLimit reports which disconnect* limit of the source channel a MAIL
// or RSET command (verb) finds exceeded, "" when none. A MAIL counts the
// transaction it would start.
func (c *conn) disconnectLimit(verb string) string {
	cp, ok := c.pol.Channels[c.src]
	if !ok {
		return ""
	}
	tx := c.nTx
	if verb == "MAIL" {
		tx++
	}
	switch {
	case cp.DisconnectTransactionLimit > 0 && tx > cp.DisconnectTransactionLimit:
		return "transactions"
	case cp.DisconnectRecipientLimit > 0 && c.nRcpt > cp.DisconnectRecipientLimit:
		return "recipients"
	case cp.DisconnectRejectLimit > 0 && c.nRejects > cp.DisconnectRejectLimit:
		return "rejected recipients"
	}
	return ""
}

// startTLS runs STARTTLS (RFC 3207). Bytes the client pipelined after the command
// were sent in clear text and are dropped, never taken as commands of the
// protected session (command injection, CVE-2011-0411). Everything learnt before
// is forgotten: a new EHLO is required, and an AUTH done in clear text (the
// loopback exception) no longer counts.
func (c *conn) startTLS(hasArgs bool) {
	switch {
	case hasArgs:
		c.reply(replyStartTLSSyntax)
		return
	case !c.srv.tlsOn():
		c.reply(replyNotImplemented)
		return
	case c.tls:
		c.reply(replyTLSActive)
		return
	}
	c.reply(replyTLSReady)
	c.flushOut()
	c.br.Discard(c.br.Buffered())
	tc := tls.Server(c.raw, c.srv.cfg.TLS)
	deadline, _ := c.readDeadline(c.timeouts().command())
	tc.SetDeadline(deadline)
	if err := tc.Handshake(); err != nil {
		c.srv.log.Info("TLS handshake failed", "conn", c.id, "remote", c.remote, "err", err)
		c.ending("TLS handshake failed: " + err.Error())
		c.Close()
		return
	}
	tc.SetDeadline(time.Time{})
	c.nc = tc
	c.br.Reset(c.debugReader(tc))
	c.dbg.Note("TLS %s established", tlsName(tc.ConnectionState().Version))
	c.tls = true
	c.needHelo = true
	c.ehlo = false
	if c.auth {
		c.auth, c.authUser, c.src = false, "", c.preAuth
	}
	c.tlsSwitch()
	c.mailOK, c.rcpts = false, 0
	c.sess.tlsStarted()
}

// tlsSwitch applies the source channel's tlsswitchchannel after a successful
// STARTTLS, under the same rules as saslswitchchannel (session.authenticated): the
// target must exist, and a source marked noswitchchannel stays put.
func (c *conn) tlsSwitch() {
	cp, ok := c.pol.Channels[c.src]
	if !ok || cp.TLSSwitchChannel == "" || cp.NoSwitchChannel {
		return
	}
	if _, ok := c.pol.Channels[cp.TLSSwitchChannel]; !ok {
		return
	}
	c.preTLS, c.src = c.src, cp.TLSSwitchChannel
	c.dbg.Note("source channel %s after STARTTLS (tlsswitchchannel)", c.src)
}
