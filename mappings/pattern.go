package mappings

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Limits from the product's documentation for version 6.3: patterns up to 256
// characters, templates up to 1024.
const (
	MaxPatternLen  = 256
	MaxTemplateLen = 1024
)

// maxMatchSteps bounds one Match call. With the failure memo a pattern of k items
// on an input of n bytes needs at most about k*n*n steps; real probes are far below
// this. A pattern with back-matches cannot use the memo, so the budget is what stops
// it: beyond the budget the pattern does not match.
const maxMatchSteps = 1 << 20

// memoAfter is the step count after which the failure memo is switched on; simple
// matches never pay for its allocation.
const memoAfter = 256

type itemKind uint8

const (
	kLit       itemKind = iota // literal text (lower-cased)
	kAny                       // * : zero or more characters
	kOne                       // % : exactly one character
	kClassMany                 // $A* $[..]* ...
	kClassOne                  // $A% $[..]% ...
	kBack                      // $n* : the text saved item n matched
	kIP4                       // $(a.b.c.d/n) or $<a.b.c.d/n>
	kIP6                       // ${addr/n}
)

// item is one element of a compiled pattern. It holds no pointers (12 bytes): its
// data is Pattern.data[off:end], so a big table's items share one backing array
// the garbage collector never scans, and a decoded pattern's data is a substring
// of the image, so loading 100 000 entries copies none of their text.
type item struct {
	kind itemKind
	save bool  // numbered, returned as a capture
	lazy bool  // $_ : as few characters as possible
	n    uint8 // kBack: the saved item referred to; kIP6: prefix bits
	// off and end delimit the item's data in Pattern.data: kLit the lower-cased
	// text; kClassOne/kClassMany the class bitmap (classLen bytes, bit c&7 of
	// byte c>>3, already case-folded); kIP4 address then mask (4 bytes each,
	// big-endian); kIP6 the 16-byte address. Other kinds have none.
	off, end uint32
}

// classLen is the length of a class bitmap in item data.
const classLen = 32

// dataLen is the data length an item kind must have; -1 for any (kLit).
func dataLen(k itemKind) int {
	switch k {
	case kLit:
		return -1
	case kClassOne, kClassMany:
		return classLen
	case kIP4:
		return 8
	case kIP6:
		return 16
	}
	return 0
}

// classString renders a class as item data.
func classString(cls [4]uint64) string {
	var b [classLen]byte
	for c := 0; c < 256; c++ {
		if cls[c>>6]&(1<<(c&63)) != 0 {
			b[c>>3] |= 1 << (c & 7)
		}
	}
	return string(b[:])
}

// itemHas reports whether class data (classString) holds c.
func itemHas(data string, c byte) bool { return data[c>>3]&(1<<(c&7)) != 0 }

// Pattern is one compiled mapping pattern.
type Pattern struct {
	items   []item
	data    string // the items' data (see item); a literal pattern's is its text
	nsave   int
	hasBack bool
	literal bool     // no wildcard at all: matches exactly data, case-insensitively
	meta    *patMeta // quick-reject facts; nil for literal patterns, which need none
}

// patMeta is kept out of Pattern so that the all-literal entries that make up most
// big tables stay small (less to allocate, clear and scan on image load). It holds
// no pointers: the literal prefix, suffix and longest inner literal are items of
// the pattern, found again through their index.
type patMeta struct {
	bytes  [4]uint64 // every byte of its literals: a probe lacking one cannot match
	minLen int       // no shorter input can match
	must   int       // item index of the longest inner literal (a quick reject when absent); -1 none
}

// lit returns item k's data.
func (p *Pattern) lit(k int) string { return p.data[p.items[k].off:p.items[k].end] }

// prefix is the lower-cased literal text every match starts with ("" if none).
func (p *Pattern) prefix() string {
	if len(p.items) > 0 && p.items[0].kind == kLit {
		return p.lit(0)
	}
	return ""
}

// suffix is the lower-cased literal text every match ends with ("" if none).
func (p *Pattern) suffix() string {
	if k := len(p.items); k > 1 && p.items[k-1].kind == kLit {
		return p.lit(k - 1)
	}
	return ""
}

// Capture is one saved item of a match, as printed by `mtactl test -match`.
type Capture struct {
	Index int
	Text  string
}

// CompilePattern compiles a mapping pattern (wildcards, globs, IP matchers, $-quoting).
func CompilePattern(p string) (*Pattern, error) {
	pat := &Pattern{}
	if err := compilePattern(p, pat); err != nil {
		return nil, err
	}
	return pat, nil
}

func compilePattern(p string, pat *Pattern) error {
	if len(p) > MaxPatternLen {
		return fmt.Errorf("pattern too long: %d characters (maximum %d)", len(p), MaxPatternLen)
	}
	c := patternCompiler{src: p, save: true}
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '*':
			c.add(item{kind: kAny}, "")
		case '%':
			c.add(item{kind: kOne}, "")
		case '$':
			last, err := c.dollar(i)
			if err != nil {
				return err
			}
			i = last
		default:
			if c.pendingMod {
				return fmt.Errorf("$_, $@ and $^ must be followed by a wildcard, glob or IP matcher (found %q at offset %d)", p[i:i+1], i)
			}
			c.lit = append(c.lit, lower(p[i]))
		}
	}
	if c.pendingMod {
		return errors.New("pattern ends with $_, $@ or $^ that modifies no wildcard")
	}
	c.flush()
	pat.items, pat.data = c.items, string(c.data)
	pat.finish()
	return nil
}

// patternCompiler holds what compilePattern has built so far.
type patternCompiler struct {
	src   string
	items []item
	lit   []byte // literal text read since the last item, lower-cased
	data  []byte // Pattern.data being built
	// save and lazy apply to the next wildcard: $@ clears save, $_ sets lazy.
	save, lazy bool
	pendingMod bool // a $_ $@ $^ waits for its wildcard
	nsave      int  // saved items so far
}

// flush turns the pending literal text into an item.
func (c *patternCompiler) flush() {
	if len(c.lit) > 0 {
		c.items = append(c.items, item{kind: kLit, off: uint32(len(c.data)), end: uint32(len(c.data) + len(c.lit))})
		c.data = append(c.data, c.lit...)
		c.lit = c.lit[:0]
	}
}

// add appends a wildcard, glob, back-match or IP matcher item with its data, under
// the pending $_ $@ $^ modifiers, which it then resets.
func (c *patternCompiler) add(it item, payload string) {
	c.flush()
	if payload != "" {
		it.off = uint32(len(c.data))
		c.data = append(c.data, payload...)
		it.end = uint32(len(c.data))
	}
	it.save, it.lazy = c.save, c.lazy
	if it.kind == kBack {
		// The documentation is silent on whether a back-match is numbered; we
		// chose not: it repeats text that is already saved.
		it.save, it.lazy = false, false
	}
	if it.save {
		c.nsave++
	}
	c.items = append(c.items, it)
	c.save, c.lazy, c.pendingMod = true, false, false
}

// dollar compiles the $-sequence whose '$' is at src[at] and returns the offset of
// its last character.
func (c *patternCompiler) dollar(at int) (int, error) {
	p := c.src
	if at+1 >= len(p) {
		return 0, errors.New("pattern ends with a lone $")
	}
	i := at + 1
	ch := p[i]
	switch {
	case ch == '*' || ch == '%' || ch == '$' || ch == ' ' || ch == '\t':
		if c.pendingMod {
			return 0, fmt.Errorf("$_, $@ and $^ must be followed by a wildcard, glob or IP matcher (found $%c at offset %d)", ch, at)
		}
		c.lit = append(c.lit, ch)
	case ch == '_':
		c.lazy, c.pendingMod = true, true
	case ch == '@':
		c.save, c.pendingMod = false, true
	case ch == '^':
		c.save, c.pendingMod = true, true
	case ch >= '0' && ch <= '9':
		n := int(ch - '0')
		if i+1 >= len(p) || p[i+1] != '*' {
			return 0, fmt.Errorf("back-match $%d at offset %d must be written $%d*", n, at, n)
		}
		if n >= c.nsave {
			return 0, fmt.Errorf("back-match $%d* at offset %d refers to a wildcard not saved before it (%d saved so far)", n, at, c.nsave)
		}
		i++
		c.add(item{kind: kBack, n: uint8(n)}, "")
	case ch == '[':
		open := i + 1
		cls, end, err := parseClass(p, open)
		if err != nil {
			return 0, err
		}
		i = end // at ']'
		k, err := globKind(p, i+1)
		if err != nil {
			return 0, fmt.Errorf("bad glob $[%s]: %w", p[open:i], err)
		}
		i++
		c.add(item{kind: k}, classString(cls))
	case ch == '(' || ch == '<' || ch == '{':
		return c.ipMatcher(at)
	case isLetter(ch):
		cls, ok := namedClass(ch)
		if !ok {
			return 0, fmt.Errorf("bad glob $%c at offset %d: unknown class (use $A $B $D $H $O $S $T $X or $[...])", ch, at)
		}
		k, err := globKind(p, i+1)
		if err != nil {
			return 0, fmt.Errorf("bad glob $%c at offset %d: %w", ch, at, err)
		}
		i++
		c.add(item{kind: k}, classString(cls))
	default:
		return 0, fmt.Errorf("invalid $%c sequence in pattern at offset %d", ch, at)
	}
	return i, nil
}

// ipMatcher compiles the IP matcher $(a.b.c.d/n), $<a.b.c.d/n> or ${addr/n} whose
// '$' is at src[at] and returns the offset of its closing bracket.
func (c *patternCompiler) ipMatcher(at int) (int, error) {
	p := c.src
	opener := p[at+1]
	closer := byte(')')
	switch opener {
	case '<':
		closer = '>'
	case '{':
		closer = '}'
	}
	end := strings.IndexByte(p[at+2:], closer)
	if end < 0 {
		return 0, fmt.Errorf("unterminated $%c IP matcher at offset %d", opener, at)
	}
	spec := p[at+2 : at+2+end]
	var it item
	var payload string
	var err error
	if opener == '{' {
		it, payload, err = parseIP6(spec)
	} else {
		it, payload, err = parseIP4(spec, opener == '<')
	}
	if err != nil {
		return 0, fmt.Errorf("bad IP prefix $%c%s%c: %w", opener, spec, closer, err)
	}
	c.add(it, payload)
	return at + 2 + end, nil
}

// finish derives the index facts from items.
func (p *Pattern) finish() { p.shape(nil, true) }

// shape sets literal, hasBack, nsave and, for a pattern with wildcards, the meta
// (m when not nil, else a new one). withBytes also computes minLen and bytes, the
// one part that walks every literal byte: a decoded table stores those two instead,
// so image loading does not redo it for every entry.
func (p *Pattern) shape(m *patMeta, withBytes bool) {
	p.literal, p.hasBack, p.nsave, p.meta = false, false, 0, nil
	if len(p.items) == 0 || len(p.items) == 1 && p.items[0].kind == kLit {
		// The common all-literal entry: matched by text, none of the rest is used.
		p.literal = true
		return
	}
	if m == nil {
		m = &patMeta{}
	}
	p.meta = m
	m.must = -1
	mustLen := 0
	for k := range p.items {
		it := &p.items[k]
		switch it.kind {
		case kLit:
			lit := p.data[it.off:it.end]
			if withBytes {
				m.minLen += len(lit)
				for i := 0; i < len(lit); i++ {
					c := lit[i]
					m.bytes[c>>6] |= 1 << (c & 63)
				}
			}
			if k > 0 && k < len(p.items)-1 && len(lit) > mustLen {
				m.must, mustLen = k, len(lit)
			}
		case kOne, kClassOne:
			if withBytes {
				m.minLen++
			}
		case kIP4:
			if withBytes {
				m.minLen += 7 // "0.0.0.0"
			}
		case kIP6:
			if withBytes {
				m.minLen += 2 // "::"
			}
		case kBack:
			p.hasBack = true
		}
		if it.save {
			p.nsave++
		}
	}
}

func globKind(p string, i int) (itemKind, error) {
	if i >= len(p) {
		return 0, errors.New("must be followed by % or *")
	}
	switch p[i] {
	case '%':
		return kClassOne, nil
	case '*':
		return kClassMany, nil
	}
	return 0, errors.New("must be followed by % or *")
}

// parseClass reads a $[...] body starting at p[i]; it returns the class and the
// offset of the closing ']'. Backslash quotes the next character (\- \] \\).
func parseClass(p string, i int) (cls [4]uint64, end int, err error) {
	var chars []byte  // resolved characters
	var quoted []bool // whether chars[k] was quoted (a quoted '-' is literal)
	for ; i < len(p); i++ {
		c := p[i]
		if c == ']' {
			break
		}
		if c == '\\' {
			if i+1 >= len(p) {
				return cls, 0, errors.New("unterminated $[ glob")
			}
			i++
			chars = append(chars, p[i])
			quoted = append(quoted, true)
			continue
		}
		chars = append(chars, c)
		quoted = append(quoted, false)
	}
	if i >= len(p) {
		return cls, 0, errors.New("unterminated $[ glob")
	}
	if len(chars) == 0 {
		return cls, 0, errors.New("bad glob: empty $[]")
	}
	for k := 0; k < len(chars); k++ {
		lo := chars[k]
		if k+2 < len(chars) && chars[k+1] == '-' && !quoted[k+1] {
			hi := chars[k+2]
			if hi < lo {
				return cls, 0, fmt.Errorf("bad glob: range %c-%c is reversed", lo, hi)
			}
			for c := int(lo); c <= int(hi); c++ {
				setClass(&cls, byte(c))
			}
			k += 2
			continue
		}
		setClass(&cls, lo)
	}
	return cls, i, nil
}

// setClass adds c in both cases: matching is case-insensitive.
func setClass(cls *[4]uint64, c byte) {
	cls[c>>6] |= 1 << (c & 63)
	if u := upper(c); u != c {
		cls[u>>6] |= 1 << (u & 63)
	}
	if l := lower(c); l != c {
		cls[l>>6] |= 1 << (l & 63)
	}
}

// byteSet is the set of bytes present in s.
func byteSet(s string) (set [4]uint64) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		set[c>>6] |= 1 << (c & 63)
	}
	return set
}

// lacks reports whether some byte of need is missing from have.
func lacks(need, have *[4]uint64) bool {
	return need[0]&^have[0]|need[1]&^have[1]|need[2]&^have[2]|need[3]&^have[3] != 0
}

func classOf(chars string) [4]uint64 {
	var cls [4]uint64
	for i := 0; i < len(chars); i++ {
		setClass(&cls, chars[i])
	}
	return cls
}

const (
	digits  = "0123456789"
	letters = "abcdefghijklmnopqrstuvwxyz"
)

// namedClass is the product's documented table of named globs; the letter is accepted
// in either case.
func namedClass(c byte) ([4]uint64, bool) {
	switch upper(c) {
	case 'A':
		return classOf(letters), true
	case 'B':
		return classOf("01"), true
	case 'D':
		return classOf(digits), true
	case 'H', 'X':
		return classOf(digits + "abcdef"), true
	case 'O':
		return classOf("01234567"), true
	case 'S':
		return classOf(digits + letters + "_$"), true
	case 'T':
		return classOf(" \t\v"), true
	}
	return [4]uint64{}, false
}

func parseIP4(spec string, ignoreBits bool) (item, string, error) {
	addrText, bitsText, hasBits := strings.Cut(spec, "/")
	a, err := netip.ParseAddr(addrText)
	if err != nil || !a.Is4() {
		return item{}, "", fmt.Errorf("%q is not an IPv4 address", addrText)
	}
	n := 32
	if hasBits {
		n, err = strconv.Atoi(bitsText)
		if err != nil || n < 0 || n > 32 {
			return item{}, "", fmt.Errorf("bit count %q not in 0..32", bitsText)
		}
	}
	if ignoreBits {
		// $<a.b.c.d/n> ignores the last n bits: the prefix is the other 32-n.
		n = 32 - n
	}
	var mask uint32
	if n > 0 {
		mask = ^uint32(0) << (32 - n)
	}
	b := a.As4()
	addr := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) & mask
	var ip [8]byte
	putU32(ip[0:4], addr)
	putU32(ip[4:8], mask)
	return item{kind: kIP4}, string(ip[:]), nil
}

func parseIP6(spec string) (item, string, error) {
	addrText, bitsText, hasBits := strings.Cut(spec, "/")
	a, err := netip.ParseAddr(addrText)
	if err != nil || !a.Is6() || a.Zone() != "" {
		return item{}, "", fmt.Errorf("%q is not an IPv6 address", addrText)
	}
	n := 128
	if hasBits {
		n, err = strconv.Atoi(bitsText)
		if err != nil || n < 0 || n > 128 {
			return item{}, "", fmt.Errorf("bit count %q not in 0..128", bitsText)
		}
	}
	pfx, err := a.Prefix(n)
	if err != nil {
		return item{}, "", err
	}
	a16 := pfx.Addr().As16()
	return item{kind: kIP6, n: uint8(n)}, string(a16[:]), nil
}

func putU32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

func getU32(b string) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// lowerASCII folds ASCII letters only, so offsets in the result equal offsets in s.
func lowerASCII(s string) string {
	i := 0
	for ; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			break
		}
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		b[i] = lower(b[i])
	}
	return string(b)
}

// Match matches the whole of s case-insensitively; captures are the saved wildcards
// in order ($0, $1 ...), each the text of s it matched.
func (p *Pattern) Match(s string) (captures []string, ok bool) {
	var buf [32]int
	caps, ok := p.match(s, lowerASCII(s), buf[:0])
	if !ok {
		return nil, false
	}
	captures = make([]string, p.nsave)
	for k := range captures {
		captures[k] = s[caps[2*k]:caps[2*k+1]]
	}
	return captures, true
}

// MatchDetail is Match in the shape `mtactl test -match` prints: each saved item
// with its number.
func (p *Pattern) MatchDetail(s string) (ok bool, caps []Capture) {
	texts, ok := p.Match(s)
	if !ok {
		return false, nil
	}
	caps = make([]Capture, len(texts))
	for k, t := range texts {
		caps[k] = Capture{Index: k, Text: t}
	}
	return true, caps
}

// match runs the pattern on s (low is s ASCII-lower-cased); on success caps holds
// start/end offsets, two per saved item. buf is reused when large enough.
func (p *Pattern) match(s, low string, buf []int) ([]int, bool) {
	if p.literal {
		return buf[:0], low == p.data
	}
	mt := p.meta
	if len(low) < mt.minLen {
		return nil, false
	}
	pre, suf := p.prefix(), p.suffix()
	if len(pre)+len(suf) > len(low) || low[:len(pre)] != pre || low[len(low)-len(suf):] != suf ||
		mt.must >= 0 && !strings.Contains(low[len(pre):len(low)-len(suf)], p.lit(mt.must)) {
		return nil, false
	}
	m := matcher{items: p.items, data: p.data, s: s, low: low, hasBack: p.hasBack}
	// pos[k] is the text offset where item k starts; captures are derived from it.
	var posBuf [33]int
	if len(p.items)+1 <= len(posBuf) {
		m.pos = posBuf[:len(p.items)+1]
	} else {
		m.pos = make([]int, len(p.items)+1)
	}
	if !m.run(0, 0) {
		return nil, false
	}
	caps := buf[:0]
	for k, it := range p.items {
		if it.save {
			caps = append(caps, m.pos[k], m.pos[k+1])
		}
	}
	return caps, true
}

type matcher struct {
	items   []item
	data    string // Pattern.data
	s, low  string
	hasBack bool
	pos     []int
	steps   int
	memo    []uint64 // failure memo, bit (k*(len+1)+i)
}

func (m *matcher) failedBefore(k, i int) bool {
	if m.memo == nil {
		return false
	}
	b := k*(len(m.low)+1) + i
	return m.memo[b>>6]&(1<<(b&63)) != 0
}

func (m *matcher) markFailed(k, i int) {
	if m.memo == nil {
		return
	}
	b := k*(len(m.low)+1) + i
	m.memo[b>>6] |= 1 << (b & 63)
}

func (m *matcher) tick() bool {
	m.steps++
	if m.steps == memoAfter && !m.hasBack {
		m.memo = make([]uint64, ((len(m.items)+1)*(len(m.low)+1)+63)/64)
	}
	return m.steps <= maxMatchSteps
}

// run reports whether items[k:] match low[i:] entirely, recording item starts in pos.
func (m *matcher) run(k, i int) bool {
	if !m.tick() {
		return false
	}
	m.pos[k] = i
	if k == len(m.items) {
		return i == len(m.low)
	}
	if m.failedBefore(k, i) {
		return false
	}
	ok := m.step(k, i)
	if !ok {
		m.markFailed(k, i)
	}
	return ok
}

func (m *matcher) step(k, i int) bool {
	it := &m.items[k]
	low := m.low
	switch it.kind {
	case kLit:
		lit := m.data[it.off:it.end]
		if strings.HasPrefix(low[i:], lit) {
			return m.run(k+1, i+len(lit))
		}
		return false
	case kOne:
		return i < len(low) && m.run(k+1, i+1)
	case kClassOne:
		return i < len(low) && itemHas(m.data[it.off:it.end], low[i]) && m.run(k+1, i+1)
	case kBack:
		ref := m.savedSpan(int(it.n))
		if strings.HasPrefix(low[i:], ref) {
			return m.run(k+1, i+len(ref))
		}
		return false
	case kAny, kClassMany:
		hi := len(low)
		if it.kind == kClassMany {
			hi = i
			cls := m.data[it.off:it.end]
			for hi < len(low) && itemHas(cls, low[hi]) {
				hi++
			}
		}
		if k+1 == len(m.items) {
			// Last item: it must take everything left.
			return hi == len(low) && m.run(k+1, hi)
		}
		// A following literal lets us jump between its occurrences instead of
		// trying every end position.
		var next string
		if n := &m.items[k+1]; n.kind == kLit {
			next = m.data[n.off:n.end]
		}
		if it.lazy {
			for j := i; j <= hi; j++ {
				if next != "" {
					x := strings.Index(low[j:], next)
					if x < 0 || j+x > hi {
						return false
					}
					j += x
				}
				if m.run(k+1, j) {
					return true
				}
				if !m.tick() {
					return false
				}
			}
			return false
		}
		for j := hi; j >= i; j-- {
			if next != "" {
				end := min(j+len(next), len(low))
				x := strings.LastIndex(low[i:end], next)
				if x < 0 {
					return false
				}
				j = i + x
			}
			if m.run(k+1, j) {
				return true
			}
			if !m.tick() {
				return false
			}
		}
		return false
	case kIP4, kIP6:
		return m.stepIP(k, i, it)
	}
	return false
}

// savedSpan returns the lower-cased text matched by the n-th saved item so far.
func (m *matcher) savedSpan(n int) string {
	for k := range m.items {
		if m.items[k].save {
			if n == 0 {
				return m.low[m.pos[k]:m.pos[k+1]]
			}
			n--
		}
	}
	return ""
}

// stepIP tries every end j for which low[i:j] parses as an address of the right
// family (longest first, or shortest first when lazy) and lies in the prefix.
func (m *matcher) stepIP(k, i int, it *item) bool {
	low := m.low
	maxLen, isIPChar := 15, func(c byte) bool { return isDigit(c) || c == '.' }
	if it.kind == kIP6 {
		maxLen = 45
		isIPChar = func(c byte) bool { return isDigit(c) || (c >= 'a' && c <= 'f') || c == ':' || c == '.' }
	}
	hi := i
	for hi < len(low) && hi-i < maxLen && isIPChar(low[hi]) {
		hi++
	}
	try := func(j int) bool {
		if !m.tick() {
			return false
		}
		a, err := netip.ParseAddr(low[i:j])
		if err != nil || !ipMatch(it, m.data[it.off:it.end], a) {
			return false
		}
		return m.run(k+1, j)
	}
	if it.lazy {
		for j := i + 1; j <= hi; j++ {
			if try(j) {
				return true
			}
		}
		return false
	}
	for j := hi; j > i; j-- {
		if try(j) {
			return true
		}
	}
	return false
}

func ipMatch(it *item, data string, a netip.Addr) bool {
	if it.kind == kIP4 {
		if !a.Is4() {
			return false
		}
		b := a.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		return v&getU32(data[4:8]) == getU32(data[0:4])
	}
	if !a.Is6() {
		return false
	}
	var a16 [16]byte
	copy(a16[:], data)
	pfx := netip.PrefixFrom(netip.AddrFrom16(a16), int(it.n))
	return pfx.Contains(a)
}
