package jobctl

import (
	"testing"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/status"
)

// A result whose Remote is no DNS host (NoRemoteMTA: an LMTP store on a Unix
// socket) gives a notice without Remote-MTA; its "lmtp;" reply is typed smtp.
func TestNoticeWithoutRemoteMTA(t *testing.T) {
	p := &program{result: func(_ *channels.Message, r channels.Rcpt) channels.Result {
		return channels.Result{Err: status.New(550, "5.1.1", "no mailbox"), Remote: "/run/lmtp.sock (UNIX|/run/lmtp.sock)",
			Reply: "lmtp;550 5.1.1 no mailbox", NoRemoteMTA: true}
	}}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"store": p}})
	h.start()
	h.enqueue(env("alice@a.example", rcpt("store", "bob@store.example")))
	waitFor(t, "returned", func() bool { return h.q.len() == 0 && len(h.noticeList()) == 1 })
	pn := parseNotice(t, h.noticeList()[0].content)
	if len(pn.rcpts) != 1 {
		t.Fatalf("notice lists %d recipients", len(pn.rcpts))
	}
	if got := pn.rcpts[0].Get("Remote-MTA"); got != "" {
		t.Errorf("Remote-MTA %q, want none", got)
	}
	if got := pn.rcpts[0].Get("Diagnostic-Code"); got != "smtp; 550 5.1.1 no mailbox" {
		t.Errorf("Diagnostic-Code %q", got)
	}
}
