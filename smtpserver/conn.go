package smtpserver

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mtad.dev/mta/auth"
	"mtad.dev/mta/maillog"
)

// conn is one client connection: the SMTP state machine (see doc.go). Its
// goroutine (serve) reads, parses and answers every command; Close, wakeIfIdle and
// the atomics may be used from elsewhere (Shutdown, the server's accounting).
type conn struct {
	srv    *Server
	pol    *Policy  // connection snapshot
	raw    net.Conn // the socket
	nc     net.Conn // raw, or the *tls.Conn after STARTTLS
	br     *bufio.Reader
	local  netip.AddrPort
	remote netip.AddrPort
	sess   *session

	id        string // connection id for slog lines
	portProbe string
	src       string // source channel after switchchannel

	// protocol state
	heloDomain string // the HELO/EHLO domain (the argument's first word); "" before any
	needHelo   bool   // after STARTTLS until a new EHLO/HELO
	ehlo       bool   // the last greeting was EHLO
	mailOK     bool   // MAIL accepted: a transaction is open
	rcpts      int    // RCPT commands accepted in it
	firstCmd   bool   // no command read yet: the greeting timeout applies
	errors     int    // protocol errors (smtpReply.protocolError)
	out        []byte // replies not yet written (see reply)
	data       dataReader

	tls       bool
	auth      bool             // AUTH succeeded (see session.authenticated)
	authUser  string           // the user AUTH succeeded for
	preAuth   string           // the source channel before saslswitchchannel
	preTLS    string           // the source channel before tlsswitchchannel; "" when none applied
	authFails auth.ConnCounter // failed AUTHs on this connection

	// per-connection counts for the source channel's session limits, kept by the
	// session
	nTx      int // transactions started (MAIL accepted)
	nRcpt    int // RCPT commands presented
	nRejects int // RCPT commands refused

	// the session's time bound (deadlines.go)
	start    time.Time // accepted
	credited int64     // message bytes that earned session time at the minimum data rate

	// connection logging and debugging (see opened)
	logConn  bool                   // write the C record at close (LOG_CONNECTION bit 2)
	connSrc  string                 // the source channel at admission: O and C records pair
	listener string                 // address of the listener that accepted it (Server.Sessions)
	counted  bool                   // in Server.byListener; guarded by Server.mu
	released bool                   // Server.release ran; guarded by Server.mu
	isOpen   atomic.Bool            // admitted: Close ends the session (metrics, C record)
	dbg      *maillog.DebugLog      // slave_debug transcript; nil when off
	msgs     atomic.Int32           // messages accepted on this connection
	heloName atomic.Pointer[string] // the HELO/EHLO argument last accepted
	why      atomic.Pointer[string] // why the connection ends (first reason wins)

	dead      atomic.Bool // closed: reads end, replies are dropped
	inTx      atomic.Bool // a MAIL transaction is open (set by the session)
	reading   atomic.Bool // blocked waiting for a command line
	closeOnce sync.Once
	endOnce   sync.Once // closed runs once, from Close or from opened
}

// readBufSize is the connection's read buffer. 16 KiB takes a typical message
// (a few KiB) in one read(2) instead of two or more; 4 KiB cost one extra syscall
// per message. The buffers are recycled (Server.readers).
const readBufSize = 16 << 10

func newConn(s *Server, nc net.Conn, pol *Policy, local, remote netip.AddrPort) *conn {
	c := &conn{
		srv:       s,
		pol:       pol,
		raw:       nc,
		nc:        nc,
		local:     local,
		remote:    remote,
		portProbe: portProbe(local, remote),
		firstCmd:  true,
		id:        newID()[:10],
		start:     time.Now(),
	}
	c.sess = &session{srv: s, g: c}
	c.data.c = c
	s.register(c)
	return c
}

// opened starts the session proper, once admission passed: the sessions gauge, the
// O record and, for a slave_debug source channel, the transcript, which therefore
// starts with the banner.
func (c *conn) opened(pol *Policy) {
	c.connSrc = c.src
	c.srv.cfg.Metrics.SessionOpened()
	c.srv.sessionOpened(c)
	if pol.LogConnection&LogConnRecords != 0 {
		c.logConn = true
		c.srv.cfg.Log.LogConn(maillog.ConnRecord{Channel: c.src, Code: maillog.CodeConnOpened, Transport: c.portProbe})
	}
	if cp, ok := pol.Channels[c.src]; ok && cp.SlaveDebug && c.srv.cfg.DebugDir != "" {
		d, err := maillog.OpenDebug(c.srv.cfg.DebugDir, c.src, "slave", c.id, maillog.DebugOptions{})
		if err != nil {
			c.srv.log.Warn("slave_debug transcript not written", "conn", c.id, "channel", c.src, "err", err)
		} else {
			d.Note("inbound session %s on channel %s: %s", c.id, c.src, c.portProbe)
			c.dbg = d
		}
	}
	c.br = c.srv.getReader(c.debugReader(c.nc))
	// last: Close (possibly from Shutdown) reads the fields above once it sees this;
	// a Close that came first saw false and left the ending to us.
	c.isOpen.Store(true)
	if c.dead.Load() {
		c.endOnce.Do(c.closed)
	}
}

// serve runs the session: the banner, then one command at a time until the
// connection ends. The read buffer goes back to the server's pool afterwards.
func (c *conn) serve() {
	defer func() {
		c.Close()
		if c.br != nil {
			c.srv.putReader(c.br)
			c.br = nil
		}
	}()
	defer c.recoverPanic()
	if !c.greetingWait() {
		return
	}
	c.reply(c.banner())
	for !c.dead.Load() {
		line, ok := c.readCommand()
		if !ok {
			return
		}
		c.dispatch(line)
	}
}

// recoverPanic answers a panic in the session with 421 and closes the connection;
// it is logged with its stack, so one bad session never takes the server down.
func (c *conn) recoverPanic() {
	r := recover()
	if r == nil {
		return
	}
	c.srv.log.Error("panic serving connection", "conn", c.id, "remote", c.remote, "panic", r, "stack", string(debug.Stack()))
	c.bye(replyInternalError)
	c.Close()
}

func (c *conn) banner() *smtpReply {
	text := c.pol.hostname() + " ESMTP mtad"
	if c.pol.BannerAddition != "" {
		text += " " + c.pol.BannerAddition
	}
	return &smtpReply{Code: 220, EnhancedCode: noEnhancedCode, Message: text}
}

// readCommand reads the next command line, answering itself the lines that are no
// command at all (too long, NUL or bare CR). ok is false when the connection ends.
func (c *conn) readCommand() (line string, ok bool) {
	for {
		t := c.timeouts()
		d := t.command()
		if c.firstCmd {
			d = t.greeting()
		}
		b, tooLong, ok := c.readLineWithin(d, "command")
		if !ok {
			return "", false
		}
		c.firstCmd = false
		switch {
		case tooLong:
			c.reply(replyLineTooLong)
		case bytes.IndexByte(b, 0) >= 0 || bytes.IndexByte(b, '\r') >= 0:
			c.reply(replyBadCommandBytes)
		default:
			return string(b), true
		}
		if c.dead.Load() {
			return "", false
		}
	}
}

// readLineWithin arms the read deadline (d, or the end of the session's time when
// that comes first), flushes the replies owed, and reads one line. ok is false
// when the connection ended: closed, timed out or out of session time (answered
// 421), or the server is shutting down and no transaction is open (answered 421).
func (c *conn) readLineWithin(d time.Duration, where string) (line []byte, tooLong, ok bool) {
	deadline, cut := c.readDeadline(d)
	c.nc.SetReadDeadline(deadline)
	c.reading.Store(true)
	// Checked after arming the deadline: Shutdown sets closing, then expires the
	// deadline, so either we see the flag here or the read below wakes up.
	if c.srv.closing.Load() && !c.inTx.Load() {
		c.reading.Store(false)
		c.bye(replyShuttingDown(c.pol.hostname()))
		return nil, false, false
	}
	c.flushBeforeRead(false)
	line, tooLong, err := c.readLine()
	c.reading.Store(false)
	switch {
	case err != nil && c.isCut(err, cut):
		c.cutOff(cut)
		return nil, false, false
	case err != nil:
		c.readFailed(err, where)
		return nil, false, false
	}
	return line, tooLong, true
}

// dispatch runs one command line.
func (c *conn) dispatch(line string) {
	line = strings.TrimRight(line, " \t")
	verb, arg, hasArg := strings.Cut(line, " ")
	switch v := strings.ToUpper(verb); v {
	case "HELO", "EHLO":
		c.hello(arg, v == "EHLO")
	case "MAIL":
		c.mail(arg)
	case "RCPT":
		c.rcpt(arg)
	case "DATA":
		c.dataCmd(strings.TrimSpace(arg))
	case "RSET":
		c.rset()
	case "NOOP":
		c.reply(replyNoop)
	case "VRFY":
		c.reply(replyVrfy)
	case "QUIT":
		c.reply(replyBye)
		c.ending("QUIT")
		c.Close()
	case "EXPN", "HELP", "TURN", "SEND", "SOML", "SAML":
		c.reply(replyNotImplemented)
	case "STARTTLS":
		c.startTLS(hasArg)
	case "AUTH":
		// Not pipelinable, and run to its end here; see sasl.go.
		c.doAuth(arg)
	case "BDAT":
		// CHUNKING is not advertised, so BDAT is an unknown command.
		c.reply(replyNoBDAT)
	case "":
		c.reply(replyBadSyntax)
	default:
		c.reply(replyUnknownCommand)
	}
}

// debugReader tees what the client sends into the transcript. It sits under the
// bufio.Reader, so the transcript sees bytes as they arrive, pipelined ones and
// those STARTTLS discards included; after STARTTLS it wraps the TLS connection, so
// the transcript has the plaintext dialogue, never handshake bytes.
func (c *conn) debugReader(r io.Reader) io.Reader {
	if c.dbg == nil {
		return r
	}
	return c.dbg.ClientReader(r)
}

// ending records why the connection ends, for the C record and the transcript;
// the first reason given wins (a 421 is the cause, the close that follows is not).
func (c *conn) ending(why string) {
	c.why.CompareAndSwap(nil, &why)
}

// wakeIfIdle makes a session that waits for a command notice a shutdown at once.
func (c *conn) wakeIfIdle() {
	if c.reading.Load() && !c.inTx.Load() {
		c.raw.SetReadDeadline(time.Now())
	}
}

// Close ends the connection; safe from any goroutine, and more than once.
func (c *conn) Close() {
	c.closeOnce.Do(func() {
		c.dead.Store(true)
		// The session's end is recorded before the socket closes, so that by the
		// time a client sees EOF its C record is queued and the gauge is down.
		if c.isOpen.Load() {
			c.endOnce.Do(c.closed)
		}
		c.raw.Close()
		c.srv.release(c)
	})
}

// closed ends an admitted session: gauge, C record, transcript.
func (c *conn) closed() {
	c.srv.cfg.Metrics.SessionClosed()
	why := "closed by server"
	if p := c.why.Load(); p != nil {
		why = *p
	}
	if c.logConn {
		peer := ""
		if p := c.heloName.Load(); p != nil {
			peer = *p
		}
		c.srv.cfg.Log.LogConn(maillog.ConnRecord{
			Channel: c.connSrc, Code: maillog.CodeConnClosed, Transport: c.portProbe, Peer: peer,
			Messages: int(c.msgs.Load()), Diag: why,
		})
	}
	if c.dbg != nil {
		c.dbg.Note("closed: %s; %d messages", why, c.msgs.Load())
		if err := c.dbg.Close(); err != nil {
			c.srv.log.Warn("slave_debug transcript", "conn", c.id, "err", err)
		}
	}
}

func tlsName(v uint16) string { return strings.ReplaceAll(tls.VersionName(v), " ", "") }
