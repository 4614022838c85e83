package smtpserver

import (
	"bytes"
	"io"
	"time"
)

// Reading the message of a DATA command. This is the server's hot path: a message
// is copied from the connection's read buffer in runs found with IndexByte, and
// only line ends and line-leading dots are looked at one byte at a time.
//
// Where a message ends. Only CR LF "." CR LF ends it (RFC 5321 §4.1.1.4), and a CR
// is paired with the byte after it: CR LF ends a line, CR followed by anything
// else (another CR included) is two bytes of content. So "\r\r\n.\r\n" does not
// end the message: a CR CR LF is no line end here, and a server that reads a
// message to a later end than a lax hop before it is on the safe side, since the
// bytes a lax hop might take for a second message stay inside the first one,
// which is refused anyway (any bare CR or LF is). A dot that starts a line is
// removed (RFC 5321 §4.5.2).

// States of the end-of-data machine: where in a line the last byte left us.
const (
	dsBeginLine = iota // at the start of a line: the first byte, or after CR LF
	dsDot              // the line so far is "."
	dsDotCR            // the line so far is ".\r"
	dsCR               // after a CR that may end the line
	dsData             // inside a line
	dsEnd              // the end-of-data line has been read
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
			return dsEnd
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

// dataScanner finds the end of one message in the bytes it is given, chunk by
// chunk, and copies the content (without the dot-stuffing) into dst, at most
// room bytes of it.
type dataScanner struct {
	state  int
	prevCR bool // the last byte was CR
	bare   bool // a CR not followed by LF, or a LF not after CR, was read
	dst    *bytes.Buffer
	room   int64 // content bytes dst may still take
}

// scan consumes buf up to and including the end-of-data line, if buf holds it:
// n is how many bytes it consumed, end whether that line was read.
func (d *dataScanner) scan(buf []byte) (n int, end bool) {
	kept := 0 // start of the content in buf not yet copied out
	for n < len(buf) {
		if d.state == dsData && !d.prevCR {
			// Inside a line only CR and LF change anything.
			n += plainRun(buf[n:])
			if n == len(buf) {
				break
			}
		}
		c := buf[n]
		// Checked on the raw bytes: unstuffing drops the CR of a line starting
		// ".\r", so the content alone could hide it.
		if (c == '\n') != d.prevCR {
			d.bare = true
		}
		d.prevCR = c == '\r'
		old := d.state
		d.state = nextDataState(old, c)
		if old == dsBeginLine && c == '.' || old == dsDot && c == '\r' || old == dsDotCR && c == '\n' {
			// a stuffing dot, or part of what may be the end-of-data line: not
			// content (so ".\rX" leaves only X: that message has a bare CR and is
			// refused whatever its content)
			d.keep(buf[kept:n])
			kept = n + 1
		}
		n++
		if d.state == dsEnd {
			break
		}
	}
	d.keep(buf[kept:n])
	return n, d.state == dsEnd
}

func (d *dataScanner) keep(b []byte) {
	if d.room <= 0 || len(b) == 0 {
		return
	}
	if int64(len(b)) > d.room {
		b = b[:d.room]
	}
	d.dst.Write(b)
	d.room -= int64(len(b))
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

// dataReader is the message of the DATA command being served, read from the
// connection when the session asks for it (session.Data).
type dataReader struct {
	c    *conn
	scan dataScanner
	done bool // the end-of-data line has been read
	// bare is set once the whole message has been read: a bare CR or LF was
	// on the wire.
	bare bool

	// For the DATA phase's bound and the session's (deadlines.go): when the 354
	// went out, the bytes read since, and how many more may earn session time.
	start      time.Time
	got        int64
	creditLeft int64
}

// newDataReader starts reading the message of a DATA command whose 354 has just
// been sent, for a session whose messages may have limit bytes.
func newDataReader(c *conn, limit int64) dataReader {
	return dataReader{c: c, scan: dataScanner{state: dsBeginLine}, start: time.Now(), creditLeft: limit}
}

// read copies the message into dst, keeping at most limit bytes, and reads on to
// the end-of-data line, so the next command starts right after it. Each wait for
// more bytes has the earliest of the DATA block timeout, the DATA phase's bound
// and the session's (deadlines.go); when the client goes away, times out or is
// cut off, the connection has been answered and closed, and the error is
// io.EOF.
func (r *dataReader) read(dst *bytes.Buffer, limit int64) error {
	r.scan.dst, r.scan.room = dst, limit
	c := r.c
	for !r.done {
		if c.dead.Load() {
			return io.EOF
		}
		if c.br.Buffered() == 0 {
			c.flushBeforeRead(true)
			deadline, cut := r.deadline()
			c.nc.SetReadDeadline(deadline)
			if _, err := c.br.Peek(1); err != nil {
				r.readFailed(err, cut)
				return io.EOF
			}
		}
		buf, _ := c.br.Peek(c.br.Buffered())
		n, end := r.scan.scan(buf)
		c.br.Discard(n)
		r.counted(n)
		r.done = end
	}
	r.bare = r.scan.bare
	return nil
}

// readFailed ends the connection after a failed wait for more of the message.
// A client cut off for being too slow has its transaction's recipients logged
// (J) before the 421 closes the connection, so that a client seeing EOF can
// rely on them as on the C record.
func (r *dataReader) readFailed(err error, cut string) {
	c := r.c
	if !c.isCut(err, cut) {
		c.readFailed(err, "DATA")
		return
	}
	c.sess.dataCutOff(c.cutStatus(cut), r.got)
	c.cutOff(cut)
}
