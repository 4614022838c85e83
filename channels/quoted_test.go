package channels

import (
	"strings"
	"testing"
)

// The wire: a local part that arrived quoted leaves quoted.
func TestSMTPQuotedLocalPartOnTheWire(t *testing.T) {
	port, transcript := recorder(t, "250-rec.test\r\n250 PIPELINING\r\n")
	c := newClient(t, port, nil)
	res := c.Deliver(testCtx(t), msgOf([]byte("Subject: q\r\n\r\nbody\r\n"), `say "hi"@example.org`, "john doe@example.com", "plain@example.com"))
	c.Close()
	for i, r := range res {
		if r.Err != nil {
			t.Errorf("recipient %d: %v", i, r.Err)
		}
	}
	got := transcript()
	for _, want := range []string{
		`C: MAIL FROM:<"say \"hi\""@example.org>`,
		`C: RCPT TO:<"john doe"@example.com>`,
		`C: RCPT TO:<plain@example.com>`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("transcript lacks %s:\n%s", want, got)
		}
	}
}
