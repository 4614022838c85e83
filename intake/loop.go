package intake

import (
	"fmt"
	"strings"

	"mtad.dev/mta/mailheader"
	"mtad.dev/mta/queue"
)

// Defaults of the loop check.
const (
	// DefaultMaxReceivedLines is MAX_RECEIVED_LINES when the configuration sets
	// none. The product's documentation gives 50 without confirming it; we use it.
	DefaultMaxReceivedLines = 50
	// DefaultMaxLocalReceivedLines is MAX_LOCAL_RECEIVED_LINES when the
	// configuration sets none.
	DefaultMaxLocalReceivedLines = 10
)

// traceCounts is what the loop check needs of a message's header.
type traceCounts struct {
	received  int    // Received: fields
	local     int    // Received: fields whose "by" names this host
	messageID string // Message-ID: field body, unfolded and trimmed
}

// countTrace reads the header section at the start of content. host is this
// MTA's name for the local count; "" counts nothing there.
func countTrace(content []byte, host string) traceCounts {
	var c traceCounts
	mailheader.Walk(content, func(f mailheader.Field) bool {
		switch {
		case f.Is("Received"):
			c.received++
			if host != "" && ReceivedBy(f.Value(), host) {
				c.local++
			}
		case c.messageID == "" && f.Is("Message-ID"):
			c.messageID = f.Value()
		}
		return true
	})
	return c
}

// LoopReason is the .HELD reason of a message that went round too often, ""
// when it did not: more Received: fields in all (received) than maxAll
// (MAX_RECEIVED_LINES), or more naming host (local) than maxLocal
// (MAX_LOCAL_RECEIVED_LINES). Both counts include our own field; zero limits take
// the defaults. The product holds such a message for the postmaster rather than
// bouncing it, since a loop is a configuration error to mend, not the sender's.
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

// holdLimitReason is the .HELD reason for a message whose recipients give some
// channel more than its holdlimit ("Suspicious" mail in the product's words: a
// message to very many recipients at once), "" when none does. Channels are
// looked at in recipient order, so the reason is deterministic.
func (r *Rules) holdLimitReason(rcpts []queue.Recipient) string {
	limit := func(ch string) int { return r.Channels[ch].HoldLimit }
	any := false
	for _, rc := range rcpts {
		if limit(rc.Channel) > 0 {
			any = true
			break
		}
	}
	if !any {
		return "" // no map for the common case: no holdlimit anywhere
	}
	count := map[string]int{}
	for _, rc := range rcpts {
		count[rc.Channel]++
	}
	for _, rc := range rcpts {
		if n, lim := count[rc.Channel], limit(rc.Channel); lim > 0 && n > lim {
			return fmt.Sprintf("holdlimit: %d recipients for channel %s (holdlimit %d)", n, rc.Channel, lim)
		}
	}
	return ""
}
