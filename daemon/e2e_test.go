package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/internal/smtptest"
)

// startDaemon runs an mtad in-process on a loopback port with a fresh data directory.
func startDaemon(t *testing.T, configDir string) (*Daemon, string) {
	t.Helper()
	data := t.TempDir()
	d, err := Start(context.Background(), Options{
		ConfigDir: configDir,
		DataDir:   data,
		Listen:    "127.0.0.1:0",
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return d, data
}

// dial connects to mtad and requires its 220 greeting.
func dial(t *testing.T, addr string) *smtptest.Client { return smtptest.Dial(t, addr) }

// waitMaildir waits for n messages in a mailbox's new/ and returns their contents.
func waitMaildir(t *testing.T, data, mailbox string, n int) [][]byte {
	t.Helper()
	dir := filepath.Join(data, "mailboxes", mailbox, "new")
	deadline := time.Now().Add(15 * time.Second)
	for {
		ents, _ := os.ReadDir(dir)
		if len(ents) >= n {
			var out [][]byte
			for _, e := range ents {
				b, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, b)
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d messages after 15 s, want %d", dir, len(ents), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lfForm is what a Maildir holds of stored content: every CRLF written as LF,
// every other byte as it is.
func lfForm(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }

// stripTrace removes what the MTA prepends (Return-Path, Delivered-To, our Received:)
// from a message read from a Maildir and returns the rest, which must be the LF form
// of the client's content byte for byte.
func stripTrace(t *testing.T, b []byte) []byte {
	t.Helper()
	for _, name := range []string{"Return-Path:", "Delivered-To:", "Received:"} {
		if !bytes.HasPrefix(b, []byte(name)) {
			t.Fatalf("delivered message does not start with %s: %q", name, b[:min(len(b), 200)])
		}
		// a header field: its first line and any continuation lines
		for {
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				t.Fatalf("unterminated %s header", name)
			}
			b = b[i+1:]
			if len(b) == 0 || (b[0] != ' ' && b[0] != '\t') {
				break
			}
		}
	}
	return b
}

func TestLocalDeliveryByteExact(t *testing.T) {
	d, data := startDaemon(t, "")
	long := strings.Repeat("x", 996) // 996 + CRLF = 998 octets with the CRLF counted as 2
	bodies := map[string][]byte{
		"7bit":   []byte("Subject: plain\r\nMessage-ID: <a1@test>\r\n\r\nHello.\r\n"),
		"dots":   []byte("Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nafter a lone dot line\r\n"),
		"8bit":   []byte("Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe, caf\xc3\xa9 \xe2\x82\xac\r\n"),
		"binary": append([]byte("Subject: binaryish\r\n\r\n"), append(bytes.Repeat([]byte{0x01, 0x7f, 0x80, 0xff, 'a', '\t'}, 100), '\r', '\n')...),
		"long":   []byte("Subject: long line\r\n\r\n" + long + "\r\n"),
		"nobody": []byte("Subject: no trailing blank\r\n\r\nlast line without anything after\r\n"),
	}
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	for name, body := range bodies {
		c.Send("sender@localhost", []string{name + "@localhost"}, body)
	}
	c.Cmd("QUIT", "221")
	for name, body := range bodies {
		got := waitMaildir(t, data, name, 1)[0]
		if rest := stripTrace(t, got); !bytes.Equal(rest, lfForm(body)) {
			t.Errorf("%s: delivered content differs\n got %q\nwant %q", name, rest, lfForm(body))
		}
		if !bytes.HasPrefix(got, lfForm([]byte("Return-Path: <sender@localhost>\r\nDelivered-To: "+name+"@localhost\r\n"))) {
			t.Errorf("%s: trace headers %q", name, got[:min(len(got), 120)])
		}
	}
}

func TestMailLogRecordsEnqueueAndDelivery(t *testing.T) {
	d, data := startDaemon(t, "")
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	reply := c.Send("", []string{"alice@localhost"}, []byte("Subject: x\r\n\r\nbody\r\n"))
	id := strings.TrimSpace(reply[strings.LastIndex(reply, " ")+1:])
	waitMaildir(t, data, "alice", 1)
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(data, "mail.log"))
		log := string(b)
		if strings.Contains(log, " E") && strings.Contains(log, " l D ") {
			for _, want := range []string{"tcp_intranet l E", "<> rfc822;alice@localhost alice@localhost " + id} {
				if !strings.Contains(log, want) {
					t.Errorf("mail.log lacks %q:\n%s", want, log)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("mail.log after 5 s:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestUnknownDomainAndRelayFromLoopback(t *testing.T) {
	d, _ := startDaemon(t, "")
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	c.Cmd("MAIL FROM:<a@localhost>", "250")
	// loopback clients are tcp_intranet and may relay to other domains
	c.Cmd("RCPT TO:<someone@example.invalid>", "250")
	c.Cmd("RSET", "250")
}

func TestRelayToRemoteSMTP(t *testing.T) {
	sink := newSink(t)
	dir := t.TempDir()
	writeConfig(t, dir, map[string]string{
		"imta.cnf": fmt.Sprintf(`! everything to the sink
.                $U%%$H@tcp-daemon

l
localhost

tcp_local smtp nomx single_sys daemon 127.0.0.1 port %d
tcp-daemon
`, sink.port),
	})
	d, _ := startDaemon(t, dir)
	body := []byte("Subject: relayed\r\nMessage-ID: <r1@test>\r\n\r\n.dot\r\nline two\r\n")
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	c.Send("me@localhost", []string{"you@remote.example", "other@remote.example"}, body)
	msgs := sink.wait(t, 1)
	m := msgs[0]
	if m.From != "me@localhost" || strings.Join(m.To, ",") != "you@remote.example,other@remote.example" {
		t.Errorf("envelope from=%q to=%q", m.From, m.To)
	}
	if !bytes.HasPrefix(m.Data, []byte("Received:")) {
		t.Errorf("relayed message lacks our Received: %q", m.Data[:min(len(m.Data), 80)])
	}
	if !bytes.HasSuffix(m.Data, body) {
		t.Errorf("relayed content differs:\n got %q\nwant suffix %q", m.Data, body)
	}
}

func writeConfig(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
