package channels

// The SMTP/LMTP protocol client: one connection to one server and the commands
// said on it (RFC 5321, with PIPELINING from RFC 2920, STARTTLS from RFC 3207
// and LMTP from RFC 2033). It knows nothing of MX records, connection caches or
// Results: it sends what it is asked to and returns what the server replied.
// dial.go opens sessions with it, smtp.go decides what the replies mean for each
// recipient and whether to try another host.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"mtad.dev/mta/mailaddr"
	"mtad.dev/mta/maillog"
)

// smtpConn is one client connection.
type smtpConn struct {
	nc        net.Conn
	deadlines *deadlineConn // nc with a fresh deadline before every read and write
	r         *bufio.Reader
	w         *bufio.Writer
	timeouts  Timeouts
	lmtp      bool              // LHLO, and one reply per accepted recipient after the dot
	host      string            // the host name we connected to (MX, daemon, literal)
	remote    string            // "host (TCP|lip|lport|rip|rport)" for Result.Remote
	ext       map[string]string // EHLO keywords (upper case) and their parameters
	msgs      int               // transactions started on this connection
	reused    bool              // came from the cache for the current transaction
	// checkBeforeMail asks the next transaction to send RSET in front of MAIL,
	// in the same pipelined write, to check that a cached connection is alive.
	checkBeforeMail bool
	buf             []byte // copy buffer, reused across this connection's messages
	// tls is the handshake's outcome once STARTTLS succeeded; the connection
	// keeps it in the cache, so reuse stays TLS.
	tls *tls.ConnectionState
	// tlsNote says why a connection to a server offering STARTTLS is plaintext
	// (TLSMay: refused, or the handshake failed on an earlier connection).
	tlsNote string

	// connection records and master_debug (smtplog.go)
	ended     func(*smtpConn) // called once by close; nil: nothing to record
	closeOnce sync.Once
	quitSent  bool
	logConn   bool
	transport string
	dbg       *maillog.DebugLog
}

func newSMTPConn(nc net.Conn, host string, timeouts Timeouts, lmtp bool) *smtpConn {
	deadlines := &deadlineConn{Conn: nc}
	c := &smtpConn{
		nc:        nc,
		deadlines: deadlines,
		r:         bufio.NewReaderSize(deadlines, 4096),
		w:         bufio.NewWriterSize(deadlines, 32*1024),
		timeouts:  timeouts,
		lmtp:      lmtp,
		host:      host,
	}
	c.remote = host + " (" + describeConn(nc) + ")"
	return c
}

func describeConn(nc net.Conn) string {
	l, r := nc.LocalAddr(), nc.RemoteAddr()
	if r == nil || r.Network() == "unix" {
		name := ""
		if r != nil {
			name = r.String()
		}
		return "UNIX|" + name
	}
	split := func(a net.Addr) (string, string) {
		if a == nil {
			return "", ""
		}
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return ap.Addr().Unmap().String(), strconv.Itoa(int(ap.Port()))
		}
		h, p, _ := net.SplitHostPort(a.String())
		return h, p
	}
	lh, lp := split(l)
	rh, rp := split(r)
	return "TCP|" + lh + "|" + lp + "|" + rh + "|" + rp
}

// watch makes ctx's cancellation interrupt blocked I/O on c. Call the result
// when done.
func (c *smtpConn) watch(ctx context.Context) func() {
	if ctx.Done() == nil {
		return func() {}
	}
	c.deadlines.ctx = ctx
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Now()) })
	return func() {
		stop()
		c.deadlines.ctx = nil
	}
}

// read reads one reply, waiting at most timeout for each piece of it.
func (c *smtpConn) read(timeout time.Duration) (Reply, error) {
	c.deadlines.readTimeout = timeout
	return ReadReply(c.r)
}

// cmd sends one command and reads its reply; timeout bounds both.
func (c *smtpConn) cmd(timeout time.Duration, line string) (Reply, error) {
	c.deadlines.writeTimeout = timeout
	c.w.WriteString(line)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return Reply{}, err
	}
	return c.read(timeout)
}

// greeting reads the server's banner: 220, or its refusal to serve us.
func (c *smtpConn) greeting() (Reply, error) {
	return c.read(c.timeouts.Greeting)
}

// helloVerb is how we introduce ourselves: LHLO in LMTP, EHLO in SMTP.
func (c *smtpConn) helloVerb() string {
	if c.lmtp {
		return "LHLO"
	}
	return "EHLO"
}

// hello says EHLO (LHLO in LMTP) and, to an SMTP server that does not know EHLO
// (any 5xx but 554), HELO as RFC 5321 §3.2 allows. verb is the command whose
// reply rep is. A 250 to EHLO records the server's extensions.
func (c *smtpConn) hello(name string) (verb string, rep Reply, err error) {
	verb = c.helloVerb()
	rep, err = c.cmd(c.timeouts.Ehlo, verb+" "+name)
	if err != nil {
		return verb, rep, err
	}
	switch {
	case rep.Code == 250:
		c.parseExt(rep)
	case !c.lmtp && rep.Code >= 500 && rep.Code != 554:
		verb = "HELO"
		rep, err = c.cmd(c.timeouts.Ehlo, "HELO "+name)
	}
	return verb, rep, err
}

// startTLS runs STARTTLS on c, which has just said EHLO, and the handshake,
// then EHLO again (RFC 3207 §4.2: forget everything learnt before). It is
// called before any transaction, so nothing has been pipelined ahead of it.
//
// refused is a non-220 reply to STARTTLS: the session is still in a known
// plaintext state and may go on without TLS. Any other error leaves the
// connection unusable.
func (c *smtpConn) startTLS(ctx context.Context, cfg *tls.Config, name string) (refused *Reply, err error) {
	rep, err := c.cmd(c.timeouts.Ehlo, "STARTTLS")
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
	tc := tls.Client(c.deadlines, cfg)
	// The handshake is bounded as a whole by the EHLO timeout (it stands in
	// for the server's greeting inside TLS), and each read/write by it too.
	c.deadlines.readTimeout, c.deadlines.writeTimeout = c.timeouts.Ehlo, c.timeouts.Ehlo
	hctx, cancel := context.WithTimeout(ctx, c.timeouts.Ehlo)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		var ne net.Error
		if ctx.Err() == nil && (hctx.Err() != nil || errors.As(err, &ne) && ne.Timeout()) {
			return nil, fmt.Errorf("TLS handshake: timeout after %v: %w", c.timeouts.Ehlo, err)
		}
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	st := tc.ConnectionState()
	c.tls = &st
	c.r = bufio.NewReaderSize(tc, 4096)
	c.w = bufio.NewWriterSize(tc, 32*1024)
	c.ext = nil
	verb := c.helloVerb()
	rep, err = c.cmd(c.timeouts.Ehlo, verb+" "+name)
	if err != nil {
		return nil, fmt.Errorf("%s after STARTTLS: %w", verb, err)
	}
	if rep.Code != 250 {
		return nil, fmt.Errorf("%s after STARTTLS answered %s", verb, rep)
	}
	c.parseExt(rep)
	return nil, nil
}

// checkAlive sends RSET on a cached connection before reuse, when the check
// cannot ride in front of the next MAIL (no PIPELINING).
func (c *smtpConn) checkAlive(ctx context.Context) error {
	stop := c.watch(ctx)
	defer stop()
	return c.rset()
}

func (c *smtpConn) rset() error {
	rep, err := c.cmd(c.timeouts.Rset, "RSET")
	if err != nil {
		return err
	}
	if rep.Code != 250 {
		return fmt.Errorf("RSET answered %s", rep)
	}
	return nil
}

func (c *smtpConn) quit() {
	c.deadlines.ctx = nil
	c.quitSent = true
	if _, err := c.cmd(c.timeouts.Quit, "QUIT"); err != nil {
		return
	}
}

func (c *smtpConn) close() {
	c.closeOnce.Do(func() {
		c.nc.Close()
		if c.ended != nil {
			c.ended(c)
		}
	})
}

func (c *smtpConn) parseExt(rep Reply) {
	c.ext = map[string]string{}
	for _, l := range rep.Lines[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
		c.ext[strings.ToUpper(k)] = v
	}
}

func (c *smtpConn) has(ext string) bool {
	_, ok := c.ext[ext]
	return ok
}

// sizeLimit is the server's SIZE (RFC 1870); 0 when it states none.
func (c *smtpConn) sizeLimit() int64 {
	v, ok := c.ext["SIZE"]
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// txReplies is what the server answered in one transaction. A reply the
// transaction did not get to has Code 0.
type txReplies struct {
	Mail  Reply
	Rcpts []Reply // one per recipient, in order
	Data  Reply   // to DATA
	Final []Reply // after the final dot: one in SMTP, one per accepted recipient in LMTP
}

// finalFor is the reply after the final dot for the j-th accepted recipient:
// its own in LMTP, the one reply in SMTP. ok is false when it never came.
func (r txReplies) finalFor(j int, lmtp bool) (rep Reply, ok bool) {
	switch {
	case lmtp && j < len(r.Final):
		return r.Final[j], true
	case !lmtp && len(r.Final) == 1:
		return r.Final[0], true
	}
	return Reply{}, false
}

// The steps of a transaction, as a txError names them (and as statuses say
// them: "timeout waiting for MAIL reply").
const (
	stageCheck   = "RSET" // the liveness check of a cached connection, pipelined in front of MAIL
	stageMail    = "MAIL" // also the write of the pipelined group
	stageRcpt    = "RCPT"
	stageData    = "DATA"
	stageContent = "DATA content"
	stageEnd     = "end of DATA"
	// stageReset is the RSET that ends a transaction which sent no content (and
	// the empty message's dot before it, see endWithoutContent).
	stageReset = "RSET after the transaction"
)

// txError says a transaction broke off at stage: the connection can carry no
// other. The replies read before are returned with it.
type txError struct {
	stage string
	err   error  // the read or write that failed; nil when the server closed with a 421
	reply *Reply // the 421 (service closing) that ended the session, when err is nil
}

func (e *txError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("%s: server closing: %s", e.stage, e.reply)
	}
	return fmt.Sprintf("%s: %v", e.stage, e.err)
}

func (e *txError) Unwrap() error { return e.err }

// duringEnvelope reports that the transaction broke off before any content
// was sent: at the reuse check, MAIL, RCPT or DATA.
func (e *txError) duringEnvelope() bool {
	switch e.stage {
	case stageCheck, stageMail, stageRcpt, stageData:
		return true
	}
	return false
}

// answered reports that the server had answered MAIL before the transaction
// broke off: the connection was alive when it was taken from the cache.
func (e *txError) answered() bool {
	return e.stage != stageCheck && e.stage != stageMail
}

// closingAt reports a 421 to a command of stage: the server ends the session.
func closingAt(stage string, rep Reply) *txError { return &txError{stage: stage, reply: &rep} }

// Deliver runs one mail transaction for rcpts: MAIL, RCPT for each, DATA, the
// dot-stuffed content and the final reply (one per accepted recipient in LMTP).
// m's content is sent as it is: converting it for the server is the caller's
// business. It returns every reply it got; the error, a *txError, says where it
// broke off, and then the connection is unusable. Without an error the session
// is ready for the next transaction.
func (c *smtpConn) Deliver(ctx context.Context, m *Message, rcpts []Rcpt) (txReplies, error) {
	stop := c.watch(ctx)
	defer stop()
	reps := txReplies{Rcpts: make([]Reply, len(rcpts))}
	lines := c.envelopeCommands(m, rcpts)
	var err error
	if c.has("PIPELINING") {
		err = c.sendEnvelopePipelined(lines, &reps)
	} else {
		err = c.sendEnvelopeLockstep(lines, &reps)
	}
	if err != nil {
		return reps, err
	}
	accepted := 0
	for _, rep := range reps.Rcpts {
		if rep.Code/100 == 2 {
			accepted++
		}
	}
	if reps.Mail.Code/100 != 2 || accepted == 0 {
		return reps, c.endWithoutContent(reps)
	}
	if reps.Data.Code == 0 { // lock-step: DATA comes after the RCPT replies
		if reps.Data, err = c.cmd(c.timeouts.DataInit, "DATA"); err != nil {
			return reps, &txError{stage: stageData, err: err}
		}
	}
	if reps.Data.Code == 421 {
		return reps, closingAt(stageData, reps.Data)
	}
	if reps.Data.Code != 354 {
		return reps, c.endWithoutContent(reps)
	}
	if err := c.sendContent(m); err != nil {
		return reps, &txError{stage: stageContent, err: err}
	}
	c.msgs++
	return reps, c.readFinalReplies(&reps, accepted)
}

// envelopeCommands builds MAIL and then one RCPT per recipient, with the ESMTP
// parameters the server offered. Local parts are quoted as RFC 5321 requires
// (mailaddr).
func (c *smtpConn) envelopeCommands(m *Message, rcpts []Rcpt) []string {
	var b strings.Builder
	b.WriteString("MAIL FROM:<" + mailaddr.Quote(m.From) + ">")
	if c.has("SIZE") {
		fmt.Fprintf(&b, " SIZE=%d", m.Size)
	}
	if m.EightBit && c.has("8BITMIME") {
		b.WriteString(" BODY=8BITMIME")
	}
	if m.SMTPUTF8 && c.has("SMTPUTF8") {
		b.WriteString(" SMTPUTF8")
	}
	dsn := c.has("DSN")
	if dsn {
		if m.RET != "" {
			b.WriteString(" RET=" + strings.ToUpper(m.RET))
		}
		if m.EnvID != "" {
			b.WriteString(" ENVID=" + xtext(m.EnvID))
		}
	}
	lines := make([]string, 1, 1+len(rcpts))
	lines[0] = b.String()
	for _, r := range rcpts {
		l := "RCPT TO:<" + mailaddr.Quote(r.Addr) + ">"
		if dsn {
			if r.Notify != "" {
				l += " NOTIFY=" + strings.ToUpper(r.Notify)
			}
			if typ, addr, ok := strings.Cut(r.ORCPT, ";"); ok && addr != "" {
				l += " ORCPT=" + typ + ";" + xtext(addr)
			}
		}
		lines = append(lines, l)
	}
	return lines
}

// sendEnvelopeLockstep sends MAIL and each RCPT, waiting for each reply. After
// a refused MAIL no RCPT is sent. lines are MAIL and the RCPTs.
func (c *smtpConn) sendEnvelopeLockstep(lines []string, reps *txReplies) error {
	var err error
	if reps.Mail, err = c.cmd(c.timeouts.Mail, lines[0]); err != nil {
		return &txError{stage: stageMail, err: err}
	}
	if reps.Mail.Code == 421 {
		return closingAt(stageMail, reps.Mail)
	}
	if reps.Mail.Code/100 != 2 {
		return nil
	}
	for k, l := range lines[1:] {
		if reps.Rcpts[k], err = c.cmd(c.timeouts.Rcpt, l); err != nil {
			return &txError{stage: stageRcpt, err: err}
		}
		if reps.Rcpts[k].Code == 421 {
			return closingAt(stageRcpt, reps.Rcpts[k])
		}
	}
	return nil
}

// sendEnvelopePipelined sends [RSET,] MAIL, every RCPT and DATA as one group
// (RFC 2920 §3.1: DATA may end a group; a server with no accepted recipient
// refuses it) and reads their replies: one write and one round trip.
//
// The group is written by its own goroutine while this one reads the replies.
// A server may answer each command as soon as it reads it; with a long
// recipient list its replies can fill our receive buffer while we are still
// writing, and if we only read once the whole group is written, it stops
// reading to wait for us while we wait for it, until a timeout.
func (c *smtpConn) sendEnvelopePipelined(lines []string, reps *txReplies) error {
	check := c.checkBeforeMail
	c.checkBeforeMail = false
	c.deadlines.writeTimeout = c.timeouts.Mail
	written := make(chan error, 1)
	go func() {
		if check {
			c.w.WriteString("RSET\r\n")
		}
		for _, l := range lines {
			c.w.WriteString(l)
			c.w.WriteString("\r\n")
		}
		c.w.WriteString("DATA\r\n")
		err := c.w.Flush()
		if err != nil {
			// The replies to what was not sent will never come: wake the reader
			// now rather than after its timeout. The connection is lost anyway.
			c.nc.Close()
		}
		written <- err
	}()
	rerr := c.readEnvelopeReplies(check, reps)
	var werr error
	select {
	case werr = <-written: // the write ended first, on its own
	default:
		if rerr == nil {
			werr = <-written
		} else {
			// The reader gave up while the writer may be blocked on a server
			// that no longer reads: unblock it (the connection is lost anyway);
			// its error is then a consequence of ours.
			c.nc.Close()
			<-written
		}
	}
	var closing *txError
	switch {
	case errors.As(rerr, &closing) && closing.err == nil:
		return rerr // the server's own word beats what our write saw
	case werr != nil:
		return &txError{stage: stageMail, err: werr}
	}
	return rerr
}

// readEnvelopeReplies reads the replies to a pipelined group, each under its
// command's timeout.
func (c *smtpConn) readEnvelopeReplies(check bool, reps *txReplies) error {
	if check {
		rep, err := c.read(c.timeouts.Rset)
		if err == nil && rep.Code != 250 {
			err = fmt.Errorf("RSET answered %s", rep)
		}
		if err != nil {
			return &txError{stage: stageCheck, err: err}
		}
	}
	var err error
	if reps.Mail, err = c.read(c.timeouts.Mail); err != nil {
		return &txError{stage: stageMail, err: err}
	}
	if reps.Mail.Code == 421 {
		return closingAt(stageMail, reps.Mail)
	}
	for k := range reps.Rcpts {
		if reps.Rcpts[k], err = c.read(c.timeouts.Rcpt); err != nil {
			return &txError{stage: stageRcpt, err: err}
		}
		if reps.Rcpts[k].Code == 421 {
			return closingAt(stageRcpt, reps.Rcpts[k])
		}
	}
	if reps.Data, err = c.read(c.timeouts.DataInit); err != nil {
		return &txError{stage: stageData, err: err}
	}
	return nil
}

// endWithoutContent leaves the session ready for the next transaction after
// one that sends no content. A server that answered 354 although no recipient
// was accepted (RFC 2920 §3.1 says it must not) gets an empty message's dot
// first, never the content.
func (c *smtpConn) endWithoutContent(reps txReplies) error {
	if reps.Data.Code == 354 {
		rep, err := c.cmd(c.timeouts.DataEnd, ".")
		if err != nil {
			return &txError{stage: stageReset, err: err}
		}
		if rep.Code == 421 {
			return closingAt(stageReset, rep)
		}
	}
	if err := c.rset(); err != nil {
		return &txError{stage: stageReset, err: err}
	}
	c.msgs++
	return nil
}

// sendContent writes m's content in the DATA encoding and the final dot. Each
// write may wait DataBlock for the server to make room.
func (c *smtpConn) sendContent(m *Message) error {
	c.deadlines.writeTimeout = c.timeouts.DataBlock
	dw := newDotWriter(c.w)
	if c.buf == nil {
		c.buf = make([]byte, 32*1024)
	}
	n, err := io.CopyBuffer(dw, io.NewSectionReader(m.Content, 0, m.Size), c.buf)
	if err == nil && n != m.Size {
		err = fmt.Errorf("content is %d bytes, expected %d", n, m.Size)
	}
	if err == nil {
		err = dw.Close()
	}
	if err == nil {
		err = c.w.Flush()
	}
	return err
}

// readFinalReplies reads the reply to the final dot: one in SMTP, where a 421
// also ends the session; in LMTP one per accepted recipient, in order (RFC 2033
// §4.2).
func (c *smtpConn) readFinalReplies(reps *txReplies, accepted int) error {
	n := 1
	if c.lmtp {
		n = accepted
	}
	for range n {
		rep, err := c.read(c.timeouts.DataEnd)
		if err != nil {
			return &txError{stage: stageEnd, err: err}
		}
		reps.Final = append(reps.Final, rep)
	}
	if !c.lmtp && reps.Final[0].Code == 421 {
		return closingAt(stageEnd, reps.Final[0])
	}
	return nil
}
