package sieve

import "strings"

// parseAddressList reads the addresses of an address header field (RFC 5322
// §3.4) leniently: what matters to Sieve is each address's addr-spec, and a
// field with one broken address must still give the others. Display names,
// comments and group names are dropped; "<>" gives the empty address.
func parseAddressList(s string) []string {
	var out []string
	depth, quoted, angle := 0, false, false
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) {
			out = appendAddress(out, s[start:])
			break
		}
		c := s[i]
		switch {
		case quoted:
			if c == '\\' {
				i++
			} else if c == '"' {
				quoted = false
			}
		case depth > 0:
			if c == '\\' {
				i++
			} else if c == '(' {
				depth++
			} else if c == ')' {
				depth--
			}
		case c == '"':
			quoted = true
		case c == '(':
			depth++
		case c == '<':
			angle = true
		case c == '>':
			angle = false
		case angle:
		case c == ',' || c == ';':
			out = appendAddress(out, s[start:i])
			start = i + 1
		case c == ':':
			// A group's name ("undisclosed-recipients:") is not an address.
			start = i + 1
		}
	}
	return out
}

// appendAddress adds the addr-spec of one mailbox, if it has one.
func appendAddress(out []string, m string) []string {
	if lt := indexOutsideQuotes(m, '<'); lt >= 0 {
		inner := m[lt+1:]
		if gt := strings.IndexByte(inner, '>'); gt >= 0 {
			inner = inner[:gt]
		}
		// An obsolete route ("<@a,@b:user@c>") is dropped.
		if strings.HasPrefix(inner, "@") {
			if colon := strings.IndexByte(inner, ':'); colon >= 0 {
				inner = inner[colon+1:]
			}
		}
		return append(out, strings.TrimSpace(stripComments(inner)))
	}
	a := strings.TrimSpace(stripComments(m))
	if a == "" {
		return out
	}
	return append(out, strings.Join(strings.Fields(a), ""))
}

// indexOutsideQuotes finds c outside quoted strings and comments.
func indexOutsideQuotes(s string, c byte) int {
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch {
		case quoted:
			if s[i] == '\\' {
				i++
			} else if s[i] == '"' {
				quoted = false
			}
		case depth > 0:
			if s[i] == '(' {
				depth++
			} else if s[i] == ')' {
				depth--
			}
		case s[i] == '"':
			quoted = true
		case s[i] == '(':
			depth++
		case s[i] == c:
			return i
		}
	}
	return -1
}

// stripComments removes (comments) outside quoted strings.
func stripComments(s string) string {
	if !strings.Contains(s, "(") {
		return s
	}
	var b strings.Builder
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted:
			if c == '"' {
				quoted = false
			} else if c == '\\' && i+1 < len(s) {
				b.WriteByte(c)
				i++
				c = s[i]
			}
		case depth > 0:
			if c == '\\' {
				i++
			} else if c == '(' {
				depth++
			} else if c == ')' {
				depth--
			}
			continue
		case c == '"':
			quoted = true
		case c == '(':
			depth++
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
