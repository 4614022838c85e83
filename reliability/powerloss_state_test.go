package reliability

import (
	"strings"
	"testing"

	"mtad.dev/mta/control"
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
