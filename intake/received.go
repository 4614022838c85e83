package intake

import (
	"net/netip"
	"strings"
	"time"
)

// Our Received: field (RFC 5321 §4.4), the first line of every message we queue
// that came from outside: from an SMTP client or from a local user. Notices and
// hand-backs queue content that already has one.

// ReceivedSMTP is the Received: field of a message from an SMTP client: the name
// it gave in EHLO/HELO and its address, our name, the protocol (the RFC 3848
// "with" word the server gives: "SMTP", "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA") and id, the transaction's own (the queue id is not known before
// the message is queued; the diagnostic log carries both). It names the recipient
// when there is exactly one, never more, so that a list does not leak its members.
func (t *Transaction) ReceivedSMTP(helo string, ip netip.Addr, with, id string, now time.Time) string {
	var b strings.Builder
	b.WriteString("Received: from ")
	b.WriteString(sanitizeHelo(helo))
	b.WriteString(" ([")
	b.WriteString(AddressLiteral(ip))
	b.WriteString("])\r\n\tby ")
	b.WriteString(t.rules.hostname())
	b.WriteString(" (mtad) with ")
	b.WriteString(with)
	b.WriteString(" id ")
	b.WriteString(id)
	if len(t.rcpts) == 1 {
		b.WriteString("\r\n\tfor <")
		b.WriteString(sanitizeAddr(t.rcpts[0].rcpt.Orig))
		b.WriteString(">")
	}
	b.WriteString("; ")
	b.WriteString(now.Format(time.RFC1123Z))
	b.WriteString("\r\n")
	return b.String()
}

// ReceivedLocal is the Received: field of a message a local user submitted.
func (t *Transaction) ReceivedLocal(user string, now time.Time) string {
	return "Received: (from " + user + ")\r\n\tby " + t.rules.hostname() +
		" (mtad) with local submission;\r\n\t" + now.Format(time.RFC1123Z) + "\r\n"
}

// AddressLiteral is an IP address as it appears between the brackets of an
// address literal (RFC 5321 §4.1.3): IPv4 as is, IPv6 with its "IPv6:" tag.
func AddressLiteral(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	a = a.Unmap()
	if a.Is6() {
		return "IPv6:" + a.String()
	}
	return a.String()
}

// sanitizeHelo keeps the client's name from breaking the field's structure.
func sanitizeHelo(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f || r == '(' || r == ')' || r == ';' {
			return '?'
		}
		return r
	}, s)
}

// sanitizeAddr keeps an address from breaking the field's structure.
func sanitizeAddr(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == '>' || r == '<' {
			return '?'
		}
		return r
	}, s)
}
