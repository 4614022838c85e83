package smtpserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"mtad.dev/mta/engine"
	"mtad.dev/mta/intake"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/mappings"
	"mtad.dev/mta/status"
)

// session is one SMTP connection's state above the protocol (conn).
type session struct {
	srv *Server
	g   *conn
	tx  *transaction
}

// transaction is one MAIL FROM .. DATA, with the policy snapshot taken at MAIL.
// The recipients and what the access tables decided are intake's.
type transaction struct {
	pol   *Policy
	in    *intake.Transaction
	id    string // our own id, for Received: before the queue assigns one
	from  string
	ret   string
	envID string
	body8 bool
	utf8  bool
	nRcpt int // RCPT commands accepted
	// presented counts every RCPT command of the transaction, refused ones
	// included (recipientcutoff).
	presented int
}

func (s *session) helo() string { return s.g.heloDomain }

func (s *session) Reset() {
	s.tx = nil
	s.g.inTx.Store(false)
}

// tlsStarted forgets everything learnt before STARTTLS (RFC 3207 §4.2).
func (s *session) tlsStarted() { s.Reset() }

// authenticated is called by the connection after a successful AUTH (sasl.go): the
// access tables get the $A input flag and the source channel becomes the current
// one's saslswitchchannel. The target's noswitchchannel does not stop it: the
// product's documentation shows "tcp_auth ... mustsaslserver noswitchchannel" as
// the channel authenticated sessions are switched to, so a noswitchchannel target
// must still be reachable this way. allowswitchchannel is not required either,
// since the administrator named the target explicitly. A source marked
// noswitchchannel keeps the session, as the keyword's description ("no switching
// to or from") says. The documentation does not say what happens when the target
// does not exist; we switch only to a channel the policy knows.
//
// After a tlsswitchchannel switch, AUTH's switch takes precedence: when the TLS
// channel has no saslswitchchannel of its own, the one of the channel the
// connection was in before STARTTLS applies, so that "tcp_local tlsswitchchannel
// tcp_tls saslswitchchannel tcp_auth" still ends authenticated clients in tcp_auth.
func (s *session) authenticated() {
	s.g.auth = true
	s.g.preAuth = s.g.src
	pol := s.g.pol
	cp, ok := pol.Channels[s.g.src]
	if !ok || cp.NoSwitchChannel {
		return
	}
	target := cp.SASLSwitchChannel
	if target == "" && s.g.preTLS != "" {
		if before, ok := pol.Channels[s.g.preTLS]; ok && !before.NoSwitchChannel {
			target = before.SASLSwitchChannel
		}
	}
	if target == "" {
		return
	}
	if _, ok := pol.Channels[target]; ok {
		s.g.src = target
	}
}

func smtpErr(st *status.Status) *smtpReply {
	// A reply's text with LF in it is written as continuation lines; a CR would end
	// the reply early. Texts come from configuration ($N, $?) and must stay one line.
	text := strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, st.Text)
	e := &smtpReply{Code: st.Code, Message: text}
	if p := strings.Split(st.Enhanced, "."); len(p) == 3 {
		var ec enhancedCode
		ok := true
		for i, f := range p {
			n, err := strconv.Atoi(f)
			if err != nil || n < 0 || n > 999 {
				ok = false
				break
			}
			ec[i] = n
		}
		if ok {
			e.EnhancedCode = ec
		}
	}
	return e
}

// reply normalises a status for the wire: anything that is not a 4xx or 5xx reply
// counts as a temporary failure.
func reply(st *status.Status) *status.Status {
	if st == nil {
		return nil
	}
	if st.Code < 400 || st.Code > 599 {
		return &status.Status{Code: 451, Enhanced: "4.3.0", Text: st.Text}
	}
	return st
}

func badChars(s string) bool { return strings.ContainsAny(s, "\r\n\x00") }

// addrCharset checks an envelope address's bytes (RFC 6531 §3.3): non-ASCII is only
// allowed in a transaction that declared SMTPUTF8, and must then be valid UTF-8.
func addrCharset(addr string, smtputf8 bool, syntax enhancedCode) *smtpReply {
	ascii := true
	for i := 0; i < len(addr); i++ {
		if addr[i] >= 0x80 {
			ascii = false
			break
		}
	}
	switch {
	case ascii:
		return nil
	case !utf8.ValidString(addr):
		return &smtpReply{Code: 501, EnhancedCode: syntax, Message: "Bad address syntax: invalid UTF-8"}
	case !smtputf8:
		return newReply(553, 5, 6, 7, "Non-ASCII address requires SMTPUTF8")
	}
	return nil
}

// Mail starts a transaction: policy snapshot, SIZE, FROM_ACCESS.
func (s *session) Mail(from string, opts *mailOptions) *smtpReply {
	if s.tx != nil {
		return replyNestedMail
	}
	if badChars(from) || badChars(opts.EnvelopeID) {
		return replyBadSender
	}
	if e := addrCharset(from, opts.UTF8, enhancedCode{5, 1, 7}); e != nil {
		return e
	}
	pol := s.srv.policy()
	if pol == nil {
		return replyNoConfig
	}
	src := s.g.src
	if cp := pol.Channels[src]; cp.TransactionLimit > 0 && s.g.nTx >= cp.TransactionLimit {
		// transactionlimit caps the messages of one connection. The connection
		// stays, so that a client may still QUIT cleanly and come back.
		st := status.New(452, "4.5.3", "Too many transactions on this connection (limit %d)", cp.TransactionLimit)
		s.logJ(pol, from, "", "", "", st)
		return smtpErr(st)
	}
	if cp := pol.Channels[src]; cp.RequireTLS && !s.g.tls {
		st := status.New(530, "5.7.0", "Must issue a STARTTLS command first")
		s.logJ(pol, from, "", "", "", st)
		return smtpErr(st)
	}
	if cp := pol.Channels[src]; cp.SASL == SASLMust && !s.g.auth {
		// mustsaslserver: nothing is accepted before AUTH (530, RFC 4954 §6).
		st := status.New(530, "5.7.0", "Authentication required")
		s.logJ(pol, from, "", "", "", st)
		return smtpErr(st)
	}
	// The AUTH= parameter (RFC 4954 §5) is accepted (parseMail checks it) and not
	// used: auth-from below is the identity we verified, never one the client names.
	if max := pol.maxMessageBytes(src); opts.Size > max {
		st := status.New(552, "5.3.4", "Message size exceeds fixed maximum message size")
		s.logJ(pol, from, "", "", "", st)
		return smtpErr(st)
	}
	in, st := s.srv.intake.Begin(pol.Intake, s.origin(pol), from)
	if st != nil {
		s.srv.cfg.Metrics.Rejection(rejectClass(st))
		return smtpErr(st)
	}
	tx := &transaction{
		pol:   pol,
		in:    in,
		id:    newID(),
		from:  from,
		ret:   string(opts.Return),
		envID: opts.EnvelopeID,
		body8: opts.Body == body8BitMIME,
		utf8:  opts.UTF8,
	}
	s.tx = tx
	s.g.nTx++
	s.g.inTx.Store(true)
	return nil
}

func orStr(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// Rcpt resolves one recipient and runs the recipient access tables.
func (s *session) Rcpt(to string, opts *rcptOptions) (err *smtpReply) {
	tx := s.tx
	if tx == nil {
		return replyNeedMail
	}
	// Counted for recipientcutoff and the disconnect* limits, whatever the outcome.
	tx.presented++
	s.g.nRcpt++
	defer func() {
		if err != nil {
			s.g.nRejects++
		}
	}()
	if cp := tx.pol.Channels[s.g.src]; cp.DeferralRejectLimit > 0 && s.g.nRejects >= cp.DeferralRejectLimit {
		st := status.New(452, "4.5.3", "Too many rejected recipients on this connection (limit %d)", cp.DeferralRejectLimit)
		s.logJ(tx.pol, tx.from, "", to, "", st)
		return smtpErr(st)
	}
	if badChars(to) || badChars(opts.OriginalRecipient) {
		return replyBadRecipient
	}
	if e := addrCharset(to, tx.utf8, enhancedCode{5, 1, 3}); e != nil {
		return e
	}
	pol := tx.pol
	src := s.g.src
	if tx.nRcpt >= pol.maxRecipients(src) {
		st := status.New(452, "4.5.3", "Too many recipients")
		s.logJ(pol, tx.from, "", to, "", st)
		return smtpErr(st)
	}
	orcpt := ""
	if opts.OriginalRecipient != "" {
		typ := strings.ToLower(string(opts.OriginalRecipientType))
		if typ == "" {
			typ = "rfc822"
		}
		orcpt = typ + ";" + opts.OriginalRecipient
	}
	notify := make([]string, len(opts.Notify))
	var in mappings.Flags
	for i, n := range opts.Notify {
		notify[i] = string(n)
		switch n {
		case notifyDelay:
			in |= mappings.Flag('D')
		case notifyFailure:
			in |= mappings.Flag('F')
		case notifySuccess:
			in |= mappings.Flag('S')
		}
	}
	out := tx.in.AddRecipient(intake.Recipient{Addr: to, ORCPT: orcpt, Notify: strings.Join(notify, ","), In: in})
	if out.Refused != nil {
		st := reply(out.Refused)
		s.srv.cfg.Metrics.Rejection(rejectClass(st))
		return smtpErr(st)
	}
	tx.nRcpt++
	return nil
}

// Data reads the message, checks it, adds our Received: and enqueues it.
func (s *session) Data(r *dataReader) *smtpReply {
	tx := s.tx
	if tx == nil {
		return replyNeedMail
	}
	pol := tx.pol
	src := s.g.src
	max := pol.maxMessageBytes(src)

	rcvd := tx.in.ReceivedSMTP(s.helo(), s.g.remote.Addr(), s.protocol(), tx.id, time.Now())
	buf := s.srv.getDataBuf()
	defer s.srv.putDataBuf(buf) // Enqueue does not keep the content once it returned
	buf.WriteString(rcvd)
	// One byte over the limit tells "too big" from "exactly the limit"; the
	// reader reads on to the end of the message.
	err := r.read(buf, max+1)
	if err != nil {
		// the client went away or timed out; the connection has answered and closed
		return replyReadFailed
	}
	content := buf.Bytes()
	body := content[len(rcvd):]
	size := int64(len(content))

	fail := func(st *status.Status) *smtpReply {
		for i := range tx.in.Len() {
			rc := tx.in.Recipient(i)
			s.logJSize(pol, tx.from, rc.Channel, rc.Addr, rc.ORCPT, int64(len(body)), st)
		}
		s.srv.cfg.Metrics.Rejection(rejectClass(st))
		s.srv.cfg.Metrics.Message(st.Code)
		return smtpErr(st)
	}
	if int64(len(body)) > max {
		return fail(status.New(552, "5.3.4", "Message size exceeds fixed maximum message size"))
	}
	if r.bare || bareLineEnd(body) {
		return fail(status.New(550, "5.5.2", "bare LF/CR not allowed"))
	}
	if cp := pol.Channels[src]; cp.RecipientCutoff > 0 && tx.presented > cp.RecipientCutoff {
		// recipientcutoff: "more than N presented -> accept none". Only DATA can
		// take back RCPTs already answered 250; permanent, since the same
		// transaction would be refused again.
		return fail(status.New(550, "5.5.3", "Too many recipients: %d presented, at most %d per message; message refused for all recipients", tx.presented, cp.RecipientCutoff))
	}
	for i := range tx.in.Len() {
		rc := tx.in.Recipient(i)
		if cp, ok := pol.Channels[rc.Channel]; ok && cp.BlockLimit > 0 && size > cp.BlockLimit*pol.blockSize() {
			// One oversized destination refuses the message for all recipients: the
			// product's documentation does not say how a mixed case ends, and DATA
			// has only one reply to give.
			return fail(status.New(552, "5.3.4", "Message size exceeds fixed maximum message size for channel %s", rc.Channel))
		}
	}
	if st := pol.lineLimitStatus(tx.in, content); st != nil {
		return fail(st)
	}
	if s.srv.cfg.Queue == nil {
		return fail(status.New(451, "4.3.0", "Queue not available"))
	}
	return s.accept(tx, content, len(rcvd))
}

// protocol is the "with" word of our Received: field (RFC 3848): ESMTP after
// EHLO, with S when the session runs under TLS and A when the client
// authenticated (ESMTPA is AUTH without TLS, the loopback exception).
func (s *session) protocol() string {
	switch {
	case !s.g.ehlo:
		return "SMTP"
	case s.g.tls && s.g.auth:
		return "ESMTPSA"
	case s.g.tls:
		return "ESMTPS"
	case s.g.auth:
		return "ESMTPA"
	}
	return "ESMTP"
}

// accept hands a message that passed the DATA checks to intake and answers.
func (s *session) accept(tx *transaction, content []byte, receivedLen int) *smtpReply {
	ctx, cancel := context.WithTimeout(s.srv.baseCtx, tx.pol.timeouts(s.g.src).dataTermination())
	defer cancel()
	hk := s.srv.cfg.Metrics
	var t0 time.Time
	if hk != nil {
		t0 = time.Now()
	}
	res, err := tx.in.Accept(ctx, intake.Message{
		Content: content, ReceivedLen: receivedLen, RET: tx.ret, EnvID: tx.envID,
		Body8Bit: tx.body8, SMTPUTF8: tx.utf8, LogAttrs: []any{"conn", s.g.id},
	})
	if res.Discarded {
		// every recipient was sent to the bitbucket ($B) or the message discarded ($V/$Z)
		hk.Message(250)
		s.g.msgs.Add(1)
		return replyQueued(tx.id)
	}
	if err != nil {
		st := reply(status.From(err))
		s.srv.log.Warn("enqueue failed", "conn", s.g.id, "tx", tx.id, "queued", res.IDs(), "err", err)
		hk.Rejection(rejectClass(st))
		hk.Message(st.Code)
		return smtpErr(st)
	}
	if hk != nil {
		// Accept returns when the group commit made the message durable: this is
		// the wait the DATA reply has, which the histogram is about.
		hk.CommitWait(time.Since(t0))
	}
	hk.Message(250)
	s.g.msgs.Add(1)
	ids := res.IDs()
	// Debug, not Info: mail.log's E line already records every enqueue, and a
	// diagnostic line per message was one more unbuffered write(2) on the hot path.
	s.srv.log.Debug("queued", "ids", ids, "conn", s.g.id, "tx", tx.id, "from", tx.from, "rcpts", tx.in.Len(), "size", len(content), "held", res.Held != "")
	return replyQueued(strings.Join(ids, " "))
}

// origin describes the session to intake: the source channel, the client as the
// access probes quote it, and what the E and J records say of it.
func (s *session) origin(pol *Policy) intake.Origin {
	code := maillog.CodeEnqueued + s.g.modifiers(s.g.auth)
	return intake.Origin{
		Kind:           intake.SMTP,
		Channel:        s.g.src,
		Client:         &intake.SMTPClient{Port: s.g.portProbe, Helo: s.helo(), IP: s.g.remote.Addr()},
		In:             inFlags(s.g.ehlo, s.g.tls, s.g.auth),
		AuthUser:       s.g.authUser,
		Description:    s.helo() + " ([" + ipString(s.g.remote.Addr()) + "])",
		LogDescription: pol != nil && pol.LogConnection&LogConnSource != 0,
		EnqueueCode:    code,
	}
}

// logJ writes a J (rejected at enqueue) record for a refused command and counts
// the refusal. Callers that log several J records for one refusal count it
// themselves (Data, an RCPT whose every expansion was refused) and use logJSize.
func (s *session) logJ(pol *Policy, from, dest, to, orcpt string, st *status.Status) {
	s.srv.cfg.Metrics.Rejection(rejectClass(st))
	s.logJSize(pol, from, dest, to, orcpt, 0, st)
}

// dataCutOff writes the J records of a transaction whose DATA was cut off for
// being too slow, one per recipient as for any refused message; size is what
// had arrived of it.
func (s *session) dataCutOff(st *status.Status, size int64) {
	tx := s.tx
	if tx == nil {
		return
	}
	for i := range tx.in.Len() {
		rc := tx.in.Recipient(i)
		s.logJSize(tx.pol, tx.from, rc.Channel, rc.Addr, rc.ORCPT, size, st)
	}
}

// logEarlyTalker writes the J record of a client refused for talking before the
// banner. It carries the client's address whatever LOG_CONNECTION says: without
// an envelope, the address is all that tells one refusal from another.
func (s *session) logEarlyTalker(st *status.Status) {
	o := s.origin(s.g.pol)
	o.Description = "([" + ipString(s.g.remote.Addr()) + "])"
	o.LogDescription = true
	s.srv.intake.LogRefused(o, "", "", "", "", 0, st)
}

// logJSize writes a J record for a refused message of known size.
func (s *session) logJSize(pol *Policy, from, dest, to, orcpt string, size int64, st *status.Status) {
	s.srv.intake.LogRefused(s.origin(pol), from, dest, to, orcpt, size, st)
}

// rejectClass is the mtad_smtp_rejections_total class of a refusal, from its
// enhanced code (RFC 3463) and, for policy refusals, its text: an access entry
// refusing relaying says so in its $N text ("Relaying not allowed" and the like).
func rejectClass(st *status.Status) string {
	enh := st.Enhanced
	switch {
	case enh == "4.5.3" || enh == "5.5.3":
		return "recipient_limit"
	case strings.HasPrefix(enh, "5.5.") || enh == "5.1.3" || enh == "5.1.7":
		return "protocol"
	case enh == "5.3.4" || enh == "5.2.3" || enh == "4.3.4":
		return "size"
	case enh == "5.1.1" || enh == "5.1.2" || enh == "5.1.6":
		return "unknown_recipient"
	case enh == "5.4.6" || enh == "5.4.14":
		return "loop"
	case strings.HasPrefix(enh, "5.7."):
		if strings.Contains(strings.ToLower(st.Text), "relay") {
			return "relay"
		}
		return "access"
	case st.Code >= 400 && st.Code < 500:
		return "temporary"
	}
	return "other"
}

func ipString(a netip.Addr) string { return intake.AddressLiteral(a) }

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// engineRequestLiteral is the switchchannel probe: postmaster at the client's IP
// literal (RFC 5321 §4.1.3 address-literal form).
func engineRequestLiteral(ip netip.Addr, src string) engine.Request {
	return engine.Request{
		Address:       "postmaster@[" + ipString(ip) + "]",
		Kind:          engine.EnvelopeTo,
		SourceChannel: src,
	}
}

// getDataBuf and putDataBuf recycle DATA buffers (Server.dataBufs): growing a fresh
// bytes.Buffer to a message's size cost several allocations and copies per
// message. Buffers that grew past maxPooledDataBuf are dropped so that one huge
// message does not pin its memory.
const maxPooledDataBuf = 256 << 10

func (srv *Server) getDataBuf() *bytes.Buffer {
	if b, ok := srv.dataBufs.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}

func (srv *Server) putDataBuf(b *bytes.Buffer) {
	if b.Cap() > maxPooledDataBuf {
		return
	}
	b.Reset()
	srv.dataBufs.Put(b)
}
