package smtpserver

import (
	"bytes"
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

// header is what the server needs from the message's header section.
type header struct {
	received  int    // Received: fields
	messageID string // Message-ID: field body, unfolded and trimmed
}

// scanHeader reads the header section (up to the first empty line) of a message whose
// lines all end in CRLF (bareLineEnd has been checked).
func scanHeader(b []byte) header {
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
