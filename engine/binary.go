package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// The binary form is a compact, versioned encoding of what Compile produced: the
// options, the rules with their compiled ops, the channel table and the general
// database. Mapping tables and aliases are not included (the image stores them
// beside the RuleSet and calls Attach). Index maps are rebuilt on decode; templates
// are not re-parsed. Strings are sliced from one string copy of the input, so
// decoding costs a handful of allocations per rule.

const binaryMagic = "MTAENG\x02"

type encoder struct{ b []byte }

func (e *encoder) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) int(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) str(s string)  { e.uint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) ops(ops []op) {
	e.uint(uint64(len(ops)))
	for _, o := range ops {
		e.b = append(e.b, byte(o.kind))
		e.int(int64(o.n))
		e.str(o.s)
		e.ops(o.sub)
	}
}

// MarshalBinary encodes the RuleSet for the compiled image.
func (rs *RuleSet) MarshalBinary() ([]byte, error) {
	e := &encoder{b: make([]byte, 0, 64+len(rs.rules)*64)}
	e.b = append(e.b, binaryMagic...)
	o := rs.opts
	e.str(o.UnknownHostText)
	e.int(int64(o.MaxAliasLevels))
	e.b = append(e.b, o.SubaddressChar)
	e.int(int64(o.MaxRewritePasses))
	e.str(o.LocalHost)
	e.uint(uint64(len(rs.rules)))
	total := 0
	for _, r := range rs.rules {
		total += countOps(r.tmpl.ops)
	}
	e.uint(uint64(total))
	for _, r := range rs.rules {
		e.str(r.pattern)
		e.str(r.src)
		e.str(r.text)
		e.bool(r.tmpl.onlyErr)
		e.bool(r.tmpl.dynamic)
		e.ops(r.tmpl.ops)
	}
	e.uint(uint64(len(rs.channels)))
	for _, c := range rs.channels {
		e.str(c.Name)
		e.str(c.Official)
		e.str(c.Alias)
		e.str(c.Src)
		for _, f := range []bool{c.Local, c.RouteLocal, c.Rules, c.BangOverPercent, c.ViaAliasRequired, c.ExpandLimitSet} {
			e.bool(f)
		}
		e.int(int64(c.ExpandLimit))
		e.str(c.ExpandChannel)
		e.uint(uint64(len(c.Hosts)))
		for _, h := range c.Hosts {
			e.str(h.Name)
			e.str(h.Proper)
		}
	}
	keys := make([]string, 0, len(rs.general))
	for k := range rs.general {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e.uint(uint64(len(keys)))
	for _, k := range keys {
		e.str(k)
		e.str(rs.general[k])
	}
	return e.b, nil
}

func countOps(ops []op) int {
	n := len(ops)
	for _, o := range ops {
		n += countOps(o.sub)
	}
	return n
}

type decoder struct {
	s    string
	i    int
	err  error
	pool []op // backing array all decoded ops are cut from
}

var errTruncated = errors.New("truncated engine data")

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if d.i >= len(d.s) {
			break
		}
		c := d.s[d.i]
		d.i++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v
		}
	}
	d.err = errTruncated
	return 0
}

func (d *decoder) int() int64 {
	u := d.uint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil || d.i >= len(d.s) {
		d.err = errTruncated
		return 0
	}
	d.i++
	return d.s[d.i-1]
}

func (d *decoder) bool() bool { return d.byte() != 0 }

func (d *decoder) str() string {
	n := d.uint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.s)-d.i) {
		d.err = errTruncated
		return ""
	}
	s := d.s[d.i : d.i+int(n)]
	d.i += int(n)
	return s
}

// count reads a length and checks it against the remaining input (each element
// takes at least one byte), so corrupt data cannot ask for huge allocations.
func (d *decoder) count() int {
	n := d.uint()
	if n > uint64(len(d.s)-d.i) {
		d.err = errTruncated
		return 0
	}
	return int(n)
}

func (d *decoder) ops(depth int) []op {
	if depth > maxTemplateNesting+1 {
		d.err = errors.New("engine data: template nesting too deep")
		return nil
	}
	n := d.count()
	if n == 0 {
		return nil
	}
	if n > len(d.pool) {
		d.err = errors.New("engine data: op count mismatch")
		return nil
	}
	ops := d.pool[:n:n]
	d.pool = d.pool[n:]
	for i := range ops {
		k := opKind(d.byte())
		if k < opLit || k > opErr {
			if d.err == nil {
				d.err = fmt.Errorf("engine data: bad op %d", k)
			}
			return nil
		}
		ops[i] = op{kind: k, n: int32(d.int()), s: d.str(), sub: d.ops(depth + 1)}
	}
	return ops
}

// UnmarshalBinary decodes a RuleSet encoded by MarshalBinary and rebuilds its
// indexes. Mapping tables and aliases must be attached afterwards (Attach).
func (rs *RuleSet) UnmarshalBinary(b []byte) error {
	if len(b) < len(binaryMagic) || string(b[:len(binaryMagic)]) != binaryMagic {
		return errors.New("engine data: bad magic or version")
	}
	d := &decoder{s: string(b), i: len(binaryMagic)}
	var o Options
	o.UnknownHostText = d.str()
	o.MaxAliasLevels = int(d.int())
	o.SubaddressChar = d.byte()
	o.MaxRewritePasses = int(d.int())
	o.LocalHost = d.str()
	n := d.count()
	rules := make([]rule, n)
	if total := d.count(); d.err == nil {
		d.pool = make([]op, total)
	}
	for i := range rules {
		r := &rules[i]
		r.pattern, r.src, r.text = d.str(), d.str(), d.str()
		r.tmpl.onlyErr, r.tmpl.dynamic = d.bool(), d.bool()
		r.tmpl.ops = d.ops(0)
		if d.err != nil {
			break
		}
	}
	nc := d.count()
	chans := make([]Channel, nc)
	for i := range chans {
		c := &chans[i]
		c.Name, c.Official, c.Alias, c.Src = d.str(), d.str(), d.str(), d.str()
		c.Local, c.RouteLocal, c.Rules, c.BangOverPercent, c.ViaAliasRequired = d.bool(), d.bool(), d.bool(), d.bool(), d.bool()
		c.ExpandLimitSet = d.bool()
		c.ExpandLimit = int(d.int())
		c.ExpandChannel = d.str()
		nh := d.count()
		if nh > 0 {
			c.Hosts = make([]Host, nh)
			for j := range c.Hosts {
				c.Hosts[j] = Host{Name: d.str(), Proper: d.str()}
			}
		}
		if d.err != nil {
			break
		}
	}
	ng := d.count()
	general := make(map[string]string, ng)
	for i := 0; i < ng && d.err == nil; i++ {
		k := d.str()
		general[k] = d.str()
	}
	if d.err != nil {
		return fmt.Errorf("decoding rewrite rules: %w", d.err)
	}
	if d.i != len(d.s) {
		return errors.New("decoding rewrite rules: trailing data")
	}
	rs.opts, rs.rules, rs.channels, rs.general = normaliseOptions(o), rules, chans, general
	if errs := rs.index(); len(errs) > 0 {
		return fmt.Errorf("decoding rewrite rules: %w", errs[0])
	}
	rs.Attach(rs.mappings, rs.aliases)
	return nil
}
