package mailaddr

import "strings"

// Quote returns addr with its local part quoted when it is neither a
// Dot-string nor already a quoted string; anything else is returned unchanged
// (the empty reverse path, a bare name such as postmaster). Quoting a
// Dot-string would change the bytes but not the mailbox (RFC 5321 §4.1.2), so
// it is never done.
func Quote(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return addr
	}
	local := addr[:at]
	if IsDotString(local) || isQuotedString(local) {
		return addr
	}
	var b strings.Builder
	b.Grow(len(addr) + 4)
	b.WriteByte('"')
	for i := 0; i < len(local); i++ {
		if c := local[i]; c == '"' || c == '\\' {
			b.WriteByte('\\') // quoted-pair
		}
		b.WriteByte(local[i])
	}
	b.WriteByte('"')
	b.WriteString(addr[at:])
	return b.String()
}

// IsDotString reports whether s is an RFC 5321 Dot-string: atoms of atext
// (UTF-8 allowed, RFC 6531) separated by single dots.
func IsDotString(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x80, c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.':
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// isQuotedString reports whether s is one whole RFC 5321 Quoted-string: a
// local part that arrived quoted and was kept so.
func isQuotedString(s string) bool {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		switch s[i] {
		case '\\':
			i++
			if i >= len(s)-1 {
				return false // the closing quote was escaped
			}
		case '"':
			return false
		}
	}
	return true
}
