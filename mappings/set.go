package mappings

import (
	"fmt"
	"hash/maphash"
	"sort"
)

// prefixKeyMax is the longest literal prefix used as an index key; longer prefixes
// are cut to it (the full pattern is still matched).
const prefixKeyMax = 8

// Loop guard (the product's documented one) and a hard stop for what the guard cannot
// see.
const (
	loopGuardLimit = 10 // counter above this: further iteration requests are ignored
	// maxWork caps the $R/$L passes plus $|..| calls of one Map, nested mappings
	// included. The product's documented guard alone cannot: lengths may oscillate
	// (grow ten times, shrink once, repeat) and nested tables multiply passes. The
	// product documents no such cap; 1000 is our choice.
	maxWork = 1000
)

// Set is the compiled, immutable set of mapping tables. Safe for concurrent use.
// It round-trips through encoding/gob via MarshalBinary/UnmarshalBinary; a decoded
// Set is ready to use (indexes rebuilt in UnmarshalBinary).
type Set struct {
	tables []*table
	byName map[string]*table // lower-cased name
}

// TableInfo is a summary line for cnbuild -show.
type TableInfo struct {
	Name    string
	Entries int
	Src     string
}

type table struct {
	name    string
	src     string
	entries []entry
	idx     index
}

type entry struct {
	pat  Pattern
	tmpl Template
	src  string
}

// index finds candidate entries in entry order (see doc.go).
type index struct {
	exact    litTable
	prefix   [prefixKeyMax + 1]buckets // by key length 1..prefixKeyMax
	lens     []int                     // prefix key lengths in use
	suffix   [prefixKeyMax + 1]buckets // no literal prefix, literal suffix
	slens    []int
	wildcard []int32 // literal at neither end
	wquick   []quick // parallel to wildcard
}

// quick is a wildcard entry's reject test, stored contiguously so that scanning
// the wildcard list does not touch (and cache-miss on) every entry.
type quick struct {
	need, forbid Flags
	minLen       int
	bytes        [4]uint64
}

// litTable is an open-addressing hash table of the all-literal entries, keyed by
// their lower-cased text, which the entries already hold: a slot is just an entry
// number. Building it for 100 000 entries is one allocation and one hash each,
// which matters because UnmarshalBinary rebuilds it on every image load.
type litTable struct {
	seed  maphash.Seed
	mask  uint64
	slots []uint64          // hash<<32 | entry number + 1; 0 = empty
	dups  map[int32][]int32 // first entry -> every entry with that text, ascending
}

func litKey(e *entry) string { return e.pat.data }

func (lt *litTable) init(n int) {
	size := 8
	for size < 2*n {
		size <<= 1
	}
	lt.seed = maphash.MakeSeed()
	lt.mask = uint64(size - 1)
	lt.slots = make([]uint64, size)
}

// The upper hash bits stored beside the entry number let a probe skip occupied
// slots without reading the entry (a cache miss each in a big table).
func (lt *litTable) add(entries []entry, n int32) {
	key := litKey(&entries[n])
	h := maphash.String(lt.seed, key)
	fp := h &^ 0xffffffff
	for i := h & lt.mask; ; i = (i + 1) & lt.mask {
		s := lt.slots[i]
		if s == 0 {
			lt.slots[i] = fp | uint64(n+1)
			return
		}
		if s&^0xffffffff != fp {
			continue
		}
		if first := int32(s&0xffffffff) - 1; litKey(&entries[first]) == key {
			if lt.dups == nil {
				lt.dups = make(map[int32][]int32)
			}
			if lt.dups[first] == nil {
				lt.dups[first] = []int32{first}
			}
			lt.dups[first] = append(lt.dups[first], n)
			return
		}
	}
}

func (lt *litTable) get(entries []entry, key string, one []int32) []int32 {
	if lt.slots == nil {
		return nil
	}
	h := maphash.String(lt.seed, key)
	fp := h &^ 0xffffffff
	for i := h & lt.mask; ; i = (i + 1) & lt.mask {
		s := lt.slots[i]
		if s == 0 {
			return nil
		}
		if s&^0xffffffff != fp {
			continue
		}
		if first := int32(s&0xffffffff) - 1; litKey(&entries[first]) == key {
			if l, ok := lt.dups[first]; ok {
				return l
			}
			one[0] = first
			return one
		}
	}
}

// buckets maps a key to ascending entry numbers. Almost every key has one entry,
// so the map holds that entry number directly and only keys shared by several
// entries spill into more (bit 31 set: index into more). This saves one slice
// allocation per entry when a 100 000-entry table is built or decoded.
type buckets struct {
	m    map[string]uint32
	more [][]int32
	// last/lastV remember the previous add: neighbouring entries of big tables
	// mostly share their key (one domain's senders, one channel's rules), and
	// skipping the map for them keeps building the index off the image-load profile.
	last  string
	lastV uint32
}

const spill = 1 << 31

func (b *buckets) add(key string, n int32) {
	if b.m == nil {
		b.m = make(map[string]uint32)
	} else if key == b.last {
		if b.lastV&spill != 0 {
			b.more[b.lastV&^spill] = append(b.more[b.lastV&^spill], n)
			return
		}
	}
	v, ok := b.m[key]
	switch {
	case !ok:
		v = uint32(n)
	case v&spill == 0:
		b.more = append(b.more, []int32{int32(v), n})
		v = spill | uint32(len(b.more)-1)
	default:
		b.more[v&^spill] = append(b.more[v&^spill], n)
	}
	b.m[key] = v
	b.last, b.lastV = key, v
}

// get returns the entries under key; one is a scratch slot for the common case.
func (b *buckets) get(key string, one []int32) []int32 {
	v, ok := b.m[key]
	if !ok {
		return nil
	}
	if v&spill != 0 {
		return b.more[v&^spill]
	}
	one[0] = int32(v)
	return one
}

// Compile compiles tables; errors are *SourceError (duplicate entries are not errors).
func Compile(tables []TableSource) (*Set, []error) {
	s := &Set{byName: make(map[string]*table, len(tables))}
	var errs []error
	for _, ts := range tables {
		key := lowerASCII(ts.Name) // table names are ASCII; fold like the lookup does
		if first, dup := s.byName[key]; dup {
			errs = append(errs, &SourceError{Src: ts.Src,
				Msg: fmt.Sprintf("duplicate mapping name found: %q (first at %s)", ts.Name, first.src)})
			continue
		}
		t := &table{name: ts.Name, src: ts.Src, entries: make([]entry, 0, len(ts.Entries))}
		for _, es := range ts.Entries {
			var e entry
			e.src = es.Src
			if err := compilePattern(es.Pattern, &e.pat); err != nil {
				errs = append(errs, &SourceError{Src: es.Src,
					Msg: fmt.Sprintf("bad mapping pattern %q: %v", es.Pattern, err)})
				continue
			}
			if err := compileTemplate(es.Template, e.pat.nsave, &e.tmpl); err != nil {
				errs = append(errs, &SourceError{Src: es.Src,
					Msg: fmt.Sprintf("bad mapping template %q: %v", es.Template, err)})
				continue
			}
			t.entries = append(t.entries, e)
		}
		t.buildIndex()
		s.tables = append(s.tables, t)
		s.byName[key] = t
		// The name as written too: callers mostly use that spelling, and an exact
		// hit skips the folding in table().
		s.byName[t.name] = t
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return s, nil
}

func (t *table) buildIndex() {
	var ix index
	nlit := 0
	for k := range t.entries {
		if t.entries[k].pat.literal {
			nlit++
		}
	}
	ix.exact.init(nlit)
	for k := range t.entries {
		p := &t.entries[k].pat
		n := int32(k)
		switch {
		case p.literal:
			ix.exact.add(t.entries, n)
		case p.prefix() != "":
			pre := p.prefix()
			key := pre[:min(len(pre), prefixKeyMax)]
			if ix.prefix[len(key)].m == nil {
				ix.lens = append(ix.lens, len(key))
			}
			ix.prefix[len(key)].add(key, n)
		case p.suffix() != "":
			suf := p.suffix()
			key := suf[max(0, len(suf)-prefixKeyMax):]
			if ix.suffix[len(key)].m == nil {
				ix.slens = append(ix.slens, len(key))
			}
			ix.suffix[len(key)].add(key, n)
		default:
			e := &t.entries[k]
			ix.wildcard = append(ix.wildcard, n)
			ix.wquick = append(ix.wquick, quick{need: e.tmpl.need, forbid: e.tmpl.forbid,
				minLen: p.meta.minLen, bytes: p.meta.bytes})
		}
	}
	sort.Ints(ix.lens)
	sort.Ints(ix.slens)
	t.idx = ix
}

func (s *Set) table(name string) *table {
	if s == nil {
		return nil
	}
	if t, ok := s.byName[name]; ok {
		return t
	}
	// Fold into a stack buffer: the map lookup on string(b) does not allocate.
	var buf [64]byte
	if len(name) <= len(buf) {
		b := buf[:len(name)]
		for i := 0; i < len(name); i++ {
			b[i] = lower(name[i])
		}
		return s.byName[string(b)]
	}
	return s.byName[lowerASCII(name)]
}

// Has reports whether a table exists (names are case-insensitive).
func (s *Set) Has(table string) bool { return s.table(table) != nil }

// Tables lists table names with their entry counts, in configuration order.
func (s *Set) Tables() []TableInfo {
	if s == nil {
		return nil
	}
	out := make([]TableInfo, len(s.tables))
	for i, t := range s.tables {
		out[i] = TableInfo{Name: t.name, Entries: len(t.entries), Src: t.src}
	}
	return out
}

// Map runs table on input with the input flags in (for $:x / $;x tests). ok is false
// when the table does not exist.
//
// Result semantics: no entry matched -> Matched false, Output "". An entry failed
// (${..} miss, $|..| without $Y, $?x? loses) before any $C/$L/$R of its template was
// read -> the mapping ends with Matched false, Output = the original input and no
// flags, Src = the failing entry (the product's documentation says a failed entry
// yields the input unchanged; the rest is our reading). A failure after $C/$L/$R was
// read makes the entry count as not matching and scanning goes on.
func (s *Set) Map(table, input string, in Flags, env *Env) (r Result, ok bool) {
	t := s.table(table)
	if t == nil {
		return Result{}, false
	}
	work := maxWork
	return s.run(t, input, in, env, 0, &work), true
}

// run maps input through t; work is the budget shared with nested mappings.
func (s *Set) run(t *table, input string, in Flags, env *Env, depth int, work *int) Result {
	ev := evaluator{set: s, in: in, env: env, depth: depth, work: work}
	var (
		res     Result
		cur     = input
		start   = 0
		loopReq = false // a $L is pending: one more pass when the table runs out
		guard   = 0
		prevLen = len(input)
		capBuf  [32]int
	)
	// restart reports whether another pass from the top with str is allowed.
	restart := func(str string) bool {
		if len(str) >= prevLen {
			guard++
		} else {
			guard = 0
		}
		prevLen = len(str)
		*work--
		return guard <= loopGuardLimit && *work >= 0
	}
	for {
		k, caps := t.find(cur, lowerASCII(cur), start, in, capBuf[:0])
		if k < 0 {
			if loopReq && res.Matched {
				loopReq = false
				if restart(cur) {
					start = 0
					continue
				}
			}
			return res
		}
		e := &t.entries[k]
		er := ev.eval(&e.tmpl, cur, caps)
		if er.failed {
			if er.ctrlHit {
				start = k + 1
				continue
			}
			return Result{Matched: false, Output: input, Src: e.src}
		}
		res.Matched = true
		res.Output = er.out
		res.Flags |= er.flags
		res.Src = e.src
		switch er.ctrl {
		case 'C':
			loopReq = false
			cur, start = er.out, k+1
		case 'L':
			loopReq = true
			cur, start = er.out, k+1
		case 'R':
			loopReq = false
			if !restart(er.out) {
				return res
			}
			cur, start = er.out, 0
		default:
			return res
		}
	}
}

// find returns the first entry at or after from whose pattern matches cur and whose
// input-flag tests pass, with its captures; -1 if none.
func (t *table) find(cur, low string, from int, in Flags, buf []int) (int, []int) {
	ix := &t.idx
	// Gather the candidate lists that can apply to this probe; each is ascending.
	const maxLists = 2*prefixKeyMax + 2
	var lists [maxLists][]int32
	var ones [maxLists]int32
	n := 0
	if l := ix.exact.get(t.entries, low, ones[n:n+1]); len(l) > 0 {
		lists[n] = l
		n++
	}
	for _, kl := range ix.lens {
		if kl > len(low) {
			break
		}
		if l := ix.prefix[kl].get(low[:kl], ones[n:n+1]); len(l) > 0 {
			lists[n] = l
			n++
		}
	}
	for _, kl := range ix.slens {
		if kl > len(low) {
			break
		}
		if l := ix.suffix[kl].get(low[len(low)-kl:], ones[n:n+1]); len(l) > 0 {
			lists[n] = l
			n++
		}
	}
	wl := -1 // which list is the wildcard list
	if len(ix.wildcard) > 0 {
		wl = n
		lists[n] = ix.wildcard
		n++
	}
	if from > 0 {
		for i := 0; i < n; i++ {
			l := lists[i]
			lists[i] = l[sort.Search(len(l), func(j int) bool { return int(l[j]) >= from }):]
		}
	}
	var inSet [4]uint64
	haveSet := false
	for {
		// Smallest head among the lists: the next entry in file order.
		best, limit := -1, int32(len(t.entries))
		for i := 0; i < n; i++ {
			if len(lists[i]) > 0 && (best < 0 || lists[i][0] < lists[best][0]) {
				best = i
			}
			if i != wl && len(lists[i]) > 0 && lists[i][0] < limit {
				limit = lists[i][0]
			}
		}
		if best < 0 {
			return -1, nil
		}
		if best == wl {
			// Run through the wildcard list up to the next indexed candidate with
			// the contiguous quick test; stop at the first entry that passes it.
			if !haveSet {
				inSet, haveSet = byteSet(low), true
			}
			l := lists[wl]
			base := len(ix.wildcard) - len(l)
			j := 0
			for ; j < len(l) && l[j] < limit; j++ {
				q := &ix.wquick[base+j]
				if in&q.need == q.need && in&q.forbid == 0 && len(low) >= q.minLen && !lacks(&q.bytes, &inSet) {
					break
				}
			}
			lists[wl] = l[j:]
			if j == len(l) || l[j] >= limit {
				continue
			}
			lists[wl] = l[j+1:]
			k := int(l[j])
			if caps, ok := t.entries[k].pat.match(cur, low, buf); ok {
				return k, caps
			}
			continue
		}
		k := int(lists[best][0])
		lists[best] = lists[best][1:]
		e := &t.entries[k]
		if in&e.tmpl.need != e.tmpl.need || in&e.tmpl.forbid != 0 {
			continue
		}
		if !e.pat.literal {
			if !haveSet {
				inSet, haveSet = byteSet(low), true
			}
			if lacks(&e.pat.meta.bytes, &inSet) {
				continue
			}
		}
		if caps, ok := e.pat.match(cur, low, buf); ok {
			return k, caps
		}
	}
}
