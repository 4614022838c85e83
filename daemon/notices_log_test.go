package daemon

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// A bounce is enqueued like any message, through intake, and so has its own E
// line: source l (the local channel, as for local submission), destination the
// channel of the sender's address, plain E, sender <>, a queue id of its own. It
// is logged before the R line of the recipient it reports (the notice is queued
// first, then the recipient is marked returned), and is delivered (D) like any
// message.
func TestBounceHasEnqueueRecord(t *testing.T) {
	remote := newScripted(t, "127.0.0.1:0", func(to string, attempt int) error {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	})
	data := t.TempDir()
	d := startDaemonAt(t, jobsRelayConfig(t, remote.port, ""), data)
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	id := queueID(c.Send("sender@localhost", []string{"gone@remote.example"}, []byte("Subject: s\r\n\r\nb\r\n")))
	c.Cmd("QUIT", "221")

	const notice = ` l l E \d+ <> rfc822;sender@localhost sender@localhost (\S+)`
	log := waitLogMatch(t, data, 10*time.Second, notice, ` tcp_local R .* gone@remote\.example `+id+` `,
		` l D \d+ <> rfc822;sender@localhost sender@localhost \S+ maildir;`)
	e := regexp.MustCompile(`(?m)^\S+ \S+` + notice + `.*$`).FindStringSubmatchIndex(log)
	noticeID := log[e[2]:e[3]]
	if noticeID == id {
		t.Errorf("the notice has the original's queue id %s", id)
	}
	r := strings.Index(log, " tcp_local R ")
	if e[0] > r {
		t.Errorf("the notice's E line comes after the R line it reports:\n%s", log)
	}
	if !regexp.MustCompile(` l D \d+ <> rfc822;sender@localhost sender@localhost ` + regexp.QuoteMeta(noticeID) + ` `).MatchString(log) {
		t.Errorf("no D line for the notice %s:\n%s", noticeID, log)
	}
}
