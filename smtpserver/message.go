package smtpserver

import (
	"bytes"
	"fmt"
	"strings"
)

// bareLineEnd reports whether the message holds a LF not preceded by CR or a CR not
// followed by LF. Such bytes are how SMTP smuggling hides a second message inside the
// first for a hop that ends DATA on "<LF>.<LF>" or similar.
func bareLineEnd(b []byte) bool {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\r':
			if i+1 >= len(b) || b[i+1] != '\n' {
				return true
			}
			i++
		case '\n':
			return true
		}
	}
	return false
}

// DefaultMaxLocalReceivedLines is MAX_LOCAL_RECEIVED_LINES (operations.md §3.2).
const DefaultMaxLocalReceivedLines = 10

// LoopReason is the .HELD reason of a message that went round too often, ""
// when it did not (operations.md §3.2, §6): more Received: fields in all
// (received) than maxAll (MAX_RECEIVED_LINES), or more naming host (local) than
// maxLocal (MAX_LOCAL_RECEIVED_LINES). Both counts include our own field; zero
// limits take the defaults. The SMTP service and local submission decide with it.
func LoopReason(received, local, maxAll, maxLocal int, host string) string {
	if maxAll <= 0 {
		maxAll = DefaultMaxReceivedLines
	}
	if maxLocal <= 0 {
		maxLocal = DefaultMaxLocalReceivedLines
	}
	switch {
	case received > maxAll:
		return fmt.Sprintf("loop: %d Received: lines", received)
	case local > maxLocal:
		return fmt.Sprintf("loop: %d Received: lines by %s", local, host)
	}
	return ""
}

// header is what the server needs from the message's header section.
type header struct {
	received  int    // Received: fields
	local     int    // Received: fields whose "by" names the local host
	messageID string // Message-ID: field body, unfolded and trimmed
}

// scanHeader reads the header section (up to the first empty line) of a message whose
// lines all end in CRLF (bareLineEnd has been checked). local is this MTA's host
// name, for the MAX_LOCAL_RECEIVED_LINES count; "" counts nothing.
func scanHeader(b []byte, local string) header {
	var h header
	var field []byte // the current field, unfolded
	flush := func() {
		if len(field) == 0 {
			return
		}
		name, value, ok := bytes.Cut(field, []byte{':'})
		if !ok {
			field = field[:0]
			return
		}
		switch strings.ToLower(string(bytes.TrimRight(name, " \t"))) {
		case "received":
			h.received++
			if local != "" && ReceivedBy(string(value), local) {
				h.local++
			}
		case "message-id":
			if h.messageID == "" {
				h.messageID = strings.TrimSpace(string(value))
			}
		}
		field = field[:0]
	}
	for len(b) > 0 {
		line, rest, _ := bytes.Cut(b, []byte("\r\n"))
		b = rest
		if len(line) == 0 {
			break // end of the header section
		}
		if line[0] == ' ' || line[0] == '\t' {
			field = append(field, line...)
			continue
		}
		flush()
		field = append(field, line...)
	}
	flush()
	return h
}

// ReceivedBy reports whether a Received: field body (unfolded, without the name)
// says "by host": the loop count of MAX_LOCAL_RECEIVED_LINES. Host names compare
// case-insensitively and a trailing root dot is ignored. Comments are skipped, so
// "(authenticated by host)" is not a hop through host, and so is the date after
// the last ';', which is not a clause.
func ReceivedBy(value, host string) bool {
	host = strings.TrimSuffix(host, ".")
	if host == "" {
		return false
	}
	if i := strings.LastIndexByte(value, ';'); i >= 0 {
		value = value[:i]
	}
	words := receivedWords(value)
	for i := 0; i+1 < len(words); i++ {
		if strings.EqualFold(words[i], "by") {
			return strings.EqualFold(strings.TrimSuffix(words[i+1], "."), host)
		}
	}
	return false
}

// receivedWords splits a Received: body into its words outside comments
// (RFC 5322 §3.2.2: nested, with quoted-pairs) and outside quoted strings.
func receivedWords(s string) []string {
	var words []string
	var w strings.Builder
	end := func() {
		if w.Len() > 0 {
			words = append(words, w.String())
			w.Reset()
		}
	}
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && (depth > 0 || quoted):
			i++ // quoted-pair: the next character is literal
		case quoted:
			if c == '"' {
				quoted = false
			}
		case c == '(':
			end()
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth > 0:
		case c == '"':
			end()
			quoted = true
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			end()
		default:
			w.WriteByte(c)
		}
	}
	end()
	return words
}
