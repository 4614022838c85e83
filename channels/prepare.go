package channels

// Fitting a message to the server a connection reached, before anything of the
// transaction is sent: its SIZE limit, 8BITMIME and SMTPUTF8.

import (
	"errors"

	"mtad.dev/mta/status"
)

// prepare checks that c's server can take m for the recipients rcpts (indexes
// into m.Rcpts) and converts m for it: within its SIZE (RFC 1870), 7-bit for a
// server without 8BITMIME (RFC 6152; the sevenbit keyword asks for it always),
// and an ASCII envelope for one without SMTPUTF8 (RFC 6531 §3.2). A status
// refuses the message on this connection, which stays usable.
func (s *SMTP) prepare(c *smtpConn, m *Message, rcpts []int) (*Message, *status.Status) {
	if max := c.sizeLimit(); max > 0 && m.Size > max {
		return nil, status.New(552, "5.3.4", "message size %d exceeds %s's limit %d", m.Size, c.host, max)
	}
	if s.opts.SevenBit || !c.has("8BITMIME") {
		conv, st := s.sevenBit(m, c.host)
		if st != nil {
			return nil, st
		}
		m = conv
	}
	if m.SMTPUTF8 && !c.has("SMTPUTF8") && !envelopeASCII(m, rcpts) {
		return nil, status.New(553, "5.6.7", "%s does not support SMTPUTF8", c.host)
	}
	return m, nil
}

// sevenBit returns m with 7-bit content for a server that did not offer 8BITMIME:
// only the MIME parts that need it are re-encoded (eightbit.go). What cannot be
// converted (raw 8-bit headers, message/partial ...) is sent as it is, unless the
// channel is eightstrict: then the message is returned with 5.6.3, since sending
// it would go against what the server said it accepts. The documentation is
// silent on the default; we chose to send rather than bounce, as most servers
// take 8-bit data whatever they announce.
func (s *SMTP) sevenBit(m *Message, host string) (*Message, *status.Status) {
	out, size, changed, err := SevenBitAt(m.Content, m.Size)
	var sbe *SevenBitError
	if err != nil && !errors.As(err, &sbe) {
		return nil, status.New(451, "4.3.0", "reading the message for 7-bit conversion: %v", err)
	}
	if sbe != nil && s.opts.EightStrict {
		return nil, sbe.Status(host)
	}
	if !changed {
		return m, nil
	}
	conv := *m
	conv.Content, conv.Size, conv.EightBit = out, size, false
	return &conv, nil
}

// envelopeASCII reports that the sender and the recipients rcpts (indexes into
// m.Rcpts) can be sent without SMTPUTF8.
func envelopeASCII(m *Message, rcpts []int) bool {
	if !isASCII(m.From) {
		return false
	}
	for _, i := range rcpts {
		if !isASCII(m.Rcpts[i].Addr) {
			return false
		}
	}
	return true
}
