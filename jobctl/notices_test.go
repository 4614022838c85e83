package jobctl

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/queue"
	"mtad.dev/mta/status"
)

// parsedNotice is the part of a DSN the tests look at.
type parsedNotice struct {
	subject string
	perMsg  textproto.Header
	rcpts   []textproto.Header
	third   string // content type of the returned original
}

func parseNotice(t *testing.T, raw []byte) parsedNotice {
	t.Helper()
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var pn parsedNotice
	pn.subject = e.Header.Get("Subject")
	mr := e.MultipartReader()
	if mr == nil {
		t.Fatal("notice is not multipart")
	}
	for i := 0; ; i++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := p.Header.ContentType()
		switch i {
		case 1:
			if ct != "message/delivery-status" {
				t.Fatalf("second part %s", ct)
			}
			br := bufio.NewReader(p.Body)
			for first := true; ; first = false {
				h, err := textproto.ReadHeader(br)
				if err != nil {
					t.Fatal(err)
				}
				if first {
					pn.perMsg = h
				} else {
					pn.rcpts = append(pn.rcpts, h)
				}
				if _, err := br.Peek(1); err != nil {
					break
				}
			}
		case 2:
			pn.third = ct
		}
		io.Copy(io.Discard, p.Body)
	}
	return pn
}

// TestNoticesTiming: notices 1 2 3 in hours (RETURN_UNITS=1): a delay notice at
// 1 h and 2 h, the return at 3 h; the message then leaves the queue.
func TestNoticesTiming(t *testing.T) {
	p := &program{result: tempFail("mx.b.example")}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p},
		NoticeUnit: time.Hour,
		Channels: map[string]Channel{"tcp_local": {Notices: Notices{1, 2, 3},
			Backoff: [3]Backoff{Normal: {25 * time.Minute}}}}})
	h.start()
	quiet := rcpt("tcp_local", "quiet@b.example")
	quiet.Notify = "FAILURE"
	id := h.enqueue(env("alice@a.example", rcpt("tcp_local", "bob@b.example"), quiet))
	waitFor(t, "first attempt", func() bool { return len(p.callList()) == 1 })

	h.clock.Set(t0.Add(59 * time.Minute))
	settle()
	if n := len(h.noticeList()); n != 0 {
		t.Fatalf("%d notices before the first age", n)
	}
	h.clock.Set(t0.Add(time.Hour))
	waitFor(t, "first delay notice", func() bool { return len(h.noticeList()) == 1 })
	h.clock.Set(t0.Add(119 * time.Minute))
	settle()
	if n := len(h.noticeList()); n != 1 {
		t.Fatalf("%d notices before the second age", n)
	}
	h.clock.Set(t0.Add(2 * time.Hour))
	waitFor(t, "second delay notice", func() bool { return len(h.noticeList()) == 2 })
	e := mustGet(t, h.q, id)
	if e.Notices != 2 {
		t.Errorf("Envelope.Notices = %d, want 2 (persisted through NoticeRecorder)", e.Notices)
	}
	h.clock.Set(t0.Add(3 * time.Hour))
	waitFor(t, "return", func() bool { return len(h.noticeList()) == 3 && h.q.len() == 0 })

	ns := h.noticeList()
	for i, n := range ns {
		if n.from != "" || len(n.to) != 1 || n.to[0] != "alice@a.example" {
			t.Errorf("notice %d envelope %q -> %v", i, n.from, n.to)
		}
		pn := parseNotice(t, n.content)
		wantAction, wantCount := "delayed", 1 // quiet asked for FAILURE only
		if i == 2 {
			wantAction, wantCount = "failed", 2
		}
		if len(pn.rcpts) != wantCount {
			t.Fatalf("notice %d lists %d recipients, want %d", i, len(pn.rcpts), wantCount)
		}
		for _, r := range pn.rcpts {
			if got := r.Get("Action"); got != wantAction {
				t.Errorf("notice %d Action %q, want %q", i, got, wantAction)
			}
		}
		if i < 2 {
			if got := pn.rcpts[0].Get("Will-Retry-Until"); got != t0.Add(3*time.Hour).Format(time.RFC1123Z) {
				t.Errorf("Will-Retry-Until %q", got)
			}
		} else if got := pn.rcpts[0].Get("Status"); got != "5.4.7" {
			t.Errorf("expired Status %q", got)
		}
		if got := pn.perMsg.Get("Reporting-MTA"); got != "dns; mx1.example.com" {
			t.Errorf("Reporting-MTA %q", got)
		}
	}
}

// TestNoticeCatchUp: a restart long after two ages passed sends one delay notice.
func TestNoticeCatchUp(t *testing.T) {
	p := &program{result: tempFail("mx")}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p}, NoticeUnit: time.Hour,
		Channels: map[string]Channel{"tcp_local": {Notices: Notices{1, 2, 5}}}})
	e := env("alice@a.example", rcpt("tcp_local", "bob@b.example"))
	e.Arrival = t0.Add(-150 * time.Minute)
	h.q.put(e, "Subject: x\r\n\r\nx\r\n")
	h.start()
	waitFor(t, "delay notice", func() bool { return len(h.noticeList()) == 1 })
	settle()
	if n := len(h.noticeList()); n != 1 {
		t.Errorf("%d notices on catch-up, want 1", n)
	}
	if got := mustGet(t, h.q, e.ID).Notices; got != 2 {
		t.Errorf("Notices = %d, want 2", got)
	}
}

func TestPermanentFailureReturnsAtOnce(t *testing.T) {
	p := &program{result: func(_ *channels.Message, r channels.Rcpt) channels.Result {
		if strings.HasPrefix(r.Addr, "ok") {
			return channels.Result{Remote: "mx.b.example", Reply: "smtp;250 ok"}
		}
		return channels.Result{Err: status.New(550, "5.1.1", "no such user"), Remote: "mx.b.example (TCP|127.0.0.1|1|127.0.0.1|25)",
			Reply: "smtp;550 5.1.1 no such user"}
	}}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p}})
	h.start()
	never := rcpt("tcp_local", "never@b.example")
	never.Notify = "NEVER"
	bad := rcpt("tcp_local", "bad@b.example")
	bad.ORCPT = "rfc822;Bad@B.example"
	e := env("alice@a.example", rcpt("tcp_local", "ok@b.example"), bad, never)
	e.RET = "FULL"
	e.EnvID = "E1"
	h.enqueue(e)
	waitFor(t, "done", func() bool { return h.q.len() == 0 })
	ns := h.noticeList()
	if len(ns) != 1 {
		t.Fatalf("%d notices, want 1", len(ns))
	}
	pn := parseNotice(t, ns[0].content)
	if len(pn.rcpts) != 1 {
		t.Fatalf("notice lists %d recipients, want only bad@ (NOTIFY=NEVER excluded)", len(pn.rcpts))
	}
	r := pn.rcpts[0]
	checks := map[string]string{
		"Final-Recipient": "rfc822; bad@b.example", "Original-Recipient": "rfc822; Bad@B.example",
		"Action": "failed", "Status": "5.1.1", "Remote-MTA": "dns; mx.b.example",
		"Diagnostic-Code": "smtp; 550 5.1.1 no such user",
	}
	for k, v := range checks {
		if got := r.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if pn.perMsg.Get("Original-Envelope-Id") != "E1" || pn.third != "message/rfc822" {
		t.Errorf("ENVID %q, original as %q", pn.perMsg.Get("Original-Envelope-Id"), pn.third)
	}
	if pn.subject != "Delivery Status Notification (Failure)" {
		t.Errorf("subject %q", pn.subject)
	}
}

// TestNoBounceLoops: a failed message with the empty sender is reported to the
// postmaster; a failed <> message to the postmaster is dropped.
func TestNoBounceLoops(t *testing.T) {
	p := &program{result: func(_ *channels.Message, r channels.Rcpt) channels.Result {
		return channels.Result{Err: status.New(550, "5.1.1", "no such user"), Reply: "smtp;550 5.1.1 no such user"}
	}}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p}, Postmaster: "postmaster@mx1.example.com"})
	h.start()
	h.enqueue(env("", rcpt("tcp_local", "u@b.example")))
	waitFor(t, "postmaster copy", func() bool { return len(h.noticeList()) == 1 })
	n := h.noticeList()[0]
	if n.from != "" || n.to[0] != "postmaster@mx1.example.com" {
		t.Errorf("notice of a <> message: %q -> %v", n.from, n.to)
	}
	h.enqueue(env("", rcpt("tcp_local", "postmaster@mx1.example.com")))
	waitFor(t, "double bounce dropped", func() bool { return h.q.len() == 0 })
	settle()
	if got := len(h.noticeList()); got != 1 {
		t.Errorf("%d notices: a notice to the postmaster bounced again", got)
	}
}

// TestNoticeSubmitFailureKeepsRecipient: when the notice cannot be queued the
// failed recipient stays pending instead of vanishing.
func TestNoticeSubmitFailureKeepsRecipient(t *testing.T) {
	p := &program{result: func(_ *channels.Message, r channels.Rcpt) channels.Result {
		return channels.Result{Err: status.New(550, "5.1.1", "no"), Reply: "smtp;550 5.1.1 no"}
	}}
	var failing atomic.Bool
	var got atomic.Int64
	failing.Store(true)
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p}})
	h.c.SetConfig(Config{Programs: map[string]channels.Program{"tcp_local": p}, Hostname: "mx1.example.com",
		Submit: func(_ context.Context, from string, to []string, b []byte) error {
			if failing.Load() {
				return errors.New("queue full")
			}
			got.Add(1)
			return nil
		}})
	h.start()
	id := h.enqueue(env("a@a.example", rcpt("tcp_local", "u@b.example")))
	waitFor(t, "attempt", func() bool { r, _ := h.q.rcpt(id, 0); return r.Attempts == 1 })
	r, _ := h.q.rcpt(id, 0)
	if r.State != queue.Pending || !r.NextAttempt.Equal(t0.Add(retryNotice)) {
		t.Fatalf("recipient after failed notice: %+v", r)
	}
	failing.Store(false)
	h.clock.Set(t0.Add(retryNotice))
	waitFor(t, "returned on the next attempt", func() bool { return h.q.len() == 0 })
	if got.Load() != 1 {
		t.Errorf("%d notices submitted, want 1", got.Load())
	}
}

// TestExpiryWhileDelivering: the last notice age passes while a job is inside
// Deliver; the temporary result of that attempt returns the recipient.
func TestExpiryWhileDelivering(t *testing.T) {
	p := &program{block: make(chan struct{}), result: tempFail("mx")}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p}, NoticeUnit: time.Hour,
		Channels: map[string]Channel{"tcp_local": {Notices: Notices{1}}}})
	h.start()
	h.enqueue(env("alice@a.example", rcpt("tcp_local", "bob@b.example")))
	waitFor(t, "delivering", func() bool { return p.cur.Load() == 1 })
	h.clock.Set(t0.Add(time.Hour))
	settle()
	if n := len(h.noticeList()); n != 0 {
		t.Fatalf("notice sent while the attempt was running")
	}
	close(p.block)
	waitFor(t, "returned", func() bool { return h.q.len() == 0 && len(h.noticeList()) == 1 })
	pn := parseNotice(t, h.noticeList()[0].content)
	if len(pn.rcpts) != 1 || pn.rcpts[0].Get("Action") != "failed" || pn.rcpts[0].Get("Status") != "5.4.7" {
		t.Errorf("notice %+v", pn.rcpts)
	}
}

// TestMultiChannelMessage: one message split over two channels and hosts is
// delivered by both, each recording only its own recipients.
func TestMultiChannelMessage(t *testing.T) {
	pl, pt := &program{}, &program{}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"l": pl, "tcp_local": pt}})
	h.start()
	h.enqueue(env("s@a.example", rcpt("l", "me@localhost"), rcpt("tcp_local", "x@b.example"),
		rcpt("tcp_local", "y@c.example"), rcpt("tcp_local", "z@b.example")))
	waitFor(t, "all delivered", func() bool { return h.q.len() == 0 })
	if n := len(pl.callList()); n != 1 {
		t.Errorf("l: %d calls", n)
	}
	calls := pt.callList()
	if len(calls) != 2 {
		t.Fatalf("tcp_local: %d calls, want one per host", len(calls))
	}
	for _, c := range calls {
		if c.hosts[0] == "b.example" && strings.Join(c.addrs, ",") != "x@b.example,z@b.example" {
			t.Errorf("b.example got %v", c.addrs)
		}
	}
}
