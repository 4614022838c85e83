package daemon

// End to end checks of the notices that report a message's outcome: success
// notices for NOTIFY=SUCCESS (RFC 3461 §6.2) and one report per message and
// event, with mtad delivering to its Maildirs and to SMTP servers on loopback.

import (
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// dsnServer is an SMTP server on loopback that offers DSN and keeps the RCPT
// parameters it was given.
type dsnServer struct {
	port int

	mu    sync.Mutex
	rcpts map[string]smtp.RcptOptions
}

func newDSNServer(t *testing.T) *dsnServer {
	t.Helper()
	s := &dsnServer{rcpts: map[string]smtp.RcptOptions{}}
	srv := smtp.NewServer(s)
	srv.Domain, srv.EnableDSN = "dsn.test", true
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *dsnServer) NewSession(*smtp.Conn) (smtp.Session, error) { return dsnSession{s}, nil }

func (s *dsnServer) rcpt(to string) (smtp.RcptOptions, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.rcpts[to]
	return o, ok
}

type dsnSession struct{ s *dsnServer }

func (dsnSession) Mail(string, *smtp.MailOptions) error { return nil }
func (ss dsnSession) Rcpt(to string, o *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if o != nil {
		ss.s.rcpts[to] = *o
	}
	return nil
}
func (dsnSession) Data(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err }
func (dsnSession) Reset()                 {}
func (dsnSession) Logout() error          { return nil }

// sitesConfig routes each domain of ports to its own smtp channel (tcp_<label>)
// on 127.0.0.1 at that port, and localhost to the local channel.
func sitesConfig(t *testing.T, ports map[string]int) string {
	t.Helper()
	var rules, chans strings.Builder
	for domain, port := range ports {
		label := strings.Split(domain, ".")[0]
		fmt.Fprintf(&rules, "%s   $U%%$D@%s-daemon\n", domain, label)
		fmt.Fprintf(&chans, "tcp_%s smtp nomx single_sys daemon 127.0.0.1 port %d\n%s-daemon\n\n", label, port, label)
	}
	dir := t.TempDir()
	writeConfig(t, dir, map[string]string{
		"imta.cnf": rules.String() + "localhost   $U%localhost@localhost\n\nl\nlocalhost\n\n" + chans.String() +
			"tcp_local smtp\ntcp-daemon\n",
	})
	return dir
}

// NOTIFY=SUCCESS on one message to three places: alice's Maildir here (a
// "delivered" notice), a server without DSN ("relayed": it got no NOTIFY or
// ORCPT), and a server with DSN (no notice from us: it got NOTIFY and ORCPT and
// reports itself). The two notices come as one report, with each recipient's
// RFC 3464 fields, and only the header of the original (RET=FULL is for
// failures).
func TestSuccessNoticesEndToEnd(t *testing.T) {
	plain := newScripted(t, "127.0.0.1:0", nil)
	dsnHop := newDSNServer(t)
	data := t.TempDir()
	d := startDaemonAt(t, sitesConfig(t, map[string]int{"plain.example": plain.port, "dsn.example": dsnHop.port}), data)
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	c.Cmd("MAIL FROM:<sender@localhost> RET=FULL ENVID=env-77", "250")
	for _, to := range []string{"alice@localhost", "far@plain.example", "onward@dsn.example"} {
		c.Cmd("RCPT TO:<"+to+"> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;"+to, "250")
	}
	id := queueID(c.Data([]byte("Subject: tell me\r\nMessage-ID: <s1@test>\r\n\r\nbody\r\n"), "250"))
	c.Cmd("QUIT", "221")

	q := regexp.QuoteMeta(id)
	waitLogMatch(t, data, 10*time.Second, ` l D .* alice@localhost `+q, ` tcp_plain D .* far@plain\.example `+q,
		` tcp_dsn D .* onward@dsn\.example `+q, ` l l E \d+ <> rfc822;sender@localhost sender@localhost `)
	notices := waitMaildir(t, data, "sender", 1)
	settleOutcomes(t, d)
	if n := len(waitMaildir(t, data, "sender", 1)); n != 1 {
		t.Fatalf("%d notices, want one success report", n)
	}
	rep := parseReport(t, notices[0])
	if rep.subject != "Delivery Status Notification (Success)" || rep.original != "text/rfc822-headers" ||
		rep.perMsg.Get("Original-Envelope-Id") != "env-77" {
		t.Errorf("subject %q, original as %q, ENVID %q", rep.subject, rep.original, rep.perMsg.Get("Original-Envelope-Id"))
	}
	if len(rep.rcpts) != 2 {
		t.Errorf("report lists %d recipients, want alice and far", len(rep.rcpts))
	}
	if f := rep.recipientFields("alice@localhost"); f == nil || f.Get("Action") != "delivered" || f.Get("Status") != "2.0.0" ||
		f.Get("Remote-MTA") != "" || f.Get("Original-Recipient") != "rfc822; alice@localhost" {
		t.Errorf("alice: %+v", f)
	}
	if f := rep.recipientFields("far@plain.example"); f == nil || f.Get("Action") != "relayed" ||
		f.Get("Remote-MTA") != "dns; 127.0.0.1" || !strings.HasPrefix(f.Get("Diagnostic-Code"), "smtp; 250 ") {
		t.Errorf("far: %+v", f)
	}
	if f := rep.recipientFields("onward@dsn.example"); f != nil {
		t.Errorf("reported onward, whose next hop took the DSN request over: %+v", f)
	}
	if o, ok := dsnHop.rcpt("onward@dsn.example"); !ok || len(o.Notify) != 2 || o.OriginalRecipient != "onward@dsn.example" {
		t.Errorf("the DSN server got RCPT options %+v (seen %v), want NOTIFY and ORCPT passed on", o, ok)
	}
}

// settleOutcomes waits until the daemon has nothing queued, so that a notice
// that should not exist would have been written by then.
func settleOutcomes(t *testing.T, d *Daemon) {
	t.Helper()
	if !awaitCondition(10*time.Second, func() bool { return d.Jobs().Totals().Total.Queued.Messages == 0 }) {
		t.Fatalf("still queued after 10 s: %+v", d.Jobs().Totals().Total.Queued)
	}
	syncMailLog(t, d)
}

// A message whose recipients fail at three destinations (three SMTP servers on
// loopback, each behind its own channel) gets one failure report listing all
// three, as Postfix sends one bounce per message, not one per destination.
func TestOneBounceForThreeDestinations(t *testing.T) {
	refuse := func(to string, attempt int) error {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user " + to}
	}
	ports := map[string]int{}
	for _, domain := range []string{"b.example", "c.example", "d.example"} {
		ports[domain] = newScripted(t, "127.0.0.1:0", refuse).port
	}
	data := t.TempDir()
	d := startDaemonAt(t, sitesConfig(t, ports), data)
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	rcpts := []string{"u@b.example", "v@c.example", "w@d.example"}
	id := queueID(c.Send("sender@localhost", rcpts, []byte("Subject: three\r\n\r\nbody\r\n")))
	c.Cmd("QUIT", "221")

	q := regexp.QuoteMeta(id)
	waitLogMatch(t, data, 10*time.Second, ` tcp_b R .* `+q, ` tcp_c R .* `+q, ` tcp_d R .* `+q)
	settleOutcomes(t, d)
	notices := waitMaildir(t, data, "sender", 1)
	if len(notices) != 1 {
		t.Fatalf("%d failure notices for one message, want 1", len(notices))
	}
	rep := parseReport(t, notices[0])
	for _, to := range rcpts {
		if f := rep.recipientFields(to); f == nil || f.Get("Action") != "failed" || !strings.Contains(f.Get("Diagnostic-Code"), "no such user "+to) {
			t.Errorf("%s: %+v", to, f)
		}
	}
	if log := waitLogMatch(t, data, time.Second, ` l l E `); len(regexp.MustCompile(` l l E \d+ <> `).FindAllString(log, -1)) != 1 {
		t.Errorf("mail.log shows other than one notice enqueued:\n%s", log)
	}
}
