package interop

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mtad.dev/mta/internal/smtptest"
)

// deliverWithin bounds every wait for a message to travel: through mtad and a peer
// it takes well under a second; the margin is for a loaded machine.
const deliverWithin = 30 * time.Second

// binaries builds mtad and mtactl once per test binary run.
var binaries = struct {
	once              sync.Once
	dir, mtad, mtactl string
	err               error
}{}

func buildBinaries(t *testing.T) (mtad, mtactl string) {
	t.Helper()
	binaries.once.Do(func() {
		dir, err := os.MkdirTemp("", "interop-bin-")
		if err != nil {
			binaries.err = err
			return
		}
		binaries.dir = dir
		binaries.mtad = filepath.Join(dir, "mtad")
		binaries.mtactl = filepath.Join(dir, "mtactl")
		// one go build for both: the two links run in parallel
		out, err := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
			"mtad.dev/mta/cmd/mtad", "mtad.dev/mta/cmd/mtactl").CombinedOutput()
		if err != nil {
			binaries.err = fmt.Errorf("go build mtad mtactl: %w\n%s", err, out)
		}
	})
	if binaries.err != nil {
		t.Fatal(binaries.err)
	}
	return binaries.mtad, binaries.mtactl
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
	}
	os.Exit(code)
}

// mtad is one running mtad binary with its own configuration and data directory.
type mtad struct {
	addr   string // the SMTP service, host:port
	config string // the configuration directory the test wrote
	data   string // the data directory: queue, mail.log, mailboxes/, passwd
	mtactl string // the mtactl binary, for passwd
	proc   *child
}

// mtadOptions are the less common ways to start mtad.
type mtadOptions struct {
	listen string // the SMTP listen address; default 127.0.0.1:0
	// in, when set, runs the start of the mtad process (netns.do: mtad is then in
	// that network namespace).
	in func(func())
}

// startMtad writes the configuration files, compiles them with mtactl cnbuild as an
// administrator would, and starts mtad on a fresh data directory.
func startMtad(t *testing.T, files map[string]string) *mtad {
	return startMtadWith(t, files, mtadOptions{})
}

func startMtadWith(t *testing.T, files map[string]string, opt mtadOptions) *mtad {
	t.Helper()
	mtadBin, mtactlBin := buildBinaries(t)
	m := &mtad{config: t.TempDir(), data: t.TempDir(), mtactl: mtactlBin}
	for name, content := range files {
		writeFile(t, filepath.Join(m.config, name), content)
	}
	if out, err := run(t, time.Minute, "", mtactlBin, "-config", m.config, "cnbuild"); err != nil {
		t.Fatalf("mtactl cnbuild: %v\n%s", err, out)
	}
	if opt.listen == "" {
		opt.listen = "127.0.0.1:0"
	}
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(mtadBin, "-config", m.config, "-data", m.data,
		"-listen", opt.listen, "-ready-file", ready, "-log-level", "info", "-shutdown-grace", "5s")
	m.proc = startChildIn(t, "mtad", cmd, opt.in)
	deadline := time.Now().Add(startWithin)
	for {
		if b, err := os.ReadFile(ready); err == nil && strings.HasSuffix(string(b), "\n") {
			m.addr = strings.TrimSpace(string(b))
			return m
		}
		if m.proc.exited() {
			t.Fatalf("mtad exited before it was ready:\n%s", m.proc.out)
		}
		if time.Now().After(deadline) {
			t.Fatalf("mtad not ready after %v:\n%s", startWithin, m.proc.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// setPassword adds an SMTP AUTH user with mtactl passwd, as an administrator does.
func (m *mtad) setPassword(t *testing.T, user, password string) {
	t.Helper()
	out, err := run(t, time.Minute, password+"\n", m.mtactl, "-data", m.data, "passwd", "-stdin", "-cost", "10", user)
	if err != nil {
		t.Fatalf("mtactl passwd: %v\n%s", err, out)
	}
}

// mailbox is the new/ directory of one of mtad's local mailboxes.
func (m *mtad) mailbox(name string) string {
	return filepath.Join(m.data, "mailboxes", name, "new")
}

// logLines returns mail.log's lines.
func (m *mtad) logLines() []string { return fileLines(filepath.Join(m.data, "mail.log")) }

// waitLog waits until a mail.log line satisfies ok and returns it.
func (m *mtad) waitLog(t *testing.T, what string, ok func(string) bool) string {
	t.Helper()
	return waitLine(t, filepath.Join(m.data, "mail.log"), what, ok)
}

// fileLines returns the lines of a log file (none while it does not exist).
func fileLines(path string) []string {
	b, _ := os.ReadFile(path)
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// waitLine waits until a line of the log file at path satisfies ok and returns
// it; the test fails with the log's end after deliverWithin.
func waitLine(t *testing.T, path, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(deliverWithin)
	for {
		for _, l := range fileLines(path) {
			if ok(l) {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v in %s", what, deliverWithin, tail(path, 40))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func containsAll(s string, words ...string) bool {
	for _, w := range words {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

// waitMaildir waits until the Maildir directory dir (a new/ directory) holds at
// least n messages and returns them all, by file name (which begins with the
// delivery time).
func waitMaildir(t *testing.T, dir string, n int) [][]byte {
	t.Helper()
	deadline := time.Now().Add(deliverWithin)
	for {
		msgs := readMaildir(t, dir)
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d messages after %v, want %d", dir, len(msgs), deliverWithin, n)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// readMaildir returns the messages of a Maildir new/ directory now.
func readMaildir(t *testing.T, dir string) [][]byte {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var msgs [][]byte
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, b)
	}
	return msgs
}

// withSubject returns the one message whose Subject: is subject, failing the test
// when there is none or more than one.
func withSubject(t *testing.T, msgs [][]byte, subject string) []byte {
	t.Helper()
	var found [][]byte
	for _, m := range msgs {
		if bytes.Contains(m, []byte("\nSubject: "+subject+"\n")) {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d messages with Subject %q among %d, want 1", len(found), subject, len(msgs))
	}
	return found[0]
}

// lfForm is what a Maildir holds of content received as CRLF lines: every CRLF
// written as LF, every other byte as it is (qmail, Postfix, Dovecot and mtad agree).
func lfForm(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }

// traceFields checks that a stored message is the LF form of sent, byte for byte,
// after the trace fields the MTAs on the way prepended, and returns those fields
// (each unfolded) from the top down.
func traceFields(t *testing.T, stored, sent []byte) []string {
	t.Helper()
	want := lfForm(sent)
	if !bytes.HasSuffix(stored, want) {
		t.Fatalf("stored message does not end with the content sent.\nstored:\n%s\nsent (LF form):\n%s", stored, want)
	}
	var fields []string
	for line := range strings.Lines(string(stored[:len(stored)-len(want)])) {
		switch {
		case line[0] == ' ' || line[0] == '\t':
			if len(fields) == 0 {
				t.Fatalf("stored message starts with a continuation line %q", line)
			}
			fields[len(fields)-1] += " " + strings.TrimSpace(line)
		default:
			fields = append(fields, strings.TrimRight(line, "\n"))
		}
	}
	for _, f := range fields {
		name, _, _ := strings.Cut(f, ":")
		switch strings.ToLower(name) {
		case "return-path", "delivered-to", "x-original-to", "received":
		default:
			t.Errorf("stored message has %q above the content sent: only trace fields belong there", f)
		}
	}
	return fields
}

// fieldsNamed returns the fields of a list (as traceFields returns them) with a name.
func fieldsNamed(fields []string, name string) []string {
	var out []string
	for _, f := range fields {
		if n, _, _ := strings.Cut(f, ":"); strings.EqualFold(n, name) {
			out = append(out, f)
		}
	}
	return out
}

// portOf is the port of a host:port address.
func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// queuedAs is the queue id in a 250 reply ("... queued as ID" for Postfix and
// mtad alike).
var queuedAs = regexp.MustCompile(`queued as ([0-9A-Za-z]+)`)

func queueID(t *testing.T, reply string) string {
	t.Helper()
	m := queuedAs.FindStringSubmatch(reply)
	if m == nil {
		t.Fatalf("no queue id in %q", reply)
	}
	return m[1]
}

// transaction is one message an SMTP client sends, with the MAIL and RCPT lines
// as they go on the wire (DSN and BODY parameters included).
type transaction struct {
	mail    string   // "MAIL FROM:<a@b> BODY=8BITMIME"
	rcpts   []string // "RCPT TO:<c@d> NOTIFY=SUCCESS"
	content []byte   // CRLF lines
}

// submit sends one transaction to an SMTP server over a fresh connection and
// returns the reply to the final dot, which must be 250.
func submit(t *testing.T, addr, helo string, tx transaction) string {
	t.Helper()
	c := smtptest.Dial(t, addr)
	c.Cmd("EHLO "+helo, "250")
	c.Cmd(tx.mail, "250")
	for _, r := range tx.rcpts {
		c.Cmd(r, "250")
	}
	reply := c.Data(tx.content, "250")
	c.Cmd("QUIT", "221")
	return reply
}

// message builds a message with every header field a receiving MTA might
// otherwise add (so that nothing but trace fields is added on the way), the given
// subject, extra header lines and body; lines are CRLF.
func message(from, to, subject, extraHeaders, body string) []byte {
	h := "From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject +
		"\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <" + subject + "@interop.test>\r\n" + extraHeaders
	return []byte(h + "\r\n" + body)
}
