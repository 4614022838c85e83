package reliability

import (
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/control"
	"mtad.dev/mta/internal/smtptest"
)

// TestPowerLossState: what an operator's command changed must survive a power cut
// once the command said it was done: the hold list after qm stop and qm start, and
// a message held or released with qm hold and qm release. (The queue's journal of
// rerouted mail is TestPowerLoss's: crowd@localhost goes through reprocess.)
func TestPowerLossState(t *testing.T) {
	mtadBin, mtactlBin := buildBinaries(t)
	r := newPowerLossRun(t, mtadBin)
	qm := func(args ...string) {
		t.Helper()
		out, err := mtactl(t, mtactlBin, append([]string{"-config", r.cfg, "-data", r.data, "qm"}, args...)...)
		if err != nil {
			t.Fatalf("qm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	state := func(when string) (stopped bool, held int) {
		t.Helper()
		sum, err := summarize(t, mtactlBin, r.cfg, r.data)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		return channelStopped(sum, "tcp_local"), sum.Total.Held
	}

	p := startMtad(t, mtadBin, r.cfg, r.data)
	// A message that stays queued: later.test does not answer.
	c := dial(t, p.addr)
	c.Cmd("EHLO client.test", "250")
	content, _ := message("state-1", 500)
	reply := c.Attempt("a@localhost", []string{"x@later.test"}, []byte(content))
	c.Cmd("QUIT", "221")
	if !strings.HasPrefix(reply, "250") {
		t.Fatalf("message refused: %q", reply)
	}
	id := strings.TrimSpace(reply[strings.LastIndex(reply, " ")+1:])

	qm("stop", "tcp_local")
	qm("hold", id)
	p = r.powerCycle(p, 0)
	if stopped, held := state("after qm stop and qm hold"); !stopped || held != 1 {
		t.Errorf("after qm stop, qm hold and a power cut: tcp_local stopped %v, %d held messages; want stopped, 1 held", stopped, held)
	}

	qm("start", "tcp_local")
	qm("release", id)
	p = r.powerCycle(p, 1)
	if stopped, held := state("after qm start and qm release"); stopped || held != 0 {
		t.Errorf("after qm start, qm release and a power cut: tcp_local stopped %v, %d held messages; want running, none held", stopped, held)
	}
	p.stop(t)
}

func channelStopped(sum control.Summary, name string) bool {
	for _, ch := range sum.Channels {
		if ch.Name == name {
			return ch.Stopped
		}
	}
	return false
}

// vacationFiles is the power-loss configuration with users' filters on the
// local channel (sieve/USER.sieve of the configuration directory) and one
// user, vic, away: one answer per sender per day.
func vacationFiles(sinkPort, laterPort int) map[string]string {
	files := powerLossFiles(sinkPort, laterPort)
	files["imta.cnf"] = strings.Replace(files["imta.cnf"], "\nl\nlocalhost\n", "\nl filter ssrd:$A\nlocalhost\n", 1)
	files["sieve/vic.sieve"] = "require \"vacation\";\nvacation :days 1 :subject \"Away\" \"I am away.\";\n"
	return files
}

// TestPowerLossVacation: a user's vacation memory (DATA/vacation, written when
// the answer is queued) survives a power cut. x@remote.test writes to vic and
// gets one answer (counted at the sink, by Message-ID, so that a second
// delivery of the same answer is not taken for a second answer); SIGKILL,
// power cut, restart; x writes again within the day and gets no second answer.
// vic has had mail before (a list message, which vacation does not answer), so
// that the Maildir's first delivery, which fsyncs DATA, comes before the first
// answer: DATA/vacation, made at that answer, must be made durable by the
// vacation store itself.
func TestPowerLossVacation(t *testing.T) {
	mtadBin, _ := buildBinaries(t)
	r := newPowerLossRun(t, mtadBin)
	files := vacationFiles(r.sinkPort, r.laterPort)
	if !strings.Contains(files["imta.cnf"], "l filter ssrd:$A") {
		t.Fatal("vacationFiles did not find the local channel in powerLossFiles")
	}
	r.configure(files)
	send := func(addr, tok string, extra ...string) [32]byte {
		t.Helper()
		content, _ := message(tok, 300)
		content = "From: <x@remote.test>\r\nTo: <vic@localhost>\r\n" + strings.Join(extra, "") + content
		if !smtptest.SendOne(addr, smtptest.Transaction{Helo: "remote.test", From: "x@remote.test", To: []string{"vic@localhost"}, Content: content}) {
			t.Fatalf("%s refused", tok)
		}
		_, sum := bodySum([]byte(content))
		return sum
	}
	answers := func() (distinct, copies int) {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, n := range r.autoReplies {
			distinct++
			copies += n
		}
		return distinct, copies
	}

	p := startMtad(t, mtadBin, r.cfg, r.data)
	sums := map[string][32]byte{"vacation-list": send(p.addr, "vacation-list", "Precedence: list\r\n")}
	r.waitDrained(30 * time.Second)
	sums["vacation-1"] = send(p.addr, "vacation-1")
	// Drained: the message is in vic's Maildir and the answer, queued (and
	// recorded) during that delivery, has reached the sink.
	r.waitDrained(30 * time.Second)
	if n, _ := answers(); n != 1 {
		t.Fatalf("before the cut: %d vacation answers at the sink, want 1", n)
	}
	p = r.powerCycle(p, 0)
	sums["vacation-2"] = send(p.addr, "vacation-2")
	r.waitDrained(30 * time.Second)
	waitLogLine(t, r.data, 10*time.Second, "the second message's D record", func(l string) bool {
		return strings.Contains(l, " l D ") && strings.Contains(l, "vic@localhost") && strings.Contains(l, "vacation")
	})
	p.stop(t)

	distinct, copies := answers()
	box := r.maildirCopies()["vic"]
	for tok, sum := range sums {
		var got [][32]byte
		if box != nil {
			got = box.of(tok)
		}
		if len(got) == 0 || got[0] != sum {
			t.Errorf("%s: %d copies in vic's Maildir, want 1 with the body sent", tok, len(got))
		}
	}
	var notes []string
	for _, l := range readLog(r.data) {
		if strings.Contains(l, " l D ") && strings.Contains(l, "vacation") {
			notes = append(notes, l[strings.Index(l, "vacation"):])
		}
	}
	t.Logf("vacation across a power cut: %d answer(s) at the sink (%d copies); the cut dropped %v; mail.log after the cut: %q",
		distinct, copies, r.loss, notes)
	if distinct != 1 {
		t.Errorf("x@remote.test got %d vacation answers across a power cut, want 1: the vacation memory was not durable", distinct)
	}
}
