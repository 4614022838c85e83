package mappings

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
)

// Binary layout (all integers uvarint, strings uvarint length + bytes):
//
//	Set:     "MTAM" version ntables { table }
//	table:   name src nentries nitems nops nmeta per nchunks
//	         { bytes nitems nops nmeta } (one per chunk of per entries) { entry }
//	entry:   src data nitems { item } [minLen bytes(32)] need forbid tdata nops { op }
//	item:    kind bits(save=1,lazy=2) then by kind: off end (lit, class, ip4) |
//	         n (back) | off end n (ip6)
//	op:      kind c n [off end for oText/oNested, into tdata]
//	Aliases: "MTAA" version nalias ntargets { name src n { target } }
//
// The chunk table lets the decoder split a big table between cores: every chunk
// knows where its bytes start and which part of the table's arrays it fills.
// minLen and the byte set are present for entries whose pattern is not a plain
// literal (nmeta of them per table): they are what Pattern.finish would compute
// by walking every literal byte. The per-table totals let the decoder carve every
// entry's items, ops and metas out of one backing array each; items hold offsets
// into their pattern's data, and strings are substrings of the input, which
// DecodeSet does not even copy.
const (
	setMagic     = "MTAM"
	aliasMagic   = "MTAA"
	binVersion   = 2
	itemSave     = 1
	itemLazy     = 2
	maxDecodeLen = 1 << 30 // refuse absurd counts from corrupt data
)

type encoder struct{ b []byte }

func (e *encoder) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) str(s string)  { e.uint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) byte1(c byte)  { e.b = append(e.b, c) }

type decoder struct {
	s   string // the whole input, once converted: strings are cut from it
	off int
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("offset %d: %s", d.off, what)
	}
}

// uint reads a uvarint. The one-byte case is kept small enough to be inlined
// (image loading reads millions of numbers); it does not look at d.err, which is
// harmless: after a failure every read stays within the input and the decoders
// check d.err before using what they read.
func (d *decoder) uint() uint64 {
	if i := d.off; i < len(d.s) && d.s[i] < 0x80 {
		d.off = i + 1
		return uint64(d.s[i])
	}
	return d.uintSlow()
}

func (d *decoder) uintSlow() uint64 {
	if d.err != nil {
		return 0
	}
	var v uint64
	var shift uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if d.off >= len(d.s) {
			d.fail("truncated number")
			return 0
		}
		c := d.s[d.off]
		d.off++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v
		}
		shift += 7
	}
	d.fail("bad number")
	return 0
}

// count reads a length that must fit in the remaining input (each counted thing
// takes at least one byte), so corrupt data cannot make us allocate wildly.
func (d *decoder) count() int {
	v := d.uint()
	if v > uint64(len(d.s)-d.off) {
		d.fail("count out of range")
		return 0
	}
	return int(v)
}

func (d *decoder) str() string {
	n := d.count()
	if d.err != nil {
		return ""
	}
	s := d.s[d.off : d.off+n]
	d.off += n
	return s
}

func (d *decoder) bytes(n int) string {
	if d.err != nil {
		return ""
	}
	if n > len(d.s)-d.off {
		d.fail("truncated data")
		return ""
	}
	s := d.s[d.off : d.off+n]
	d.off += n
	return s
}

func (d *decoder) byte1() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.s) {
		d.fail("truncated data")
		return 0
	}
	d.off++
	return d.s[d.off-1]
}

func (d *decoder) header(magic string) {
	if d.bytes(len(magic)) != magic {
		d.fail("bad magic, not a " + magic + " blob")
		return
	}
	if v := d.uint(); v != binVersion && d.err == nil {
		d.fail(fmt.Sprintf("unsupported version %d", v))
	}
}

// MarshalBinary encodes the compiled set (gob calls it).
func (s *Set) MarshalBinary() ([]byte, error) {
	e := &encoder{b: make([]byte, 0, 1024)}
	e.b = append(e.b, setMagic...)
	e.uint(binVersion)
	var tables []*table
	if s != nil {
		tables = s.tables
	}
	e.uint(uint64(len(tables)))
	for _, t := range tables {
		e.str(t.name)
		e.str(t.src)
		e.uint(uint64(len(t.entries)))
		nitems, nops, nmeta := 0, 0, 0
		for k := range t.entries {
			nitems += len(t.entries[k].pat.items)
			nops += len(t.entries[k].tmpl.ops)
			if t.entries[k].pat.meta != nil {
				nmeta++
			}
		}
		e.uint(uint64(nitems))
		e.uint(uint64(nops))
		e.uint(uint64(nmeta))
		// Entries are encoded chunk by chunk into a side buffer first, so that the
		// chunk table (which lets the decoder work on chunks in parallel) can
		// precede them.
		e.uint(chunkEntries)
		nch := (len(t.entries) + chunkEntries - 1) / chunkEntries
		e.uint(uint64(nch))
		var body encoder
		for c := 0; c < nch; c++ {
			start := len(body.b)
			ci, co, cm := 0, 0, 0
			for k := c * chunkEntries; k < min(len(t.entries), (c+1)*chunkEntries); k++ {
				en := &t.entries[k]
				encodeEntry(&body, en)
				ci += len(en.pat.items)
				co += len(en.tmpl.ops)
				if en.pat.meta != nil {
					cm++
				}
			}
			e.uint(uint64(len(body.b) - start))
			e.uint(uint64(ci))
			e.uint(uint64(co))
			e.uint(uint64(cm))
		}
		e.b = append(e.b, body.b...)
	}
	return e.b, nil
}

func encodeEntry(e *encoder, en *entry) {
	e.str(en.src)
	e.str(en.pat.data)
	e.uint(uint64(len(en.pat.items)))
	for i := range en.pat.items {
		encodeItem(e, &en.pat.items[i])
	}
	if m := en.pat.meta; m != nil {
		e.uint(uint64(m.minLen))
		for _, w := range m.bytes {
			e.b = binary.LittleEndian.AppendUint64(e.b, w)
		}
	}
	e.uint(uint64(en.tmpl.need))
	e.uint(uint64(en.tmpl.forbid))
	e.str(en.tmpl.data)
	e.uint(uint64(len(en.tmpl.ops)))
	for i := range en.tmpl.ops {
		o := &en.tmpl.ops[i]
		e.byte1(byte(o.kind))
		e.byte1(o.c)
		e.uint(uint64(o.n))
		if o.kind == oText || o.kind == oNested {
			e.uint(uint64(o.off))
			e.uint(uint64(o.end))
		}
	}
}

func encodeItem(e *encoder, it *item) {
	e.byte1(byte(it.kind))
	var bits byte
	if it.save {
		bits |= itemSave
	}
	if it.lazy {
		bits |= itemLazy
	}
	e.byte1(bits)
	if dataLen(it.kind) != 0 {
		e.uint(uint64(it.off))
		e.uint(uint64(it.end))
	}
	if it.kind == kBack || it.kind == kIP6 {
		e.byte1(it.n)
	}
}

// UnmarshalBinary decodes what MarshalBinary wrote and rebuilds the indexes.
func (s *Set) UnmarshalBinary(b []byte) error {
	return s.decode(string(b))
}

// DecodeSet is UnmarshalBinary without the copy: the Set keeps substrings of data
// (the compiled image, itself immutable) instead of copying the input first.
func DecodeSet(data string) (*Set, error) {
	s := new(Set)
	if err := s.decode(data); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Set) decode(data string) error {
	d := &decoder{s: data}
	d.header(setMagic)
	nt := d.count()
	ns := Set{byName: make(map[string]*table, 2*nt)}
	if d.err == nil {
		ns.tables = make([]*table, 0, nt)
	}
	for ti := 0; ti < nt && d.err == nil; ti++ {
		t := &table{name: d.str(), src: d.str()}
		decodeTable(d, t)
		if d.err != nil {
			break
		}
		key := lowerASCII(t.name)
		if _, dup := ns.byName[key]; dup {
			d.fail("duplicate table " + t.name)
			break
		}
		t.buildIndex()
		ns.tables = append(ns.tables, t)
		ns.byName[key] = t
		// The name as written too: callers mostly use that spelling, and an exact
		// hit skips the folding in table().
		ns.byName[t.name] = t
	}
	if d.err == nil && d.off != len(d.s) {
		d.fail("trailing data")
	}
	if d.err != nil {
		return fmt.Errorf("mappings: decoding set: %w", d.err)
	}
	*s = ns
	return nil
}

// chunkEntries is how many entries the encoder puts in one chunk: 4096 keeps a
// 100 000-entry table in ~25 chunks, enough to spread over the cores, few enough
// that the chunk table costs nothing.
const chunkEntries = 4096

// chunk is one independently decodable run of a table's entries: its bytes and
// the slices of the table's backing arrays it fills.
type chunk struct {
	lo, hi  int // byte range in the decoder's input
	entries []entry
	items   []item
	ops     []op
	metas   []patMeta
}

// decodeTable reads a table's counts and chunk table, then decodes the chunks,
// in parallel when there are several: each fills its own part of the entry,
// item, op and meta arrays, so they share nothing but the read-only input.
func decodeTable(d *decoder, t *table) {
	ne, nitems, nops, nmeta := d.count(), d.count(), d.count(), d.count()
	per := d.uint() // not a count of things in the input: a small table's chunk is bigger
	nch := d.count()
	if d.err != nil {
		return
	}
	if per == 0 || per > maxDecodeLen || uint64(nch) != (uint64(ne)+per-1)/per {
		d.fail("bad chunk table")
		return
	}
	t.entries = make([]entry, ne)
	items := make([]item, nitems)
	ops := make([]op, nops)
	metas := make([]patMeta, nmeta)
	chunks := make([]chunk, nch)
	var lens []int
	for c := range chunks {
		ch := &chunks[c]
		n, ci, co, cm := d.count(), d.count(), d.count(), d.count()
		if d.err != nil {
			return
		}
		if ci > len(items) || co > len(ops) || cm > len(metas) {
			d.fail("chunk counts exceed table totals")
			return
		}
		ch.entries = t.entries[c*int(per) : min(ne, (c+1)*int(per))]
		ch.items, items = items[:ci:ci], items[ci:]
		ch.ops, ops = ops[:co:co], ops[co:]
		ch.metas, metas = metas[:cm:cm], metas[cm:]
		lens = append(lens, n)
	}
	if len(items) != 0 || len(ops) != 0 || len(metas) != 0 {
		d.fail("table totals do not match its chunks")
		return
	}
	off := d.off
	for c := range chunks {
		if lens[c] > len(d.s)-off {
			d.fail("chunk beyond the data")
			return
		}
		chunks[c].lo, chunks[c].hi = off, off+lens[c]
		off += lens[c]
	}
	errs := make([]error, nch)
	if nch <= 1 {
		for c := range chunks {
			errs[c] = decodeChunk(d.s, &chunks[c])
		}
	} else {
		var wg sync.WaitGroup
		var next atomic.Int32
		for range min(nch, runtime.GOMAXPROCS(0)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for c := int(next.Add(1)) - 1; c < nch; c = int(next.Add(1)) - 1 {
					errs[c] = decodeChunk(d.s, &chunks[c])
				}
			}()
		}
		wg.Wait()
	}
	for c, err := range errs {
		if err != nil {
			d.off = chunks[c].lo
			d.fail(err.Error())
			return
		}
	}
	d.off = off
}

// decodeChunk decodes the entries of one chunk from s[ch.lo:ch.hi]. It runs on its
// own goroutine, so it recovers: a decoding bug must fail the load, not the
// process.
func decodeChunk(s string, ch *chunk) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decoding entries: %v", r)
		}
	}()
	d := &decoder{s: s[:ch.hi], off: ch.lo}
	items, ops, metas := ch.items, ch.ops, ch.metas
	for k := range ch.entries {
		en := &ch.entries[k]
		en.src = d.str()
		en.pat.data = d.str()
		ni := d.count()
		if ni > len(items) {
			d.fail("item count exceeds chunk total")
			break
		}
		en.pat.items = items[:ni:ni]
		items = items[ni:]
		decodeItems(d, en.pat.items, len(en.pat.data))
		if d.err != nil {
			break
		}
		if !(ni == 0 || ni == 1 && en.pat.items[0].kind == kLit) {
			if len(metas) == 0 {
				d.fail("meta count exceeds chunk total")
				break
			}
			m := &metas[0]
			metas = metas[1:]
			m.minLen = d.count()
			if raw := d.bytes(32); len(raw) == 32 {
				for w := range m.bytes {
					m.bytes[w] = binary.LittleEndian.Uint64([]byte(raw[8*w : 8*w+8]))
				}
			}
			en.pat.shape(m, false)
		} else {
			en.pat.shape(nil, false)
		}
		en.tmpl.need = Flags(d.uint())
		en.tmpl.forbid = Flags(d.uint())
		en.tmpl.data = d.str()
		no := d.count()
		if no > len(ops) {
			d.fail("op count exceeds chunk total")
			break
		}
		en.tmpl.ops = ops[:no:no]
		ops = ops[no:]
		for i := range en.tmpl.ops {
			o := &en.tmpl.ops[i]
			o.kind = opKind(d.byte1())
			o.c = d.byte1()
			o.n = uint16(d.uint())
			if o.kind > oExit {
				d.fail("bad op kind")
			}
			if o.kind == oText || o.kind == oNested {
				lo, hi := d.uint(), d.uint()
				if lo > hi || hi > uint64(len(en.tmpl.data)) {
					d.fail("bad op text range")
					break
				}
				o.off, o.end = uint32(lo), uint32(hi)
			}
		}
		if d.err != nil {
			break
		}
		if err := checkTemplate(&en.tmpl, en.pat.nsave); err != nil {
			d.fail(err.Error())
			break
		}
	}
	if d.err == nil && (len(items) != 0 || len(ops) != 0 || len(metas) != 0 || d.off != ch.hi) {
		d.fail("chunk totals do not match its entries")
	}
	return d.err
}

// decodeItems fills items from d; ndata is the length of their pattern's data,
// which every item's range must lie in. It is the inner loop of image loading
// (600 000 items for a 100 000-entry table), so it works on local copies of the
// input and offset instead of going through the checked helpers for every byte.
func decodeItems(d *decoder, items []item, ndata int) {
	if d.err != nil {
		return
	}
	s, off := d.s, d.off
	fail := func(what string) {
		d.off = off
		d.fail(what)
	}
	// num reads a uvarint, one byte being the common case.
	num := func() (uint64, bool) {
		if off < len(s) && s[off] < 0x80 {
			off++
			return uint64(s[off-1]), true
		}
		d.off = off
		v := d.uint()
		off = d.off
		return v, d.err == nil
	}
	for i := range items {
		if len(s)-off < 2 {
			fail("truncated item")
			return
		}
		it := &items[i]
		it.kind = itemKind(s[off])
		bits := s[off+1]
		off += 2
		if it.kind > kIP6 {
			fail("bad item kind")
			return
		}
		it.save, it.lazy = bits&itemSave != 0, bits&itemLazy != 0
		if want := dataLen(it.kind); want != 0 {
			lo, ok1 := num()
			hi, ok2 := num()
			if !ok1 || !ok2 {
				return
			}
			if lo > hi || hi > uint64(ndata) || want > 0 && hi-lo != uint64(want) {
				fail("bad item data range")
				return
			}
			it.off, it.end = uint32(lo), uint32(hi)
		}
		if it.kind == kBack || it.kind == kIP6 {
			if off >= len(s) {
				fail("truncated item")
				return
			}
			it.n = s[off]
			off++
			if it.kind == kIP6 && it.n > 128 {
				fail("bad IPv6 prefix length")
				return
			}
		}
	}
	d.off = off
}

// checkTemplate rejects decoded op lists the evaluator could trip over (unbalanced
// sub-buffers, captures beyond the pattern), so corrupt input fails at load time.
func checkTemplate(t *Template, nsave int) error {
	depth := 0
	for _, o := range t.ops {
		switch o.kind {
		case oPush:
			if depth++; depth > maxSubDepth {
				return errors.New("template ops nested too deep")
			}
		case oGeneral, oNested:
			if depth == 0 {
				return errors.New("unbalanced template ops")
			}
			depth--
		case oCap:
			if int(o.n) >= nsave {
				return errors.New("capture beyond pattern")
			}
		}
	}
	if depth != 0 {
		return errors.New("unbalanced template ops")
	}
	return nil
}

// MarshalBinary encodes the alias table (gob calls it).
func (a *Aliases) MarshalBinary() ([]byte, error) {
	e := &encoder{b: make([]byte, 0, 256)}
	e.b = append(e.b, aliasMagic...)
	e.uint(binVersion)
	var list []alias
	if a != nil {
		list = a.list
	}
	e.uint(uint64(len(list)))
	n := 0
	for i := range list {
		n += len(list[i].targets)
	}
	e.uint(uint64(n))
	for i := range list {
		al := &list[i]
		e.str(al.name)
		e.str(al.src)
		e.uint(uint64(len(al.targets)))
		for _, t := range al.targets {
			e.str(t)
		}
	}
	return e.b, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote.
func (a *Aliases) UnmarshalBinary(b []byte) error {
	return a.decode(string(b))
}

// DecodeAliases is UnmarshalBinary without the copy: the Aliases keep substrings
// of data (the compiled image, itself immutable).
func DecodeAliases(data string) (*Aliases, error) {
	a := new(Aliases)
	if err := a.decode(data); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Aliases) decode(data string) error {
	d := &decoder{s: data}
	d.header(aliasMagic)
	n, nt := d.count(), d.count()
	na := Aliases{byName: make(map[string]int32, n)}
	if d.err == nil {
		na.list = make([]alias, n)
	}
	targets := make([]string, nt)
	for i := 0; i < n && d.err == nil; i++ {
		al := &na.list[i]
		al.name, al.src = d.str(), d.str()
		k := d.count()
		if k > len(targets) {
			d.fail("target count exceeds total")
			break
		}
		al.targets = targets[:k:k]
		targets = targets[k:]
		for j := range al.targets {
			al.targets[j] = d.str()
		}
		key := strings.ToLower(al.name)
		if _, dup := na.byName[key]; dup {
			d.fail("duplicate alias " + al.name)
		}
		na.byName[key] = int32(i)
	}
	if d.err == nil && d.off != len(d.s) {
		d.fail("trailing data")
	}
	if d.err != nil {
		return fmt.Errorf("mappings: decoding aliases: %w", d.err)
	}
	*a = na
	return nil
}
