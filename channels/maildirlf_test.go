package channels

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// lfForm is what a Maildir file holds for stored content: every CRLF becomes
// LF, every other byte stays. It is written independently of copyLF on purpose.
func lfForm(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

// A message read back from the Maildir is the LF form of what was queued,
// otherwise identical (a bare CR, a bare LF, 8-bit and NUL bytes, a CRLF cut
// by the copy's buffer), and S= in the file name is the size of that LF form.
func TestMaildirStoresLF(t *testing.T) {
	root := t.TempDir()
	var b strings.Builder
	b.WriteString("Received: from x by y; Mon, 23 Nov 2026 10:00:00 +0000\r\nSubject: lf\r\n\r\n")
	b.WriteString("bare cr\rin a line\r\nbare lf\nthen crlf\r\n\x00\xff\r\n")
	b.WriteString(strings.Repeat("y", 32<<10-1) + "\r\n") // the CRLF spans two reads of the copy
	b.WriteString("cr cr lf\r\r\nlast line ends in a CR\r")
	content := b.String()
	res := NewMaildir(root, "h").Deliver(context.Background(), msgOf([]byte(content), "s@d", "u@d"))
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	rel := strings.TrimPrefix(res[0].Reply, "maildir;")
	got, err := os.ReadFile(filepath.Join(root, "u", rel))
	if err != nil {
		t.Fatal(err)
	}
	want := lfForm("Return-Path: <s@d>\r\nDelivered-To: u@d\r\n" + content)
	if string(got) != want {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Errorf("stored file is not the LF form of the message: first difference at byte %d\n got %q\nwant %q",
			i, got[max(0, i-20):min(len(got), i+20)], want[max(0, i-20):min(len(want), i+20)])
	}
	size, _ := strconv.Atoi(rel[strings.LastIndex(rel, ",S=")+3:])
	if size != len(got) {
		t.Errorf("S=%d, file has %d bytes", size, len(got))
	}
}

// copyLF gives the same bytes whatever the sizes of the reads it gets.
func TestCopyLFReadSizes(t *testing.T) {
	for _, in := range []string{"", "\r", "\n", "\r\n", "a\r\nb\rc\nd\r\r\n\r", "\r\r\r\n\n"} {
		for _, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in)),
			iotest.HalfReader(strings.NewReader(in))} {
			var out bytes.Buffer
			read, written, err := copyLF(&out, r)
			if err != nil || out.String() != lfForm(in) || read != int64(len(in)) || written != int64(out.Len()) {
				t.Errorf("copyLF(%q) = %q, read %d, written %d, %v; want %q", in, out.String(), read, written, err, lfForm(in))
			}
		}
	}
}
