package reliability

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mtad.dev/mta/daemon"
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
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
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

// client is a raw SMTP client: it writes exactly what it is told.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.expect("220")
	return c
}

// reply reads one (possibly multi-line) reply; "" at EOF.
func (c *client) reply() string {
	c.t.Helper()
	var all strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		all.WriteString(line)
		if err != nil {
			return all.String()
		}
		if len(line) < 4 || line[3] != '-' {
			return all.String()
		}
	}
}

func (c *client) expect(code string) string {
	c.t.Helper()
	r := c.reply()
	if !strings.HasPrefix(r, code) {
		c.t.Fatalf("want %s, got %q", code, r)
	}
	return r
}

func (c *client) cmd(line, code string) string {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		c.t.Fatal(err)
	}
	return c.expect(code)
}

// send sends one message (content has no line starting with a dot) and returns the
// reply to the final dot, without judging it.
func (c *client) send(from string, to []string, content string) string {
	c.t.Helper()
	c.cmd("MAIL FROM:<"+from+">", "250")
	for _, r := range to {
		c.cmd("RCPT TO:<"+r+">", "250")
	}
	c.cmd("DATA", "354")
	if _, err := io.WriteString(c.conn, content+".\r\n"); err != nil {
		c.t.Fatal(err)
	}
	return c.reply()
}

// sendOne is the load generator's transaction: one connection, one message. It
// reports whether the message was acknowledged with 250 after the final dot.
func sendOne(addr, rcpt, content string) bool {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	expect := func(code string) bool {
		for {
			line, err := r.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, code) {
				return false
			}
			if len(line) < 4 || line[3] != '-' {
				return true
			}
		}
	}
	steps := []struct{ send, code string }{
		{"", "220"},
		{"EHLO load.test\r\n", "250"},
		{"MAIL FROM:<load@localhost>\r\n", "250"},
		{"RCPT TO:<" + rcpt + ">\r\n", "250"},
		{"DATA\r\n", "354"},
		{content + ".\r\n", "250"},
	}
	for _, s := range steps {
		if s.send != "" {
			if _, err := io.WriteString(conn, s.send); err != nil {
				return false
			}
		}
		if !expect(s.code) {
			return false
		}
	}
	io.WriteString(conn, "QUIT\r\n")
	return true
}

// ---- the sink: a healthy remote SMTP server ----------------------------------

// sink is a remote SMTP server on loopback. It keys what it receives by the token
// in the Subject and keeps, per token, how many times it arrived and the SHA-256
// of each copy's body (everything after the header's blank line).
type sink struct {
	port int
	srv  *smtp.Server
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
	s.srv = smtp.NewServer(s)
	s.srv.Domain = "sink.test"
	s.srv.AllowInsecureAuth = true
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.ReadTimeout = 30 * time.Second
	s.srv.WriteTimeout = 30 * time.Second
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	go s.srv.Serve(l)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

var subjectRE = regexp.MustCompile(`(?m)^Subject: (\S+)\r?$`)

func (s *sink) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s}, nil }

func (s *sink) record(to []string, data []byte) {
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

type sinkSession struct {
	s  *sink
	to []string
}

func (ss *sinkSession) Mail(string, *smtp.MailOptions) error { ss.to = nil; return nil }
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}
func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.record(ss.to, b)
	return nil
}
func (ss *sinkSession) Reset()        { ss.to = nil }
func (ss *sinkSession) Logout() error { return nil }

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
