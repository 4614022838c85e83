package channels

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"mtad.dev/mta/status"
)

// Reply is one SMTP (or LMTP) reply, possibly multi-line.
type Reply struct {
	Code     int
	Enhanced string   // "2.0.0" when the first line carries one
	Lines    []string // text of each line, code and enhanced code removed
}

// Text is the reply's text, lines joined by a space.
func (r Reply) Text() string { return strings.Join(r.Lines, " ") }

// String renders the reply as logged: "250 2.0.0 text".
func (r Reply) String() string { return r.Status().Error() }

// Status converts the reply to a status.
func (r Reply) Status() *status.Status {
	return &status.Status{Code: r.Code, Enhanced: r.Enhanced, Text: r.Text()}
}

// maxReplyLines bounds a multi-line reply, so a hostile server cannot make us
// buffer without end (RFC 5321 §4.5.3.1.5 gives 512 octets per line).
const (
	maxReplyLines   = 256
	maxReplyLineLen = 4096
)

var errProtocol = errors.New("malformed SMTP reply")

// ReadReply reads one reply from r. It is the parser of what remote servers say.
func ReadReply(r *bufio.Reader) (Reply, error) {
	var rep Reply
	for n := 0; ; n++ {
		if n >= maxReplyLines {
			return rep, fmt.Errorf("%w: more than %d lines", errProtocol, maxReplyLines)
		}
		line, err := readLine(r)
		if err != nil {
			return rep, err
		}
		code, more, text, err := parseReplyLine(line)
		if err != nil {
			return rep, err
		}
		if n == 0 {
			rep.Code = code
			if enh, rest, ok := cutEnhanced(text, code); ok {
				rep.Enhanced = enh
				text = rest
			}
		} else {
			if code != rep.Code {
				return rep, fmt.Errorf("%w: code %d inside a %d reply", errProtocol, code, rep.Code)
			}
			if rep.Enhanced != "" {
				if _, rest, ok := cutEnhanced(text, code); ok {
					text = rest
				}
			}
		}
		rep.Lines = append(rep.Lines, text)
		if !more {
			return rep, nil
		}
	}
}

func readLine(r *bufio.Reader) (string, error) {
	var sb []byte
	for {
		frag, isPrefix, err := r.ReadLine()
		if err != nil {
			if err == io.EOF && len(sb) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		if len(sb)+len(frag) > maxReplyLineLen {
			return "", fmt.Errorf("%w: line longer than %d", errProtocol, maxReplyLineLen)
		}
		sb = append(sb, frag...)
		if !isPrefix {
			return string(sb), nil
		}
	}
}

func parseReplyLine(line string) (code int, more bool, text string, err error) {
	if len(line) < 3 {
		return 0, false, "", fmt.Errorf("%w: %q", errProtocol, line)
	}
	code, err = strconv.Atoi(line[:3])
	if err != nil || code < 200 || code > 599 || line[0] < '2' {
		return 0, false, "", fmt.Errorf("%w: %q", errProtocol, line)
	}
	if len(line) == 3 {
		return code, false, "", nil
	}
	switch line[3] {
	case '-':
		more = true
	case ' ':
	default:
		return 0, false, "", fmt.Errorf("%w: %q", errProtocol, line)
	}
	return code, more, line[4:], nil
}

// cutEnhanced splits an RFC 3463 code off text when its class matches the
// reply's (a "250 5.0.0" is not believed).
func cutEnhanced(text string, code int) (enh, rest string, ok bool) {
	word, rest, _ := strings.Cut(text, " ")
	parts := strings.Split(word, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || parts[0][0] != byte('0'+code/100) {
		return "", text, false
	}
	for _, p := range parts[1:] {
		if p == "" || len(p) > 3 {
			return "", text, false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return "", text, false
			}
		}
	}
	return word, rest, true
}

// dotWriter writes message content in the DATA encoding (RFC 5321 §4.5.2): a
// line starting with "." gets one more. CRLF content passes byte-exact. A bare
// LF is sent as CRLF: the product's documentation says output is always CRLF, and a
// receiver that takes bare LF as a line end must never see "\n.\r\n" as the
// end of data (SMTP smuggling). A missing final CRLF is added so the
// terminating "." is on its own line.
type dotWriter struct {
	w      *bufio.Writer
	bol    bool // at the beginning of a line
	lastCR bool // the last byte written was CR
}

func newDotWriter(w *bufio.Writer) *dotWriter { return &dotWriter{w: w, bol: true} }

func (d *dotWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if d.bol && p[0] == '.' {
			if err := d.w.WriteByte('.'); err != nil {
				return n, err
			}
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if _, err := d.w.Write(p); err != nil {
				return n, err
			}
			d.bol = false
			d.lastCR = p[len(p)-1] == '\r'
			return n + len(p), nil
		}
		cr := d.lastCR
		if i > 0 {
			if _, err := d.w.Write(p[:i]); err != nil {
				return n, err
			}
			cr = p[i-1] == '\r'
		}
		if !cr {
			if err := d.w.WriteByte('\r'); err != nil {
				return n, err
			}
		}
		if err := d.w.WriteByte('\n'); err != nil {
			return n, err
		}
		d.bol, d.lastCR = true, false
		n += i + 1
		p = p[i+1:]
	}
	return n, nil
}

// Close writes the end-of-data marker.
func (d *dotWriter) Close() error {
	var err error
	switch {
	case d.bol:
		_, err = d.w.WriteString(".\r\n")
	case d.lastCR:
		_, err = d.w.WriteString("\n.\r\n")
	default:
		_, err = d.w.WriteString("\r\n.\r\n")
	}
	return err
}

// deadlineConn sets a fresh deadline before every read and write, so each
// stage's timeout bounds inactivity rather than the whole stage: a 30 MB
// message on a slow link is fine as long as data keeps moving (RFC 5321
// §4.5.3.2.5 "data block" timeout).
//
// The reads and the writes may run in two goroutines at once (a pipelined group
// is written while its replies are read): readTimeout belongs to the reader,
// writeTimeout to the writer.
type deadlineConn struct {
	net.Conn
	readTimeout  time.Duration   // the longest a read may wait for the server
	writeTimeout time.Duration   // the longest a write may wait for room
	ctx          context.Context // when set, its end fails I/O (see smtpConn.watch)
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if c.readTimeout > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(c.readTimeout))
	}
	if err := c.cancelled(); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if err != nil {
		if cerr := c.cancelled(); cerr != nil {
			err = cerr
		}
	}
	return n, err
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if c.writeTimeout > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	if err := c.cancelled(); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		if cerr := c.cancelled(); cerr != nil {
			err = cerr
		}
	}
	return n, err
}

// cancelled is checked after the deadline is set, so a cancellation that raced
// with it is still seen.
func (c *deadlineConn) cancelled() error {
	if c.ctx != nil && c.ctx.Err() != nil {
		return fmt.Errorf("delivery cancelled: %w", c.ctx.Err())
	}
	return nil
}

// xtext encodes s per RFC 3461 §4 for ENVID and ORCPT.
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '!' || c > '~' || c == '+' || c == '=' {
			fmt.Fprintf(&b, "+%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
