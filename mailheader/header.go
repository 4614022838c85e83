package mailheader

import (
	"bytes"
	"io"
)

// Field is one header field as the message holds it.
type Field struct {
	// Raw is the whole field: name, colon, value, continuation lines and line ends.
	Raw []byte
	// Start is Raw's offset in the message; -1 for a field added by Add.
	Start int
	// nameLen is the length of the name at the start of Raw; 0 for a line that is
	// not a field. The name is not kept as a string so that Walk allocates nothing.
	nameLen int
}

// Name is the field name as written, without white space before the colon; ""
// for a line that is not a field (no colon, or a name outside RFC 5322's ftext).
func (f Field) Name() string { return string(f.Raw[:f.nameLen]) }

// Is reports whether the field is called name (field names compare without case).
func (f Field) Is(name string) bool {
	if f.nameLen == 0 || f.nameLen != len(name) {
		return false
	}
	for i := 0; i < len(name); i++ {
		a, b := f.Raw[i], name[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// Value is the field body unfolded: line ends removed, surrounding white space
// trimmed.
func (f Field) Value() string {
	v := f.Raw
	if i := bytes.IndexByte(v, ':'); i >= 0 {
		v = v[i+1:]
	}
	if bytes.IndexByte(v, '\n') < 0 && bytes.IndexByte(v, '\r') < 0 {
		return string(bytes.TrimSpace(v))
	}
	out := make([]byte, 0, len(v))
	for _, c := range v {
		if c != '\r' && c != '\n' {
			out = append(out, c)
		}
	}
	return string(bytes.TrimSpace(out))
}

// End is the offset just after the field in the message.
func (f Field) End() int { return f.Start + len(f.Raw) }

// Bounds says where a header section lies in a message.
type Bounds struct {
	// End is the offset of the empty line that ends the header, or len(message)
	// when there is none.
	End int
	// Body is the offset of the body, just after the empty line; len(message)
	// when there is no empty line.
	Body int
	// EOL is the line end of the message's first line: "\n" when it ends in a bare
	// LF, else "\r\n". Fields a caller adds use it.
	EOL string
}

// Walk calls fn with each field of the header section at the start of msg, in
// order, until fn returns false or the header ends. It allocates nothing; the
// fields' Raw slices point into msg and are only valid as long as msg is.
func Walk(msg []byte, fn func(Field) bool) Bounds {
	b := Bounds{End: len(msg), Body: len(msg), EOL: "\r\n"}
	var cur Field
	have := false
	for i := 0; i < len(msg); {
		j := bytes.IndexByte(msg[i:], '\n')
		if j < 0 {
			j = len(msg)
		} else {
			j += i + 1
		}
		line := msg[i:j]
		if i == 0 && j > 0 && msg[j-1] == '\n' && (j < 2 || msg[j-2] != '\r') {
			b.EOL = "\n"
		}
		if isBlank(line) {
			b.End, b.Body = i, j
			break
		}
		if have && (line[0] == ' ' || line[0] == '\t') {
			cur.Raw = msg[cur.Start:j]
			i = j
			continue
		}
		if have && !fn(cur) {
			return b
		}
		cur, have = Field{Raw: line, Start: i, nameLen: nameLength(line)}, true
		i = j
	}
	if have {
		fn(cur)
	}
	return b
}

// isBlank reports whether a line is empty: a bare line end.
func isBlank(line []byte) bool {
	return len(line) == 1 && line[0] == '\n' || len(line) == 2 && line[0] == '\r' && line[1] == '\n'
}

// nameLength is the length of the name of a field's first line, 0 when the line
// is not a field: RFC 5322 ftext (printable ASCII but ':'), with obsolete white
// space before the colon allowed (RFC 5322 §4.5.3).
func nameLength(line []byte) int {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return 0
	}
	name := bytes.TrimRight(line[:i], " \t")
	for _, c := range name {
		if c < 33 || c > 126 {
			return 0
		}
	}
	return len(name)
}

// Header is a header section that can be looked at and edited. Fields that are
// not edited keep their bytes.
type Header struct {
	Fields []Field
	Bounds
}

// Parse reads the header section at the start of msg. The fields' Raw slices
// point into msg.
func Parse(msg []byte) *Header {
	h := &Header{}
	h.Bounds = Walk(msg, func(f Field) bool {
		h.Fields = append(h.Fields, f)
		return true
	})
	return h
}

// Has reports whether a field called name is present.
func (h *Header) Has(name string) bool { return h.Count(name) > 0 }

// Count is the number of fields called name.
func (h *Header) Count(name string) int {
	n := 0
	for _, f := range h.Fields {
		if f.Is(name) {
			n++
		}
	}
	return n
}

// Get is the unfolded value of the first field called name, "" when there is none.
func (h *Header) Get(name string) string {
	v, _ := h.Lookup(name)
	return v
}

// Lookup is the unfolded value of the first field called name, and whether
// there is one.
func (h *Header) Lookup(name string) (string, bool) {
	for _, f := range h.Fields {
		if f.Is(name) {
			return f.Value(), true
		}
	}
	return "", false
}

// Add appends a field "name: value" ending in the header's line end.
func (h *Header) Add(name, value string) {
	eol := h.EOL
	if eol == "" {
		eol = "\r\n"
	}
	h.Fields = append(h.Fields, Field{Raw: []byte(name + ": " + value + eol), Start: -1, nameLen: len(name)})
}

// Del removes every field called name.
func (h *Header) Del(name string) {
	out := h.Fields[:0]
	for _, f := range h.Fields {
		if !f.Is(name) {
			out = append(out, f)
		}
	}
	h.Fields = out
}

// WriteTo writes the fields, in order, as they are held (no empty line after).
func (h *Header) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for _, f := range h.Fields {
		m, err := w.Write(f.Raw)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Block returns the header section at the start of msg, up to (not including)
// the empty line that ends it, at most max bytes of it. Notices and reports copy
// the header of a message this way, malformed lines included.
func Block(msg []byte, max int) []byte {
	b := Walk(msg, func(Field) bool { return true })
	end := b.End
	if max > 0 && end > max {
		end = max
	}
	return msg[:end]
}

// WithLineEnds returns b with every line ending in eol ("\r\n" or "\n"), the
// last one included: a header block copied into a notice or shown on a terminal.
func WithLineEnds(b []byte, eol string) []byte {
	out := make([]byte, 0, len(b)+len(eol))
	for len(b) > 0 {
		line, rest, _ := bytes.Cut(b, []byte{'\n'})
		out = append(bytes.TrimRight(append(out, line...), "\r"), eol...)
		b = rest
	}
	return out
}
