package channels

// The SMTP and LMTP client channel program. For each destination it tries the
// hosts route.go lists, on a cached connection (pool.go) or a fresh one
// (dial.go), runs the transaction with the protocol client (client.go), and
// turns the server's replies into one Result per recipient. What a reply means
// for a recipient, and when to try the next host, is decided here.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"mtad.dev/mta/status"
)

// SMTP is the SMTP client channel program (tcp_* channels' master). It keeps a
// cache of idle connections per destination host; it is safe for concurrent use
// and must be closed with Close.
type SMTP struct {
	opts     SMTPOptions
	timeouts Timeouts
	log      *slog.Logger
	proto    string // "smtp" or "lmtp", prefix of Result.Reply

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
	s := &SMTP{opts: opts, timeouts: opts.Timeouts.withDefaults(), log: opts.Logger, proto: "smtp", pools: map[string]*hostPool{}}
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

// Deliver implements Program. Recipients are grouped by destination (all of
// them when Daemon is set); each group is one transaction on one connection.
func (s *SMTP) Deliver(ctx context.Context, m *Message) []Result {
	out := make([]Result, len(m.Rcpts))
	for _, d := range s.destinations(m) {
		s.deliverGroup(ctx, m, d.name, d.rcpts, out)
	}
	return out
}

// deliverGroup delivers to the recipients idx of one destination, trying its
// hosts in order until none is left pending.
func (s *SMTP) deliverGroup(ctx context.Context, m *Message, dest string, idx []int, out []Result) {
	fail := func(st *status.Status) {
		for _, i := range idx {
			out[i] = s.result(st, "", st.Error())
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
	for _, h := range hops {
		if err := ctx.Err(); err != nil {
			lastErr = status.New(451, "4.4.7", "delivery cancelled: %v", err)
			lastTemp = lastErr
			break
		}
		retry := s.tryHop(ctx, m, h, pending, out)
		if retry == nil {
			return
		}
		lastErr = retry
		if retry.Temporary() {
			lastTemp = retry
		}
		if pending = stillPending(pending, out); len(pending) == 0 {
			return
		}
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
		// Remote stays who answered on the last attempt, if anyone did.
		out[i] = s.result(lastErr, out[i].Remote, lastErr.Error())
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

// tryHop delivers to the pending recipients through host h: on a cached
// connection when one is alive, else on each of h's addresses in turn. retry is
// set when no transaction reached a definitive outcome, so the caller should
// try the next host; it is the reason.
func (s *SMTP) tryHop(ctx context.Context, m *Message, h hop, pending []int, out []Result) (retry *status.Status) {
	pool := s.pool(h.name)
	for {
		c, err := pool.get(ctx)
		if err != nil {
			return status.New(451, "4.4.7", "waiting for a connection to %s: %v", h.name, err)
		}
		if c == nil {
			return s.tryAddresses(ctx, m, h, pool, pending, out) // we hold a slot: dial
		}
		// A cached connection may have died while idle. It is checked with
		// RSET, and on any doubt dropped: it must never fail the message. With
		// PIPELINING the RSET goes in the same write as MAIL and RCPT (RFC 2920
		// §3.1 allows it), saving a round trip; a failed check then comes back
		// from the transaction as a stale connection.
		if c.has("PIPELINING") {
			c.checkBeforeMail = true
		} else if err := c.checkAlive(ctx); err != nil {
			s.log.Debug("cached connection failed RSET, reconnecting", "host", h.name, "remote", c.remote, "err", err)
			pool.discard(c)
			continue
		}
		res := s.transact(ctx, c, m, pending, out)
		if res.stale {
			pool.discard(c) // it died between RSET and the first reply: as good as stale
			continue
		}
		s.finish(pool, c, res.broken)
		return res.retry
	}
}

// tryAddresses is tryHop with a connection slot of pool in hand: it dials h's
// addresses in turn until a transaction reaches a definitive outcome.
func (s *SMTP) tryAddresses(ctx context.Context, m *Message, h hop, pool *hostPool, pending []int, out []Result) (retry *status.Status) {
	kept := false // the slot went to a connection, which gives it back
	defer func() {
		if !kept {
			pool.release()
		}
	}()
	targets, st := s.dialTargets(ctx, h)
	if st != nil {
		return st
	}
	for _, t := range targets {
		c, st := s.open(ctx, h.name, t)
		if st != nil {
			s.log.Info("connection failed", "msg", m.ID, "host", h.name, "addr", t, "err", st)
			retry = st
			for _, i := range pending {
				out[i] = s.result(st, h.name, st.Error())
			}
			continue
		}
		res := s.transact(ctx, c, m, pending, out)
		kept = true
		s.finish(pool, c, res.broken)
		if res.retry == nil {
			return nil
		}
		retry = res.retry
		if pending = stillPending(pending, out); len(pending) == 0 {
			return nil
		}
		if !pool.acquireNow() {
			// Our connections to this host are all busy: leave the rest for
			// the next host rather than wait.
			return retry
		}
		kept = false
	}
	if retry == nil {
		retry = status.New(451, "4.4.4", "host %s has no address", h.name)
	}
	return retry
}

// outcome is how one transaction ended.
type outcome struct {
	retry  *status.Status // set when nothing definitive happened: try another host, for this reason
	broken bool           // the connection can carry no other transaction
	stale  bool           // a cached connection that died before the server answered: try again on a fresh one
}

// transact runs one transaction for rcpts (indexes into m.Rcpts) on c and
// records each one's Result in out.
func (s *SMTP) transact(ctx context.Context, c *smtpConn, m *Message, rcpts []int, out []Result) outcome {
	tag := c.tlsTag()
	sendable, st := s.prepare(c, m, rcpts)
	if st != nil {
		for _, i := range rcpts {
			out[i] = s.result(st, c.remote, st.Error()+tag)
		}
		return outcome{}
	}
	envelope := make([]Rcpt, len(rcpts))
	for k, i := range rcpts {
		envelope[k] = m.Rcpts[i]
	}
	reps, err := c.Deliver(ctx, sendable, envelope)
	var broke *txError
	errors.As(err, &broke)
	results, res := s.interpret(c, reps, broke, tag)
	for k, i := range rcpts {
		out[i] = results[k]
	}
	return res
}

// interpret maps a transaction's replies to one Result per recipient, and says
// what becomes of the connection and the recipients still pending. broke is
// where the transaction broke off, nil if it did not.
func (s *SMTP) interpret(c *smtpConn, reps txReplies, broke *txError, tag string) ([]Result, outcome) {
	results := make([]Result, len(reps.Rcpts))
	res := outcome{broken: broke != nil}
	answer := func(k int, st *status.Status, reply string) {
		results[k] = s.result(st, c.remote, reply+tag)
	}
	mailOK := reps.Mail.Code/100 == 2
	var accepted []int
	for k, rep := range reps.Rcpts {
		switch {
		case reps.Mail.Code != 0 && !mailOK:
			answer(k, reps.Mail.Status(), reps.Mail.String())
		case rep.Code/100 == 2:
			accepted = append(accepted, k)
		case rep.Code != 0:
			answer(k, rep.Status(), rep.String())
		}
	}
	if broke != nil && broke.duringEnvelope() {
		// No content went: every recipient the server did not refuse for good
		// is worth another address or host.
		st := brokenOffStatus(c.host, broke)
		for k, r := range results {
			if r.Err == nil || r.Err.Temporary() {
				answer(k, st, st.Error())
			}
		}
		res.retry = st
		res.stale = c.reused && !broke.answered()
		return results, res
	}
	switch {
	case !mailOK:
		if st := reps.Mail.Status(); broke == nil && st.Temporary() {
			res.retry = st // MAIL refused for now: another host may take it
		}
		return results, res
	case len(accepted) == 0:
		return results, res
	case reps.Data.Code != 354:
		st := reps.Data.Status()
		if reps.Data.Code/100 == 2 {
			st = &status.Status{Code: 451, Enhanced: "4.5.0", Text: fmt.Sprintf("unexpected reply to DATA: %s", reps.Data)}
		}
		for _, k := range accepted {
			answer(k, st, reps.Data.String())
		}
		return results, res
	}
	// The content went. A failure from here on means "maybe delivered": it is
	// temporary (a duplicate beats a loss) and no other host is tried.
	for j, k := range accepted {
		rep, ok := reps.finalFor(j, s.opts.LMTP)
		switch {
		case !ok:
			st := brokenOffStatus(c.host, broke)
			answer(k, st, st.Error())
		case rep.Code/100 == 2:
			answer(k, nil, rep.String())
			results[k].Handoff = s.handoff(c)
		default:
			answer(k, rep.Status(), rep.String())
		}
	}
	return results, res
}

// result is one recipient's Result: remote is who answered, "" when no server
// took part; reply is what mail.log shows after "smtp;" (or "lmtp;"). A server on
// a Unix socket has no DNS name to report in a notice.
func (s *SMTP) result(st *status.Status, remote, reply string) Result {
	return Result{Err: st, Remote: remote, Reply: s.proto + ";" + reply, ConnFailed: failedAtConnection(st, remote),
		NoRemoteMTA: s.opts.Network == "unix"}
}

// handoff is what a delivery through c did with the sender's DSN request: a
// server that offers DSN got it with the message and reports from now on
// (envelopeCommands sends NOTIFY, ORCPT, RET and ENVID only to such a server);
// otherwise an LMTP server is the final store, an SMTP server a relay beyond
// which no notice comes.
func (s *SMTP) handoff(c *smtpConn) Handoff {
	switch {
	case c.has("DSN"):
		return HandedOn
	case s.opts.LMTP:
		return DeliveredHere
	}
	return RelayedWithoutDSN
}

// sessionRefused is the status of a host refusing our session (at the greeting,
// EHLO or HELO): temporary whatever the reply, since a host that will not talk
// to us says nothing final about the message.
func sessionRefused(rep Reply, host, stage string) *status.Status {
	st := rep.Status()
	if st.Temporary() {
		return st
	}
	return &status.Status{Code: 451, Enhanced: "4.4.2", Text: fmt.Sprintf("%s %s: %s", host, stage, rep)}
}

// sessionFailure is the status of a session that broke at stage: a read or
// write that timed out, a connection lost, or a reply we cannot parse.
func sessionFailure(host, stage string, err error) *status.Status {
	var ne net.Error
	code := "4.4.2"
	if errors.As(err, &ne) && ne.Timeout() {
		if stage == stageContent {
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

// brokenOffStatus is the status of a transaction that broke off: the server's
// 421, or the failure of the read or write.
func brokenOffStatus(host string, broke *txError) *status.Status {
	if broke.err == nil {
		return broke.reply.Status()
	}
	return sessionFailure(host, broke.stage, broke.err)
}
