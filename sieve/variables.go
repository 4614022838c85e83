package sieve

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// str is a string argument of the script. Without the "variables" extension,
// or without "${" in it, it is a constant (parts is nil); otherwise parts are
// the literal pieces and variable references expanded at run time (RFC 5229 §3).
type str struct {
	lit   string
	parts []strPart
}

// strPart is literal text, a named variable (lower case, as names ignore case),
// or a match variable ${0}..${9} (num >= 0).
type strPart struct {
	lit  string
	name string
	num  int
}

func constStr(s string) str { return str{lit: s} }

// compileStr cuts a string into its parts when variables are in use.
func (c *checker) compileStr(s string, at Pos) str {
	if !c.caps["variables"] || !strings.Contains(s, "${") {
		return constStr(s)
	}
	var parts []strPart
	var lit strings.Builder
	for i := 0; i < len(s); {
		if !strings.HasPrefix(s[i:], "${") {
			lit.WriteByte(s[i])
			i++
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			lit.WriteString(s[i:])
			break
		}
		ref := s[i+2 : i+2+end]
		part, ok := c.varRef(ref, at)
		if !ok {
			// Not a reference: "${" stays as written (RFC 5229 §3).
			lit.WriteString("${")
			i += 2
			continue
		}
		if lit.Len() > 0 {
			parts = append(parts, strPart{lit: lit.String(), num: -1})
			lit.Reset()
		}
		parts = append(parts, part)
		i += 2 + end + 1
	}
	if len(parts) == 0 {
		return constStr(lit.String())
	}
	if lit.Len() > 0 {
		parts = append(parts, strPart{lit: lit.String(), num: -1})
	}
	return str{lit: s, parts: parts}
}

// varRef reads what is between "${" and "}": a number or an identifier. A
// name with a dot is a namespace, and no namespace is supported.
func (c *checker) varRef(ref string, at Pos) (strPart, bool) {
	if ref == "" {
		return strPart{}, false
	}
	if isDigits(ref) {
		d := strings.TrimLeft(ref, "0")
		switch {
		case d == "":
			return strPart{num: 0}, true
		case len(d) > 1:
			// ${10} and beyond are valid references that are always empty.
			return strPart{num: 10}, true
		}
		return strPart{num: int(d[0] - '0')}, true
	}
	for _, piece := range strings.Split(ref, ".") {
		if !isIdentifier(piece) {
			return strPart{}, false
		}
	}
	if strings.Contains(ref, ".") {
		c.errorf(at, "variable namespace in ${%s} is not supported", ref)
		return strPart{}, false
	}
	return strPart{name: strings.ToLower(ref), num: -1}, true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isIdentifier(s string) bool {
	if s == "" || !isIdentStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isIdentChar(s[i]) {
			return false
		}
	}
	return true
}

// expand gives a string's value now. A reference to a variable never set is
// empty. The result is cut at the string-length limit.
func (e *eval) expand(s str) string {
	if s.parts == nil {
		return s.lit
	}
	var b strings.Builder
	for _, p := range s.parts {
		switch {
		case p.num >= 0:
			if p.num < len(e.matchVars) {
				b.WriteString(e.matchVars[p.num])
			}
		case p.name != "":
			b.WriteString(e.vars[p.name])
		default:
			b.WriteString(p.lit)
		}
		if b.Len() > e.s.limits.MaxStringLength {
			break
		}
	}
	out := b.String()
	if len(out) > e.s.limits.MaxStringLength {
		out = truncateUTF8(out, e.s.limits.MaxStringLength)
	}
	e.work += int64(len(out))
	return out
}

// expandList expands each string of a list.
func (e *eval) expandList(l []str) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = e.expand(s)
	}
	return out
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// setMatchVars replaces the match variables after a successful :matches.
func (e *eval) setMatchVars(caps []string) {
	e.matchVars = append(e.matchVars[:0], caps...)
	if len(e.matchVars) > 10 {
		e.matchVars = e.matchVars[:10]
	}
}

// --- set ---

// Modifiers of "set" (RFC 5229 §4.1), applied from the highest precedence down.
const (
	modLength        = 1 << iota // precedence 10
	modQuoteWildcard             // 20
	modLowerFirst                // 30
	modUpperFirst                // 30
	modLower                     // 40
	modUpper                     // 40
)

type cmdSet struct {
	node
	name  string
	value str
	mods  int
}

func (c *cmdSet) run(e *eval) error {
	v := applyModifiers(e.expand(c.value), c.mods)
	return e.setVar(c.pos, c.name, v)
}

func applyModifiers(v string, mods int) string {
	switch {
	case mods&modLower != 0:
		v = strings.ToLower(v)
	case mods&modUpper != 0:
		v = strings.ToUpper(v)
	}
	if mods&(modLowerFirst|modUpperFirst) != 0 && v != "" {
		r, n := utf8.DecodeRuneInString(v)
		if mods&modLowerFirst != 0 {
			r = unicode.ToLower(r)
		} else {
			r = unicode.ToUpper(r)
		}
		v = string(r) + v[n:]
	}
	if mods&modQuoteWildcard != 0 {
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] == '*' || v[i] == '?' || v[i] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(v[i])
		}
		v = b.String()
	}
	if mods&modLength != 0 {
		v = strconv.Itoa(utf8.RuneCountInString(v))
	}
	return v
}

// setVar stores a variable, within the limits on their number and size.
func (e *eval) setVar(at Pos, name, v string) error {
	if e.vars == nil {
		e.vars = make(map[string]string)
	}
	if _, ok := e.vars[name]; !ok && len(e.vars) >= e.s.limits.MaxVariables {
		return &Error{Pos: at, Msg: "too many variables (limit " + itoa(e.s.limits.MaxVariables) + ")"}
	}
	e.vars[name] = truncateUTF8(v, e.s.limits.MaxStringLength)
	return nil
}

// --- encoded-character (RFC 5228 §2.4.2.4) ---

// decodeEncoded replaces ${hex:XX XX} and ${unicode:XXXX} in a string. A
// sequence that is not well formed stays as written; a unicode value that is
// not a character is an error.
func decodeEncoded(s string) (string, string) {
	if !strings.Contains(s, "${") {
		return s, ""
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], "${")
		if j < 0 {
			b.WriteString(s[i:])
			break
		}
		b.WriteString(s[i : i+j])
		i += j
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			b.WriteString(s[i:])
			break
		}
		body := s[i+2 : i+end]
		out, ok, problem := decodeEncodedRef(body)
		if problem != "" {
			return "", problem
		}
		if !ok {
			b.WriteString("${")
			i += 2
			continue
		}
		b.WriteString(out)
		i += end + 1
	}
	return b.String(), ""
}

func decodeEncodedRef(body string) (out string, ok bool, problem string) {
	colon := strings.IndexByte(body, ':')
	if colon < 0 {
		return "", false, ""
	}
	kind := strings.ToLower(strings.TrimSpace(body[:colon]))
	if kind != "hex" && kind != "unicode" {
		return "", false, ""
	}
	fields := strings.Fields(body[colon+1:])
	if len(fields) == 0 {
		return "", false, ""
	}
	var b strings.Builder
	for _, f := range fields {
		bits := 8
		if kind == "unicode" {
			bits = 32
		}
		n, err := strconv.ParseUint(f, 16, bits)
		if err != nil {
			return "", false, ""
		}
		if kind == "hex" {
			b.WriteByte(byte(n))
			continue
		}
		if n > unicode.MaxRune || (n >= 0xD800 && n <= 0xDFFF) {
			return "", false, "${unicode:" + f + "} is not a Unicode character"
		}
		b.WriteRune(rune(n))
	}
	return b.String(), true, ""
}
