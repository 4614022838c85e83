package engine

import (
	"strings"

	"mtad.dev/mta/status"
)

// Location of a host specification inside an address; it drives $S $A $P $X.
const (
	locRoute   = 1 << iota // $S: a source-route hop
	locAt                  // $A: right of @
	locPercent             // $P: right of the last single %
	locBang                // $X: left of the first !
)

func locName(loc uint8) string {
	switch loc {
	case locRoute:
		return "source route"
	case locAt:
		return "right of @"
	case locPercent:
		return "right of %"
	case locBang:
		return "left of !"
	}
	return "?"
}

// maxAddressLen bounds what we are willing to parse. RFC 5321 allows a 256-octet
// path; we accept up to 1024 so that generous source routes and quoted local parts
// still pass, while absurd input is refused early.
const maxAddressLen = 1024

// address is a parsed address. Strings are sub-slices of the input where possible.
type address struct {
	route     []string // source-route hosts, left to right
	local     string   // local part as written (quotes kept)
	domain    string   // host right of the last @
	hasDomain bool
}

func badSyntax(format string, args ...any) *status.Status {
	return status.New(553, "5.1.3", "bad address syntax: "+format, args...)
}

// ParseAddress parses an RFC 5321/822 address: an optional source route
// "@a,@b:", a local part (dot-atoms, quoted strings, % and ! hosts) and an
// optional "@domain" (a host name or a [domain literal]). Angle brackets around
// the whole address are removed. It never panics; malformed input yields a
// 553 5.1.3 status.
func ParseAddress(s string) (route []string, local, domain string, err *status.Status) {
	a, st := parseAddress(s)
	if st != nil {
		return nil, "", "", st
	}
	return a.route, a.local, a.domain, nil
}

func parseAddress(s string) (address, *status.Status) {
	var a address
	if len(s) >= 2 && s[0] == '<' && s[len(s)-1] == '>' {
		s = s[1 : len(s)-1]
	}
	if s == "" {
		return a, badSyntax("empty address")
	}
	if len(s) > maxAddressLen {
		return a, badSyntax("address longer than %d octets", maxAddressLen)
	}
	if s[0] == '@' {
		// Source route: @host{,@host}:rest
		i := 0
		for {
			if i >= len(s) || s[i] != '@' {
				return a, badSyntax("source route hop must start with @")
			}
			i++
			j := i
			for j < len(s) && s[j] != ',' && s[j] != ':' {
				if s[j] == '[' {
					k := strings.IndexByte(s[j:], ']')
					if k < 0 {
						return a, badSyntax("unterminated domain literal")
					}
					j += k
				}
				j++
			}
			if j >= len(s) {
				return a, badSyntax("source route without ':'")
			}
			h := s[i:j]
			if st := checkDomain(h); st != nil {
				return a, st
			}
			a.route = append(a.route, h)
			i = j + 1
			if s[j] == ':' {
				break
			}
		}
		s = s[i:]
		if s == "" {
			return a, badSyntax("nothing after source route")
		}
	}
	// Find the last @ outside quotes; the domain after it must not contain a quote.
	at := -1
	inQuote := false
	start := 0
	if strings.IndexByte(s, '"') < 0 && strings.IndexByte(s, '[') < 0 {
		// Nothing quoted, no literal: the scan below would only find the last @.
		at, start = strings.LastIndexByte(s, '@'), len(s)
	}
	for i := start; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && inQuote:
			i++
			if i >= len(s) {
				return a, badSyntax("unterminated quoted string")
			}
			if s[i] < 0x20 && s[i] != '\t' || s[i] == 0x7f {
				return a, badSyntax("control character in quoted string")
			}
		case c == '"':
			inQuote = !inQuote
		case inQuote:
			if c < 0x20 && c != '\t' || c == 0x7f {
				return a, badSyntax("control character in quoted string")
			}
		case c == '@':
			at = i
		case c == '[':
			if at >= 0 {
				k := strings.IndexByte(s[i:], ']')
				if k < 0 {
					return a, badSyntax("unterminated domain literal")
				}
				i += k
			}
		}
	}
	if inQuote {
		return a, badSyntax("unterminated quoted string")
	}
	if at >= 0 {
		a.local, a.domain, a.hasDomain = s[:at], s[at+1:], true
		if st := checkDomain(a.domain); st != nil {
			return a, st
		}
	} else {
		a.local = s
		if len(a.route) > 0 {
			return a, badSyntax("source route without a final domain")
		}
	}
	if st := checkLocal(a.local); st != nil {
		return a, st
	}
	return a, nil
}

// checkLocal validates a local part: dot-atoms and quoted strings; the RFC 822
// specials are refused outside quotes. % and ! are atext and stay routing marks.
func checkLocal(l string) *status.Status {
	if l == "" {
		return badSyntax("empty local part")
	}
	inQuote := false
	for i := 0; i < len(l); i++ {
		c := l[i]
		if inQuote {
			switch c {
			case '\\':
				i++
			case '"':
				inQuote = false
			}
			continue
		}
		switch {
		case c == '"':
			inQuote = true
		case charClass[c]&ccLocalOK != 0:
		case c <= ' ' || c == 0x7f:
			return badSyntax("space or control character in local part")
		case strings.IndexByte("()<>[]:;@\\,", c) >= 0:
			return badSyntax("%q not allowed in an unquoted local part", string(c))
		}
	}
	if inQuote {
		return badSyntax("unterminated quoted string")
	}
	return nil
}

// checkDomain validates a host name or a domain literal.
func checkDomain(d string) *status.Status {
	if d == "" {
		return badSyntax("empty domain")
	}
	if d[0] == '[' {
		if len(d) < 2 || d[len(d)-1] != ']' {
			return badSyntax("malformed domain literal %q", d)
		}
		for i := 1; i < len(d)-1; i++ {
			c := d[i]
			if !(isAlnum(c) || c == '.' || c == ':' || c == '-') {
				return badSyntax("bad character in domain literal %q", d)
			}
		}
		return nil
	}
	if len(d) > 255 {
		return badSyntax("domain longer than 255 octets")
	}
	label := 0
	for i := 0; i < len(d); i++ {
		c := d[i]
		switch {
		case c == '.':
			if label == 0 {
				return badSyntax("empty label in domain %q", d)
			}
			label = 0
		case charClass[c]&ccLabel != 0:
			label++
		default:
			return badSyntax("bad character %q in domain", string(c))
		}
	}
	if label == 0 {
		return badSyntax("empty label in domain %q", d)
	}
	return nil
}

// charClass answers the per-character questions of address checking with one load
// instead of a chain of comparisons (or a search of a specials string) per byte.
var charClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		if isAlnum(b) || b == '-' || b == '_' || b >= 0x80 {
			t[c] |= ccLabel
		}
		// Not '"' (it opens a quoted string), not a space or control character,
		// not an RFC 822 special.
		if b > ' ' && b != 0x7f && b != '"' && strings.IndexByte("()<>[]:;@\\,", b) < 0 {
			t[c] |= ccLocalOK
		}
	}
	return t
}()

const (
	ccLabel   = 1 << iota // may appear in a host-name label
	ccLocalOK             // plain character of an unquoted local part
)

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// lastPercent returns the index of the last single % outside quotes, or -1. A
// run of two or more % is literal text ("%%" keeps a % in a local part).
func lastPercent(l string) int {
	if strings.IndexByte(l, '%') < 0 {
		return -1
	}
	best := -1
	inQuote := false
	for i := 0; i < len(l); i++ {
		c := l[i]
		if inQuote {
			if c == '\\' {
				i++
			} else if c == '"' {
				inQuote = false
			}
			continue
		}
		if c == '"' {
			inQuote = true
			continue
		}
		if c == '%' {
			j := i
			for j < len(l) && l[j] == '%' {
				j++
			}
			if j-i == 1 {
				best = i
			}
			i = j - 1
		}
	}
	return best
}

// firstBang returns the index of the first ! outside quotes, or -1.
func firstBang(l string) int {
	if strings.IndexByte(l, '!') < 0 {
		return -1
	}
	inQuote := false
	for i := 0; i < len(l); i++ {
		c := l[i]
		if inQuote {
			if c == '\\' {
				i++
			} else if c == '"' {
				inQuote = false
			}
			continue
		}
		switch c {
		case '"':
			inQuote = true
		case '!':
			return i
		}
	}
	return -1
}

// localSpec finds the host in a local part: right of the last single % and left
// of the first !, in the order bangoverpercent decides. user is what remains.
func localSpec(l string, bangOverPercent bool) (spec, user string, loc uint8, ok bool) {
	p, b := lastPercent(l), firstBang(l)
	if p < 0 && b < 0 {
		return "", "", 0, false
	}
	usePercent := p >= 0
	if p >= 0 && b >= 0 && bangOverPercent {
		usePercent = false
	}
	if usePercent {
		return l[p+1:], l[:p], locPercent, true
	}
	return l[:b], l[b+1:], locBang, true
}

// hasMoreSpecs reports whether a local part still carries a % or ! host.
func hasMoreSpecs(l string) bool { return lastPercent(l) >= 0 || firstBang(l) >= 0 }

// canonicalLocal is the local part as $U inserts it: a partly quoted local part
// such as a."b" becomes one quoted string "a.b"; an unquoted one is unchanged.
func canonicalLocal(l string) string {
	if strings.IndexByte(l, '"') < 0 {
		return l
	}
	var b strings.Builder
	b.Grow(len(l) + 2)
	b.WriteByte('"')
	inQuote := false
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(l):
			i++
			c = l[i]
			if c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		case c == '"':
			inQuote = !inQuote
		default:
			if c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// unquoteLocal is the local part without quoting, for alias lookups and mailbox
// names: "a b" -> a b.
func unquoteLocal(l string) string {
	if strings.IndexByte(l, '"') < 0 {
		return l
	}
	c := canonicalLocal(l)
	c = c[1 : len(c)-1]
	if strings.IndexByte(c, '\\') < 0 {
		return c
	}
	var b strings.Builder
	for i := 0; i < len(c); i++ {
		if c[i] == '\\' && i+1 < len(c) {
			i++
		}
		b.WriteByte(c[i])
	}
	return b.String()
}

// format renders the address: "@r1,@r2:local@domain".
func (a *address) format() string { return a.formatReuse("") }

// formatReuse is format, returning orig itself (no allocation) when the rendered
// address would be identical to it: most addresses route unchanged.
func (a *address) formatReuse(orig string) string {
	if len(a.route) == 0 {
		if !a.hasDomain {
			if orig == a.local {
				return orig
			}
		} else if len(orig) == len(a.local)+1+len(a.domain) && orig[len(a.local)] == '@' &&
			orig[:len(a.local)] == a.local && orig[len(a.local)+1:] == a.domain {
			return orig
		}
	}
	n := len(a.local) + len(a.domain) + 1
	for _, r := range a.route {
		n += len(r) + 2
	}
	var b strings.Builder
	b.Grow(n)
	for i, r := range a.route {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('@')
		b.WriteString(r)
	}
	if len(a.route) > 0 {
		b.WriteByte(':')
	}
	b.WriteString(a.local)
	if a.hasDomain {
		b.WriteByte('@')
		b.WriteString(a.domain)
	}
	return b.String()
}
