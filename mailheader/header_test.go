package mailheader

import (
	"bytes"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name   string
		msg    string
		fields []string // "Name=value" per field; "=raw" for a line that is not a field
		end    int      // Bounds.End; -1: len(msg)
		body   string
		eol    string
	}{
		{"plain", "From: a@b\r\nTo: c@d\r\n\r\nbody\r\n",
			[]string{"From=a@b", "To=c@d"}, 20, "body\r\n", "\r\n"},
		{"folded", "Subject: one\r\n two\r\n\tthree\r\nX: y\r\n\r\n",
			[]string{"Subject=one two\tthree", "X=y"}, 34, "", "\r\n"},
		{"bare LF", "A: 1\nB: 2\n\nbody",
			[]string{"A=1", "B=2"}, 10, "body", "\n"},
		{"no empty line", "A: 1\r\nB: 2",
			[]string{"A=1", "B=2"}, -1, "", "\r\n"},
		{"space before colon", "Subject : hi\r\n\r\n",
			[]string{"Subject=hi"}, 14, "", "\r\n"},
		{"not a field", "A: 1\r\nthis is text\r\nB: 2\r\n\r\n",
			[]string{"A=1", "=this is text\r\n", "B=2"}, 26, "", "\r\n"},
		{"name with space", "Bad Name: x\r\n\r\n",
			[]string{"=Bad Name: x\r\n"}, 13, "", "\r\n"},
		{"leading continuation", " cont\r\nA: 1\r\n\r\n",
			[]string{"= cont\r\n", "A=1"}, 13, "", "\r\n"},
		{"empty", "", nil, 0, "", "\r\n"},
		{"body only", "\r\nbody", nil, 0, "body", "\r\n"},
		{"empty value", "A:\r\n\r\n", []string{"A="}, 4, "", "\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := []byte(tt.msg)
			h := Parse(msg)
			var got []string
			for _, f := range h.Fields {
				if f.Name() == "" {
					got = append(got, "="+string(f.Raw))
				} else {
					got = append(got, f.Name()+"="+f.Value())
				}
			}
			if strings.Join(got, "|") != strings.Join(tt.fields, "|") {
				t.Errorf("fields = %q, want %q", got, tt.fields)
			}
			end := tt.end
			if end < 0 {
				end = len(msg)
			}
			if h.End != end {
				t.Errorf("End = %d, want %d", h.End, end)
			}
			if string(msg[h.Body:]) != tt.body {
				t.Errorf("body = %q, want %q", msg[h.Body:], tt.body)
			}
			if h.EOL != tt.eol {
				t.Errorf("EOL = %q, want %q", h.EOL, tt.eol)
			}
		})
	}
}

func TestEdit(t *testing.T) {
	msg := []byte("Received: x\r\nBcc: secret@x\r\nSubject: s\r\nbcc: two\r\n\r\nbody")
	h := Parse(msg)
	if h.Count("RECEIVED") != 1 || !h.Has("bcc") || h.Has("Date") {
		t.Fatalf("Count/Has wrong: %+v", h.Fields)
	}
	h.Del("Bcc")
	h.Add("Date", "Mon, 7 Dec 2026 05:00:00 +0000")
	var b bytes.Buffer
	h.WriteTo(&b)
	want := "Received: x\r\nSubject: s\r\nDate: Mon, 7 Dec 2026 05:00:00 +0000\r\n"
	if b.String() != want {
		t.Errorf("written %q, want %q", b.String(), want)
	}
	if v, ok := h.Lookup("subject"); !ok || v != "s" {
		t.Errorf("Lookup = %q %v", v, ok)
	}
	lf := Parse([]byte("A: 1\n\n"))
	lf.Add("B", "2")
	if got := string(lf.Fields[1].Raw); got != "B: 2\n" {
		t.Errorf("added field on an LF message = %q", got)
	}
}

func TestWalkStops(t *testing.T) {
	n := 0
	Walk([]byte("A: 1\r\nB: 2\r\nC: 3\r\n\r\n"), func(f Field) bool {
		n++
		return !f.Is("b")
	})
	if n != 2 {
		t.Errorf("fn called %d times, want 2", n)
	}
}

func TestBlock(t *testing.T) {
	msg := []byte("A: 1\r\nnot a field\r\n\r\nbody")
	if got := string(Block(msg, 0)); got != "A: 1\r\nnot a field\r\n" {
		t.Errorf("Block = %q", got)
	}
	if got := string(Block(msg, 4)); got != "A: 1" {
		t.Errorf("Block bounded = %q", got)
	}
}

func TestWithLineEnds(t *testing.T) {
	for in, want := range map[string]string{
		"":               "",
		"A: 1":           "A: 1\r\n",
		"A: 1\nB: 2\r\n": "A: 1\r\nB: 2\r\n",
		"A\r\r\n":        "A\r\n",
	} {
		if got := string(WithLineEnds([]byte(in), "\r\n")); got != want {
			t.Errorf("WithLineEnds(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzWalk checks the invariants every caller relies on: the fields cover the
// header from its first byte to its end without gap or overlap, each field is
// made of whole lines, and the body starts after the header.
func FuzzWalk(f *testing.F) {
	for _, s := range []string{"A: 1\r\n b\r\n\r\nbody", "x\n\ny", ":\r\n\r\n", " \r\n", "\n", "A:1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		pos := 0
		b := Walk(msg, func(fl Field) bool {
			if fl.Start != pos {
				t.Fatalf("field at %d, want %d", fl.Start, pos)
			}
			if !bytes.Equal(msg[fl.Start:fl.End()], fl.Raw) {
				t.Fatalf("Raw is not the message's bytes")
			}
			if fl.End() < len(msg) && fl.Raw[len(fl.Raw)-1] != '\n' {
				t.Fatalf("field %q does not end a line", fl.Raw)
			}
			if n := fl.Name(); n != "" && (!fl.Is(strings.ToUpper(n)) || !bytes.HasPrefix(bytes.TrimLeft(fl.Raw[len(n):], " \t"), []byte(":"))) {
				t.Fatalf("name %q is not what precedes the colon of %q", n, fl.Raw)
			}
			pos = fl.End()
			return true
		})
		if pos != b.End {
			t.Fatalf("fields end at %d, header at %d", pos, b.End)
		}
		if b.Body < b.End || b.Body > len(msg) {
			t.Fatalf("body at %d, header end %d, len %d", b.Body, b.End, len(msg))
		}
		if b.Body > b.End && !isBlank(msg[b.End:b.Body]) {
			t.Fatalf("between header and body: %q", msg[b.End:b.Body])
		}
	})
}

// BenchmarkWalk is the SMTP service's per-message scan of a typical header.
func BenchmarkWalk(b *testing.B) {
	msg := []byte("Received: from a.example (a.example [192.0.2.1])\r\n\tby mx.example (mtad) with ESMTP id 0123456789ABCDEF;\r\n\tMon, 7 Dec 2026 05:00:00 +0000\r\n" +
		"From: Ann <ann@example.org>\r\nTo: bob@example.net\r\nSubject: hello\r\nDate: Mon, 7 Dec 2026 05:00:00 +0000\r\n" +
		"Message-ID: <20261207050000.abcdef@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat("body line\r\n", 300))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		Walk(msg, func(f Field) bool {
			if f.Is("Received") {
				n++
			}
			return true
		})
	}
}
