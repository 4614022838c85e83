package channels

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func TestReadReply(t *testing.T) {
	tests := []struct {
		in      string
		want    string // Reply.String(), or "error"
		lines   int
		enhance string
	}{
		{"250 2.0.0 ok\r\n", "250 2.0.0 ok", 1, "2.0.0"},
		{"250-mx.test hello\r\n250-PIPELINING\r\n250 SIZE 100\r\n", "250 mx.test hello PIPELINING SIZE 100", 3, ""},
		{"550-5.1.1 no such\r\n550 5.1.1 user\r\n", "550 5.1.1 no such user", 2, "5.1.1"},
		{"250 5.0.0 class mismatch\r\n", "250 5.0.0 class mismatch", 1, ""},
		{"220\r\n", "220", 1, ""},
		{"421 4.3.2 bye\n", "421 4.3.2 bye", 1, "4.3.2"},
		{"354 go ahead\r\n", "354 go ahead", 1, ""},
		{"25 short\r\n", "error", 0, ""},
		{"abc def\r\n", "error", 0, ""},
		{"250x bad sep\r\n", "error", 0, ""},
		{"250-a\r\n251 b\r\n", "error", 0, ""},
		{"250-unterminated\r\n", "error", 0, ""},
		{"199 too low\r\n", "error", 0, ""},
		{"", "error", 0, ""},
		{strings.Repeat("250-x\r\n", maxReplyLines+1), "error", 0, ""},
		{"250 " + strings.Repeat("x", maxReplyLineLen) + "\r\n", "error", 0, ""},
	}
	for _, tt := range tests {
		name := tt.in
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			rep, err := ReadReply(bufio.NewReader(strings.NewReader(tt.in)))
			if tt.want == "error" {
				if err == nil {
					t.Fatalf("got %q, want an error", rep)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rep.String() != tt.want || len(rep.Lines) != tt.lines || rep.Enhanced != tt.enhance {
				t.Errorf("got %q (%d lines, enhanced %q), want %q (%d, %q)", rep, len(rep.Lines), rep.Enhanced, tt.want, tt.lines, tt.enhance)
			}
		})
	}
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"250 ok\r\n", "250-a\r\n250 b\r\n", "550 5.1.1 x\r\n", "421\r\n", "2"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rep, err := ReadReply(bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			return
		}
		if rep.Code < 200 || rep.Code > 599 || len(rep.Lines) == 0 || len(rep.Lines) > maxReplyLines {
			t.Fatalf("accepted nonsense %+v", rep)
		}
		if rep.Enhanced != "" && rep.Enhanced[0] != byte('0'+rep.Code/100) {
			t.Fatalf("enhanced %q with code %d", rep.Enhanced, rep.Code)
		}
		_ = rep.Status().Temporary()
	})
}

// undot decodes the DATA encoding the way a strict RFC 5321 receiver does: up
// to the first CRLF "." CRLF, removing one leading dot per line.
func undot(t *testing.T, wire []byte) []byte {
	t.Helper()
	var out []byte
	bol := true
	for i := 0; i < len(wire); {
		if bol && bytes.HasPrefix(wire[i:], []byte(".\r\n")) {
			if i+3 != len(wire) {
				t.Fatalf("data after end marker: %q", wire[i:])
			}
			return out
		}
		if bol && wire[i] == '.' {
			i++
		}
		j := bytes.Index(wire[i:], []byte("\r\n"))
		if j < 0 {
			t.Fatalf("no end marker in %q", wire)
		}
		out = append(out, wire[i:i+j+2]...)
		i += j + 2
		bol = true
	}
	t.Fatalf("no end marker in %q", wire)
	return nil
}

// normalized is what the receiver must get: bare LF as CRLF, and a final CRLF.
func normalized(in []byte) []byte {
	var out []byte
	for i, c := range in {
		if c == '\n' && (i == 0 || in[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
		if out[len(out)-1] == '\r' {
			out = append(out, '\n')
		} else {
			out = append(out, '\r', '\n')
		}
	}
	return out
}

func encodeDot(in []byte, chunk int) []byte {
	var buf bytes.Buffer
	bw := bufio.NewWriterSize(&buf, 16)
	dw := newDotWriter(bw)
	for len(in) > 0 {
		n := min(chunk, len(in))
		dw.Write(in[:n])
		in = in[n:]
	}
	dw.Close()
	bw.Flush()
	return buf.Bytes()
}

func FuzzDotWriter(f *testing.F) {
	for _, s := range []string{"", ".", "a\r\n.\r\n", "..\r\n", "x\n.\ny", "\r", "a\r\r\n.", ".\r\n.\r\n"} {
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(7))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		wire := encodeDot(in, int(chunk)+1)
		// No line of the wire form other than the last may be a lone ".": that
		// would end the data early (and bare LFs are gone, so no smuggling).
		if i := bytes.Index(wire, []byte("\r\n.\r\n")); i >= 0 && i+5 != len(wire) {
			t.Fatalf("early end marker in %q", wire)
		}
		if bytes.HasPrefix(wire, []byte(".\r\n")) && len(wire) != 3 {
			t.Fatalf("early end marker in %q", wire)
		}
		if got, want := undot(t, wire), normalized(in); !bytes.Equal(got, want) {
			t.Fatalf("round trip of %q: got %q, want %q", in, got, want)
		}
	})
}

func TestDotWriterChunking(t *testing.T) {
	in := []byte(".a\r\n.\r\nb\nc\r\n..\r\nend")
	want := encodeDot(in, len(in))
	for chunk := 1; chunk < len(in); chunk++ {
		if got := encodeDot(in, chunk); !bytes.Equal(got, want) {
			t.Fatalf("chunk %d: %q, want %q", chunk, got, want)
		}
	}
	if string(want) != "..a\r\n..\r\nb\r\nc\r\n...\r\nend\r\n.\r\n" {
		t.Errorf("wire %q", want)
	}
}

// recorder is a scripted ESMTP server that records the client's side of the
// dialogue, for the golden transcript.
func recorder(t *testing.T, ehlo string) (int, func() string) {
	var mu sync.Mutex
	var log strings.Builder
	port := scripted(t, func(c net.Conn, r *bufio.Reader) {
		w := func(s string) {
			// Log first: once written, the client may read the transcript.
			mu.Lock()
			for _, l := range strings.SplitAfter(s, "\r\n") {
				if l != "" {
					log.WriteString("S: " + strings.TrimSuffix(l, "\r\n") + "\n")
				}
			}
			mu.Unlock()
			io.WriteString(c, s)
		}
		w("220 rec.test ESMTP\r\n")
		rcpts := 0 // accepted in the current transaction
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			// Commands already waiting behind this one were sent without
			// waiting for its reply: pipelined.
			ahead, _ := r.Peek(r.Buffered())
			note := ""
			if n := bytes.Count(ahead, []byte("\n")); n > 0 {
				note = fmt.Sprintf("  [+%d pipelined]", n)
			}
			mu.Lock()
			log.WriteString("C: " + strings.TrimSuffix(line, "\r\n") + note + "\n")
			mu.Unlock()
			cmd := strings.ToUpper(line)
			switch {
			case strings.HasPrefix(cmd, "EHLO"):
				w(ehlo)
			case strings.HasPrefix(cmd, "MAIL"), strings.HasPrefix(cmd, "RSET"):
				rcpts = 0
				w("250 2.0.0 ok\r\n")
			case strings.HasPrefix(cmd, "RCPT TO:<BAD"):
				w("550 5.1.1 no such user\r\n")
			case strings.HasPrefix(cmd, "RCPT"):
				rcpts++
				w("250 2.0.0 ok\r\n")
			case strings.HasPrefix(cmd, "DATA") && rcpts == 0:
				// RFC 2920 §3.1: a pipelined DATA after failed RCPTs is refused.
				w("554 5.5.1 no valid recipients\r\n")
			case strings.HasPrefix(cmd, "DATA"):
				w("354 go ahead\r\n")
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					mu.Lock()
					log.WriteString("D: " + strings.TrimSuffix(l, "\r\n") + "\n")
					mu.Unlock()
					if l == ".\r\n" {
						break
					}
				}
				w("250 2.0.0 queued as X1\r\n")
			case strings.HasPrefix(cmd, "QUIT"):
				w("221 2.0.0 bye\r\n")
				return
			default:
				w("250 2.0.0 ok\r\n")
			}
		}
	})
	return port, func() string { mu.Lock(); defer mu.Unlock(); return log.String() }
}

// TestSMTPTranscript pins the exact commands the client sends (golden files in
// testdata/; go test -run Transcript -update rewrites them).
func TestSMTPTranscript(t *testing.T) {
	tests := []struct {
		name string
		ehlo string
	}{
		// Two messages each: the second shows the reuse check (RSET), pipelined
		// in front of MAIL when the server allows it.
		{"pipelining-dsn", "250-rec.test\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 DSN\r\n"},
		{"plain-esmtp", "250 rec.test\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port, transcript := recorder(t, tt.ehlo)
			c := newClient(t, port, nil)
			m := msgOf([]byte("Subject: t\r\n\r\n.leading dot\r\nbody\r\n"), "s@example.org", "a@example.com", "bad@example.com", "c@example.com")
			m.EightBit, m.RET, m.EnvID = true, "FULL", "env 1"
			m.Rcpts[0].Notify, m.Rcpts[0].ORCPT = "FAILURE", "rfc822;A+x@example.com"
			res := c.Deliver(testCtx(t), m)
			res = append(res, c.Deliver(testCtx(t), msgOf([]byte("second\r\n"), "", "z@example.net"))...)
			// Every recipient refused: with PIPELINING the DATA already sent is
			// refused too, no content goes out, and the connection stays usable.
			res = append(res, c.Deliver(testCtx(t), msgOf([]byte("third\r\n"), "", "bad@example.net"))...)
			res = append(res, c.Deliver(testCtx(t), msgOf([]byte("fourth\r\n"), "", "y@example.net"))...)
			m.Rcpts = append(m.Rcpts, Rcpt{Addr: "z@example.net"}, Rcpt{Addr: "bad@example.net"}, Rcpt{Addr: "y@example.net"})
			c.Close()
			var got strings.Builder
			got.WriteString(transcript())
			got.WriteString("--- results\n")
			for i, r := range res {
				st := "delivered"
				if r.Err != nil {
					st = r.Err.Error()
				}
				got.WriteString(m.Rcpts[i].Addr + ": " + st + " | " + r.Reply + "\n")
			}
			golden(t, filepath.Join("testdata", "transcript-"+tt.name+".golden"), got.String())
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", path, got, want)
	}
}
