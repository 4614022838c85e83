package jobctl

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/queue"
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

// submittedStates wraps the harness's notice hook to record, for every notice,
// the queue state of the message's recipients at the moment it was submitted.
func submittedStates(h *harness, id string) *[][]queue.RcptState {
	var mu sync.Mutex
	var states [][]queue.RcptState
	next := h.c.cfg.Submit
	h.c.SetConfig(Config{Programs: h.c.cfg.Programs, Channels: h.c.cfg.Channels, Hostname: "mx1.example.com",
		Submit: func(ctx context.Context, from string, to []string, b []byte) error {
			var st []queue.RcptState
			if e, err := h.q.Get(id); err == nil {
				for _, r := range e.Rcpts {
					st = append(st, r.State)
				}
			}
			mu.Lock()
			states = append(states, st)
			mu.Unlock()
			return next(ctx, from, to, b)
		}})
	return &states
}

// NOTIFY=SUCCESS: a recipient delivered here gets a "delivered" notice, one
// relayed to a hop without DSN a "relayed" notice, both in one report; one whose
// next hop took the DSN request over gets nothing from us, nor one that did not
// ask. The notice has the RFC 3464 fields of each (Remote-MTA and the server's
// reply where a server answered) and only the header of the original even with
// RET=FULL. The recipients are marked Delivered only after it was submitted.
func TestSuccessNotices(t *testing.T) {
	p := &program{result: func(_ *channels.Message, r channels.Rcpt) channels.Result {
		switch r.Host {
		case "relay.example":
			return channels.Result{Remote: "mx.relay.example (TCP|127.0.0.1|1|127.0.0.1|25)",
				Reply: "smtp;250 2.0.0 queued as X1", Handoff: channels.RelayedWithoutDSN}
		case "dsn.example":
			return channels.Result{Remote: "mx.dsn.example", Reply: "smtp;250 2.0.0 ok", Handoff: channels.HandedOn}
		}
		return channels.Result{Reply: "maildir;new/123.M1P1Q1.mx1", Handoff: channels.DeliveredHere}
	}}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p}})
	var rcpts []queue.Recipient
	for _, addr := range []string{"here@local.example", "far@relay.example", "onward@dsn.example", "quiet@local.example"} {
		r := rcpt("tcp_local", addr)
		r.Notify = "SUCCESS,FAILURE"
		rcpts = append(rcpts, r)
	}
	rcpts[3].Notify = "FAILURE"
	e := env("alice@a.example", rcpts...)
	e.RET, e.EnvID = "FULL", "E7"
	e.ID = "m1"
	states := submittedStates(h, e.ID)
	h.start()
	h.enqueue(e)
	waitFor(t, "all delivered", func() bool { return h.q.len() == 0 })
	ns := h.noticeList()
	if len(ns) != 1 {
		t.Fatalf("%d notices, want one success report", len(ns))
	}
	if ns[0].from != "" || len(ns[0].to) != 1 || ns[0].to[0] != "alice@a.example" {
		t.Errorf("notice envelope %q -> %v", ns[0].from, ns[0].to)
	}
	pn := parseNotice(t, ns[0].content)
	if pn.subject != "Delivery Status Notification (Success)" || pn.third != "text/rfc822-headers" ||
		pn.perMsg.Get("Original-Envelope-Id") != "E7" {
		t.Errorf("subject %q, original as %q, ENVID %q", pn.subject, pn.third, pn.perMsg.Get("Original-Envelope-Id"))
	}
	want := map[string]map[string]string{
		"rfc822; here@local.example": {"Action": "delivered", "Status": "2.0.0", "Remote-MTA": "", "Diagnostic-Code": ""},
		"rfc822; far@relay.example": {"Action": "relayed", "Status": "2.0.0", "Remote-MTA": "dns; mx.relay.example",
			"Diagnostic-Code": "smtp; 250 2.0.0 queued as X1"},
	}
	if len(pn.rcpts) != len(want) {
		t.Fatalf("notice lists %d recipients, want %d", len(pn.rcpts), len(want))
	}
	for _, r := range pn.rcpts {
		fields, ok := want[r.Get("Final-Recipient")]
		if !ok {
			t.Errorf("notice reports %s", r.Get("Final-Recipient"))
			continue
		}
		for k, v := range fields {
			if got := r.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", r.Get("Final-Recipient"), k, got, v)
			}
		}
	}
	if st := (*states)[0]; len(st) != 4 || st[0] != queue.Pending || st[1] != queue.Pending {
		t.Errorf("recipient states when the notice was submitted: %v; the reported ones must still be pending", st)
	}
}

// failAt fails every recipient for good with a reply naming its host.
func failAt(_ *channels.Message, r channels.Rcpt) channels.Result {
	return channels.Result{Err: status.New(550, "5.1.1", "no such user"), Remote: "mx." + r.Host,
		Reply: "smtp;550 5.1.1 no such user at " + r.Host}
}

// A message whose recipients fail at three destinations gets one failure notice
// listing all three, not one per destination; each is marked Returned only after
// it was submitted.
func TestOneFailureReportForManyDestinations(t *testing.T) {
	p := &program{result: failAt}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p}})
	e := env("alice@a.example", rcpt("tcp_local", "u@b.example"), rcpt("tcp_local", "v@c.example"), rcpt("tcp_local", "w@d.example"))
	e.ID = "m1"
	states := submittedStates(h, e.ID)
	h.start()
	h.enqueue(e)
	waitFor(t, "returned", func() bool { return h.q.len() == 0 })
	if n := len(p.callList()); n != 3 {
		t.Errorf("%d attempts, want one per destination", n)
	}
	ns := h.noticeList()
	if len(ns) != 1 {
		t.Fatalf("%d failure notices, want 1", len(ns))
	}
	pn := parseNotice(t, ns[0].content)
	got := map[string]string{}
	for _, r := range pn.rcpts {
		got[r.Get("Final-Recipient")] = r.Get("Diagnostic-Code")
	}
	for _, host := range []string{"b", "c", "d"} {
		addr := map[string]string{"b": "u", "c": "v", "d": "w"}[host] + "@" + host + ".example"
		if got["rfc822; "+addr] != "smtp; 550 5.1.1 no such user at "+host+".example" {
			t.Errorf("report for %s: %q (all: %v)", addr, got["rfc822; "+addr], got)
		}
	}
	for _, s := range (*states)[0] {
		if s != queue.Pending {
			t.Errorf("recipient states when the notice was submitted: %v, want all pending", (*states)[0])
			break
		}
	}
}

// A report does not wait for a retry: the two recipients that failed for good
// are reported as soon as the third is requeued, and the third, when it fails
// for good on a later attempt, gets a report of its own.
func TestReportDoesNotWaitForRetries(t *testing.T) {
	var retried atomic.Bool
	p := &program{result: func(m *channels.Message, r channels.Rcpt) channels.Result {
		if r.Host == "slow.example" && !retried.Load() {
			return tempFail("mx.slow.example")(m, r)
		}
		return failAt(m, r)
	}}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p},
		Channels: map[string]Channel{"tcp_local": {Backoff: [3]Backoff{Normal: {time.Hour}}}}})
	h.start()
	id := h.enqueue(env("alice@a.example", rcpt("tcp_local", "u@b.example"), rcpt("tcp_local", "s@slow.example"),
		rcpt("tcp_local", "w@d.example")))
	waitFor(t, "the first report", func() bool { return len(h.noticeList()) == 1 })
	if pn := parseNotice(t, h.noticeList()[0].content); len(pn.rcpts) != 2 {
		t.Errorf("first report lists %d recipients, want the 2 that failed", len(pn.rcpts))
	}
	if r, _ := h.q.rcpt(id, 1); r.State != queue.Pending {
		t.Errorf("the requeued recipient: %+v", r)
	}
	retried.Store(true) // the retry fails for good
	h.clock.Set(t0.Add(time.Hour))
	waitFor(t, "the second report", func() bool { return len(h.noticeList()) == 2 && h.q.len() == 0 })
	if pn := parseNotice(t, h.noticeList()[1].content); len(pn.rcpts) != 1 ||
		pn.rcpts[0].Get("Final-Recipient") != "rfc822; s@slow.example" {
		t.Errorf("second report: %+v", pn.rcpts)
	}
}

// While a recipient waits for the report (another destination of its message is
// still being tried), it is settled: a delay notice does not list it.
// (Notices ages in minutes, so that the delay notice comes before reportHoldMax.)
func TestDelayNoticeLeavesOutReportedRecipients(t *testing.T) {
	slow := &program{block: make(chan struct{}), result: tempFail("mx.c.example")}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_b": &program{result: failAt}, "tcp_c": slow},
		NoticeUnit: time.Minute, Channels: map[string]Channel{"tcp_c": {Notices: Notices{1, 50}}, "tcp_b": {Notices: Notices{1, 50}}}})
	h.start()
	h.enqueue(env("alice@a.example", rcpt("tcp_c", "v@c.example"), rcpt("tcp_b", "u@b.example")))
	waitFor(t, "c in flight", func() bool { return slow.cur.Load() == 1 })
	settle() // b's attempt ends: its failure waits for c's
	if n := len(h.noticeList()); n != 0 {
		t.Fatalf("%d notices while c is still being tried", n)
	}
	h.clock.Set(t0.Add(time.Minute)) // the first notices age, before reportHoldMax
	waitFor(t, "delay notice", func() bool { return len(h.noticeList()) == 1 })
	pn := parseNotice(t, h.noticeList()[0].content)
	if len(pn.rcpts) != 1 || pn.rcpts[0].Get("Final-Recipient") != "rfc822; v@c.example" || pn.rcpts[0].Get("Action") != "delayed" {
		t.Errorf("delay notice lists %+v, want only v@c.example", pn.rcpts)
	}
	close(slow.block)
	waitFor(t, "the failure report", func() bool { return len(h.noticeList()) == 2 })
	if pn := parseNotice(t, h.noticeList()[1].content); len(pn.rcpts) != 1 || pn.rcpts[0].Get("Action") != "failed" {
		t.Errorf("failure report: %+v", pn.rcpts)
	}
}

// A report held when the controller stops is sent before Run returns.
func TestHeldReportSentAtShutdown(t *testing.T) {
	slow := &program{block: make(chan struct{}), result: tempFail("mx.c.example")}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_b": &program{result: failAt}, "tcp_c": slow}})
	h.start()
	id := h.enqueue(env("alice@a.example", rcpt("tcp_c", "v@c.example"), rcpt("tcp_b", "u@b.example")))
	waitFor(t, "c in flight", func() bool { return slow.cur.Load() == 1 })
	settle()
	if n := len(h.noticeList()); n != 0 {
		t.Fatalf("%d notices while c is still being tried", n)
	}
	h.stop() // c's attempt is cancelled after the grace period
	if n := len(h.noticeList()); n != 1 {
		t.Fatalf("%d notices after shutdown, want the held report", n)
	}
	if r, _ := h.q.rcpt(id, 1); r.State != queue.Returned {
		t.Errorf("reported recipient after shutdown: %+v", r)
	}
}

// A report waits for the rest of its message at most reportHoldMax: an attempt
// that takes longer does not hold back what is already known.
func TestReportHeldAtMostReportHoldMax(t *testing.T) {
	slow := &program{block: make(chan struct{}), result: tempFail("mx.c.example")}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_b": &program{result: failAt}, "tcp_c": slow}})
	h.start()
	h.enqueue(env("alice@a.example", rcpt("tcp_c", "v@c.example"), rcpt("tcp_b", "u@b.example")))
	waitFor(t, "c in flight", func() bool { return slow.cur.Load() == 1 })
	h.clock.Set(t0.Add(reportHoldMax - time.Second))
	settle()
	if n := len(h.noticeList()); n != 0 {
		t.Fatalf("%d notices before reportHoldMax while c is being tried", n)
	}
	h.clock.Set(t0.Add(reportHoldMax))
	waitFor(t, "the report", func() bool { return len(h.noticeList()) == 1 })
	close(slow.block)
}

// A recipient held for its message's report is still active work of its channel
// in a Snapshot, and its outcome reaches the channel's subscribers before that
// work is done: qm run, which stops when the channel's work is done, shows it.
func TestHeldRecipientIsActiveUntilReported(t *testing.T) {
	slow := &program{block: make(chan struct{}), result: tempFail("mx.c.example")}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_b": &program{result: failAt}, "tcp_c": slow}})
	sub := h.c.Subscribe("tcp_b", 16)
	defer sub.Close()
	h.start()
	h.enqueue(env("alice@a.example", rcpt("tcp_c", "v@c.example"), rcpt("tcp_b", "u@b.example")))
	waitFor(t, "c in flight", func() bool { return slow.cur.Load() == 1 })
	active := func() int { s := h.c.Snapshot(); ci, _ := s.Channel("tcp_b"); return ci.Active + ci.Ready + ci.Delayed }
	waitFor(t, "b attempted", func() bool { return len(h.c.Snapshot().Jobs) == 1 })
	settle()
	if n := active(); n != 1 {
		t.Errorf("tcp_b shows %d entries of work while u@b.example waits for the report, want 1", n)
	}
	close(slow.block)
	waitFor(t, "tcp_b done", func() bool { return active() == 0 })
	select {
	case o := <-sub.Outcomes():
		if o.Record.Code != "R" || o.Record.To != "u@b.example" {
			t.Errorf("outcome %+v, want R for u@b.example", o.Record)
		}
	default:
		t.Error("tcp_b's work is done, but its R outcome was not published")
	}
}

// Two attempts of one message end together: c's job has checked the report
// (b still being tried) and is recording its results when b's job checks it.
// b's check must not count c as still being tried: c's outcome is known and c's
// job will not look at the report again, so b's job is the last one awaited and
// the report goes now, not reportHoldMax later. c's recording is paused in its
// Update (its delivered recipient) to hold this interleaving; the fake clock
// never moves, so a report left to its deadline never comes.
func TestReportSentWhenAttemptsEndTogether(t *testing.T) {
	bProg := &program{block: make(chan struct{}), result: failAt}
	cProg := &program{result: func(m *channels.Message, r channels.Rcpt) channels.Result {
		if r.Addr == "x@c.example" {
			return channels.Result{Remote: "mx.c.example", Reply: "smtp;250 2.0.0 ok"}
		}
		return failAt(m, r)
	}}
	q := newMemQueue()
	cRecording, cGoOn := make(chan struct{}), make(chan struct{})
	letCGoOn := sync.OnceFunc(func() { close(cGoOn) })
	var paused atomic.Bool
	q.beforeUpdate = func(string, []queue.Update) {
		if paused.CompareAndSwap(false, true) { // the first Update is c's
			close(cRecording)
			<-cGoOn
		}
	}
	h := newHarness(t, Config{Queue: q, Programs: map[string]channels.Program{"tcp_b": bProg, "tcp_c": cProg}})
	e := env("alice@a.example", rcpt("tcp_b", "u@b.example"), rcpt("tcp_c", "v@c.example"), rcpt("tcp_c", "x@c.example"))
	e.ID = "m1"
	states := submittedStates(h, e.ID)
	h.start()
	t.Cleanup(letCGoOn) // runs before the harness stops, should the test fail before
	h.enqueue(e)
	select {
	case <-cRecording:
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for c's attempt to be recorded")
	}
	close(bProg.block)
	waitFor(t, "b's attempt recorded", func() bool {
		for _, j := range h.c.Snapshot().Jobs {
			if j.Channel == "tcp_b" {
				return false
			}
		}
		return len(bProg.callList()) == 1
	})
	letCGoOn()
	waitFor(t, "the failure report", func() bool { return len(h.noticeList()) == 1 && h.q.len() == 0 })
	pn := parseNotice(t, h.noticeList()[0].content)
	got := map[string]string{}
	for _, r := range pn.rcpts {
		got[r.Get("Final-Recipient")] = r.Get("Action")
	}
	if len(got) != 2 || got["rfc822; u@b.example"] != "failed" || got["rfc822; v@c.example"] != "failed" {
		t.Errorf("report lists %v, want u and v failed", got)
	}
	if st := (*states)[0]; len(st) != 3 || st[0] != queue.Pending || st[1] != queue.Pending {
		t.Errorf("recipient states when the notice was submitted: %v; the reported ones must still be pending", st)
	}
}
