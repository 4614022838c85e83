package channels

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"strings"

	"mtad.dev/mta/maillog"
)

// Outbound connection records and master_debug transcripts of the SMTP client.
//
// With LOG_CONNECTION bit 2 (SMTPOptions.LogConnection) every connection writes an
// O record once TCP is established and a C record when it is closed (with the
// number of transactions it carried and why it ended), and a connect that fails
// writes Y; all with the "-" direction marker (maillog.ConnRecord). With
// master_debug (SMTPOptions.MasterDebug and DebugDir) every connection's dialogue
// goes to DebugDir/<channel>_master.log-<connection id>.
//
// The transcript is recorded above the TLS layer (the documentation is silent;
// we chose never to record TLS records): STARTTLS replaces the connection's
// reader and writer (client.go), so the EHLO exchanged right after the
// handshake is not in the transcript; recording resumes with the first command
// after it, and a note marks the gap. The handshake itself is never recorded.

// LogConnection bits the SMTP client acts on: the product's documentation says
// value 2 writes separate connection open, close and failure records.
const logConnRecords = 2

// connOpened starts an established connection's records and transcript.
func (s *SMTP) connOpened(c *smtpConn) {
	transport := describeConn(c.nc)
	if s.opts.LogConnection&logConnRecords != 0 && s.opts.MailLog != nil {
		c.logConn = true
		c.transport = transport
		s.opts.MailLog.LogConn(maillog.ConnRecord{Channel: s.opts.Channel, Outbound: true, Code: maillog.CodeConnOpened, Transport: transport, Peer: c.host})
	}
	debug := s.opts.MasterDebug || (s.opts.DebugNow != nil && s.opts.DebugNow())
	if !debug || s.opts.DebugDir == "" {
		return
	}
	id := connID()
	d, err := maillog.OpenDebug(s.opts.DebugDir, s.channelName(), "master", id, maillog.DebugOptions{})
	if err != nil {
		s.log.Warn("master_debug transcript not written", "host", c.host, "err", err)
		return
	}
	d.Note("outbound connection %s of channel %s to %s: %s", id, s.channelName(), c.host, transport)
	c.dbg = d
	c.r.Reset(d.ServerReader(c.deadlines))
	c.w.Reset(debugWriter{w: c.deadlines, d: d})
}

// tlsStarted re-attaches the transcript after STARTTLS replaced the reader and
// writer with the TLS connection's.
func (c *smtpConn) tlsStarted() {
	if c.dbg == nil || c.tls == nil {
		return
	}
	c.dbg.Note("TLS %s established; the EHLO after STARTTLS is not recorded", tlsVersionName(c.tls.Version))
	// The TLS reader holds nothing yet (the EHLO reply was read whole), and the
	// writer below flushes the TLS one on every write, so layering is safe.
	c.r = bufio.NewReaderSize(c.dbg.ServerReader(c.r), 4096)
	c.w = bufio.NewWriterSize(debugWriter{w: c.w, d: c.dbg}, 32*1024)
}

// connectFailed writes the Y record of a connection that could not be made.
func (s *SMTP) connectFailed(host, network, addr string, err error) {
	if s.opts.LogConnection&logConnRecords == 0 || s.opts.MailLog == nil {
		return
	}
	transport := "UNIX|" + addr
	if network != "unix" {
		h, p, _ := net.SplitHostPort(addr)
		transport = "TCP|||" + h + "|" + p
	}
	s.opts.MailLog.LogConn(maillog.ConnRecord{Channel: s.opts.Channel, Outbound: true, Code: maillog.CodeConnFailed, Transport: transport, Peer: host, Diag: err.Error()})
}

// connClosed writes the C record and closes the transcript; smtpConn.close calls
// it once.
func (s *SMTP) connClosed(c *smtpConn) {
	why := "closed"
	if c.quitSent {
		why = "QUIT"
	}
	if c.logConn {
		s.opts.MailLog.LogConn(maillog.ConnRecord{Channel: s.opts.Channel, Outbound: true, Code: maillog.CodeConnClosed,
			Transport: c.transport, Peer: c.host, Messages: c.msgs, Diag: why})
	}
	if c.dbg != nil {
		c.dbg.Note("closed: %s; %d transactions", why, c.msgs)
		if err := c.dbg.Close(); err != nil {
			s.log.Warn("master_debug transcript", "host", c.host, "err", err)
		}
	}
}

func (s *SMTP) channelName() string {
	if s.opts.Channel != "" {
		return s.opts.Channel
	}
	return "smtp"
}

func connID() string {
	var b [5]byte
	rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

type debugWriter struct {
	w io.Writer
	d *maillog.DebugLog
}

// Write records p before writing it: a pipelined group is written by one
// goroutine while another reads the replies (client.go), and the transcript
// must show each command before the reply to it. A write that fails may so
// show bytes the server never got; the failure itself is in the C record and
// the recipients' results.
func (t debugWriter) Write(p []byte) (int, error) {
	t.d.FromClient(p)
	n, err := t.w.Write(p)
	if f, ok := t.w.(*bufio.Writer); ok && err == nil {
		err = f.Flush()
	}
	return n, err
}
