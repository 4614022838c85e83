package channels

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"mtad.dev/mta/maillog"
)

// logTarget is a mail.log and a debug directory for one client.
type logTarget struct {
	mlog    *maillog.Logger
	logPath string
	dir     string
}

func newLogTarget(t *testing.T) *logTarget {
	t.Helper()
	d := t.TempDir()
	lt := &logTarget{logPath: filepath.Join(d, "mail.log"), dir: filepath.Join(d, "log")}
	l, err := maillog.Open(lt.logPath, maillog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lt.mlog = l
	t.Cleanup(func() { l.Close() })
	return lt
}

func (lt *logTarget) opts(o *SMTPOptions) {
	o.Channel = "tcp_local"
	o.MailLog = lt.mlog
	o.LogConnection = 2
	o.MasterDebug = true
	o.DebugDir = lt.dir
}

func (lt *logTarget) mailLog(t *testing.T) string {
	t.Helper()
	lt.mlog.Close()
	b, err := os.ReadFile(lt.logPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// transcripts returns the master_debug files' contents.
func (lt *logTarget) transcripts(t *testing.T) []string {
	t.Helper()
	ents, _ := os.ReadDir(lt.dir)
	var out []string
	for _, e := range ents {
		if !regexp.MustCompile(`^tcp_local_master\.log-[0-9A-F]{10}$`).MatchString(e.Name()) {
			t.Errorf("transcript name %q", e.Name())
		}
		b, err := os.ReadFile(filepath.Join(lt.dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

func inOrder(t *testing.T, s string, want ...string) {
	t.Helper()
	at := 0
	for _, w := range want {
		i := strings.Index(s[at:], w)
		if i < 0 {
			t.Fatalf("missing (in order) %q in:\n%s", w, s)
		}
		at += i + len(w)
	}
}

func TestSMTPConnectionRecordsAndMasterDebug(t *testing.T) {
	be := &sink{}
	port := startSink(t, be, nil)
	lt := newLogTarget(t)
	c := newClient(t, port, lt.opts)
	for range 2 {
		wantDelivered(t, c.Deliver(testCtx(t), msgOf([]byte("Subject: x\r\n\r\n.dot\r\n"), "s@d", "a@d")), 1)
	}
	c.Close() // QUIT on the cached connection: its C record

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().(*net.TCPAddr).Port
	l.Close()
	newClient(t, dead, lt.opts).Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d"))

	log := lt.mailLog(t)
	tr := `TCP\|127\.0\.0\.1\|\d+\|127\.0\.0\.1\|` + regexp.QuoteMeta(itoa(port))
	for _, re := range []string{
		`(?m)^\S+ \S+ tcp_local - O ` + tr + ` SMTP/\[127\.0\.0\.1\] 0$`,
		`(?m)^\S+ \S+ tcp_local - C ` + tr + ` SMTP/\[127\.0\.0\.1\] 2 QUIT$`,
		`(?m)^\S+ \S+ tcp_local - Y TCP\|\|\|127\.0\.0\.1\|` + itoa(dead) + ` SMTP/\[127\.0\.0\.1\] 0 .*refused`,
	} {
		if !regexp.MustCompile(re).MatchString(log) {
			t.Errorf("mail.log has no line matching %s:\n%s", re, log)
		}
	}
	ts := lt.transcripts(t)
	if len(ts) != 1 {
		t.Fatalf("%d transcripts, want 1 (one connection carried both messages)", len(ts))
	}
	inOrder(t, ts[0], "# outbound connection", "S: 220 sink.test", "C: EHLO client.test", "S: 250-",
		"C: MAIL FROM:<s@d>", "C: RCPT TO:<a@d>", "C: DATA", "S: 354", "C: Subject: x", "C: ..dot", "C: .", "S: 250",
		"C: RSET", "C: MAIL FROM:<s@d>", "C: QUIT", "S: 221", "# closed: QUIT; 2 transactions")
}

func TestSMTPMasterDebugTLS(t *testing.T) {
	pki := newPKI(t, "127.0.0.1")
	_, port, overTLS := tlsSink(t, pki.serverConfig())
	lt := newLogTarget(t)
	c := newClient(t, port, func(o *SMTPOptions) {
		lt.opts(o)
		o.TLS = TLSMust
		o.TLSConfig = &tls.Config{RootCAs: pki.roots}
	})
	wantDelivered(t, c.Deliver(testCtx(t), msgOf([]byte("Subject: secret\r\n\r\nhi\r\n"), "s@d", "a@d")), 1)
	c.Close()
	if len(*overTLS) != 1 || !(*overTLS)[0] {
		t.Fatalf("not delivered over TLS: %v", *overTLS)
	}
	ts := lt.transcripts(t)
	if len(ts) != 1 {
		t.Fatalf("%d transcripts", len(ts))
	}
	inOrder(t, ts[0], "C: STARTTLS", "S: 220", "# TLS TLS1.3 established", "C: MAIL FROM:<s@d>", "C: Subject: secret", "C: QUIT", "# closed: QUIT")
	for _, r := range ts[0] {
		if r == 0xfffd || (r < ' ' && r != '\n') {
			t.Fatalf("transcript holds binary (TLS records?):\n%q", ts[0])
		}
	}
}

func TestSMTPNoRecordsWhenOff(t *testing.T) {
	be := &sink{}
	port := startSink(t, be, nil)
	lt := newLogTarget(t)
	c := newClient(t, port, func(o *SMTPOptions) { o.Channel, o.MailLog, o.DebugDir = "tcp_local", lt.mlog, lt.dir })
	wantDelivered(t, c.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d")), 1)
	c.Close()
	if log := lt.mailLog(t); log != "" {
		t.Errorf("LOG_CONNECTION=0 wrote %q", log)
	}
	if ts := lt.transcripts(t); len(ts) != 0 {
		t.Errorf("no master_debug, yet %d transcripts", len(ts))
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
