package sieve

import "strings"

// parseAddressList reads the addresses of an address header field (RFC 5322
// §3.4) leniently: what matters to Sieve is each address's addr-spec, and a
// field with one broken address must still give the others. Display names,
// comments and group names are dropped; "<>" gives the empty address.
func parseAddressList(s string) []string {
	var out []string
	angle := false
	start := 0
	topLevel(s, func(i int) bool {
		switch c := s[i]; {
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
		return true
	})
	return appendAddress(out, s[start:])
}

// Byte classes of scan.
const (
	inText    = iota // outside quoted strings and comments
	inQuoted         // in a quoted string, quotes included
	inComment        // in a comment, parentheses included
)

// scan calls fn with the offset and class of each byte of s until fn returns
// false. A backslash and the byte it escapes have the class around them.
func scan(s string, fn func(i, class int) bool) {
	depth, quoted, escaped := 0, false, false
	for i := 0; i < len(s); i++ {
		c, class := s[i], inText
		switch {
		case quoted:
			class = inQuoted
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				quoted = false
			}
		case depth > 0:
			class = inComment
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '(':
				depth++
			case c == ')':
				depth--
			}
		case c == '"':
			class, quoted = inQuoted, true
		case c == '(':
			class, depth = inComment, 1
		}
		if !fn(i, class) {
			return
		}
	}
}

// topLevel calls fn with the offset of each byte outside quoted strings and
// comments, until fn returns false.
func topLevel(s string, fn func(i int) bool) {
	scan(s, func(i, class int) bool { return class != inText || fn(i) })
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
	// A bare addr-spec: comments and the white space around its tokens go.
	var b strings.Builder
	scan(m, func(i, class int) bool {
		c := m[i]
		if class == inQuoted || class == inText && c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			b.WriteByte(c)
		}
		return true
	})
	if b.Len() == 0 {
		return out
	}
	return append(out, b.String())
}

// indexOutsideQuotes finds c outside quoted strings and comments, -1 if none.
func indexOutsideQuotes(s string, c byte) int {
	at := -1
	topLevel(s, func(i int) bool {
		if s[i] == c {
			at = i
			return false
		}
		return true
	})
	return at
}

// stripComments removes (comments) outside quoted strings.
func stripComments(s string) string {
	if !strings.Contains(s, "(") {
		return s
	}
	var b strings.Builder
	scan(s, func(i, class int) bool {
		if class != inComment {
			b.WriteByte(s[i])
		}
		return true
	})
	return b.String()
}
