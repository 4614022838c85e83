package channels

// This file is the MIME downgrade for an SMTP server without 8BITMIME, as the
// channel keywords sevenbit and eightnegotiate ask for (the product's
// documentation says such mail arrives re-encoded, quoted-printable for text;
// RFC 6152 §3, RFC 2045, RFC 2046).
//
// It owns only the conversion of a stored message into a 7-bit one; it does not
// decide whether to convert (the SMTP client does, from the channel keywords and
// the server's EHLO) nor what to do with the problems it reports.
//
// How it works:
//   - The message is never re-serialised. It is scanned as bytes: each entity is
//     split into header fields (byte ranges, folding kept) and a body; a multipart
//     body into preamble, delimiter lines, parts and epilogue (RFC 2046 §5.1.1,
//     the CRLF before a delimiter belongs to the delimiter); a message/rfc822
//     body is a whole entity again. Whatever needs no change is copied as the
//     original byte slice, so an untouched part, header field or delimiter is
//     byte-identical, and a message that is already 7-bit comes back as the
//     very slice given.
//   - A leaf whose body holds an octet >= 0x80, a NUL or a line over 998 octets
//     is re-encoded: text/* as quoted-printable, anything else as base64. Only
//     its Content-Transfer-Encoding field is replaced (same field-name spelling,
//     duplicates dropped) or appended, and its body replaced.
//   - multipart/* and message/rfc822 may not be encoded (RFC 2045 §6.4, RFC 2046
//     §5.2.1), so they are recursed into; when their content became 7-bit a
//     "8bit"/"binary" label on them is relabelled "7bit".
//   - Header fields are never changed: raw 8-bit in a header cannot be fixed
//     without knowing its charset, so it is left and reported in a
//     *SevenBitError, and so is a body that cannot be encoded.
//
// Decoding (with go-message or any MIME reader) every converted leaf gives back
// its original body octets exactly: the quoted-printable encoder here keeps only
// CRLF as a line break and escapes bare CR and LF, unlike mime/quotedprintable.

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"strconv"
	"strings"

	"mtad.dev/mta/mailheader"
	"mtad.dev/mta/status"
)

// ProblemKind says what kept a message from becoming entirely 7-bit.
type ProblemKind int

const (
	// Header8Bit: a header field holds an octet >= 0x80 or a NUL. It is sent as
	// is; under eightstrict the message is refused instead.
	Header8Bit ProblemKind = iota + 1
	// HeaderLongLine: a header line is longer than 998 octets (RFC 5322 §2.1.1).
	// It is sent as is: refolding would change a header we do not own.
	HeaderLongLine
	// BodyUnconvertible: a body needs encoding but cannot be encoded: a
	// message/partial or message/external-body (must be 7bit, RFC 2046 §5.2),
	// a multipart without a usable boundary, an already base64 or unknown
	// Content-Transfer-Encoding over 8-bit data, or nesting deeper than
	// maxMIMEDepth. It is left as is.
	BodyUnconvertible
)

func (k ProblemKind) String() string {
	switch k {
	case Header8Bit:
		return "8-bit header"
	case HeaderLongLine:
		return "header line over 998 octets"
	case BodyUnconvertible:
		return "body cannot be encoded"
	}
	return "ProblemKind(" + strconv.Itoa(int(k)) + ")"
}

// Problem is one thing SevenBit left as it was.
type Problem struct {
	Kind ProblemKind
	// Part is the IMAP-style part number of the entity ("" for the top-level
	// message, "1", "2.1"; the message inside message/rfc822 part "2" is "2").
	Part string
	// Field is the header field name for header problems.
	Field  string
	Detail string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s part=%q field=%q %s", p.Kind, p.Part, p.Field, p.Detail)
}

// SevenBitError lists what SevenBit could not make 7-bit. The output SevenBit
// returns along with it is complete and usable: everything else was converted.
//
// What the channel does with it (the lead's wiring): with eightstrict, a
// message with a Header8Bit problem is refused (Status); otherwise the message
// is sent with those octets as they are — most servers accept them, and
// bouncing mail the MTA accepted would be worse (RFC 6152 §3 leaves the choice).
// The product's documentation does not cover a body that cannot be encoded; a
// BodyUnconvertible problem is treated the same way: it is sent as it is (what
// the client did before this conversion existed) unless the channel is
// eightstrict.
type SevenBitError struct {
	Problems []Problem
}

func (e *SevenBitError) Error() string {
	// The text may end up in a DSN or an SMTP reply: short and ASCII.
	const shown = 5
	var b strings.Builder
	b.WriteString("message not entirely 7-bit: ")
	for i, p := range e.Problems {
		if i == shown {
			fmt.Fprintf(&b, "; and %d more", len(e.Problems)-shown)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Kind.String())
		if p.Part != "" {
			b.WriteString(" in part " + p.Part)
		}
		if p.Field != "" {
			b.WriteString(" (" + asciiText(p.Field) + ")")
		}
		if p.Detail != "" {
			b.WriteString(": " + asciiText(p.Detail))
		}
	}
	return b.String()
}

// asciiText returns s, or its Go-quoted ASCII form when s has other octets.
func asciiText(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return strconv.QuoteToASCII(s)
		}
	}
	return s
}

// Has reports whether any problem is of kind k.
func (e *SevenBitError) Has(k ProblemKind) bool {
	for _, p := range e.Problems {
		if p.Kind == k {
			return true
		}
	}
	return false
}

// Status is the permanent failure to report when the channel refuses to send
// the message (eightstrict). The product's documentation names no code; we use
// 554 with RFC 3463 5.6.3 "conversion required but not supported", permanent
// because the message as it is can never go to this host.
func (e *SevenBitError) Status(host string) *status.Status {
	return status.New(554, "5.6.3", "%s does not support 8BITMIME and the message cannot be made 7-bit: %s", host, e.Error())
}

const (
	maxLineLen = 998 // RFC 5321 §4.5.3.1.6, without CRLF
	// maxMIMEDepth bounds recursion over hostile nesting; real mail nests a few levels.
	maxMIMEDepth = 64
	qpLineLen    = 76 // RFC 2045 §6.7 rule 5, including a soft break's "="
	b64LineLen   = 76 // RFC 2045 §6.8
)

// SevenBit returns content (a whole stored message, RFC 5322 with CRLF) made
// 7-bit for a server without 8BITMIME, and whether anything changed. Unchanged
// content is returned as the same slice. A non-nil err is a *SevenBitError
// listing what was left as it was; out is still the best 7-bit form and the
// caller decides whether to send it.
func SevenBit(content []byte) (out []byte, changed bool, err error) {
	if !needsEncoding(content) {
		return content, false, nil
	}
	w := &downgrader{}
	out, changed = w.entity(content, "", "text/plain", true, 0)
	if len(w.problems) > 0 {
		err = &SevenBitError{Problems: w.problems}
	}
	return out, changed, err
}

// SevenBitAt is SevenBit over stored content (Message.Content and Size). It
// scans r in blocks first and reads the whole message into memory only when
// something must change, so the usual 7-bit message costs one pass and no copy.
// Unchanged content is returned as r itself.
func SevenBitAt(r io.ReaderAt, size int64) (out io.ReaderAt, outSize int64, changed bool, err error) {
	return sevenBitAt(r, size, 64<<10)
}

func sevenBitAt(r io.ReaderAt, size int64, block int) (io.ReaderAt, int64, bool, error) {
	var sc lineScanner
	buf := make([]byte, min(int64(block), max(size, 1)))
	for off := int64(0); off < size && !sc.bad; {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		sc.write(buf[:n])
		off += int64(n)
		if err == nil && n == 0 {
			err = io.ErrNoProgress
		}
		if err != nil && !(errors.Is(err, io.EOF) && off == size) {
			return nil, 0, false, fmt.Errorf("read message at %d: %w", off, err)
		}
	}
	if !sc.bad && !sc.end() {
		return r, size, false, nil
	}
	content := make([]byte, size)
	if n, err := r.ReadAt(content, 0); int64(n) != size {
		return nil, 0, false, fmt.Errorf("read message: %w", err)
	}
	out, changed, err := SevenBit(content)
	if !changed {
		return r, size, false, err
	}
	return bytes.NewReader(out), int64(len(out)), true, err
}

// lineScanner is needsEncoding fed in pieces.
type lineScanner struct {
	n    int  // octets since the last LF
	prev byte // the last octet seen
	bad  bool
}

func (s *lineScanner) write(b []byte) {
	for _, c := range b {
		switch {
		case c >= 0x80 || c == 0:
			s.bad = true
		case c == '\n':
			n := s.n
			if n > 0 && s.prev == '\r' {
				n--
			}
			if n > maxLineLen {
				s.bad = true
			}
			s.n = -1
		}
		s.n++
		s.prev = c
	}
}

// end reports whether the input needs encoding, counting its unterminated
// last line.
func (s *lineScanner) end() bool { return s.bad || s.n > maxLineLen }

// needsEncoding reports whether b has an octet a 7-bit SMTP transport may not
// carry: >= 0x80, NUL, or a line longer than 998 octets. Bare CR and LF are
// not counted: the stored content is CRLF-canonical, and treating them as
// 8-bit would change messages that are 7-bit.
func needsEncoding(b []byte) bool {
	lineStart := 0
	for i, c := range b {
		switch {
		case c >= 0x80 || c == 0:
			return true
		case c == '\n':
			n := i - lineStart
			if n > 0 && b[i-1] == '\r' {
				n--
			}
			if n > maxLineLen {
				return true
			}
			lineStart = i + 1
		}
	}
	return len(b)-lineStart > maxLineLen
}

type downgrader struct {
	problems []Problem
}

func (d *downgrader) report(k ProblemKind, part, field, detail string) {
	d.problems = append(d.problems, Problem{Kind: k, Part: part, Field: field, Detail: detail})
}

// partHeader is an entity's header section, over the entity's bytes src.
type partHeader struct {
	src []byte
	*mailheader.Header
}

func parseHeader(b []byte) partHeader { return partHeader{src: b, Header: mailheader.Parse(b)} }

// fieldLabel names a field in a problem report: its name, or for a line that is
// not a well-formed field, whatever stands before its colon.
func fieldLabel(f mailheader.Field) string {
	if n := f.Name(); n != "" {
		return n
	}
	if k := bytes.IndexByte(f.Raw, ':'); k >= 0 {
		return string(bytes.TrimRight(f.Raw[:k], " \t"))
	}
	return ""
}

// check reports header fields a 7-bit transport may not carry.
func (d *downgrader) check(h *partHeader, part string) {
	for _, f := range h.Fields {
		raw := f.Raw
		if bytes.ContainsFunc(raw, func(r rune) bool { return r == 0 || r >= 0x80 }) {
			d.report(Header8Bit, part, fieldLabel(f), "")
		}
		for _, line := range bytes.SplitAfter(raw, []byte("\n")) {
			if len(bytes.TrimRight(line, "\r\n")) > maxLineLen {
				d.report(HeaderLongLine, part, fieldLabel(f), "")
				break
			}
		}
	}
}

// rewrite returns the header with every Content-Transfer-Encoding field
// replaced by one saying cte (appended if there was none) and the fields in
// add appended. Other fields keep their bytes.
func (h *partHeader) rewrite(cte string, add ...string) []byte {
	var out bytes.Buffer
	out.Grow(h.Body + 64)
	pos, done := 0, false
	for _, f := range h.Fields {
		if !f.Is("Content-Transfer-Encoding") {
			continue
		}
		out.Write(h.src[pos:f.Start])
		if !done {
			// Keep the sender's spelling of the name (e.g. "Content-transfer-encoding").
			out.WriteString(f.Name())
			out.WriteString(": " + cte + h.EOL)
			done = true
		}
		pos = f.End()
	}
	out.Write(h.src[pos:h.End])
	if !done {
		out.WriteString("Content-Transfer-Encoding: " + cte + h.EOL)
	}
	for _, a := range add {
		out.WriteString(a + h.EOL)
	}
	out.Write(h.src[h.End:h.Body])
	return out.Bytes()
}

// cteToken is the first word of a Content-Transfer-Encoding value, lower-cased
// ("8bit (sent by X)" -> "8bit").
func cteToken(v string) string {
	if i := strings.IndexAny(v, " \t(;"); i >= 0 {
		v = v[:i]
	}
	return strings.ToLower(v)
}

// entity converts one entity (a message or a body part). defType is the
// Content-Type in force when there is none (text/plain, or message/rfc822 in
// a multipart/digest); isMessage is set for a whole message, which needs
// MIME-Version once it carries an encoding.
func (d *downgrader) entity(b []byte, part, defType string, isMessage bool, depth int) ([]byte, bool) {
	h := parseHeader(b)
	d.check(&h, part)
	body := b[h.Body:]
	if !needsEncoding(body) {
		return b, false
	}
	if depth >= maxMIMEDepth {
		d.report(BodyUnconvertible, part, "", "MIME nesting too deep")
		return b, false
	}

	mediaType, params := defType, map[string]string(nil)
	ctValue, hasCT := h.Lookup("Content-Type")
	if hasCT {
		// A parameter error still yields the type (mime.ErrInvalidMediaParameter).
		if mt, p, _ := mime.ParseMediaType(ctValue); strings.Contains(mt, "/") {
			mediaType, params = mt, p
		} else {
			// RFC 2045 §5.2: an unparseable Content-Type means text/plain.
			mediaType = "text/plain"
		}
	}
	cteValue, _ := h.Lookup("Content-Transfer-Encoding")
	cte := cteToken(cteValue)
	identity := cte == "" || cte == "7bit" || cte == "8bit" || cte == "binary"

	switch {
	case strings.HasPrefix(mediaType, "multipart/"):
		if !identity {
			d.report(BodyUnconvertible, part, "", "multipart with Content-Transfer-Encoding "+strconv.Quote(cte))
			return b, false
		}
		boundary := params["boundary"]
		if boundary == "" || len(boundary) > 200 || needsEncoding([]byte(boundary)) || strings.ContainsAny(boundary, "\r\n") {
			d.report(BodyUnconvertible, part, "", "multipart without a usable boundary")
			return b, false
		}
		child := "text/plain"
		if mediaType == "multipart/digest" {
			child = "message/rfc822"
		}
		nb, changed := d.multipart(body, boundary, part, child, depth)
		if !changed {
			return b, false
		}
		return d.container(&h, nb, cte)
	case mediaType == "message/rfc822" || mediaType == "message/news":
		if !identity {
			d.report(BodyUnconvertible, part, "", mediaType+" with Content-Transfer-Encoding "+strconv.Quote(cte))
			return b, false
		}
		nb, changed := d.entity(body, part, "text/plain", true, depth+1)
		if !changed {
			return b, false
		}
		return d.container(&h, nb, cte)
	case mediaType == "message/partial" || mediaType == "message/external-body":
		d.report(BodyUnconvertible, part, "", mediaType+" must be 7bit (RFC 2046 section 5.2)")
		return b, false
	}

	switch cte {
	case "", "7bit", "8bit", "binary":
	case "quoted-printable":
		return repairQP(&h, body)
	default:
		d.report(BodyUnconvertible, part, "", "8-bit data under Content-Transfer-Encoding "+strconv.Quote(cte))
		return b, false
	}

	var enc []byte
	var label string
	if strings.HasPrefix(mediaType, "text/") {
		enc, label = qpEncode(body), "quoted-printable"
		if bytes.HasSuffix(body, []byte("\n")) && !bytes.HasSuffix(enc, []byte("\r\n")) {
			// Keep the entity ending with a line break (the original did): a
			// soft break decodes to nothing.
			enc = append(enc, "=\r\n"...)
		}
	} else {
		enc, label = b64Encode(body), "base64"
		if bytes.HasSuffix(body, []byte("\n")) {
			enc = append(enc, "\r\n"...)
		}
	}
	var add []string
	if isMessage {
		if _, ok := h.Lookup("MIME-Version"); !ok {
			add = append(add, "MIME-Version: 1.0")
		}
	}
	if !hasCT && defType == "text/plain" && bytes.ContainsFunc(body, func(r rune) bool { return r >= 0x80 }) {
		// An unlabelled 8-bit text is in no known charset; say so rather than
		// let it default to us-ascii (RFC 1428 §3, unknown-8bit). The product's
		// documentation is silent on this case.
		add = append(add, "Content-Type: text/plain; charset=unknown-8bit")
	}
	out := h.rewrite(label, add...)
	return append(out, enc...), true
}

// container rebuilds a multipart or message/rfc822 entity around its converted
// body nb, relabelling an 8bit/binary encoding 7bit when nb no longer needs it.
func (d *downgrader) container(h *partHeader, nb []byte, cte string) ([]byte, bool) {
	var out []byte
	if (cte == "8bit" || cte == "binary") && !needsEncoding(nb) {
		out = h.rewrite("7bit")
	} else {
		out = append([]byte(nil), h.src[:h.Body]...)
	}
	return append(out, nb...), true
}

// multipart converts a multipart body. Delimiter lines, with the line breaks
// around them, are copied; each part is converted as an entity; preamble and
// epilogue, which MIME readers ignore (RFC 2046 §5.1.1), only lose 8-bit octets.
func (d *downgrader) multipart(body []byte, boundary, part, child string, depth int) ([]byte, bool) {
	dash := []byte("--" + boundary)
	type seg struct {
		start, end int // delimiter: from the CRLF before it to after its own line break
		close      bool
	}
	var delims []seg
	nl := "\r\n"
	for i := 0; i < len(body); {
		j := bytes.IndexByte(body[i:], '\n')
		if j < 0 {
			j = len(body)
		} else {
			j += i + 1
		}
		line := bytes.TrimRight(body[i:j], "\r\n")
		if rest, ok := bytes.CutPrefix(line, dash); ok {
			isClose := false
			if r, ok := bytes.CutPrefix(rest, []byte("--")); ok {
				rest, isClose = r, true
			}
			if len(bytes.TrimRight(rest, " \t")) == 0 {
				start, ok := i, true
				if len(delims) == 0 {
					// The first delimiter line sets the line break that must
					// precede the others, as Go's and go-message's readers
					// have it: with LF, a CR before it stays in the part.
					if l := body[i:j]; !bytes.HasSuffix(l, []byte("\r\n")) && bytes.HasSuffix(l, []byte("\n")) {
						nl = "\n"
					}
					if start >= 2 && body[start-2] == '\r' && body[start-1] == '\n' {
						start -= 2
					} else if start >= 1 && body[start-1] == '\n' {
						start--
					}
				} else {
					prev := delims[len(delims)-1].end
					switch {
					case i == prev:
						// An empty part: the previous delimiter's line break
						// is also this one's leading one.
					case bytes.HasSuffix(body[prev:i], []byte(nl)):
						start -= len(nl)
					default:
						ok = false
					}
				}
				if !ok {
					i = j
					continue
				}
				delims = append(delims, seg{start, j, isClose})
				if isClose {
					break
				}
			}
		}
		i = j
	}
	if len(delims) == 0 {
		return sanitizeFree(body)
	}

	var out []byte
	changed := false
	emit := func(b []byte, c bool) {
		out = append(out, b...)
		changed = changed || c
	}
	emit(sanitizeFree(body[:delims[0].start]))
	for k, dl := range delims {
		emit(d.delimiter(body[dl.start:dl.end], dash, dl.close))
		if dl.close {
			emit(sanitizeFree(body[dl.end:]))
			break
		}
		end := len(body)
		if k+1 < len(delims) {
			end = delims[k+1].start
		}
		num := strconv.Itoa(k + 1)
		if part != "" {
			num = part + "." + num
		}
		emit(d.entity(body[dl.end:end], num, child, false, depth+1))
	}
	if !changed {
		return body, false
	}
	return out, true
}

// delimiter returns a delimiter line, shortened to its canonical form only when
// transport padding made it longer than a line may be.
func (d *downgrader) delimiter(b, dash []byte, isClose bool) ([]byte, bool) {
	if !needsEncoding(b) {
		return b, false
	}
	lead := b[:len(b)-len(bytes.TrimLeft(b, "\r\n"))]
	tail := b[len(bytes.TrimRight(b, "\r\n")):]
	out := append(append([]byte(nil), lead...), dash...)
	if isClose {
		out = append(out, "--"...)
	}
	return append(out, tail...), true
}

// sanitizeFree makes preamble or epilogue text 7-bit. The product's
// documentation is silent on it; we chose this because nothing reads it
// (RFC 2046 §5.1.1), and it cannot be encoded, so octets >= 0x80 and NULs
// become "?" and over-long lines are broken; it is otherwise copied.
func sanitizeFree(b []byte) ([]byte, bool) {
	if !needsEncoding(b) {
		return b, false
	}
	out := make([]byte, 0, len(b)+len(b)/maxLineLen*2)
	n := 0 // octets on the current line, its line break excluded
	for i, c := range b {
		if c == '\n' || (c == '\r' && i+1 < len(b) && b[i+1] == '\n') {
			if c == '\n' {
				n = 0
			}
			out = append(out, c)
			continue
		}
		if n == maxLineLen {
			out = append(out, '\r', '\n')
			n = 0
			if c == '-' {
				c = '?' // the new line must not read as a delimiter
			}
		}
		if c >= 0x80 || c == 0 {
			c = '?'
		}
		out = append(out, c)
		n++
	}
	return out, true
}

const hexUpper = "0123456789ABCDEF"

// qpEncode encodes b as quoted-printable (RFC 2045 §6.7). Only CRLF is a line
// break; bare CR and LF are escaped so that decoding gives b back exactly.
// Lines are at most 76 characters, soft breaks included.
func qpEncode(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/2+16)
	n := 0 // characters on the current output line
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '\r' && i+1 < len(b) && b[i+1] == '\n' {
			out = append(out, '\r', '\n')
			n = 0
			i++
			continue
		}
		// Whitespace before a line break (or at the end) would be stripped by
		// decoders (RFC 2045 §6.7 rule 3): escape it.
		atEOL := i+1 == len(b) || (b[i+1] == '\r' && i+2 < len(b) && b[i+2] == '\n')
		literal := (c >= '!' && c <= '~' && c != '=') || ((c == ' ' || c == '\t') && !atEOL)
		width := 3
		if literal {
			width = 1
		}
		// Leave room for the "=" of a soft break unless this is the line's last
		// character.
		limit := qpLineLen - 1
		if atEOL {
			limit = qpLineLen
		}
		if n+width > limit {
			out = append(out, '=', '\r', '\n')
			n = 0
			if c == '-' {
				// A continuation line must not look like a boundary delimiter
				// ("--" at the start of a line, RFC 2046 §5.1.1).
				literal, width = false, 3
			}
		}
		if literal {
			out = append(out, c)
		} else {
			out = append(out, '=', hexUpper[c>>4], hexUpper[c&15])
		}
		n += width
	}
	return out
}

// b64Encode encodes b as base64 in lines of 76 characters joined by CRLF,
// without a final line break.
func b64Encode(b []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(b)
	out := make([]byte, 0, len(enc)+len(enc)/b64LineLen*2+2)
	for len(enc) > b64LineLen {
		out = append(out, enc[:b64LineLen]...)
		out = append(out, '\r', '\n')
		enc = enc[b64LineLen:]
	}
	return append(out, enc...)
}

// repairQP fixes a body labelled quoted-printable that carries raw 8-bit
// octets or over-long lines: such octets are escaped (lenient decoders pass
// them through as they are, so the decoded data stays the same; strict ones
// such as Go's reject them), and lines over 998 octets get soft breaks
// between encoded characters. Existing escapes and soft breaks are kept.
func repairQP(h *partHeader, body []byte) ([]byte, bool) {
	out := append([]byte(nil), h.src[:h.Body]...)
	for _, line := range bytes.SplitAfter(body, []byte("\n")) {
		content := bytes.TrimRight(line, "\r\n")
		eol := line[len(content):]
		var enc []byte
		for _, c := range content {
			if c >= 0x80 || c == 0 {
				enc = append(enc, '=', hexUpper[c>>4], hexUpper[c&15])
			} else {
				enc = append(enc, c)
			}
		}
		if len(enc) > maxLineLen {
			enc = qpBreak(enc)
		}
		out = append(out, enc...)
		out = append(out, eol...)
	}
	return out, true
}

// qpBreak inserts soft line breaks into an encoded quoted-printable line so no
// output line exceeds 76 characters, never inside an "=XX" escape.
func qpBreak(enc []byte) []byte {
	var out []byte
	n := 0
	for i := 0; i < len(enc); {
		w := 1
		if enc[i] == '=' && i+2 < len(enc) {
			w = 3
		}
		limit := qpLineLen - 1 // room for the soft break's "="
		if i+w == len(enc) {
			limit = qpLineLen
		}
		if n+w > limit {
			out = append(out, '=', '\r', '\n')
			n = 0
			if enc[i] == '-' {
				// Not "--" at the start of a line: it could read as a delimiter.
				out = append(out, "=2D"...)
				n, i = 3, i+1
				continue
			}
		}
		out = append(out, enc[i:i+w]...)
		n += w
		i += w
	}
	return out
}
