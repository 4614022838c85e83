package mappings

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Binary layout (all integers uvarint, strings uvarint length + bytes):
//
//	Set:     "MTAM" version ntables { name src nentries nitems nops { entry } }
//	entry:   src nitems { item } need forbid nops { op }
//	item:    kind bits(save=1,lazy=2) then by kind: lit string | class 32 bytes |
//	         back n | ip4 8 bytes | ip6 16 bytes + bits
//	op:      kind c n [text for oText/oNested]
//	Aliases: "MTAA" version nalias ntargets { name src n { target } }
//
// The per-table item/op totals let the decoder carve every entry's slices out of
// one backing array, and strings are substrings of a single copy of the input.
const (
	setMagic     = "MTAM"
	aliasMagic   = "MTAA"
	binVersion   = 1
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

func (d *decoder) uint() uint64 {
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
	if v > uint64(len(d.s)-d.off) || v > maxDecodeLen {
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
	b := d.bytes(1)
	if b == "" {
		return 0
	}
	return b[0]
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
		nitems, nops := 0, 0
		for k := range t.entries {
			nitems += len(t.entries[k].pat.items)
			nops += len(t.entries[k].tmpl.ops)
		}
		e.uint(uint64(nitems))
		e.uint(uint64(nops))
		for k := range t.entries {
			en := &t.entries[k]
			e.str(en.src)
			e.uint(uint64(len(en.pat.items)))
			for i := range en.pat.items {
				encodeItem(e, &en.pat.items[i])
			}
			e.uint(uint64(en.tmpl.need))
			e.uint(uint64(en.tmpl.forbid))
			e.uint(uint64(len(en.tmpl.ops)))
			for i := range en.tmpl.ops {
				o := &en.tmpl.ops[i]
				e.byte1(byte(o.kind))
				e.byte1(o.c)
				e.uint(uint64(o.n))
				if o.kind == oText || o.kind == oNested {
					e.str(o.text)
				}
			}
		}
	}
	return e.b, nil
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
	switch it.kind {
	case kLit:
		e.str(it.lit)
	case kClassOne, kClassMany:
		for _, w := range it.cls {
			e.b = binary.BigEndian.AppendUint64(e.b, w)
		}
	case kBack:
		e.byte1(it.n)
	case kIP4:
		e.b = append(e.b, it.ip[:8]...)
	case kIP6:
		e.b = append(e.b, it.ip[:]...)
		e.byte1(it.n)
	}
}

// UnmarshalBinary decodes what MarshalBinary wrote and rebuilds the indexes.
func (s *Set) UnmarshalBinary(b []byte) error {
	d := &decoder{s: string(b)}
	d.header(setMagic)
	nt := d.count()
	ns := Set{byName: make(map[string]*table, nt)}
	for ti := 0; ti < nt && d.err == nil; ti++ {
		t := &table{name: d.str(), src: d.str()}
		ne, nitems, nops := d.count(), d.count(), d.count()
		if d.err != nil {
			break
		}
		t.entries = make([]entry, ne)
		items := make([]item, nitems)
		ops := make([]op, nops)
		for k := 0; k < ne && d.err == nil; k++ {
			en := &t.entries[k]
			en.src = d.str()
			ni := d.count()
			if ni > len(items) {
				d.fail("item count exceeds table total")
				break
			}
			en.pat.items = items[:ni:ni]
			items = items[ni:]
			for i := range en.pat.items {
				decodeItem(d, &en.pat.items[i])
			}
			en.pat.finish()
			en.tmpl.need = Flags(d.uint())
			en.tmpl.forbid = Flags(d.uint())
			no := d.count()
			if no > len(ops) {
				d.fail("op count exceeds table total")
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
					o.text = d.str()
				}
			}
			if d.err == nil {
				if err := checkTemplate(&en.tmpl, en.pat.nsave); err != nil {
					d.fail(err.Error())
				}
			}
		}
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

func decodeItem(d *decoder, it *item) {
	it.kind = itemKind(d.byte1())
	bits := d.byte1()
	it.save, it.lazy = bits&itemSave != 0, bits&itemLazy != 0
	switch it.kind {
	case kLit:
		it.lit = d.str()
	case kAny, kOne:
	case kClassOne, kClassMany:
		raw := d.bytes(32)
		if len(raw) == 32 {
			for w := range it.cls {
				it.cls[w] = binary.BigEndian.Uint64([]byte(raw[8*w : 8*w+8]))
			}
		}
	case kBack:
		it.n = d.byte1()
	case kIP4:
		copy(it.ip[:8], d.bytes(8))
	case kIP6:
		copy(it.ip[:], d.bytes(16))
		it.n = d.byte1()
		if it.n > 128 {
			d.fail("bad IPv6 prefix length")
		}
	default:
		d.fail("bad item kind")
	}
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
	d := &decoder{s: string(b)}
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
