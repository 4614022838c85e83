package filter

import (
	"fmt"
	"strings"
	"unicode"
)

// The substitutions of a channel's filter URL-pattern and fileinto template,
// as the product documents them (letters without case):
//
//	$A  the address            $D  its domain (host.domain)
//	$H  the domain's first label  $U  the user: the local part without subaddress
//	$S  the subaddress ("" when none; in a fileinto template, the folder)
//	$1S as $S                  $2S as $S; with none, the character before goes too
//	$3S as $S; with none, the character after is skipped
//	$$  a dollar sign          $\ $^ $_  what follows lower-cased, upper-cased, as is
//
// The product's other substitutions ($~ home directory, $E $G spare directory
// attributes, $F delivery file, $I hosted domain, ** forwarding addresses) come
// from directory entries mtad does not have: CheckPattern refuses them.

// addrParts are the pieces of an address the substitutions use.
type addrParts struct {
	addr, user, detail, domain string
	hasDetail                  bool
}

func splitAddress(addr, sep string) addrParts {
	if sep == "" {
		sep = "+"
	}
	p := addrParts{addr: addr}
	local := addr
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		local, p.domain = addr[:i], addr[i+1:]
	}
	local = strings.Trim(local, `"`)
	p.user = local
	if u, d, ok := strings.Cut(local, sep); ok {
		p.user, p.detail, p.hasDetail = u, d, true
	}
	return p
}

// ExpandURL applies a filter URL-pattern to one recipient's address.
func ExpandURL(pattern, addr, sep string) (string, error) {
	return expand(pattern, splitAddress(addr, sep))
}

// ExpandFileInto applies a channel's fileinto template ($U+$S@$D) to the
// address of a message a system filter filed into folder: $S is the folder.
func ExpandFileInto(template, addr, folder, sep string) (string, error) {
	p := splitAddress(addr, sep)
	p.detail, p.hasDetail = folder, folder != ""
	return expand(template, p)
}

// CheckPattern reports the first substitution of a pattern that mtad cannot
// make.
func CheckPattern(pattern string) error {
	_, err := expand(pattern, addrParts{addr: "u@d", user: "u", domain: "d"})
	return err
}

// Scriptlet substitutes $U in the URL of a verdict's action (a spam or virus
// filter's data: scriptlet) with the verdict, as the product documents it:
// `data:,require "fileinto"; fileinto "$U";` files into a folder named after
// the verdict. Characters that would end or escape a Sieve string are dropped
// from the verdict, so a scanner's answer cannot add commands to the script.
func Scriptlet(url, verdict string) string {
	clean := strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 {
			return -1
		}
		return r
	}, verdict)
	return strings.ReplaceAll(strings.ReplaceAll(url, "$U", clean), "$u", clean)
}

// expand is the substitution engine of ExpandURL, ExpandFileInto and
// CheckPattern.
func expand(pattern string, p addrParts) (string, error) {
	var b strings.Builder
	fold := func(s string) string { return s }
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if c != '$' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(pattern) {
			return "", fmt.Errorf("pattern %q ends with a lone $", pattern)
		}
		i++
		mode := byte(0)
		if pattern[i] >= '1' && pattern[i] <= '3' && i+1 < len(pattern) {
			mode = pattern[i]
			i++
		}
		letter := unicode.ToUpper(rune(pattern[i]))
		if mode != 0 && letter != 'S' {
			return "", fmt.Errorf("substitution $%c%c in %q is not supported", mode, pattern[i], pattern)
		}
		switch letter {
		case '$':
			b.WriteByte('$')
		case '\\':
			fold = strings.ToLower
		case '^':
			fold = strings.ToUpper
		case '_':
			fold = func(s string) string { return s }
		case 'A':
			b.WriteString(fold(p.addr))
		case 'D':
			b.WriteString(fold(p.domain))
		case 'H':
			host, _, _ := strings.Cut(p.domain, ".")
			b.WriteString(fold(host))
		case 'U':
			b.WriteString(fold(p.user))
		case 'S':
			if !p.hasDetail && mode == '2' {
				s := b.String()
				b.Reset()
				if len(s) > 0 {
					s = s[:len(s)-1]
				}
				b.WriteString(s)
			}
			if !p.hasDetail && mode == '3' {
				i++
			}
			b.WriteString(fold(p.detail))
		default:
			return "", fmt.Errorf("substitution $%s in %q is not supported (mtad knows $A $D $H $U $S $$)", pattern[i:i+1], pattern)
		}
	}
	return b.String(), nil
}
