package smtpserver

import (
	"bufio"
	"bytes"
	"net"
	"testing"
)

// refData is the DATA reader's specification, written to be obviously right, not
// fast: the content of the message at the start of in, how many bytes of in the
// message takes, and whether in holds its end at all. in is read line by line. A
// line ends at CR LF, and a CR always goes with the byte after it: CR followed by
// anything but LF is two bytes of content (so CR CR LF is no line end). The line
// "." ends the message; any other line loses one leading dot.
func refData(in []byte) (content []byte, used int, ended bool) {
	for start := 0; start < len(in); {
		end := start // the CR of the line's CR LF
		for {
			if end+1 >= len(in) {
				return content, len(in), false
			}
			if in[end] == '\r' && in[end+1] == '\n' {
				break
			}
			if in[end] == '\r' {
				end++ // the byte after a CR is never a line end's CR
			}
			end++
		}
		line := in[start:end]
		start = end + 2
		if string(line) == "." {
			return content, start, true
		}
		content = append(content, bytes.TrimPrefix(line, []byte("."))...)
		content = append(content, '\r', '\n')
	}
	return content, len(in), false
}

// refBare tells whether b holds a CR not followed by LF or a LF not after CR.
func refBare(b []byte) bool {
	for i, c := range b {
		if c == '\r' && (i+1 == len(b) || b[i+1] != '\n') || c == '\n' && (i == 0 || b[i-1] != '\r') {
			return true
		}
	}
	return false
}

// scanChunks runs dataScanner over in handed to it chunk bytes at a time, as the
// read buffer would.
func scanChunks(in []byte, chunk int, limit int64) (out []byte, used int, ended, bare bool) {
	var dst bytes.Buffer
	d := dataScanner{state: dsBeginLine, dst: &dst, room: limit}
	for used < len(in) && !ended {
		var n int
		n, ended = d.scan(in[used:min(used+chunk, len(in))])
		used += n
	}
	return dst.Bytes(), used, ended, d.bare
}

// connRead runs a connection's dataReader over in through a 16-byte read buffer
// (many refills).
func connRead(t testing.TB, in []byte, limit int64) (out []byte, used int, bare bool) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	src := bytes.NewReader(in)
	c := &conn{pol: &Policy{}, nc: a, br: bufio.NewReaderSize(src, 16)}
	r := dataReader{c: c, scan: dataScanner{state: dsBeginLine}}
	var dst bytes.Buffer
	if err := r.read(&dst, limit); err != nil {
		t.Fatalf("read: %v", err)
	}
	return dst.Bytes(), len(in) - src.Len() - c.br.Buffered(), r.bare
}

func TestReadData(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
		limit          int64
		bare           bool
	}{
		{"plain", "Subject: a\r\n\r\nbody\r\n.\r\nQUIT\r\n", "Subject: a\r\n\r\nbody\r\n", 100, false},
		{"stuffed dots", "..a\r\n...\r\n.b\r\n.\r\n", ".a\r\n..\r\nb\r\n", 100, false},
		{"empty", ".\r\n", "", 100, false},
		{"limit keeps the first bytes, reads to the end", "0123456789\r\n.\r\nNEXT", "01234", 5, false},
		{"CR CR LF is no line end", "a\r\r\n.\r\nb\r\n.\r\n", "a\r\r\n.\r\nb\r\n", 100, true},
		{"LF . LF is no end", "a\n.\nb\r\n.\r\n", "a\n.\nb\r\n", 100, true},
		{"dot CR not LF", "x\r\n.\rz\r\n.\r\n", "x\r\nz\r\n", 100, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, used, bare := connRead(t, []byte(tt.in), tt.limit)
			if string(out) != tt.want {
				t.Errorf("content %q, want %q", out, tt.want)
			}
			_, refUsed, _ := refData([]byte(tt.in))
			if used != refUsed {
				t.Errorf("consumed %d bytes, want %d", used, refUsed)
			}
			if bare != tt.bare {
				t.Errorf("bare %v, want %v", bare, tt.bare)
			}
		})
	}
}

// terminator ends a message from any state of the reader.
const terminator = "\r\n\r\n.\r\n"

// FuzzDataReader: for any bytes, handed over in chunks of any size, the reader
// ends the message where refData does, flags a bare CR or LF exactly when the
// bytes it took hold one, and yields refData's content, cut at the limit. The
// content of a message with a bare CR or LF is not compared: it is refused (550),
// whatever it holds.
func FuzzDataReader(f *testing.F) {
	for _, s := range []string{"a\r\nb\r\n", "..x\r\n.\r", "\n.\n", "\r.\r\n", ".\r.\r\n", "x\ry\nz", "a\r\r\n.\r\n"} {
		f.Add([]byte(s), uint8(3), uint16(100))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8, limit uint16) {
		in = append(in, terminator...)
		out, used, ended, bare := scanChunks(in, int(chunk)+1, int64(limit))
		want, refUsed, refEnded := refData(in)
		if !ended || !refEnded || used != refUsed {
			t.Fatalf("in %q: ended %v after %d bytes, want %v after %d", in, ended, used, refEnded, refUsed)
		}
		if wantBare := refBare(in[:used]); bare != wantBare {
			t.Fatalf("in %q: bare %v, want %v", in, bare, wantBare)
		}
		if !bare {
			want = want[:min(len(want), int(limit))]
			if !bytes.Equal(out, want) {
				t.Fatalf("in %q (limit %d): content %q, want %q", in, limit, out, want)
			}
		}
	})
}
