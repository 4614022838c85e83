package reliability

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mtad.dev/mta/control"
	"mtad.dev/mta/internal/smtptest"
)

// qm requeue across power cuts. The operator's recipe for a backlogged
// destination: give it a channel of its own (text edit, cnbuild, reload), then
// move what is queued for it with qm requeue. The copies are queued (and
// fsync'd, as for a 250) before the old recipients are marked done, so a cut
// after the command said done must leave every message exactly once, on the
// new channel, and a cut in the middle of a run at least once (a duplicate,
// never a loss).

// movedFiles is powerLossFiles with later.test routed to a new channel,
// tcp_moved, whose destination (movedPort) answers only at the end too.
// tcp_later stays defined: the recipients queued on it are still its own.
func movedFiles(t *testing.T, sinkPort, laterPort, movedPort int) map[string]string {
	t.Helper()
	files := powerLossFiles(sinkPort, laterPort)
	cnf := strings.Replace(files["imta.cnf"], "$U%$D@tcp_later-daemon", "$U%$D@tcp_moved-daemon", 1)
	if cnf == files["imta.cnf"] {
		t.Fatal("movedFiles did not find later.test's rule in powerLossFiles")
	}
	files["imta.cnf"] = cnf + fmt.Sprintf("\ntcp_moved smtp nomx single_sys daemon 127.0.0.1 port %d backoff \"pt1s\"\ntcp_moved-daemon\n", movedPort)
	return files
}

// rqMessage is an acknowledged message for later.test: its only recipient and
// its body's SHA-256.
type rqMessage struct {
	rcpt string
	sum  [32]byte
}

// requeueRun is a power-loss run whose later.test backlog is requeued.
type requeueRun struct {
	*plRun
	movedPort int
	moved     *copies // what reached tcp_moved's destination
	msgs      map[string]rqMessage
}

// send queues n messages to PREFIXi@later.test from 8 clients at once and
// records those acknowledged.
func (q *requeueRun) send(addr, prefix string, n int) {
	const clients = 8
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			for i := w; i < n; i += clients {
				tok := fmt.Sprintf("rq-%s%d", prefix, i)
				rcpt := fmt.Sprintf("%s%d@later.test", prefix, i)
				content, _ := message(tok, 200+i%2000)
				_, sum := bodySum([]byte(content))
				if !smtptest.SendOne(addr, smtptest.Transaction{Helo: "load.test", From: "load@localhost", To: []string{rcpt}, Content: content}) {
					continue
				}
				q.mu.Lock()
				q.msgs[tok] = rqMessage{rcpt: rcpt, sum: sum}
				q.mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// reconfigure routes later.test to tcp_moved and has the running mtad load it.
func (q *requeueRun) reconfigure() {
	q.t.Helper()
	q.configure(movedFiles(q.t, q.sinkPort, q.laterPort, q.movedPort))
	if out, err := mtactl(q.t, q.mtactlBin, "-config", q.cfg, "-data", q.data, "reload"); err != nil {
		q.t.Fatalf("reload: %v\n%s", err, out)
	}
}

// requeue runs qm requeue to the end and returns its report.
func (q *requeueRun) requeue(args ...string) control.RequeueResult {
	q.t.Helper()
	out, err := mtactl(q.t, q.mtactlBin, append([]string{"-config", q.cfg, "-data", q.data, "qm", "requeue", "-json"}, args...)...)
	var res control.RequeueResult
	if i := strings.Index(out, "{"); err != nil || i < 0 || json.Unmarshal([]byte(out[i:]), &res) != nil {
		q.t.Fatalf("qm requeue %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return res
}

// queued reads the queue (qm directory): for each later.test recipient, the
// channel of each pending copy.
func (q *requeueRun) queued() map[string][]string {
	q.t.Helper()
	out, err := mtactl(q.t, q.mtactlBin, "-config", q.cfg, "-data", q.data, "qm", "directory", "-domain", "later.test", "-json")
	var entries []control.DirEntry
	if err != nil || json.Unmarshal([]byte(out), &entries) != nil {
		q.t.Fatalf("qm directory: %v\n%s", err, out)
	}
	got := map[string][]string{}
	for _, e := range entries {
		for _, rc := range e.Rcpts {
			got[rc] = append(got[rc], e.Channels...)
		}
	}
	return got
}

// rqCount is what the queue holds of one set of messages.
type rqCount struct {
	lost, dups       int // recipients with no copy; copies beyond the first
	onMoved, onLater int // recipients with a copy on tcp_moved, on tcp_later
}

func (c rqCount) String() string {
	return fmt.Sprintf("%d on tcp_moved, %d on tcp_later, %d lost, %d duplicate copies", c.onMoved, c.onLater, c.lost, c.dups)
}

// count compares the queue with the acknowledged messages whose recipient
// starts with prefix.
func (q *requeueRun) count(prefix string) rqCount {
	queued := q.queued()
	var c rqCount
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range q.msgs {
		if !strings.HasPrefix(m.rcpt, prefix) {
			continue
		}
		chans := queued[m.rcpt]
		if len(chans) == 0 {
			c.lost++
		}
		c.dups += max(len(chans)-1, 0)
		moved, later := false, false
		for _, ch := range chans {
			moved = moved || ch == "tcp_moved"
			later = later || ch == "tcp_later"
		}
		if moved {
			c.onMoved++
		}
		if later {
			c.onLater++
		}
	}
	return c
}

// segmentSizes is the size of each queue segment: only an enqueue appends to
// one (a message's content and envelope records), so their growth while a
// requeue runs counts the copies it has made durable so far, at once, where
// mail.log's lines come 100 ms late and in bulk.
func segmentSizes(t *testing.T, data string) map[string]int64 {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(data, "queue", "segments", "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int64{}
	for _, n := range names {
		if fi, err := os.Stat(n); err == nil { // a segment emptied meanwhile goes
			sizes[n] = fi.Size()
		}
	}
	return sizes
}

// segmentGrowth is what was appended to the segments since before.
func segmentGrowth(t *testing.T, data string, before map[string]int64) int64 {
	t.Helper()
	var n int64
	for name, size := range segmentSizes(t, data) {
		n += max(size-before[name], 0)
	}
	return n
}

// requeueCut starts qm requeue -domain later.test, SIGKILLs mtad once the
// copies it made hold `after` bytes of the queue's segments, cuts the power
// and starts mtad again. It returns the new mtad.
func (q *requeueRun) requeueCut(p *proc, after int64, cycle int) *proc {
	t := q.t
	t.Helper()
	before := segmentSizes(t, q.data)
	rq := exec.Command(q.mtactlBin, "-config", q.cfg, "-data", q.data, "qm", "requeue", "-domain", "later.test")
	if err := rq.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for segmentGrowth(t, q.data, before) < after && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	p.kill()
	rq.Wait() // its connection is gone: it exits with an error
	q.cut(cycle)
	return startMtad(t, q.mtadBin, q.cfg, q.data)
}

// TestPowerLossRequeue: rqSmall a-messages and rqLarge b-messages queued for
// later.test (which does not answer); later.test given its own channel,
// tcp_moved (cnbuild, reload).
//
//  1. qm requeue of the a-messages; once it reports them moved, SIGKILL, power
//     cut, restart: each a-message is queued exactly once, on tcp_moved, and
//     the b-messages exactly once where they were.
//  2. qm requeue -domain later.test, cut in the middle (rqCuts times, each run
//     moving part of what is left): every b-message is still queued at least
//     once, duplicates counted. A last qm requeue finishes the move.
//  3. Both destinations answer: every message is delivered, with its body's
//     SHA-256, to tcp_moved's destination only; the a-messages exactly once.
func TestPowerLossRequeue(t *testing.T) {
	mtadBin, _ := buildBinaries(t)
	q := &requeueRun{plRun: newPowerLossRun(t, mtadBin), movedPort: closedPort(t), moved: newCopies(), msgs: map[string]rqMessage{}}
	start := time.Now()
	p := startMtad(t, mtadBin, q.cfg, q.data)
	q.send(p.addr, "a", rqSmall)
	a := q.count("a")
	segs := segmentSizes(t, q.data)
	q.send(p.addr, "b", rqLarge)
	b := q.count("b")
	if a.onLater < rqSmall*9/10 || b.onLater < rqLarge*9/10 {
		t.Fatalf("only %d and %d of %d and %d messages queued", a.onLater, b.onLater, rqSmall, rqLarge)
	}
	bytesPerCopy := segmentGrowth(t, q.data, segs) / int64(b.onLater)
	q.reconfigure()

	res := q.requeue("-to", "a*@later.test")
	if res.Moved != a.onLater {
		t.Errorf("qm requeue of the a-messages moved %d recipients, want %d (%+v)", res.Moved, a.onLater, res)
	}
	p = q.powerCycle(p, 0)
	a, b = q.count("a"), q.count("b")
	t.Logf("after a complete requeue and a power cut: a-messages %v; b-messages %v", a, b)
	if a.lost != 0 || a.dups != 0 || a.onLater != 0 {
		t.Errorf("a power cut after qm requeue said done: a-messages %v; want each once, on tcp_moved", a)
	}
	if b.lost != 0 || b.dups != 0 || b.onMoved != 0 {
		t.Errorf("a power cut after a requeue of other messages: b-messages %v; want each once, on tcp_later", b)
	}

	for cycle := 1; cycle <= rqCuts; cycle++ {
		left := q.count("b").onLater
		p = q.requeueCut(p, bytesPerCopy*int64(max(left/3, 1)), cycle)
		b = q.count("b")
		t.Logf("cut %d, once copies of about a third of the %d left were written to the segments: b-messages %v", cycle, left, b)
		if b.lost != 0 {
			t.Errorf("a power cut during qm requeue lost %d b-messages", b.lost)
		}
		if b.onLater == 0 || b.onLater == left {
			t.Errorf("the cut did not fall in the middle of the requeue (%d of %d left on tcp_later)", b.onLater, left)
		}
	}
	res = q.requeue("-domain", "later.test")
	b = q.count("b")
	t.Logf("the last qm requeue: %d moved in %v; b-messages %v", res.Moved, res.Elapsed.Round(time.Millisecond), b)
	if b.lost != 0 || b.onLater != 0 {
		t.Errorf("after the last qm requeue: b-messages %v; want none lost, none left on tcp_later", b)
	}
	// A cut duplicates the moves in flight: copies durable, marks still
	// waiting for their group commit (each of mtad's eight requeue workers may
	// have a few). cmd/mtad's SIGKILL test allows 256 for a kill; so does this,
	// per cut: more would mean marks pile up uncommitted.
	if b.dups > 256*rqCuts {
		t.Errorf("%d duplicate copies after %d cuts during qm requeue", b.dups, rqCuts)
	}

	smtptest.StartSink(t, smtptest.SinkConfig{Addr: fmt.Sprintf("127.0.0.1:%d", q.laterPort), Record: func(m smtptest.Message) { q.later.add(m.Data) }})
	smtptest.StartSink(t, smtptest.SinkConfig{Addr: fmt.Sprintf("127.0.0.1:%d", q.movedPort), Record: func(m smtptest.Message) { q.moved.add(m.Data) }})
	q.waitDrained(60 * time.Second)
	p.stop(t)
	dups := q.checkDelivered()
	t.Logf("qm requeue across %d power cuts, %v: %d messages acknowledged (%d a, %d b); %d duplicate copies delivered; the cuts dropped: %v",
		1+rqCuts, time.Since(start).Round(time.Millisecond), len(q.msgs), a.onMoved, b.onMoved, dups, q.loss)
}

// checkDelivered compares what reached the two destinations with what was
// acknowledged; it returns the number of copies delivered beyond the first.
func (q *requeueRun) checkDelivered() (dups int) {
	t := q.t
	problems := 0
	report := func(format string, args ...any) {
		if problems++; problems <= 20 {
			t.Errorf(format, args...)
		}
	}
	for tok, m := range q.msgs {
		got, stray := q.moved.of(tok), q.later.of(tok)
		switch {
		case len(got) == 0:
			report("%s (%s): acknowledged with 250, never delivered", tok, m.rcpt)
		case len(stray) > 0:
			report("%s (%s): %d copies reached later.test's old destination after the requeue", tok, m.rcpt, len(stray))
		case strings.HasPrefix(m.rcpt, "a") && len(got) > 1:
			report("%s (%s): delivered %d times; its requeue was complete before the cut", tok, m.rcpt, len(got))
		}
		dups += max(len(got)-1, 0)
		for _, s := range got {
			if s != m.sum {
				report("%s (%s): a copy delivered has another body", tok, m.rcpt)
			}
		}
	}
	if problems > 20 {
		t.Errorf("... and %d more", problems-20)
	}
	return dups
}
