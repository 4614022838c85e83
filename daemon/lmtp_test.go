package daemon

// End to end through an lmtp channel: mtad routes a domain to a channel with the lmtp
// keyword, whose server is an in-process go-smtp server in LMTP mode, and each
// recipient's own post-DATA reply decides its fate.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// lmtpStore is an LMTP server that answers each recipient after DATA with what
// its script says for that recipient's n-th delivery (0 first).
type lmtpStore struct {
	script func(to string, attempt int) error

	mu        sync.Mutex
	attempts  map[string]int
	delivered map[string][][]byte // recipient -> contents it accepted
	from      []string
}

func newLMTPStore(t *testing.T, network, addr string, script func(to string, attempt int) error) (*lmtpStore, net.Listener) {
	t.Helper()
	s := &lmtpStore{script: script, attempts: map[string]int{}, delivered: map[string][][]byte{}}
	srv := smtp.NewServer(s)
	srv.LMTP = true
	srv.Domain = "store.test"
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s, l
}

func (s *lmtpStore) NewSession(*smtp.Conn) (smtp.Session, error) { return &lmtpStoreSession{s: s}, nil }

// got returns what a recipient accepted so far.
func (s *lmtpStore) got(to string) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.delivered[to])
}

func (s *lmtpStore) tries(to string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[to]
}

type lmtpStoreSession struct {
	s     *lmtpStore
	from  string
	rcpts []string
}

func (ss *lmtpStoreSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from, ss.rcpts = from, nil
	return nil
}

func (ss *lmtpStoreSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

func (ss *lmtpStoreSession) Data(r io.Reader) error {
	return fmt.Errorf("the LMTP server called Data instead of LMTPData")
}

// LMTPData gives each recipient its own status after the content: the point of
// LMTP, and what the channel must turn into per-recipient outcomes.
func (ss *lmtpStoreSession) LMTPData(r io.Reader, sc smtp.StatusCollector) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.s.from = append(ss.s.from, ss.from)
	for _, to := range ss.rcpts {
		n := ss.s.attempts[to]
		ss.s.attempts[to] = n + 1
		err := ss.s.script(to, n)
		if err == nil {
			ss.s.delivered[to] = append(ss.s.delivered[to], b)
		}
		sc.SetStatus(to, err)
	}
	return nil
}

func (ss *lmtpStoreSession) Reset()        { ss.from, ss.rcpts = "", nil }
func (ss *lmtpStoreSession) Logout() error { return nil }

// The store delivers ok1 and ok2, says 452 to full the first time (requeued, then
// delivered on the retry) and 550 to gone (returned to the sender): every outcome
// is per recipient, in mail.log, and the content arrives byte for byte.
func TestLMTPChannelPerRecipient(t *testing.T) {
	script := func(to string, attempt int) error {
		switch {
		case strings.HasPrefix(to, "gone@"):
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no mailbox gone-plugh here"}
		case strings.HasPrefix(to, "full@") && attempt == 0:
			return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full-xyzzy over quota"}
		}
		return nil
	}
	cases := []struct {
		name    string
		network string
		daemon  func(l net.Listener) string // the channel's daemon (and port) keywords
	}{
		{"unix socket", "unix", func(l net.Listener) string { return "daemon " + l.Addr().String() }},
		{"tcp", "tcp", func(l net.Listener) string {
			return fmt.Sprintf("daemon 127.0.0.1 port %d", l.Addr().(*net.TCPAddr).Port)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if tc.network == "unix" {
				addr = filepath.Join(t.TempDir(), "lmtp.sock")
			}
			store, l := newLMTPStore(t, tc.network, addr, script)
			data := t.TempDir()
			d := startDaemonAt(t, lmtpStoreConfig(t, tc.daemon(l)), data)
			body := []byte("Subject: to the store\r\nMessage-ID: <lmtp1@test>\r\n\r\n.leading dot\r\n..two\r\nbin \x01\xff caf\xc3\xa9\r\nlast\r\n")
			c := dial(t, d.Addr().String())
			c.Cmd("EHLO client.test", "250")
			rcpts := []string{"ok1@store.test", "full@store.test", "gone@store.test", "ok2@store.test"}
			id := queueID(c.Send("me@localhost", rcpts, body))
			c.Cmd("QUIT", "221")

			q := regexp.QuoteMeta(id)
			log := waitLogMatch(t, data, 15*time.Second,
				` store D .* ok1@store\.test `+q+` lmtp;250 `,
				` store D .* ok2@store\.test `+q,
				` store Q .* full@store\.test `+q+` .*mailbox full-xyzzy over quota`,
				` store R .* gone@store\.test `+q+` .*no mailbox gone-plugh here`,
				` store D .* full@store\.test `+q,
			)
			for _, to := range []string{"ok1@store.test", "ok2@store.test", "full@store.test"} {
				got := store.got(to)
				if len(got) != 1 {
					t.Fatalf("%s received %d copies, want 1\n%s", to, len(got), log)
				}
				if !bytes.HasPrefix(got[0], []byte("Received:")) || !bytes.HasSuffix(got[0], body) {
					t.Errorf("%s: content differs:\n got %q\nwant our Received: then %q", to, got[0], body)
				}
			}
			if n := store.tries("full@store.test"); n != 2 {
				t.Errorf("full offered %d times, want 2 (452 then 250)", n)
			}
			if n := store.tries("ok1@store.test"); n != 1 {
				t.Errorf("ok1 offered %d times, want 1: a delivered recipient must not be retried", n)
			}
			if n := store.tries("gone@store.test"); n != 1 {
				t.Errorf("gone offered %d times, want 1: a 5xx is final", n)
			}
			dsn := string(waitMaildir(t, data, "me", 1)[0])
			for _, want := range []string{"Action: failed", "gone@store.test", "no mailbox gone-plugh here", "5.1.1"} {
				if !strings.Contains(dsn, want) {
					t.Errorf("notice lacks %q:\n%s", want, dsn)
				}
			}
			for _, other := range []string{"ok1@store.test", "full@store.test"} {
				if strings.Contains(dsn, "Final-Recipient: rfc822;"+other) {
					t.Errorf("notice reports %s, which was delivered:\n%s", other, dsn)
				}
			}
		})
	}
}
