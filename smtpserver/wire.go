package smtpserver

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"time"
)

// The connection's two directions: command lines in, replies out.

// reply sends one reply. Replies are coalesced: a reply (a multi-line one
// included) is one write(2), and while the client has pipelined more input that
// we have already read, complete replies wait, so a PIPELINING group is answered
// with one write (RFC 2920 §3.1 lets a server batch its replies; Postfix does the
// same). Whatever waits is written before we could block on a read
// (flushBeforeRead), so a client never waits for a reply we hold. 221 and 421 end
// the connection and are written at once; a 421 closes it. A syntax or sequence
// error counts toward the session's bad command limit.
func (c *conn) reply(r *smtpReply) {
	if c.dead.Load() {
		return
	}
	c.out = r.appendTo(c.out)
	if r.Code == 221 || r.Code == 421 || c.br == nil || c.br.Buffered() == 0 {
		c.flushOut()
	}
	switch {
	case r.Code == 421:
		c.ending(r.String())
		c.Close()
	case r.protocolError():
		c.countError()
	}
}

// bye sends a last reply, a 421, which closes the connection.
func (c *conn) bye(r *smtpReply) { c.reply(r) }

// countError counts a protocol error; the policy's limit of them (for the current
// source channel) is answered 421 and the connection closed.
func (c *conn) countError() {
	c.srv.cfg.Metrics.Rejection("protocol")
	c.errors++
	if c.errors >= c.pol.maxErrors(c.src) {
		c.bye(replyTooManyErrors(c.pol.hostname()))
	}
}

// writeRaw writes text that is not a reply of ours (PORT_ACCESS's $N text) at once.
func (c *conn) writeRaw(s string) {
	if c.dead.Load() {
		return
	}
	c.out = append(c.out, s...)
	c.flushOut()
}

// flushBeforeRead sends the replies that wait unless the next command line is
// already complete in the read buffer (then the read cannot block). In DATA
// (data true) any buffered byte is more of the message.
func (c *conn) flushBeforeRead(data bool) {
	if len(c.out) == 0 {
		return
	}
	if n := c.br.Buffered(); n > 0 {
		if data {
			return
		}
		if b, _ := c.br.Peek(n); bytes.IndexByte(b, '\n') >= 0 {
			return
		}
	}
	c.flushOut()
}

func (c *conn) flushOut() {
	if len(c.out) == 0 {
		return
	}
	if !c.dead.Load() {
		c.nc.SetWriteDeadline(time.Now().Add(c.timeouts().command()))
		c.nc.Write(c.out)
		c.dbg.FromServer(c.out)
	}
	if cap(c.out) > 4096 {
		c.out = nil // a huge reply once: do not keep its buffer for the connection's life
	} else {
		c.out = c.out[:0]
	}
}

// readLine reads one line without its LF or CRLF. A line over MaxCommandLine
// (CRLF included) is read to its end and reported as tooLong; it is never held
// in memory whole. The line may point into the read buffer: it is valid until
// the next read.
func (c *conn) readLine() (line []byte, tooLong bool, err error) {
	chunk, err := c.br.ReadSlice('\n')
	for errors.Is(err, bufio.ErrBufferFull) {
		tooLong = true // a line longer than the buffer: MaxCommandLine is far less
		_, err = c.br.ReadSlice('\n')
	}
	switch {
	case err != nil:
		return nil, false, err
	case tooLong || len(chunk) > MaxCommandLine:
		return nil, true, nil
	}
	line = chunk[:len(chunk)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, false, nil
}

// readFailed ends the connection after a failed read: EOF is the client leaving,
// a timeout is answered 421 (or, during Shutdown, 421 shutting down).
func (c *conn) readFailed(err error, where string) {
	var ne net.Error
	switch {
	case c.dead.Load():
	case errors.Is(err, io.EOF):
		c.ending("client disconnected")
		c.Close()
	case errors.As(err, &ne) && ne.Timeout():
		if c.srv.closing.Load() {
			c.bye(replyShuttingDown(c.pol.hostname()))
		} else {
			c.srv.log.Info("timeout", "conn", c.id, "remote", c.remote, "during", where)
			c.bye(replyTimeout(c.pol.hostname()))
		}
	default:
		c.ending("read error: " + err.Error())
		c.Close()
	}
}
