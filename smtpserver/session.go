package smtpserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"mtad.dev/mta/engine"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/mappings"
	"mtad.dev/mta/queue"
	"mtad.dev/mta/status"
)

// session is one SMTP connection's state above the protocol (conn).
type session struct {
	srv *Server
	g   *conn
	tx  *transaction
}

// transaction is one MAIL FROM .. DATA, with the policy snapshot taken at MAIL.
type transaction struct {
	pol   *Policy
	id    string // our own id, for Received: before the queue assigns one
	from  string
	ret   string
	envID string
	body8 bool
	utf8  bool
	nRcpt int // RCPT commands accepted
	rcpts []queue.Recipient
	// senders[i] is the envelope sender of rcpts[i]'s copy: "" for the
	// transaction's own, or the owner-NAME of the list it came through.
	senders []string
	seen    map[string]bool
	held    string // reason, when an access entry said $H
	discard bool   // $V/$Z: accept, queue nothing
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
// one's saslswitchchannel (channels.md §3.5). The target's noswitchchannel does not
// stop it: the reference's own example is "tcp_auth ... mustsaslserver
// noswitchchannel" reached through saslswitchchannel (channels.md §6), and
// allowswitchchannel is not required either, since the administrator named the
// target explicitly. [inf] The target must exist in the policy, and a source
// channel marked noswitchchannel ("no switching to or from") stays put.
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
		// transactionlimit (channels.md §3.9): the connection stays, so that a
		// client may still QUIT cleanly and come back.
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
		// mustsaslserver (channels.md §3.6), RFC 4954 §6.
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
	tx := &transaction{
		pol:   pol,
		id:    newID(),
		from:  from,
		ret:   string(opts.Return),
		envID: opts.EnvelopeID,
		body8: opts.Body == body8BitMIME,
		utf8:  opts.UTF8,
		seen:  make(map[string]bool),
	}
	// FROM_ACCESS (mappings.md §4.6):
	// port-access-probe-info|app-info|submit-type|src-channel|from-address|auth-from
	// [inf] auth-from is the user name AUTH succeeded for (our store has names, not
	// addresses), empty without AUTH.
	if t := pol.tables(); t != nil {
		probe := s.g.portProbe + "|SMTP/" + s.helo() + "|MAIL|" + src + "|" + from + "|" + s.g.authUser
		if a, ok := t.Access("FROM_ACCESS", probe, inFlags(s.g.ehlo, s.g.tls, s.g.auth)); ok {
			if a.Reject {
				st := accessStatus(a, from)
				s.logJ(pol, from, "", "", "", st)
				return smtpErr(st)
			}
			tx.apply(a)
		}
	}
	s.tx = tx
	s.g.nTx++
	s.g.inTx.Store(true)
	return nil
}

// accessStatus is the refusal an access entry asks for: the reply class follows the
// $X enhanced code (default 5.7.1), the text is the $N/$F text, then the address
// (mappings.md §4.7). [inf] An entry without text says "Access denied".
func accessStatus(a mappings.Access, addr string) *status.Status {
	enh := a.Enhanced
	if enh == "" || (enh[0] != '4' && enh[0] != '5') {
		enh = "5.7.1"
	}
	text := a.Text
	if text == "" {
		text = "Access denied"
	}
	if addr != "" {
		text += " " + addr
	}
	return status.FromEnhanced(enh, text)
}

// apply records the non-refusing effects of an access entry on the transaction.
func (tx *transaction) apply(a mappings.Access) {
	if a.Hold && tx.held == "" {
		tx.held = "access: held by " + orStr(a.Src, "access mapping")
	}
	if a.Discard {
		tx.discard = true
	}
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
	r := pol.rules()
	if r == nil {
		st := status.New(451, "4.3.0", "Routing not available, try again later")
		s.logJ(pol, tx.from, "", to, "", st)
		return smtpErr(st)
	}
	hk := s.srv.cfg.Metrics
	var t0 time.Time
	if hk != nil {
		t0 = time.Now()
	}
	res := r.Resolve(engine.Request{Address: to, Kind: engine.EnvelopeTo, SourceChannel: src})
	if hk != nil {
		hk.Rewrite(time.Since(t0))
	}
	if res.Err != nil {
		st := reply(res.Err)
		s.logJ(pol, tx.from, res.Rewrite.Channel, to, "", st)
		return smtpErr(st)
	}
	if len(res.Recipients) == 0 {
		st := status.New(550, "5.1.1", "No such user %s", to)
		s.logJ(pol, tx.from, res.Rewrite.Channel, to, "", st)
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
	var in mappings.Flags = inFlags(s.g.ehlo, s.g.tls, s.g.auth)
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

	t := pol.tables()
	// check runs one SEND-type and one MAIL-type table for one (src, from, dst, to);
	// the first refusal wins (mappings.md §4.1: ORIG_SEND then ORIG_MAIL [inf]).
	check := func(send, mail, dst, addr string) (*status.Status, []mappings.Access) {
		if t == nil {
			return nil, nil
		}
		sendProbe := src + "|" + tx.from + "|" + dst + "|" + addr
		var effects []mappings.Access
		for _, c := range []struct{ table, probe string }{
			{send, sendProbe},
			{mail, s.g.portProbe + "|SMTP/" + s.helo() + "|MAIL|" + sendProbe},
		} {
			a, ok := t.Access(c.table, c.probe, in)
			if !ok {
				continue
			}
			if a.Reject {
				return accessStatus(a, addr), nil
			}
			effects = append(effects, a)
		}
		return nil, effects
	}

	// ORIG_*: after rewriting, before alias expansion.
	st, effects := check("ORIG_SEND_ACCESS", "ORIG_MAIL_ACCESS", res.Rewrite.Channel, res.Rewrite.Address)
	if st != nil {
		s.logJ(pol, tx.from, res.Rewrite.Channel, to, orcpt, st)
		return smtpErr(st)
	}
	// SEND_*/MAIL_*: each expanded recipient. [inf] A refused expansion is dropped
	// (and logged); the RCPT itself is refused only when nothing is left.
	type acceptedRcpt struct {
		rcpt   queue.Recipient
		sender string
	}
	var accepted []acceptedRcpt
	var firstRefusal *status.Status
	bitbucket := false
	for _, a := range effects {
		bitbucket = bitbucket || a.Bitbucket
	}
	for _, rc := range res.Recipients {
		st, eff := check("SEND_ACCESS", "MAIL_ACCESS", rc.Channel, rc.Address)
		if st != nil {
			s.logJSize(pol, tx.from, rc.Channel, rc.Address, orcpt, 0, st)
			if firstRefusal == nil {
				firstRefusal = st
			}
			continue
		}
		drop := bitbucket
		for _, a := range eff {
			drop = drop || a.Bitbucket
			effects = append(effects, a)
		}
		if drop {
			continue // $B: accepted, sent nowhere
		}
		accepted = append(accepted, acceptedRcpt{rcpt: queue.Recipient{
			Addr:    rc.Address,
			Orig:    to,
			ORCPT:   orcpt,
			Notify:  strings.Join(notify, ","),
			Channel: rc.Channel,
			Host:    strings.ToLower(rc.Host),
		}, sender: rc.Sender})
	}
	if len(accepted) == 0 && firstRefusal != nil {
		s.srv.cfg.Metrics.Rejection(rejectClass(firstRefusal))
		return smtpErr(firstRefusal)
	}
	if _, ok := pol.Channels[res.ExpandChannel]; ok && res.Deferred && len(accepted) > 0 {
		// expandlimit: the list is queued unexpanded to the reprocess channel, whose
		// master expands it offline (with the owner as sender there). The checks
		// above still ran on the members so that a refusal is given in the
		// dialogue; members the access tables dropped are expanded again offline.
		// Without that channel in the configuration the mail would sit queued for
		// ever: the expansion is then queued online, as without expandlimit.
		accepted = []acceptedRcpt{{rcpt: queue.Recipient{
			Addr:    res.Rewrite.Address,
			Orig:    to,
			ORCPT:   orcpt,
			Notify:  strings.Join(notify, ","),
			Channel: res.ExpandChannel,
			Host:    strings.ToLower(res.Rewrite.Host),
		}}}
	}
	for _, a := range effects {
		tx.apply(a)
	}
	for _, a := range accepted {
		rc := a.rcpt
		key := strings.ToLower(rc.Channel + "\x00" + rc.Addr)
		if tx.seen[key] {
			continue
		}
		tx.seen[key] = true
		tx.rcpts = append(tx.rcpts, rc)
		tx.senders = append(tx.senders, a.sender)
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

	rcvd := s.receivedHeader(tx)
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
		for _, rc := range tx.rcpts {
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
	for _, rc := range tx.rcpts {
		if cp, ok := pol.Channels[rc.Channel]; ok && cp.BlockLimit > 0 && size > cp.BlockLimit*pol.blockSize() {
			// [inf] one oversized destination refuses the message for all: DATA has
			// one reply.
			return fail(status.New(552, "5.3.4", "Message size exceeds fixed maximum message size for channel %s", rc.Channel))
		}
	}
	if st := pol.lineLimitStatus(tx.rcpts, content); st != nil {
		return fail(st)
	}
	if len(tx.rcpts) == 0 || tx.discard {
		// every recipient was sent to the bitbucket ($B) or the message discarded ($V/$Z)
		s.srv.cfg.Metrics.Message(250)
		s.g.msgs.Add(1)
		return replyQueued(tx.id)
	}

	hdr := scanHeader(body, pol.hostname())
	base := queue.Envelope{
		Source:    src,
		RET:       tx.ret,
		EnvID:     tx.envID,
		Body8Bit:  tx.body8,
		SMTPUTF8:  tx.utf8,
		MessageID: hdr.messageID,
		Client:    s.helo() + " ([" + ipString(s.g.remote.Addr()) + "])",
	}
	forced := false // held by the counts HELD_SNDOPR is about, not by an access entry
	// +1: our own Received: field, which names pol.hostname() too
	if r := LoopReason(hdr.received+1, hdr.local+1, pol.MaxReceivedLines, pol.MaxLocalReceivedLines, pol.hostname()); r != "" {
		base.Held, base.HeldReason, forced = true, r, true
	} else if tx.held != "" {
		base.Held, base.HeldReason = true, tx.held
	} else if r := pol.holdLimitReason(tx.rcpts); r != "" {
		base.Held, base.HeldReason, forced = true, r, true
	}
	if s.srv.cfg.Queue == nil {
		return fail(status.New(451, "4.3.0", "Queue not available"))
	}
	base.From, base.Rcpts = tx.from, tx.rcpts
	envs := queue.SplitBySender(&base, tx.senders)
	ctx, cancel := context.WithTimeout(s.srv.baseCtx, pol.Timeouts.dataTermination())
	defer cancel()
	hk := s.srv.cfg.Metrics
	var t0 time.Time
	if hk != nil {
		t0 = time.Now()
	}
	ids, err := s.enqueueAll(ctx, envs, content)
	if hk != nil && err == nil {
		// Enqueue returns when the group commit made the message durable: this is
		// the wait the DATA reply has, which the histogram is about.
		hk.CommitWait(time.Since(t0))
	}
	code := "E"
	if s.g.ehlo {
		code += "E"
	}
	if s.g.tls {
		code += "S"
	}
	if s.g.auth {
		code += "A" // operations.md §5.2: "ESA" and the like
	}
	conn := ""
	if pol.LogConnection&LogConnSource != 0 {
		conn = base.Client
	}
	for i, env := range envs {
		if ids[i] == "" {
			continue
		}
		// Copies that are durable are logged even when another copy failed: they
		// will be delivered, and the client's retry duplicates them (never a loss).
		for _, rc := range env.Rcpts {
			s.srv.cfg.Log.Log(maillog.Record{
				Source: src, Dest: rc.Channel, Code: code, Size: size, From: env.From,
				ORCPT: rc.ORCPT, To: rc.Addr, ID: ids[i], MessageID: hdr.messageID, Conn: conn,
			})
		}
		if forced {
			lvl := slog.LevelInfo
			if pol.HeldSndopr {
				lvl = slog.LevelWarn
			}
			s.srv.log.Log(ctx, lvl, "message forced .HELD", "id", ids[i], "reason", base.HeldReason, "from", env.From, "conn", s.g.id)
		}
	}
	if err != nil {
		st := reply(status.From(err))
		s.srv.log.Warn("enqueue failed", "conn", s.g.id, "tx", tx.id, "queued", ids, "err", err)
		for i, env := range envs {
			if ids[i] != "" {
				continue // logged E above
			}
			for _, rc := range env.Rcpts {
				s.logJSize(pol, env.From, rc.Channel, rc.Addr, rc.ORCPT, int64(len(body)), st)
			}
		}
		s.srv.cfg.Metrics.Rejection(rejectClass(st))
		s.srv.cfg.Metrics.Message(st.Code)
		return smtpErr(st)
	}
	hk.Message(250)
	s.g.msgs.Add(1)
	// Debug, not Info: mail.log's E line already records every enqueue, and a
	// diagnostic line per message was one more unbuffered write(2) on the hot path.
	s.srv.log.Debug("queued", "ids", ids, "conn", s.g.id, "tx", tx.id, "from", tx.from, "rcpts", len(tx.rcpts), "size", size, "held", base.Held)
	return replyQueued(strings.Join(ids, " "))
}

// enqueueAll makes every envelope durable with the same content; ids[i] is "" for
// an envelope that failed. Several envelopes are enqueued concurrently so that
// they share one group commit, and the DATA reply waits for one fsync, not one
// per list owner.
func (s *session) enqueueAll(ctx context.Context, envs []*queue.Envelope, content []byte) ([]string, error) {
	ids := make([]string, len(envs))
	if len(envs) == 1 {
		id, err := s.srv.cfg.Queue.Enqueue(ctx, envs[0], content)
		ids[0] = id
		return ids, err
	}
	errs := make([]error, len(envs))
	var wg sync.WaitGroup
	for i, env := range envs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := s.srv.cfg.Queue.Enqueue(ctx, env, content)
			if err != nil {
				errs[i] = fmt.Errorf("copy for sender <%s>: %w", env.From, err)
				return
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	return ids, errors.Join(errs...)
}

// logJ writes a J (rejected at enqueue) record for a refused command and counts
// the refusal. Callers that log several J records for one refusal count it
// themselves (Data, an RCPT whose every expansion was refused) and use logJSize.
func (s *session) logJ(pol *Policy, from, dest, to, orcpt string, st *status.Status) {
	s.srv.cfg.Metrics.Rejection(rejectClass(st))
	s.logJSize(pol, from, dest, to, orcpt, 0, st)
}

// logJSize writes a J record for a refused message of known size.
func (s *session) logJSize(pol *Policy, from, dest, to, orcpt string, size int64, st *status.Status) {
	conn := ""
	if pol != nil && pol.LogConnection&LogConnSource != 0 {
		conn = s.helo() + " ([" + ipString(s.g.remote.Addr()) + "])"
	}
	s.srv.cfg.Log.Log(maillog.Record{
		Source: s.g.src, Dest: dest, Code: "J", Size: size, From: from, ORCPT: orcpt, To: to, Diag: st.Error(), Conn: conn,
	})
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

// receivedHeader is our trace line (RFC 5321 §4.4). The queue id is not known before
// Enqueue, so "id" is the transaction's own id, which the slog lines also carry.
func (s *session) receivedHeader(tx *transaction) string {
	proto := "SMTP"
	if s.g.ehlo {
		proto = "ESMTP"
		if s.g.tls {
			proto = "ESMTPS"
		}
	}
	var b strings.Builder
	b.WriteString("Received: from ")
	b.WriteString(sanitizeHelo(s.helo()))
	b.WriteString(" ([")
	b.WriteString(ipString(s.g.remote.Addr()))
	b.WriteString("])\r\n\tby ")
	b.WriteString(tx.pol.hostname())
	b.WriteString(" (mtad) with ")
	b.WriteString(proto)
	b.WriteString(" id ")
	b.WriteString(tx.id)
	if len(tx.rcpts) == 1 {
		b.WriteString("\r\n\tfor <")
		b.WriteString(sanitizeAddr(tx.rcpts[0].Orig))
		b.WriteString(">")
	}
	b.WriteString("; ")
	b.WriteString(time.Now().Format(time.RFC1123Z))
	b.WriteString("\r\n")
	return b.String()
}

func ipString(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	a = a.Unmap()
	if a.Is6() {
		return "IPv6:" + a.String()
	}
	return a.String()
}

// sanitizeHelo keeps the client's name from breaking the header's structure.
func sanitizeHelo(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f || r == '(' || r == ')' || r == ';' {
			return '?'
		}
		return r
	}, s)
}

func sanitizeAddr(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == '>' || r == '<' {
			return '?'
		}
		return r
	}, s)
}

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
