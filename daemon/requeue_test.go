package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/control"
	"mtad.dev/mta/queue"
	"mtad.dev/mta/reroute"
)

// requeueCnf routes localhost to the local channel and everything else to
// tcp_local on a closed port; with split, dead.test gets its own channel in its
// own pool and gone.test is refused, as an administrator would change it.
func requeueCnf(port int, split bool) map[string]string {
	rules := "localhost        $U%localhost@localhost\n"
	chans := ""
	pools := "[POOL=DEFAULT]\nJOB_LIMIT=10\n"
	if split {
		rules += "dead.test        $U%$D@tcp_dead-daemon\ngone.test        $?No mail for gone hosts\n"
		chans = fmt.Sprintf("tcp_dead smtp nomx single_sys daemon 127.0.0.1 port %d pool SMTP_DEAD\ntcp_dead-daemon\n\n", port)
		pools += "[POOL=SMTP_DEAD]\nJOB_LIMIT=1\n"
	}
	rules += ".                $U%$H@tcp-daemon\n"
	return map[string]string{
		"imta.cnf": rules + fmt.Sprintf(`
l
localhost

tcp_local smtp nomx single_sys daemon 127.0.0.1 port %d
tcp-daemon

%s`, port, chans),
		"job_controller.cnf": pools,
	}
}

// requeueCall is `mtactl qm requeue`: the streamed lines and the result.
func requeueCall(t *testing.T, d *Daemon, req control.Request) ([]string, control.RequeueResult) {
	t.Helper()
	req.Command = control.CmdRequeue
	var lines []string
	var res control.RequeueResult
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &control.Client{Path: d.ControlSocket()}
	if _, err := c.Stream(ctx, req, func(l string) { lines = append(lines, l) }, &res); err != nil {
		t.Fatalf("requeue: %v", err)
	}
	return lines, res
}

// pendingFor lists the queued messages with a pending recipient addr.
func pendingFor(t *testing.T, q *queue.Queue, addr string) []*queue.Envelope {
	t.Helper()
	var out []*queue.Envelope
	err := q.Walk(func(e *queue.Envelope) bool {
		for _, r := range e.Rcpts {
			if r.State == queue.Pending && r.Addr == addr {
				c := *e
				out = append(out, &c)
				break
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func queuedContent(t *testing.T, q *queue.Queue, id string) []byte {
	t.Helper()
	c, err := q.Content(id)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := io.ReadAll(io.NewSectionReader(c, 0, c.Size()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRequeueMovesToNewChannel walks the recipe for a backlogged destination:
// after the destination got its own channel and pool and the configuration was
// reloaded, qm requeue -n tells what would move and changes nothing; qm requeue
// moves the recipient to the new channel (content byte-identical, envelope
// kept, the old recipient logged D and the copy E), returns the one the new
// rules refuse (R, a notice to the sender), leaves the one routed where it
// already is, and moves a held message only with -held.
func TestRequeueMovesToNewChannel(t *testing.T) {
	port := freePort(t)
	dir := t.TempDir()
	writeConfig(t, dir, requeueCnf(port, false))
	data := t.TempDir()
	d := startDaemonAt(t, dir, data)
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	c.Cmd("MAIL FROM:<alice@localhost> RET=HDRS ENVID=env-a", "250")
	c.Cmd("RCPT TO:<bob@dead.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob@Dead.test", "250")
	c.Cmd("RCPT TO:<carl@live.test>", "250")
	idA := queueID(c.Data([]byte("Subject: a\r\nMessage-ID: <a@test>\r\n\r\nbody\r\n"), "250"))
	idB := queueID(c.Send("alice@localhost", []string{"x@gone.test"}, []byte("Subject: b\r\n\r\nb\r\n")))
	idC := queueID(c.Send("alice@localhost", []string{"h@dead.test"}, []byte("Subject: c\r\n\r\nc\r\n")))
	c.Cmd("QUIT", "221")
	ctx := context.Background()
	if r := d.runMessageCommand(ctx, control.CmdHold, idC); r.Error != "" {
		t.Fatalf("hold: %+v", r)
	}
	before, _ := d.queue.Get(idA)
	contentA := queuedContent(t, d.queue, idA)

	writeConfig(t, dir, requeueCnf(port, true))
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	lines, res := requeueCall(t, d, control.Request{Filter: &control.Filter{Channel: "tcp_local"}, DryRun: true})
	if res.Moved != 1 || res.Returned != 1 || res.Unchanged != 1 || !res.DryRun {
		t.Errorf("dry run: %+v", res)
	}
	joined := strings.Join(lines, "\n")
	for _, want := range []string{idA + " bob@dead.test (tcp_local): would move to tcp_dead bob@dead.test",
		idB + " x@gone.test (tcp_local): would be returned: 550 5.1.2 No mail for gone hosts"} {
		if !strings.Contains(joined, want) {
			t.Errorf("dry run lacks %q:\n%s", want, joined)
		}
	}
	if e, _ := d.queue.Get(idA); e.Rcpts[0].State != queue.Pending || len(pendingFor(t, d.queue, "bob@dead.test")) != 1 {
		t.Error("the dry run changed the queue")
	}

	_, res = requeueCall(t, d, control.Request{Filter: &control.Filter{Channel: "tcp_local"}})
	if res.Messages != 2 || res.Moved != 1 || res.Returned != 1 || res.Unchanged != 1 || res.Kept != 0 ||
		len(res.Flows) != 1 || res.Flows[0] != (control.RequeueFlow{From: "tcp_local", To: "tcp_dead", Recipients: 1}) {
		t.Errorf("requeue: %+v", res)
	}
	moved := pendingFor(t, d.queue, "bob@dead.test")
	if len(moved) != 1 || moved[0].ID == idA {
		t.Fatalf("bob@dead.test queued in %d messages after the requeue", len(moved))
	}
	n := moved[0]
	r := n.Rcpts[0]
	if len(n.Rcpts) != 1 || r.Channel != "tcp_dead" || r.ORCPT != "rfc822;Bob@Dead.test" || r.Notify != "SUCCESS,FAILURE" ||
		n.From != "alice@localhost" || n.RET != "HDRS" || n.EnvID != "env-a" || !n.Arrival.Equal(before.Arrival) ||
		n.Source != before.Source || n.Client != before.Client || n.MessageID != "<a@test>" {
		t.Errorf("the copy's envelope differs:\n got %+v\nfrom %+v", n, before)
	}
	if got := queuedContent(t, d.queue, n.ID); !bytes.Equal(got, contentA) {
		t.Errorf("content not byte-identical:\n got %q\nwant %q", got, contentA)
	}
	if e, _ := d.queue.Get(idA); e.Rcpts[0].State != queue.Delivered || e.Rcpts[1].State != queue.Pending {
		t.Errorf("the old message after the move: %+v", e.Rcpts)
	}
	waitLogMatch(t, data, 10*time.Second,
		` tcp_local D 1 alice@localhost rfc822;Bob@Dead.test bob@dead.test `+idA+` requeued to tcp_dead as `+n.ID+` \(qm requeue\)`,
		` tcp_local tcp_dead E 1 alice@localhost rfc822;Bob@Dead.test bob@dead.test `+n.ID,
		` tcp_local R 1 alice@localhost rfc822;x@gone.test x@gone.test `+idB+` .*550 5.1.2 No mail for gone hosts \(qm requeue\)`,
		` l D .* alice@localhost `) // the failure notice for x@gone.test
	if got := pendingFor(t, d.queue, "h@dead.test"); len(got) != 1 || got[0].ID != idC || !got[0].Held {
		t.Errorf("a held message moved without -held: %+v", got)
	}

	_, res = requeueCall(t, d, control.Request{Filter: &control.Filter{Domain: "dead.test", Held: true}})
	if res.Moved != 1 {
		t.Errorf("requeue -held: %+v", res)
	}
	got := pendingFor(t, d.queue, "h@dead.test")
	if len(got) != 1 || got[0].ID == idC || got[0].Held || got[0].Rcpts[0].Channel != "tcp_dead" {
		t.Errorf("held message after requeue -held: %+v", got)
	}
	if _, err := d.queue.Get(idC); err == nil {
		t.Error("the held message whose only recipient moved is still queued")
	}
	if _, res := requeueCall(t, d, control.Request{IDs: []string{"06H0KJ9T1G000A6S"}}); len(res.Errors) != 1 {
		t.Errorf("unknown id: %+v", res)
	}
}

// TestRequeueRoutes is reroute.Requeue against a configuration that moved
// dead.test to its own channel, refuses gone.test, refuses denied.test in
// SEND_ACCESS and denies relaying in ORIG_SEND_ACCESS (which a requeue must not
// ask: the queued recipient may be a forward). It checks each verdict, that a
// dry run and an unchanged recipient queue nothing and read no content, and
// that the copy keeps the envelope.
func TestRequeueRoutes(t *testing.T) {
	files := requeueCnf(9, true)
	files["mappings"] = `ORIG_SEND_ACCESS

  tcp_local|*|tcp_local|*       $X5.7.1|$NRelaying$ denied

SEND_ACCESS

  *|*|*|*@denied.test           $X5.7.1|$NNo$ thanks
`
	img := buildImage(t, files)
	arrival := time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC)
	msg := func(read *int) *reroute.Queued {
		return &reroute.Queued{ID: "OLD1", From: "poster@remote.test", Source: "tcp_local", Client: "client.test ([192.0.2.1])",
			Arrival: arrival, RET: "HDRS", EnvID: "e1", Priority: 1, Notices: 2,
			Content: func() ([]byte, error) { *read++; return []byte("Subject: x\r\n\r\nbody\r\n"), nil }}
	}
	rcpts := []reroute.QueuedRcpt{
		{Addr: "a@dead.test", Orig: "A@Dead.test", ORCPT: "rfc822;A@Dead.test", Notify: "FAILURE", Channel: "tcp_local"},
		{Addr: "b@live.test", Channel: "tcp_local"},
		{Addr: "c@gone.test", Channel: "tcp_local"},
		{Addr: "d@denied.test", Channel: "tcp_local"},
	}
	q := &fakeEnqueuer{}
	in := testIntake(q)
	var read int
	dry := reroute.Requeue(context.Background(), in, newIntakeRules(img), msg(&read), rcpts, true)
	if len(q.envs) != 0 || read != 0 {
		t.Fatalf("the dry run queued %d copies and read the content %d times", len(q.envs), read)
	}
	moves := reroute.Requeue(context.Background(), in, newIntakeRules(img), msg(&read), rcpts, false)
	for i, m := range [][]reroute.Move{dry, moves} {
		if m[0].Unchanged || m[0].Refused != nil || len(m[0].Routed) != 1 || m[0].Routed[0].Channel != "tcp_dead" {
			t.Errorf("run %d: a@dead.test: %+v", i, m[0])
		}
		if !m[1].Unchanged {
			t.Errorf("run %d: b@live.test (relayed, and routed where it is): %+v", i, m[1])
		}
		if m[2].Refused == nil || m[2].Refused.Temporary() || !strings.Contains(m[2].Refused.Error(), "No mail for gone hosts") {
			t.Errorf("run %d: c@gone.test: %+v", i, m[2])
		}
		if m[3].Refused == nil || !strings.Contains(m[3].Refused.Error(), "No thanks") {
			t.Errorf("run %d: d@denied.test (SEND_ACCESS): %+v", i, m[3])
		}
	}
	if !moves[0].Moved() || dry[0].Moved() || read != 1 || len(q.envs) != 1 {
		t.Fatalf("moved %v (dry %v), content read %d times, %d copies", moves[0].Moved(), dry[0].Moved(), read, len(q.envs))
	}
	c := q.envs[0]
	r := c.Rcpts[0]
	if len(c.Rcpts) != 1 || r.Addr != "a@dead.test" || r.Orig != "A@Dead.test" || r.ORCPT != "rfc822;A@Dead.test" || r.Notify != "FAILURE" ||
		c.From != "poster@remote.test" || c.Source != "tcp_local" || c.Client != "client.test ([192.0.2.1])" || !c.Arrival.Equal(arrival) ||
		c.RET != "HDRS" || c.EnvID != "e1" || c.Priority != 1 || c.Notices != 2 || c.Held {
		t.Errorf("the copy does not keep the envelope: %+v", c)
	}
	if got := reroute.Requeue(context.Background(), in, nil, msg(&read), rcpts[:1], false); got[0].Refused == nil || !got[0].Refused.Temporary() {
		t.Errorf("without rules: %+v", got[0])
	}
}
