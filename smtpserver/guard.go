package smtpserver

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mtad.dev/mta/auth"
	"mtad.dev/mta/maillog"
)

// guard wraps one client connection between the socket and go-smtp; see doc.go.
// Read and Write are called from go-smtp's connection goroutine only; Close,
// wakeIfIdle and the deadline setters may come from elsewhere.
type guard struct {
	srv    *Server
	pol    *Policy // connection snapshot
	raw    net.Conn
	conn   net.Conn // raw, or the *tls.Conn after STARTTLS
	br     *bufio.Reader
	local  netip.AddrPort
	remote netip.AddrPort

	id        string // connection id for slog lines
	portProbe string
	src       string   // source channel after switchchannel
	sess      *session // set by NewSession

	// read side
	dataMode   bool
	dataState  int
	dataPrevCR bool   // the last DATA byte was CR
	dataBare   bool   // a bare CR or LF was seen in this DATA, on the wire
	pending    []byte // validated command line not yet taken by go-smtp
	synthEnd   []byte // end-of-data line for go-smtp after readDataDirect
	firstCmd   bool   // no command read yet: greeting timeout applies

	// write side
	wbuf     []byte
	out      []byte // reply lines not yet written (see emit)
	greeted  bool
	lastVerb string
	ehloLine int

	// protocol state the guard tracks for itself
	errors    int
	ehlo      bool // the last greeting was EHLO
	tls       bool
	auth      bool             // AUTH succeeded (see session.authenticated)
	authUser  string           // the user AUTH succeeded for
	preAuth   string           // the source channel before saslswitchchannel
	preTLS    string           // the source channel before tlsswitchchannel; "" when none applied
	authFails auth.ConnCounter // failed AUTHs on this connection
	needHelo  bool             // after STARTTLS until a new EHLO/HELO

	// per-connection counts for the source channel's session limits (channels.md
	// §3.9), kept by the session
	nTx      int // transactions started (MAIL accepted)
	nRcpt    int // RCPT commands presented
	nRejects int // RCPT commands refused

	// connection logging and debugging (see opened)
	logConn  bool                   // write the C record at close (LOG_CONNECTION bit 2)
	connSrc  string                 // the source channel at admission: O and C records pair
	listener string                 // address of the listener that accepted it (Server.Sessions)
	counted  bool                   // in Server.sessions; guarded by Server.mu
	released bool                   // Server.release ran; guarded by Server.mu
	isOpen   atomic.Bool            // admitted: Close ends the session (metrics, C record)
	dbg      *maillog.DebugLog      // slave_debug transcript; nil when off
	msgs     atomic.Int32           // messages accepted on this connection
	heloName atomic.Pointer[string] // the HELO/EHLO argument last accepted
	heloArg  string                 // the argument of the HELO/EHLO being answered
	why      atomic.Pointer[string] // why the connection ends (first reason wins)

	dead      atomic.Bool // closed: Read returns io.EOF, writes are dropped
	inTx      atomic.Bool // a MAIL transaction is open (set by the session)
	reading   atomic.Bool // blocked waiting for a command line
	closeOnce sync.Once
	endOnce   sync.Once // closed runs once, from Close or from opened
}

// readBufSize is the guard's socket read buffer. 16 KiB takes a typical message
// (a few KiB) in one read(2) instead of two or more; 4 KiB cost one extra syscall
// per message. Memory: 16 KiB per connection.
const readBufSize = 16 << 10

func newGuard(s *Server, c net.Conn, pol *Policy, local, remote netip.AddrPort) *guard {
	g := &guard{
		srv:       s,
		pol:       pol,
		raw:       c,
		conn:      c,
		br:        bufio.NewReaderSize(c, readBufSize),
		local:     local,
		remote:    remote,
		portProbe: portProbe(local, remote),
		firstCmd:  true,
		id:        newID()[:10],
	}
	s.register(g)
	return g
}

// opened starts the session proper, once admission passed: the sessions gauge, the
// O record and, for a slave_debug source channel, the transcript. It runs before
// the connection is handed to go-smtp, so the transcript starts with the banner.
func (g *guard) opened(pol *Policy) {
	g.connSrc = g.src
	g.srv.cfg.Metrics.SessionOpened()
	g.srv.sessionOpened(g)
	if pol.LogConnection&LogConnRecords != 0 {
		g.logConn = true
		g.srv.cfg.Log.LogConn(maillog.ConnRecord{Channel: g.src, Code: "O", Transport: g.portProbe})
	}
	if cp, ok := pol.Channels[g.src]; ok && cp.SlaveDebug && g.srv.cfg.DebugDir != "" {
		d, err := maillog.OpenDebug(g.srv.cfg.DebugDir, g.src, "slave", g.id, maillog.DebugOptions{})
		if err != nil {
			g.srv.log.Warn("slave_debug transcript not written", "conn", g.id, "channel", g.src, "err", err)
			return
		}
		d.Note("inbound session %s on channel %s: %s", g.id, g.src, g.portProbe)
		g.dbg = d
		g.br = bufio.NewReaderSize(g.debugReader(g.conn), readBufSize)
	}
	// last: Close (possibly from Shutdown) reads the fields above once it sees this;
	// a Close that came first saw false and left the ending to us.
	g.isOpen.Store(true)
	if g.dead.Load() {
		g.endOnce.Do(g.closed)
	}
}

// debugReader tees what the client sends into the transcript. It sits under the
// bufio.Reader, so the transcript sees bytes as they arrive, pipelined ones and
// those STARTTLS discards included; after STARTTLS it wraps the TLS connection, so
// the transcript has the plaintext dialogue, never handshake bytes.
func (g *guard) debugReader(r io.Reader) io.Reader {
	if g.dbg == nil {
		return r
	}
	return debugTee{r: r, d: g.dbg}
}

type debugTee struct {
	r io.Reader
	d *maillog.DebugLog
}

func (t debugTee) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.d.FromClient(p[:n])
	return n, err
}

// ending records why the connection ends, for the C record and the transcript;
// the first reason given wins (a 421 is the cause, the close that follows is not).
func (g *guard) ending(why string) {
	g.why.CompareAndSwap(nil, &why)
}

// end-of-data state machine, the same as go-smtp's dataReader (data.go) so that both
// agree on where a message ends: only CRLF "." CRLF does.
const (
	dsBeginLine = iota
	dsDot
	dsDotCR
	dsCR
	dsData
	dsEOF
)

func nextDataState(state int, c byte) int {
	switch state {
	case dsBeginLine:
		switch c {
		case '.':
			return dsDot
		case '\r':
			return dsCR
		}
		return dsData
	case dsDot:
		if c == '\r' {
			return dsDotCR
		}
		return dsData
	case dsDotCR:
		if c == '\n' {
			return dsEOF
		}
		return dsData
	case dsCR:
		if c == '\n' {
			return dsBeginLine
		}
		return dsData
	case dsData:
		if c == '\r' {
			return dsCR
		}
		return dsData
	}
	return state
}

func (g *guard) Read(p []byte) (int, error) {
	if len(g.synthEnd) > 0 {
		n := copy(p, g.synthEnd)
		g.synthEnd = g.synthEnd[n:]
		return n, nil
	}
	for len(g.pending) == 0 {
		if g.dead.Load() {
			return 0, io.EOF
		}
		if g.dataMode {
			return g.readData(p)
		}
		if err := g.nextCommand(); err != nil {
			return 0, err
		}
	}
	n := copy(p, g.pending)
	g.pending = g.pending[n:]
	return n, nil
}

// readData passes message bytes through, stopping right after the end-of-data line.
func (g *guard) readData(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if g.br.Buffered() == 0 {
		g.flushBeforeRead(true)
		g.conn.SetReadDeadline(time.Now().Add(g.pol.Timeouts.dataBlock()))
		if _, err := g.br.Peek(1); err != nil {
			g.readFailed(err, "DATA")
			return 0, io.EOF
		}
	}
	buf, _ := g.br.Peek(min(g.br.Buffered(), len(p)))
	n := 0
	for n < len(buf) {
		if g.dataState == dsData && !g.dataPrevCR {
			// Inside a line only CR and LF change anything: skip to the next one
			// (IndexByte is vectorised; this loop used to cost a few % of CPU).
			k := plainRun(buf[n:])
			n += k
			if n == len(buf) {
				break
			}
		}
		c := buf[n]
		// Seen on the raw bytes: go-smtp's unstuffing drops the CR of a line
		// starting ".\r" (net/textproto keeps it), so the session alone could miss it.
		if (c == '\n') != g.dataPrevCR {
			g.dataBare = true
		}
		g.dataPrevCR = c == '\r'
		g.dataState = nextDataState(g.dataState, c)
		n++
		if g.dataState == dsEOF {
			g.dataMode = false
			break
		}
	}
	copy(p, buf[:n])
	g.br.Discard(n)
	return n, nil
}

// readDataDirect reads the message of the current DATA straight from the socket into
// dst, removing the dot-stuffing exactly as go-smtp's dataReader does (the same
// state machine: a line's leading "." is dropped, ".\r" followed by anything but
// "\n" drops both), keeping at most limit bytes and discarding the rest up to the
// end-of-data line. go-smtp's own reader is then handed a bare end-of-data line
// (synthEnd), so it ends at once without having seen the message. This is the
// session's fast path: go-smtp's reader costs a ReadByte and a switch per byte
// (about a tenth of the daemon's CPU at 4 KiB messages); here plain runs inside a
// line are found with IndexByte and copied whole.
func (g *guard) readDataDirect(dst *bytes.Buffer, limit int64) error {
	kept := int64(0)
	out := func(b []byte) {
		if room := limit - kept; room > 0 {
			b = b[:min(int64(len(b)), room)]
			dst.Write(b)
			kept += int64(len(b))
		}
	}
	for g.dataMode {
		if g.dead.Load() {
			return io.EOF
		}
		if g.br.Buffered() == 0 {
			g.flushBeforeRead(true)
			g.conn.SetReadDeadline(time.Now().Add(g.pol.Timeouts.dataBlock()))
			if _, err := g.br.Peek(1); err != nil {
				g.readFailed(err, "DATA")
				return io.EOF
			}
		}
		buf, _ := g.br.Peek(g.br.Buffered())
		i := 0
		for i < len(buf) {
			if g.dataState == dsData && !g.dataPrevCR {
				k := plainRun(buf[i:])
				out(buf[i : i+k])
				i += k
				if i == len(buf) {
					break
				}
			}
			c := buf[i]
			i++
			if (c == '\n') != g.dataPrevCR {
				g.dataBare = true
			}
			g.dataPrevCR = c == '\r'
			old := g.dataState
			g.dataState = nextDataState(old, c)
			switch {
			case old == dsBeginLine && c == '.', old == dsDot && c == '\r', old == dsDotCR && c == '\n':
				// stuffing dot, or part of the end-of-data line: not content
			default:
				out(buf[i-1 : i])
			}
			if g.dataState == dsEOF {
				g.dataMode = false
				break
			}
		}
		g.br.Discard(i)
	}
	g.synthEnd = append(g.synthEnd[:0], ".\r\n"...)
	return nil
}

// plainRun is the length of the prefix of b holding neither CR nor LF.
func plainRun(b []byte) int {
	end := len(b)
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		end = i
	}
	if i := bytes.IndexByte(b[:end], '\r'); i >= 0 {
		end = i
	}
	return end
}

// nextCommand reads client lines until one is fit for go-smtp (left in g.pending),
// answering the others itself. A non-nil error ends the connection.
func (g *guard) nextCommand() error {
	d := g.pol.Timeouts.command()
	if g.firstCmd {
		d = g.pol.Timeouts.greeting()
	}
	g.conn.SetReadDeadline(time.Now().Add(d))
	g.reading.Store(true)
	// Checked after arming the deadline: Shutdown sets closing, then expires the
	// deadline, so either we see the flag here or the read below wakes up.
	if g.srv.closing.Load() && !g.inTx.Load() {
		g.reading.Store(false)
		g.bye("421 4.3.2 " + g.pol.hostname() + " Service shutting down")
		return io.EOF
	}
	g.flushBeforeRead(false)
	line, tooLong, err := g.readLine()
	g.reading.Store(false)
	if err != nil {
		g.readFailed(err, "command")
		return io.EOF
	}
	g.firstCmd = false
	if tooLong {
		g.replyError("500 5.5.2 Line too long")
		return nil
	}
	if bytes.IndexByte(line, 0) >= 0 || bytes.IndexByte(line, '\r') >= 0 {
		g.replyError("501 5.5.2 Syntax error: NUL or bare CR in command")
		return nil
	}
	line = bytes.TrimRight(line, " \t")
	verb, _, _ := bytes.Cut(line, []byte{' '})
	v := strings.ToUpper(string(verb))
	switch v {
	case "HELO", "EHLO":
		// needHelo and ehlo change when go-smtp accepts the greeting (see filter)
		_, arg, _ := bytes.Cut(line, []byte{' '})
		g.heloArg = string(bytes.TrimSpace(arg))
	case "MAIL", "RSET":
		if why := g.disconnectLimit(v); why != "" {
			g.srv.log.Info("session limit reached", "conn", g.id, "remote", g.remote, "channel", g.src, "limit", why)
			g.srv.cfg.Metrics.Rejection("temporary") // a 4xx of no class of its own (metrics.Hooks)
			g.bye("421 4.7.0 " + g.pol.hostname() + " Error: too many " + why + ", closing connection")
			return io.EOF
		}
		if v == "RSET" {
			break
		}
		if g.needHelo {
			g.replyError("503 5.5.1 Error: send HELO/EHLO first")
			return nil
		}
		if sizeOverflows(line) {
			// go-smtp parses SIZE= into 32 bits and calls a larger declaration a
			// syntax error (501); RFC 1870 §6 wants 552, so the client does not
			// retry a message no server limit here can take.
			g.srv.cfg.Metrics.Rejection("size")
			g.writeRaw("552 5.3.4 Message size exceeds fixed maximum message size\r\n")
			return nil
		}
	case "RCPT", "DATA", "NOOP", "QUIT", "VRFY":
	case "EXPN", "HELP", "TURN", "SEND", "SOML", "SAML":
		g.replyError("502 5.5.1 Error: command not implemented")
		return nil
	case "STARTTLS":
		return g.startTLS(len(line) != len(verb))
	case "AUTH":
		// Not pipelinable, and answered here; see sasl.go.
		_, args, _ := strings.Cut(string(line), " ")
		return g.doAuth(args)
	case "BDAT":
		// CHUNKING is not advertised (go-smtp #315), so BDAT is an unknown command.
		g.replyError("500 5.5.1 Error: BDAT not supported")
		return nil
	case "":
		g.replyError("500 5.5.2 Error: bad syntax")
		return nil
	default:
		g.replyError("500 5.5.2 Error: command not recognized")
		return nil
	}
	g.lastVerb = v
	g.ehloLine = 0
	g.pending = append(append(g.pending[:0], line...), '\r', '\n')
	return nil
}

// readLine reads one line without its LF/CRLF. A line over MaxCommandLine is
// consumed to its end and reported as tooLong; it is never held in memory whole.
func (g *guard) readLine() (line []byte, tooLong bool, err error) {
	var acc []byte
	for {
		chunk, err := g.br.ReadSlice('\n')
		if !tooLong {
			acc = append(acc, chunk...)
			if len(acc) > MaxCommandLine {
				tooLong, acc = true, nil
			}
		}
		switch {
		case err == nil:
			if tooLong {
				return nil, true, nil
			}
			acc = acc[:len(acc)-1]
			acc = bytes.TrimSuffix(acc, []byte{'\r'})
			return acc, false, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, false, err
		}
	}
}

func (g *guard) readFailed(err error, where string) {
	var ne net.Error
	switch {
	case g.dead.Load():
	case errors.Is(err, io.EOF):
		g.ending("client disconnected")
		g.Close()
	case errors.As(err, &ne) && ne.Timeout():
		if g.srv.closing.Load() {
			g.bye("421 4.3.2 " + g.pol.hostname() + " Service shutting down")
		} else {
			g.srv.log.Info("timeout", "conn", g.id, "remote", g.remote, "during", where)
			g.bye("421 4.4.2 " + g.pol.hostname() + " Error: timeout exceeded")
		}
	default:
		g.ending("read error: " + err.Error())
		g.Close()
	}
}

func (g *guard) startTLS(hasArgs bool) error {
	switch {
	case hasArgs:
		g.replyError("501 5.5.4 Syntax: STARTTLS")
		return nil
	case !g.srv.tlsOn():
		g.replyError("502 5.5.1 Error: command not implemented")
		return nil
	case g.tls:
		g.replyError("503 5.5.1 Error: TLS already active")
		return nil
	}
	g.writeRaw("220 2.0.0 Ready to start TLS\r\n")
	// Bytes the client pipelined after STARTTLS were sent in clear text and must not
	// be taken as commands of the protected session (RFC 3207 §4.2).
	g.br.Discard(g.br.Buffered())
	tc := tls.Server(g.raw, g.srv.cfg.TLS)
	tc.SetDeadline(time.Now().Add(g.pol.Timeouts.command()))
	if err := tc.Handshake(); err != nil {
		g.srv.log.Info("TLS handshake failed", "conn", g.id, "remote", g.remote, "err", err)
		g.ending("TLS handshake failed: " + err.Error())
		g.Close()
		return io.EOF
	}
	tc.SetDeadline(time.Time{})
	g.conn = tc
	g.br = bufio.NewReaderSize(g.debugReader(tc), readBufSize)
	g.dbg.Note("TLS %s established", tlsName(tc.ConnectionState().Version))
	g.tls = true
	g.needHelo = true
	g.ehlo = false
	if g.auth {
		// RFC 3207 §4.2: an AUTH done in clear text (the loopback exception) is
		// forgotten with everything else.
		g.auth, g.authUser, g.src = false, "", g.preAuth
	}
	g.tlsSwitch()
	if g.sess != nil {
		g.sess.tlsStarted()
	}
	return nil
}

// tlsSwitch applies the source channel's tlsswitchchannel after a successful
// STARTTLS, under the same rules as saslswitchchannel (session.authenticated): the
// target must exist, and a source marked noswitchchannel stays put.
func (g *guard) tlsSwitch() {
	cp, ok := g.pol.Channels[g.src]
	if !ok || cp.TLSSwitchChannel == "" || cp.NoSwitchChannel {
		return
	}
	if _, ok := g.pol.Channels[cp.TLSSwitchChannel]; !ok {
		return
	}
	g.preTLS, g.src = g.src, cp.TLSSwitchChannel
	g.dbg.Note("source channel %s after STARTTLS (tlsswitchchannel)", g.src)
}

// disconnectLimit reports which disconnect* limit of the source channel a MAIL
// or RSET command (verb) finds exceeded, "" when none: the reference checks them
// at these two commands (channels.md §3.9). A MAIL counts the transaction it
// would start.
func (g *guard) disconnectLimit(verb string) string {
	cp, ok := g.pol.Channels[g.src]
	if !ok {
		return ""
	}
	tx := g.nTx
	if verb == "MAIL" {
		tx++
	}
	switch {
	case cp.DisconnectTransactionLimit > 0 && tx > cp.DisconnectTransactionLimit:
		return "transactions"
	case cp.DisconnectRecipientLimit > 0 && g.nRcpt > cp.DisconnectRecipientLimit:
		return "recipients"
	case cp.DisconnectRejectLimit > 0 && g.nRejects > cp.DisconnectRejectLimit:
		return "rejected recipients"
	}
	return ""
}

// sizeOverflows tells whether a MAIL command declares SIZE= as a well-formed
// number too large for 32 bits (RFC 1870 allows 20 digits).
func sizeOverflows(line []byte) bool {
	for _, f := range bytes.Fields(line) {
		if len(f) <= 5 || !bytes.EqualFold(f[:5], []byte("SIZE=")) {
			continue
		}
		v := f[5:]
		if len(v) > 20 || bytes.ContainsFunc(v, func(r rune) bool { return r < '0' || r > '9' }) {
			return false // not a number: go-smtp's 501 is right
		}
		_, err := strconv.ParseUint(string(v), 10, 32)
		return err != nil
	}
	return false
}

// replyError answers a line the guard refused and counts it as a protocol error.
func (g *guard) replyError(line string) {
	g.writeRaw(line + "\r\n")
	g.countError()
}

func (g *guard) countError() {
	g.srv.cfg.Metrics.Rejection("protocol")
	g.errors++
	if g.errors >= g.pol.maxErrors(g.src) {
		g.bye("421 4.7.0 " + g.pol.hostname() + " Error: too many errors")
	}
}

// bye writes a last line and closes.
func (g *guard) bye(line string) {
	if g.dead.Load() {
		return
	}
	g.ending(line)
	g.writeRaw(line + "\r\n")
	g.Close()
}

// writeRaw writes a reply of the guard's own at once, behind whatever go-smtp reply
// lines are still buffered, so reply order is kept.
func (g *guard) writeRaw(s string) {
	if g.dead.Load() {
		return
	}
	g.out = append(g.out, s...)
	g.flushOut()
}

// emit buffers one reply line of go-smtp's. A reply goes out when its last line
// (code followed by a space) is complete, so a multi-line EHLO reply is one write
// instead of one per line; and while the client has pipelined more input that we
// have already read, even complete replies wait, so a PIPELINING group is answered
// with one write (RFC 2920 §3.1 lets a server batch its replies; Postfix does the
// same). Whatever is buffered is flushed before the guard could block on a read
// (flushBeforeRead), so a client never waits for a reply we hold.
func (g *guard) emit(line string, last bool) {
	if g.dead.Load() {
		return
	}
	g.out = append(g.out, line...)
	g.out = append(g.out, '\r', '\n')
	if last && g.br.Buffered() == 0 {
		g.flushOut()
	}
}

// flushBeforeRead sends buffered replies unless the next command line is already
// complete in the read buffer (then the read cannot block).
func (g *guard) flushBeforeRead(data bool) {
	if len(g.out) == 0 {
		return
	}
	if n := g.br.Buffered(); n > 0 {
		if data {
			return
		}
		if b, _ := g.br.Peek(n); bytes.IndexByte(b, '\n') >= 0 {
			return
		}
	}
	g.flushOut()
}

func (g *guard) flushOut() {
	if len(g.out) == 0 {
		return
	}
	if !g.dead.Load() {
		g.conn.SetWriteDeadline(time.Now().Add(g.pol.Timeouts.command()))
		g.conn.Write(g.out)
		g.dbg.FromServer(g.out)
	}
	if cap(g.out) > 4096 {
		g.out = nil // a huge reply once: do not keep its buffer for the connection's life
	} else {
		g.out = g.out[:0]
	}
}

// Write receives go-smtp's replies, one line per call (textproto flushes each line),
// and rewrites them; see filter.
func (g *guard) Write(p []byte) (int, error) {
	if g.dead.Load() {
		return 0, net.ErrClosed
	}
	g.wbuf = append(g.wbuf, p...)
	for {
		i := bytes.IndexByte(g.wbuf, '\n')
		if i < 0 {
			break
		}
		line := string(g.wbuf[:i+1])
		g.wbuf = g.wbuf[i+1:]
		g.filter(strings.TrimRight(line, "\r\n"))
	}
	if len(g.wbuf) == 0 {
		g.wbuf = nil
	} else if len(g.wbuf) > 4096 {
		// never seen from go-smtp; pass it on rather than grow
		g.writeRaw(string(g.wbuf))
		g.wbuf = nil
	}
	return len(p), nil
}

// filter rewrites one reply line of go-smtp's and writes it.
func (g *guard) filter(line string) {
	if len(line) < 4 {
		g.emit(line, true)
		return
	}
	code, sep, text := line[:3], line[3], line[4:]
	host := g.pol.hostname()
	if !g.greeted {
		g.greeted = true
		if code == "220" {
			banner := "220 " + host + " ESMTP mtad"
			if g.pol.BannerAddition != "" {
				banner += " " + g.pol.BannerAddition
			}
			g.emit(banner, true)
			return
		}
	}
	out := line
	switch {
	case g.lastVerb == "EHLO" && code == "250":
		g.ehloLine++
		word := strings.ToUpper(strings.SplitN(text, " ", 2)[0])
		switch {
		case g.ehloLine == 1:
			// RFC 5321 §4.1.1.1: the reply starts with our domain.
			out = "250" + string(sep) + host + " " + text
		case word == "CHUNKING":
			return
		case word == "SIZE":
			out = "250" + string(sep) + "SIZE " + strconv.FormatInt(g.pol.maxMessageBytes(g.src), 10)
		}
		if sep == ' ' && !g.tls && g.srv.tlsOn() {
			g.emit("250-STARTTLS", false)
		}
		if sep == ' ' && g.authOffered() {
			g.emit("250-AUTH "+authMechs, false)
		}
	case code == "502" && strings.Contains(text, "Missing MAIL FROM"):
		out = "503 5.5.1 Error: need MAIL command"
	case code == "502" && strings.Contains(text, "Missing RCPT TO"):
		out = "503 5.5.1 Error: need RCPT command"
	case code == "502" && strings.Contains(text, "introduce yourself"):
		out = "503 5.5.1 Error: send HELO/EHLO first"
	case code == "500" && strings.Contains(text, "Too many errors"):
		out = "421 4.7.0 " + host + " Error: too many errors"
	case code == "250" && g.lastVerb == "MAIL" && strings.HasPrefix(text, "2.0.0 Roger"):
		out = "250 2.1.0 Ok"
	case code == "250" && g.lastVerb == "RCPT" && strings.HasPrefix(text, "2.0.0 I'll make sure"):
		out = "250 2.1.5 Ok"
	}
	// 221 and 421 end the connection: they must not wait behind pipelined input.
	g.emit(out, sep == ' ')
	if code == "221" || strings.HasPrefix(out, "421") {
		g.flushOut()
	}
	switch {
	case code == "250" && sep == ' ' && (g.lastVerb == "EHLO" || g.lastVerb == "HELO"):
		g.needHelo = false
		g.ehlo = g.lastVerb == "EHLO"
		name := g.heloArg
		g.heloName.Store(&name)
	case code == "221":
		g.ending("QUIT")
	case code == "354":
		g.dataMode, g.dataState = true, dsBeginLine
		g.dataPrevCR, g.dataBare = false, false
	case strings.HasPrefix(out, "421"):
		g.ending(out)
		g.Close()
	case sep == ' ' && len(out) > 8 && out[0] == '5' && strings.HasPrefix(out[4:], "5.5.") && !strings.HasPrefix(out[4:], "5.5.3"):
		// syntax and sequence errors count toward MaxErrors; policy refusals
		// (5.5.3, too many recipients: recipientcutoff) do not
		g.countError()
	}
}

// wakeIfIdle makes a session that waits for a command notice a shutdown at once.
func (g *guard) wakeIfIdle() {
	if g.reading.Load() && !g.inTx.Load() {
		g.raw.SetReadDeadline(time.Now())
	}
}

func (g *guard) Close() error {
	g.closeOnce.Do(func() {
		g.dead.Store(true)
		// The session's end is recorded before the socket closes, so that by the
		// time a client sees EOF its C record is queued and the gauge is down.
		if g.isOpen.Load() {
			g.endOnce.Do(g.closed)
		}
		g.raw.Close()
		g.srv.release(g)
	})
	return nil
}

func (g *guard) LocalAddr() net.Addr                { return g.raw.LocalAddr() }
func (g *guard) RemoteAddr() net.Addr               { return g.raw.RemoteAddr() }
func (g *guard) SetDeadline(t time.Time) error      { return g.conn.SetDeadline(t) }
func (g *guard) SetReadDeadline(t time.Time) error  { return g.conn.SetReadDeadline(t) }
func (g *guard) SetWriteDeadline(t time.Time) error { return g.conn.SetWriteDeadline(t) }

// closed ends an admitted session: gauge, C record, transcript.
func (g *guard) closed() {
	g.srv.cfg.Metrics.SessionClosed()
	why := "closed by server"
	if p := g.why.Load(); p != nil {
		why = *p
	}
	if g.logConn {
		peer := ""
		if p := g.heloName.Load(); p != nil {
			peer = *p
		}
		g.srv.cfg.Log.LogConn(maillog.ConnRecord{
			Channel: g.connSrc, Code: "C", Transport: g.portProbe, Peer: peer,
			Messages: int(g.msgs.Load()), Diag: why,
		})
	}
	if g.dbg != nil {
		g.dbg.Note("closed: %s; %d messages", why, g.msgs.Load())
		if err := g.dbg.Close(); err != nil {
			g.srv.log.Warn("slave_debug transcript", "conn", g.id, "err", err)
		}
	}
}

func tlsName(v uint16) string { return strings.ReplaceAll(tls.VersionName(v), " ", "") }
