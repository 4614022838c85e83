package reliability

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mtad.dev/mta/daemon"
	"mtad.dev/mta/internal/smtptest"
)

// binaries builds mtad and mtactl once per test binary run.
var binaries = struct {
	once              sync.Once
	dir, mtad, mtactl string
	err               error
}{}

func buildBinaries(t *testing.T) (mtad, mtactl string) {
	t.Helper()
	binaries.once.Do(func() {
		dir, err := os.MkdirTemp("", "reliability-bin-")
		if err != nil {
			binaries.err = err
			return
		}
		binaries.dir = dir
		binaries.mtad = filepath.Join(dir, "mtad")
		binaries.mtactl = filepath.Join(dir, "mtactl")
		for _, b := range []struct{ out, pkg string }{
			{binaries.mtad, "mtad.dev/mta/cmd/mtad"},
			{binaries.mtactl, "mtad.dev/mta/cmd/mtactl"},
		} {
			if out, err := exec.Command("go", "build", "-o", b.out, b.pkg).CombinedOutput(); err != nil {
				binaries.err = fmt.Errorf("go build %s: %w\n%s", b.pkg, err, out)
				return
			}
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

// writeFiles writes a configuration given as file contents into dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil { // sieve/USER.sieve
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// mtactl runs the mtactl binary and returns its combined output.
func mtactl(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

// proc is one mtad child process.
type proc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
	logs *syncBuffer
}

// startMtad starts the mtad binary and waits until it accepts mail.
func startMtad(t *testing.T, bin, configDir, data string) *proc {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	args := []string{"-data", data, "-listen", "127.0.0.1:0", "-ready-file", ready, "-log-level", "warn", "-shutdown-grace", "5s"}
	if configDir != "" {
		args = append(args, "-config", configDir)
	}
	p := &proc{cmd: exec.Command(bin, args...), done: make(chan struct{}), logs: &syncBuffer{}}
	p.cmd.Stderr = p.logs
	p.cmd.Stdout = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(ready); err == nil && strings.HasSuffix(string(b), "\n") {
			p.addr = strings.TrimSpace(string(b))
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("mtad exited before it was ready: %v\n%s", p.cmd.ProcessState, p.logs)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("mtad did not become ready in 20 s\n%s", p.logs)
	return nil
}

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop shuts mtad down gracefully.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.kill()
		t.Errorf("mtad did not stop on SIGTERM in 20 s")
	}
}

// syncBuffer collects output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDaemon runs mtad in-process with a configuration directory (text files,
// compiled at start) and a fresh data directory.
func startDaemon(t *testing.T, configDir string) (*daemon.Daemon, string) {
	t.Helper()
	data := t.TempDir()
	return startDaemonData(t, configDir, data), data
}

func startDaemonData(t *testing.T, configDir, data string) *daemon.Daemon {
	t.Helper()
	d, err := daemon.Start(context.Background(), daemon.Options{
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
		d.Shutdown(ctx)
	})
	return d
}

// ---- SMTP client -------------------------------------------------------------

// dial connects a raw SMTP client and requires the 220 greeting. The minute-long
// deadline leaves room for a daemon that is busy recovering or short of disk.
func dial(t *testing.T, addr string) *smtptest.Client {
	t.Helper()
	return smtptest.Dial(t, addr, smtptest.Deadline(60*time.Second))
}

// sendOne is the load generator's transaction: one connection, one message. It
// reports whether the message was acknowledged with 250 after the final dot.
func sendOne(addr, rcpt, content string) bool {
	return smtptest.SendOne(addr, smtptest.Transaction{Helo: "load.test", From: "load@localhost", To: []string{rcpt}, Content: content})
}

// ---- the sink: a healthy remote SMTP server ----------------------------------

// sink is a remote SMTP server on loopback. It keys what it receives by the token
// in the Subject and keeps, per token, how many times it arrived and the SHA-256
// of each copy's body (everything after the header's blank line): a soak sends
// too much mail to keep it whole.
type sink struct {
	port int
	mu   sync.Mutex
	got  map[string][][32]byte
	rcpt map[string][]string
	n    int
}

func newSink(t *testing.T) *sink { return newSinkOn(t, "127.0.0.1:0") }

// newSinkOn starts a sink on a given loopback address.
func newSinkOn(t *testing.T, addr string) *sink {
	t.Helper()
	s := &sink{got: map[string][][32]byte{}, rcpt: map[string][]string{}}
	srv := smtptest.StartSink(t, smtptest.SinkConfig{Addr: addr, Record: s.record})
	s.port = srv.Port
	return s
}

var subjectRE = regexp.MustCompile(`(?m)^Subject: (\S+)\r?$`)

func (s *sink) record(m smtptest.Message) {
	to, data := m.To, m.Data
	tok := ""
	if m := subjectRE.FindSubmatch(data); m != nil {
		tok = string(m[1])
	}
	body := data
	if i := bytes.Index(data, []byte("\r\n\r\n")); i >= 0 {
		body = data[i+4:]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got[tok] = append(s.got[tok], sha256.Sum256(body))
	s.rcpt[tok] = append(s.rcpt[tok], to...)
	s.n++
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *sink) copies(tok string) [][32]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][32]byte(nil), s.got[tok]...)
}

// waitToken waits until the message with token arrived.
func (s *sink) waitToken(t *testing.T, tok string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for len(s.copies(tok)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("sink: %s not received in %v", tok, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitAll waits, at most within, until every token of acked has arrived at least
// once; it returns how many have not.
func (s *sink) waitAll(acked map[string][32]byte, within time.Duration) int {
	deadline := time.Now().Add(within)
	for {
		missing := 0
		for tok := range acked {
			if len(s.copies(tok)) == 0 {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			return missing
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// message builds a message whose body is unique to token; it returns the content
// (CRLF lines, no line starting with a dot) and the SHA-256 of its body.
func message(token string, size int) (string, [32]byte) {
	var body strings.Builder
	h := sha256.Sum256([]byte(token))
	for body.Len() < size {
		h = sha256.Sum256(h[:])
		fmt.Fprintf(&body, "%x\r\n", h)
	}
	b := body.String()
	return "Subject: " + token + "\r\nMessage-ID: <" + token + "@reliability.test>\r\n\r\n" + b, sha256.Sum256([]byte(b))
}

// readLog returns mail.log's lines.
func readLog(data string) []string {
	b, _ := os.ReadFile(filepath.Join(data, "mail.log"))
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// waitLogLine waits until some mail.log line satisfies ok, and returns it.
func waitLogLine(t *testing.T, data string, within time.Duration, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, l := range readLog(data) {
			if ok(l) {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("mail.log has no %s after %v:\n%s", what, within, strings.Join(readLog(data), "\n"))
		}
		time.Sleep(25 * time.Millisecond)
	}
}
