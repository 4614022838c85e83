package channels

import (
	"bufio"
	"bytes"
	"io"
	"mime/quotedprintable"
	"net"
	"strings"
	"testing"
)

// sevenBitServer is an SMTP server that does not offer 8BITMIME; it returns what it
// received as DATA (dot-unstuffed) on got.
func sevenBitServer(t *testing.T, got chan<- []byte) int {
	return scripted(t, func(c net.Conn, r *bufio.Reader) {
		io.WriteString(c, "220 old.test ESMTP\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			cmd := strings.ToUpper(strings.TrimSpace(line))
			switch {
			case strings.HasPrefix(cmd, "EHLO"):
				io.WriteString(c, "250-old.test\r\n250 PIPELINING\r\n")
			case strings.HasPrefix(cmd, "DATA"):
				io.WriteString(c, "354 go ahead\r\n")
				var b bytes.Buffer
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if l == ".\r\n" {
						break
					}
					b.WriteString(strings.TrimPrefix(l, "."))
				}
				got <- b.Bytes()
				io.WriteString(c, "250 2.0.0 ok\r\n")
			case strings.HasPrefix(cmd, "QUIT"):
				io.WriteString(c, "221 bye\r\n")
				return
			default:
				io.WriteString(c, "250 ok\r\n")
			}
		}
	})
}

// 8-bit content sent to a server without 8BITMIME must arrive as valid
// quoted-printable that decodes to the original bytes, never as raw 8-bit.
func TestSMTPEightBitToSevenBitServer(t *testing.T) {
	got := make(chan []byte, 1)
	port := sevenBitServer(t, got)
	body := "Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln\r\n"
	content := []byte("Subject: 8bit\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n\r\n" + body)
	m := msgOf(content, "s@d", "a@d")
	m.EightBit = true
	res := newClient(t, port, nil).Deliver(testCtx(t), m)
	if res[0].Err != nil {
		t.Fatalf("delivery: %v", res[0].Err)
	}
	data := <-got
	for _, c := range data {
		if c >= 0x80 {
			t.Fatalf("8-bit byte sent to a 7-bit server:\n%q", data)
		}
	}
	head, enc, ok := strings.Cut(string(data), "\r\n\r\n")
	if !ok || !strings.Contains(strings.ToLower(head), "content-transfer-encoding: quoted-printable") {
		t.Fatalf("not re-encoded as quoted-printable:\n%s", data)
	}
	dec, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(enc)))
	if err != nil {
		t.Fatal(err)
	}
	if string(dec) != body {
		t.Errorf("decoded body %q, want %q", dec, body)
	}
}

func TestSMTPEightStrictRefusesUnconvertible(t *testing.T) {
	got := make(chan []byte, 1)
	port := sevenBitServer(t, got)
	content := []byte("Subject: caf\xc3\xa9\r\n\r\nplain\r\n") // 8-bit header: cannot be encoded
	res := newClient(t, port, func(o *SMTPOptions) { o.EightStrict = true }).Deliver(testCtx(t), msgOf(content, "s@d", "a@d"))
	if st := res[0].Err; st == nil || st.Temporary() || st.Enhanced != "5.6.3" {
		t.Fatalf("got %v, want permanent 5.6.3", st)
	}
}
