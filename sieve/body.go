package sieve

import (
	"bytes"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message"
)

// body (RFC 5173). The message is walked once per evaluation, on the first body
// test, with go-message; each leaf part is kept decoded (transfer encoding and,
// for text, charset) for the tests that follow.

// Bounds on the MIME walk, so that a message built to be expensive stays cheap.
const (
	maxBodyParts = 500
	maxBodyDepth = 20
)

type bodyPart struct {
	mediaType string // lower case, "text/plain"
	text      string
}

type bodyCache struct {
	parts []bodyPart
}

type bodyTransform uint8

const (
	bodyText bodyTransform = iota
	bodyRaw
	bodyContent
)

type testBody struct {
	node
	m         matcher
	transform bodyTransform
	types     []string // :content, lower case
	keys      []key
}

func buildBody(c *checker, a *callArgs, n node, _ []test) test {
	t := &testBody{node: n, m: c.matcher(a)}
	switch {
	case a.has("raw"):
		t.transform = bodyRaw
	case a.has("content"):
		t.transform = bodyContent
		for _, s := range a.tags["content"].Strings {
			t.types = append(t.types, strings.ToLower(strings.TrimSpace(s)))
		}
	}
	t.keys = c.keys(t.m, a.pos[0])
	return t
}

func (t *testBody) eval(e *eval) (bool, error) {
	if t.transform == bodyRaw {
		ta := tally{m: &t.m, keys: t.keys}
		ta.add(e, value{s: string(e.msg[min(e.bodyStart, len(e.msg)):])})
		return ta.result(e)
	}
	if err := e.walkBody(); err != nil {
		return false, err
	}
	ta := tally{m: &t.m, keys: t.keys}
	for _, p := range e.body.parts {
		if t.wants(p.mediaType) && !ta.add(e, value{s: p.text}) {
			break
		}
	}
	return ta.result(e)
}

// wants says whether a part's type is one the test looks at: text/* for :text;
// for :content, "" matches every type, "text" every text/ subtype, and
// "text/plain" only itself (RFC 5173 §5.2).
func (t *testBody) wants(mediaType string) bool {
	if t.transform == bodyText {
		return strings.HasPrefix(mediaType, "text/")
	}
	for _, ct := range t.types {
		switch {
		case ct == "":
			return true
		case strings.Contains(ct, "/"):
			if ct == mediaType {
				return true
			}
		case strings.HasPrefix(mediaType, ct+"/"):
			return true
		}
	}
	return false
}

// walkBody collects the decoded leaf parts on first use.
func (e *eval) walkBody() error {
	if e.body != nil {
		return nil
	}
	e.body = &bodyCache{}
	if err := e.charge(len(e.msg)); err != nil {
		return err
	}
	ent, err := message.Read(bytes.NewReader(e.msg))
	if ent == nil {
		// Not even a header go-message can read: the whole body as one text part.
		_ = err
		e.body.parts = append(e.body.parts, bodyPart{"text/plain", string(e.msg[min(e.bodyStart, len(e.msg)):])})
		return nil
	}
	e.body.walk(ent, 0)
	return nil
}

func (b *bodyCache) walk(ent *message.Entity, depth int) {
	if len(b.parts) >= maxBodyParts || depth > maxBodyDepth {
		return
	}
	mediaType, params, _ := ent.Header.ContentType()
	mediaType = strings.ToLower(mediaType)
	if mediaType == "" {
		mediaType = "text/plain"
	}
	if mr := ent.MultipartReader(); mr != nil {
		for len(b.parts) < maxBodyParts {
			part, err := mr.NextPart()
			if part == nil || (err != nil && err != io.EOF && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err)) {
				return
			}
			b.walk(part, depth+1)
		}
		return
	}
	data, _ := io.ReadAll(io.LimitReader(ent.Body, 16<<20))
	if mediaType == "message/rfc822" {
		// The body of an attached message is walked too; its header is not part
		// of the body text.
		if inner, _ := message.Read(bytes.NewReader(data)); inner != nil {
			b.walk(inner, depth+1)
			return
		}
	}
	text := string(data)
	if strings.HasPrefix(mediaType, "text/") {
		text = toUTF8(text, params["charset"])
	}
	b.parts = append(b.parts, bodyPart{mediaType: mediaType, text: text})
}

// toUTF8 converts the one 8-bit charset common enough to matter without a
// charset library, ISO-8859-1; go-message already did UTF-8 and US-ASCII, and
// other charsets are compared as they are.
func toUTF8(s, charset string) string {
	switch strings.ToLower(charset) {
	case "iso-8859-1", "latin1", "iso_8859-1":
	default:
		return s
	}
	if utf8.ValidString(s) {
		// Already converted (a charset reader is installed in go-message).
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}
