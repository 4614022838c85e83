package daemon

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// lmtpStoreConfig routes store.test to an lmtp channel whose server is at
// daemonKeywords, and localhost to the local channel (where notices land).
func lmtpStoreConfig(t *testing.T, daemonKeywords string) string {
	t.Helper()
	dir := t.TempDir()
	writeConfig(t, dir, map[string]string{
		"imta.cnf": fmt.Sprintf(`store.test   $U%%$D@store-daemon
localhost    $U%%localhost@localhost

l
localhost

store lmtp %s backoff "pt1s"
store-daemon

tcp_local smtp
tcp-daemon
`, daemonKeywords),
	})
	return dir
}

// The failure notice for a recipient an LMTP store refused: the reply is an SMTP
// reply (RFC 3464 registers no "lmtp" diagnostic type), and the Remote-MTA field
// names a DNS host only when there is one: a store on a Unix socket has none, so
// the field is left out rather than showing the socket path as a host name.
// mail.log keeps saying "lmtp;" so the administrator sees which protocol answered.
func TestLMTPFailureNoticeFields(t *testing.T) {
	script := func(to string, attempt int) error {
		if strings.HasPrefix(to, "gone@") {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no mailbox gone-plugh here"}
		}
		return nil
	}
	cases := []struct {
		name, network string
		daemon        func(l net.Listener) string
		remoteMTA     string // "" : no Remote-MTA field
	}{
		{"unix socket", "unix", func(l net.Listener) string { return "daemon " + l.Addr().String() }, ""},
		{"tcp", "tcp", func(l net.Listener) string {
			return fmt.Sprintf("daemon 127.0.0.1 port %d", l.Addr().(*net.TCPAddr).Port)
		}, "dns; 127.0.0.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if tc.network == "unix" {
				addr = filepath.Join(t.TempDir(), "lmtp.sock")
			}
			_, l := newLMTPStore(t, tc.network, addr, script)
			data := t.TempDir()
			d := startDaemonAt(t, lmtpStoreConfig(t, tc.daemon(l)), data)
			c := dial(t, d.Addr().String())
			c.Cmd("EHLO client.test", "250")
			id := queueID(c.Send("me@localhost", []string{"gone@store.test"}, []byte("Subject: s\r\n\r\nb\r\n")))
			c.Cmd("QUIT", "221")

			rep := parseReport(t, waitMaildir(t, data, "me", 1)[0])
			f := rep.recipientFields("gone@store.test")
			if f == nil {
				t.Fatalf("notice does not report gone@store.test: %+v", rep.rcpts)
			}
			if got := f.Get("Diagnostic-Code"); !strings.HasPrefix(got, "smtp; 550 5.1.1 ") || !strings.Contains(got, "gone-plugh") {
				t.Errorf("Diagnostic-Code %q, want the reply typed smtp", got)
			}
			if got := f.Get("Remote-MTA"); got != tc.remoteMTA {
				t.Errorf("Remote-MTA %q, want %q", got, tc.remoteMTA)
			}
			waitLogMatch(t, data, 5*time.Second, ` store R .* gone@store\.test `+id+` lmtp;550 `)
		})
	}
}
