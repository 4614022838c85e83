package sieve

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// comparator is one of the three comparators of RFC 4790 that Sieve scripts
// may name.
type comparator uint8

const (
	cmpCasemap comparator = iota // "i;ascii-casemap", the default
	cmpOctet                     // "i;octet"
	cmpNumeric                   // "i;ascii-numeric"
)

var comparatorNames = map[string]comparator{
	"i;ascii-casemap": cmpCasemap, "i;octet": cmpOctet, "i;ascii-numeric": cmpNumeric,
}

type matchType uint8

const (
	mtIs matchType = iota
	mtContains
	mtMatches
	mtCount // relational :count
	mtValue // relational :value
)

type relOp uint8

const (
	relGT relOp = iota
	relGE
	relLT
	relLE
	relEQ
	relNE
)

var relOps = map[string]relOp{"gt": relGT, "ge": relGE, "lt": relLT, "le": relLE, "eq": relEQ, "ne": relNE}

// holds says whether a comparison result (-1, 0, 1) satisfies the operator.
func (r relOp) holds(c int) bool {
	switch r {
	case relGT:
		return c > 0
	case relGE:
		return c >= 0
	case relLT:
		return c < 0
	case relLE:
		return c <= 0
	case relEQ:
		return c == 0
	}
	return c != 0
}

// matcher is the comparator and match type of a test, fixed when the script is
// compiled.
type matcher struct {
	mt  matchType
	rel relOp
	cmp comparator
}

// key is one key of a test's key list. For a key without variables the folded
// form and the compiled pattern are made once, when the script is compiled.
type key struct {
	s      str
	folded string // s folded to lower case (casemap comparator)
	glob   *glob  // compiled :matches pattern
}

// value is one string a test compares: a header field's decoded value, an
// address part... fold is its lower-case form when the caller already has it.
type value struct {
	s      string
	fold   string
	folded bool
}

// foldASCII lowers ASCII letters only, as i;ascii-casemap does; it returns s
// itself when there is nothing to lower. Byte offsets stay the same, so a
// :matches on the folded string gives the captures of the original.
func foldASCII(s string) string {
	i := 0
	for i < len(s) && !('A' <= s[i] && s[i] <= 'Z') {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if 'A' <= b[i] && b[i] <= 'Z' {
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}

// numericCompare orders two strings as i;ascii-numeric does (RFC 4790 §9.1):
// by the number their leading digits spell; a string that does not start with
// a digit is larger than every number, and equal to any other such string.
func numericCompare(a, b string) int {
	da, db := leadingDigits(a), leadingDigits(b)
	switch {
	case da == "" && db == "":
		return 0
	case da == "":
		return 1
	case db == "":
		return -1
	}
	da, db = strings.TrimLeft(da, "0"), strings.TrimLeft(db, "0")
	if len(da) != len(db) {
		if len(da) < len(db) {
			return -1
		}
		return 1
	}
	return strings.Compare(da, db)
}

func leadingDigits(s string) string {
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return s[:i]
}

// matchOne compares one value with the keys; it reports whether any key
// matches. A successful :matches sets the match variables (RFC 5229 §3.2).
func (m *matcher) matchOne(e *eval, v value, keys []key) (bool, error) {
	for i := range keys {
		k := &keys[i]
		ok, err := m.matchKey(e, v, k)
		if ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

func (m *matcher) matchKey(e *eval, v value, k *key) (bool, error) {
	ks, kf := k.folded, k.folded
	if k.s.parts != nil {
		ks = e.expand(k.s)
		kf = ks
		if m.cmp == cmpCasemap {
			kf = foldASCII(ks)
		}
	} else if m.cmp != cmpCasemap {
		ks, kf = k.s.lit, k.s.lit
	}
	if err := e.charge(len(v.s) + len(ks)); err != nil {
		return false, err
	}
	vf := v.s
	if m.cmp == cmpCasemap {
		if !v.folded {
			v.fold, v.folded = foldASCII(v.s), true
		}
		vf = v.fold
	}
	switch m.mt {
	case mtIs:
		if m.cmp == cmpNumeric {
			return numericCompare(v.s, ks) == 0, nil
		}
		return vf == kf, nil
	case mtContains:
		return strings.Contains(vf, kf), nil
	case mtValue:
		return m.rel.holds(m.compare(vf, kf)), nil
	}
	g := k.glob
	if g == nil {
		g = compileGlob(kf)
	}
	ok, caps, work := g.match(v.s, vf, m.cmp == cmpOctet, e.wantCaptures)
	if err := e.charge(work); err != nil {
		return false, err
	}
	if ok && e.wantCaptures {
		e.setMatchVars(caps)
	}
	return ok, nil
}

// tally runs the values of a test through its matcher: with :count it counts
// them and compares the count at the end, otherwise it stops at the first
// value that matches.
type tally struct {
	m    *matcher
	keys []key
	n    int
	ok   bool
	err  error
}

// add takes one value; it returns false when the test is decided.
func (t *tally) add(e *eval, v value) bool {
	if t.m.mt == mtCount {
		t.n++
		return true
	}
	t.ok, t.err = t.m.matchOne(e, v, t.keys)
	return !t.ok && t.err == nil
}

// result is the test's outcome once every value was added (or add said stop).
func (t *tally) result(e *eval) (bool, error) {
	if t.m.mt == mtCount {
		return t.m.matchCount(e, t.n, t.keys)
	}
	return t.ok, t.err
}

// compare orders two (already folded) strings with the matcher's comparator.
func (m *matcher) compare(a, b string) int {
	if m.cmp == cmpNumeric {
		return numericCompare(a, b)
	}
	return strings.Compare(a, b)
}

// matchCount compares the number of values with the keys (RFC 5231 :count).
func (m *matcher) matchCount(e *eval, n int, keys []key) (bool, error) {
	ns := strconv.Itoa(n)
	for i := range keys {
		ks := keys[i].s.lit
		if keys[i].s.parts != nil {
			ks = e.expand(keys[i].s)
		}
		if m.cmp == cmpCasemap {
			ks = foldASCII(ks)
		}
		if m.rel.holds(m.compare(ns, ks)) {
			return true, nil
		}
	}
	return false, nil
}

// --- :matches patterns ---

// glob is a compiled :matches pattern (RFC 5228 §2.7.1): "*" matches any
// sequence, "?" one character, a backslash makes the next character literal.
//
// The pattern is cut at its stars into segments. The first segment must match
// at the start of the value and the last one at its end; each segment between
// is placed at its leftmost match after the previous one. For patterns made of
// stars and fixed-length segments that placement finds a match whenever there
// is one, so no backtracking is needed and the cost is at most the value's
// length times the pattern's. The leftmost placement also gives each star the
// shortest text it can take, which is what RFC 5229 expects of ${1}...
type glob struct {
	segs  []globSeg
	stars bool // at least one star: segs[0] is anchored at the start, the last at the end
	// wild lists the wildcards in pattern order: true for "*", false for "?".
	wild []bool
}

// globSeg is a run of literal text and "?" between stars.
type globSeg []globElem

type globElem struct {
	lit string // literal text, when any is false
	any bool   // "?"
}

func compileGlob(p string) *glob {
	g := &glob{}
	var seg globSeg
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			seg = append(seg, globElem{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\' && i+1 < len(p):
			i++
			lit.WriteByte(p[i])
		case c == '?':
			flush()
			seg = append(seg, globElem{any: true})
			g.wild = append(g.wild, false)
		case c == '*':
			flush()
			g.segs = append(g.segs, seg)
			seg = nil
			g.stars = true
			g.wild = append(g.wild, true)
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	g.segs = append(g.segs, seg)
	return g
}

// matchAt tries a segment at offset i of the folded value vf. It returns the
// end offset, and appends the spans of its "?"s to caps when caps is wanted.
func (seg globSeg) matchAt(vf string, i int, octet bool, caps *[]int) (int, bool) {
	for _, el := range seg {
		if !el.any {
			if !strings.HasPrefix(vf[i:], el.lit) {
				return 0, false
			}
			i += len(el.lit)
			continue
		}
		if i >= len(vf) {
			return 0, false
		}
		n := 1
		if !octet {
			_, n = utf8.DecodeRuneInString(vf[i:])
		}
		if caps != nil {
			*caps = append(*caps, i, i+n)
		}
		i += n
	}
	return i, true
}

// minLen is the fewest bytes a segment can match.
func (seg globSeg) minLen() int {
	n := 0
	for _, el := range seg {
		if el.any {
			n++
		} else {
			n += len(el.lit)
		}
	}
	return n
}

// match matches v (folded: vf) against the pattern. When capture is set and the
// match succeeds, caps holds ${0} (the whole value) and then the text of each
// wildcard in order. work is the number of segment placements tried.
func (g *glob) match(v, vf string, octet, capture bool) (ok bool, caps []string, work int) {
	var spans []int // pairs of offsets, in wildcard order
	var sp *[]int
	if capture {
		sp = &spans
	}
	if !g.stars {
		end, ok := g.segs[0].matchAt(vf, 0, octet, sp)
		if !ok || end != len(vf) {
			return false, nil, len(vf)
		}
		return true, g.captures(v, spans), len(vf)
	}
	i, ok := g.segs[0].matchAt(vf, 0, octet, sp)
	if !ok {
		return false, nil, 1
	}
	last := g.segs[len(g.segs)-1]
	lastStart, ok := g.lastStart(vf, i, last, octet)
	if !ok {
		return false, nil, 1
	}
	for _, seg := range g.segs[1 : len(g.segs)-1] {
		start := i
		found := false
		for j := i; j+seg.minLen() <= lastStart; j++ {
			work++
			mark := len(spans)
			if end, ok := seg.matchAt(vf[:lastStart], j, octet, sp); ok {
				if capture {
					spans = append(spans[:mark], append([]int{start, j}, spans[mark:]...)...)
				}
				i, found = end, true
				break
			}
			if capture {
				spans = spans[:mark]
			}
		}
		if !found {
			return false, nil, work + 1
		}
	}
	if capture {
		spans = append(spans, i, lastStart)
		last.matchAt(vf, lastStart, octet, sp)
	}
	return true, g.captures(v, spans), work + 1
}

// lastStart finds where the last segment must start for it to end at the end
// of the value, no earlier than from.
func (g *glob) lastStart(vf string, from int, last globSeg, octet bool) (int, bool) {
	i := len(vf)
	for k := len(last) - 1; k >= 0; k-- {
		el := last[k]
		if !el.any {
			if !strings.HasSuffix(vf[:i], el.lit) {
				return 0, false
			}
			i -= len(el.lit)
			continue
		}
		if i <= from {
			return 0, false
		}
		n := 1
		if !octet {
			_, n = utf8.DecodeLastRuneInString(vf[:i])
		}
		i -= n
	}
	if i < from {
		return 0, false
	}
	return i, true
}

// captures turns the spans into strings of the original value: ${0} first.
func (g *glob) captures(v string, spans []int) []string {
	if spans == nil && len(g.wild) > 0 {
		return nil
	}
	out := make([]string, 1, 1+len(spans)/2)
	out[0] = v
	for k := 0; k+1 < len(spans); k += 2 {
		out = append(out, v[spans[k]:spans[k+1]])
	}
	return out
}
