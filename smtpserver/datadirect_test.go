package smtpserver

import (
	"bufio"
	"bytes"
	"net"
	"testing"
)

// goSMTPData is go-smtp v0.25.1's dataReader (data.go) byte by byte: the content it
// yields for in, and how many bytes of in it consumed. The reference for
// readDataDirect, which must agree on both.
func goSMTPData(in []byte) (out []byte, used int) {
	state := dsBeginLine
	for used < len(in) && state != dsEOF {
		c := in[used]
		used++
		emit := true
		switch state {
		case dsBeginLine:
			if c == '.' {
				state, emit = dsDot, false
			} else if c == '\r' {
				state = dsCR
			} else {
				state = dsData
			}
		case dsDot:
			if c == '\r' {
				state, emit = dsDotCR, false
			} else {
				state = dsData
			}
		case dsDotCR:
			if c == '\n' {
				state, emit = dsEOF, false
			} else {
				state = dsData
			}
		case dsCR:
			if c == '\n' {
				state = dsBeginLine
			} else {
				state = dsData
			}
		case dsData:
			if c == '\r' {
				state = dsCR
			}
		}
		if emit {
			out = append(out, c)
		}
	}
	return out, used
}

// directRead runs readDataDirect over in (small read buffer: many refills).
func directRead(t testing.TB, in []byte, limit int64) (out []byte, used int, bare bool) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	src := bytes.NewReader(in)
	g := &guard{pol: &Policy{}, conn: a, br: bufio.NewReaderSize(src, 16), dataMode: true, dataState: dsBeginLine}
	var dst bytes.Buffer
	if err := g.readDataDirect(&dst, limit); err != nil {
		t.Fatalf("readDataDirect: %v", err)
	}
	if string(g.synthEnd) != ".\r\n" {
		t.Fatalf("go-smtp is not handed the end of data: %q", g.synthEnd)
	}
	return dst.Bytes(), len(in) - src.Len() - g.br.Buffered(), g.dataBare
}

// terminator ends a message from any state of the machine.
const terminator = "\r\n\r\n.\r\n"

func TestReadDataDirect(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
		limit          int64
	}{
		{"plain", "Subject: a\r\n\r\nbody\r\n.\r\nQUIT\r\n", "Subject: a\r\n\r\nbody\r\n", 100},
		{"stuffed dots", "..a\r\n...\r\n.b\r\n.\r\n", ".a\r\n..\r\nb\r\n", 100},
		{"dot CR not LF", "x\r\n.\rz\r\n.\r\n", "x\r\nz\r\n", 100},
		{"empty", ".\r\n", "", 100},
		{"limit keeps the first bytes, reads to the end", "0123456789\r\n.\r\nNEXT", "01234", 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, used, _ := directRead(t, []byte(tt.in), tt.limit)
			if string(out) != tt.want {
				t.Errorf("content %q, want %q", out, tt.want)
			}
			_, refUsed := goSMTPData([]byte(tt.in))
			if used != refUsed {
				t.Errorf("consumed %d bytes, go-smtp %d", used, refUsed)
			}
		})
	}
}

// FuzzReadDataDirect: for any bytes, the fast path yields what go-smtp's reader
// would, stops at the same byte, and flags bare CR/LF as the byte-wise guard did.
func FuzzReadDataDirect(f *testing.F) {
	for _, s := range []string{"a\r\nb\r\n", "..x\r\n.\r", "\n.\n", "\r.\r\n", ".\r.\r\n", "x\ry\nz"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		in = append(in, terminator...)
		out, used, bare := directRead(t, in, 1<<20)
		want, refUsed := goSMTPData(in)
		if !bytes.Equal(out, want) || used != refUsed {
			t.Fatalf("in %q: got %q (%d bytes), go-smtp %q (%d bytes)", in, out, used, want, refUsed)
		}
		// the byte-wise bare check of readData, over the bytes consumed
		g := &guard{}
		for _, c := range in[:used] {
			if (c == '\n') != g.dataPrevCR {
				g.dataBare = true
			}
			g.dataPrevCR = c == '\r'
		}
		if bare != g.dataBare {
			t.Fatalf("in %q: bare %v, want %v", in, bare, g.dataBare)
		}
	})
}
