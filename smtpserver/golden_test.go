package smtpserver

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expected transcripts in testdata/transcripts")

const separator = "----\n"

// TestTranscripts replays client scripts from testdata/transcripts/*.txt against a
// server with the scripted engine and compares the whole conversation. A script
// holds, before the separator line, client lines:
//
//	C: line   send it and read one reply (plus the replies owed to P lines)
//	P: line   send it without waiting (PIPELINING): its reply is read later
//	D: line   a message line, no reply; "D: ." ends the message and reads its reply
//
// At the end, the replies still to come are read until the server closes. After
// the separator comes the expected transcript; go test -run TestTranscripts
// -update rewrites it. Scripts named auth*.txt run with AUTH offered on loopback.
func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob("testdata/transcripts/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			script, want, ok := strings.Cut(string(raw), separator)
			if !ok && !*update {
				t.Fatalf("%s: no %q separator", file, strings.TrimSpace(separator))
			}
			e := startServer(t, func(p *Policy, c *Config) {
				p.MaxErrors = 6
				if strings.HasPrefix(filepath.Base(file), "auth") {
					// AUTH in clear text from loopback, switching to tcp_intranet
					p.Channels["tcp_local"] = ChannelPolicy{Name: "tcp_local", SASL: SASLMay,
						AllowPlainAuthLoopback: true, SASLSwitchChannel: "tcp_intranet"}
					c.Auth = fakeAuth{"alice": "pw"}
				}
			})
			c := dialRaw(t, e.addr)
			var out strings.Builder
			read := func(n int) {
				for ; n > 0; n-- {
					for _, l := range strings.Split(c.reply(), "\n") {
						out.WriteString("S: " + l + "\n")
					}
				}
			}
			read(1) // banner
			owed := 0
			for _, line := range strings.Split(strings.TrimSuffix(script, "\n"), "\n") {
				kind, text, _ := strings.Cut(line, ": ")
				if kind == "D:" || kind == "D" {
					kind = "D"
				}
				switch kind {
				case "C":
					c.send(text + "\r\n")
					out.WriteString("C: " + text + "\n")
					read(owed + 1)
					owed = 0
				case "P":
					c.send(text + "\r\n")
					out.WriteString("C: " + text + "\n")
					owed++
				case "D":
					c.send(text + "\r\n")
					if text == "." {
						out.WriteString("C: .\n")
						read(owed + 1)
						owed = 0
					}
				default:
					t.Fatalf("%s: bad script line %q", file, line)
				}
			}
			// whatever else the server says until it closes (421 after too many errors)
			for {
				r := c.reply()
				out.WriteString("S: " + r + "\n")
				if strings.HasSuffix(r, "EOF") {
					break
				}
			}
			got := out.String()
			if *update {
				if err := os.WriteFile(file, []byte(script+separator+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("%s: transcript differs\n--- got\n%s--- want\n%s", file, got, want)
			}
			if bytes.Contains([]byte(got), []byte("CHUNKING")) {
				t.Error("CHUNKING advertised")
			}
		})
	}
}
