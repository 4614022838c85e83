package sieve

import (
	"fmt"
	"mime"
	"strings"

	"mtad.dev/mta/mailheader"
)

// editheader (RFC 5293) and the product's one-argument addheader. The edits
// change the evaluation's view of the header at once, so later tests see them
// (RFC 5293 §5); the final header goes out in Result.Header.

// protectedField: fields a script may not delete. Received fields are the
// message's trace and Auto-Submitted stops mail loops (RFC 5293 §6, §7).
func protectedField(name string) bool {
	return strings.EqualFold(name, "received") || strings.EqualFold(name, "auto-submitted")
}

type cmdAddHeader struct {
	node
	name    str // zero for the product's one-argument form
	value   str
	last    bool
	product bool // addheader "Name: value"
}

func buildAddHeader(c *checker, a *callArgs, n node) command {
	h := &cmdAddHeader{node: n, last: a.has("last")}
	if len(a.pos) == 1 {
		// The product's form: one string "Name: value".
		h.product, h.value = true, c.str(a.pos[0])
		if h.last {
			c.errorf(a.tags["last"].Pos, ":last goes with the two-argument addheader of \"editheader\"")
		}
		if h.value.parts == nil {
			if _, _, ok := splitField(h.value.lit); !ok {
				c.errorf(a.pos[0].Pos, "addheader: %q is not \"Name: value\"", clip(h.value.lit))
			}
		}
		return h
	}
	if !c.caps["editheader"] {
		c.errorf(n.pos, "addheader with a name and a value needs require %q", "editheader")
	}
	h.name, h.value = c.str(a.pos[0]), c.str(a.pos[1])
	if h.name.parts == nil && !validFieldName(h.name.lit) {
		c.errorf(a.pos[0].Pos, "addheader: %q is not a valid header field name", h.name.lit)
	}
	return h
}

// splitField cuts "Name: value".
func splitField(s string) (name, value string, ok bool) {
	colon := strings.IndexByte(s, ':')
	if colon < 0 {
		return "", "", false
	}
	name = strings.TrimSpace(s[:colon])
	return name, strings.TrimSpace(s[colon+1:]), validFieldName(name)
}

func (c *cmdAddHeader) run(e *eval) error {
	var name, v string
	if c.product {
		var ok bool
		name, v, ok = splitField(e.expand(c.value))
		if !ok {
			return &Error{Pos: c.pos, Msg: "addheader: the value is not \"Name: value\""}
		}
	} else {
		name, v = e.expand(c.name), e.expand(c.value)
		if !validFieldName(name) {
			return &Error{Pos: c.pos, Msg: fmt.Sprintf("addheader: %q is not a valid header field name", name)}
		}
	}
	enc := encodeFieldValue(v)
	raw := name + ": " + enc + e.eol
	f := mailheader.Parse([]byte(raw + e.eol)).Fields[0]
	hf := hfield{f: f, slot: e.s.slotFor(f), decoded: true, value: v, fold: foldASCII(v)}
	if c.last {
		e.fields = append(e.fields, hf)
	} else {
		e.fields = append(e.fields, hfield{})
		copy(e.fields[1:], e.fields)
		e.fields[0] = hf
	}
	e.edited = true
	e.index()
	e.addAction(&AddHeader{Pos: c.pos, Name: name, Value: enc, Last: c.last})
	return nil
}

// encodeFieldValue makes a value fit for a header: line breaks become spaces,
// and a value that is not ASCII is RFC 2047 encoded (RFC 5293 §4).
func encodeFieldValue(v string) string {
	v = strings.Join(strings.Fields(strings.NewReplacer("\r", " ", "\n", " ").Replace(v)), " ")
	for i := 0; i < len(v); i++ {
		if v[i] >= 0x80 {
			return mime.QEncoding.Encode("utf-8", v)
		}
	}
	return v
}

type cmdDeleteHeader struct {
	node
	m        matcher
	name     hname
	patterns []key // nil: every field of that name
	index    int
	last     bool
}

func buildDeleteHeader(c *checker, a *callArgs, n node) command {
	d := &cmdDeleteHeader{node: n, m: c.matcher(a)}
	names := c.hnames(a.pos[0])
	d.name = names[0]
	if d.name.s.parts == nil && protectedField(d.name.s.lit) {
		c.errorf(a.pos[0].Pos, "deleteheader: %q fields cannot be deleted", a.pos[0].Strings[0])
	}
	if len(a.pos) == 2 {
		d.patterns = c.keys(d.m, a.pos[1])
	}
	if arg, ok := a.tags["index"]; ok {
		if arg.Number < 1 || arg.Number > 1<<20 {
			c.errorf(arg.Pos, ":index must be from 1 to %d", 1<<20)
		}
		d.index, d.last = int(arg.Number), a.has("last")
	} else if l, ok := a.tags["last"]; ok {
		c.errorf(l.Pos, ":last needs :index")
	}
	if d.m.mt == mtCount {
		c.errorf(n.pos, "deleteheader cannot use :count")
	}
	return d
}

// run deletes the matching fields. A protected name known only at run time
// deletes nothing (the checker refuses it when it is a constant).
func (c *cmdDeleteHeader) run(e *eval) error {
	name := c.name.s.lit
	if c.name.s.parts != nil {
		name = e.expand(c.name.s)
	}
	removed := 0
	if !protectedField(name) {
		idx := append([]int32(nil), e.fieldIndexes(hname{s: constStr(name), slot: c.slotOrNone(name)}, c.index, c.last)...)
		drop := map[int32]bool{}
		for _, i := range idx {
			if c.patterns != nil {
				ok, err := c.m.matchOne(e, e.decoded(int(i)), c.patterns)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
			}
			drop[i] = true
		}
		removed = len(drop)
		if removed > 0 {
			out := e.fields[:0]
			for i, f := range e.fields {
				if !drop[int32(i)] {
					out = append(out, f)
				}
			}
			e.fields = out
			e.edited = true
			e.index()
		}
	}
	e.addAction(&DeleteHeader{Pos: c.pos, Name: name, Removed: removed})
	return nil
}

// slotOrNone uses the compiled slot for a constant name.
func (c *cmdDeleteHeader) slotOrNone(name string) int {
	if c.name.s.parts == nil {
		return c.name.slot
	}
	return -1
}
