package reliability

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/control"
	"mtad.dev/mta/internal/lazyfs"
	"mtad.dev/mta/internal/smtptest"
)

// The power-loss proof. TestCrashRelay's SIGKILL leaves the kernel's page cache
// whole, so it cannot tell whether a 250 waited for the right fsyncs. Here mtad's
// data directory lives on internal/lazyfs, and each cycle is a SIGKILL followed by
// a power cut that throws away everything not fsync'd (file data, and names in
// directories not fsync'd since they changed); mtad then restarts on what
// survived. The data directory does not exist before the first start, as on a
// fresh install.

// powerLossFiles is the configuration: remote.test goes to a sink, localhost to
// Maildirs, later.test to a destination that answers only after the last cut (so
// that acknowledged messages stay queued through every cut), and crowd@localhost,
// an alias longer than tcp_local's expandlimit, through the reprocess channel to
// two Maildirs and the sink.
func powerLossFiles(sinkPort, laterPort int) map[string]string {
	return map[string]string{
		"imta.cnf": fmt.Sprintf(`! reliability: power loss
localhost        $U%%localhost@localhost
later.test       $U%%$D@tcp_later-daemon
.                $U%%$H@tcp-daemon

l
localhost

reprocess
reprocess-daemon

tcp_local smtp nomx single_sys expandlimit 2 daemon 127.0.0.1 port %d maxjobs 4
tcp-daemon

tcp_later smtp nomx single_sys daemon 127.0.0.1 port %d backoff "pt1s"
tcp_later-daemon
`, sinkPort, laterPort),
		"aliases": "crowd: c1@localhost, c2@localhost, crowd-member@remote.test\n",
	}
}

// plDest is where a copy of a message must end up: "sink", "later", or
// "box:NAME" for the Maildir NAME.
type plDest string

// plRecipient is the recipient of a sender's i-th message, and where its copies
// go: 3 in 8 to the sink, 2 to Maildirs, 2 to the later destination, 1 through
// reprocess to all three kinds.
func plRecipient(i int) (string, []plDest) {
	switch i % 8 {
	case 0, 1, 2:
		return fmt.Sprintf("user%d@remote.test", i%7), []plDest{"sink"}
	case 3, 4:
		box := fmt.Sprintf("m%d", i%3)
		return box + "@localhost", []plDest{plDest("box:" + box)}
	case 5, 6:
		return fmt.Sprintf("x%d@later.test", i%5), []plDest{"later"}
	}
	return "crowd@localhost", []plDest{"sink", "box:c1", "box:c2"}
}

// plMessage is an acknowledged message.
type plMessage struct {
	sum   [32]byte
	dests []plDest
	at    time.Time // when the 250 came
	cycle int
}

// bodySum returns a message's token (its Subject) and the SHA-256 of its body
// (after the header's blank line) with line ends made LF, so that a copy stored in
// a Maildir with either line end compares equal to what was sent.
func bodySum(content []byte) (token string, sum [32]byte) {
	norm := bytes.ReplaceAll(content, []byte("\r\n"), []byte("\n"))
	if m := subjectRE.FindSubmatch(norm); m != nil {
		token = string(m[1])
	}
	body := norm
	if i := bytes.Index(norm, []byte("\n\n")); i >= 0 {
		body = norm[i+2:]
	}
	return token, sha256.Sum256(body)
}

// copies counts the copies of each token that reached one place, with their sums.
type copies struct {
	mu  sync.Mutex
	got map[string][][32]byte
}

func newCopies() *copies { return &copies{got: map[string][][32]byte{}} }

func (c *copies) add(content []byte) {
	tok, sum := bodySum(content)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got[tok] = append(c.got[tok], sum)
}

func (c *copies) of(tok string) [][32]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[tok]
}

// plRun is one power-loss run: mtad on a lazy filesystem, cut again and again.
type plRun struct {
	t                   *testing.T
	mtadBin, mtactlBin  string
	fs                  *lazyfs.FS
	cfg, data           string
	sinkPort, laterPort int
	sink, later         *copies

	mu       sync.Mutex
	acked    map[string]plMessage
	refused  int
	dRecords map[string]bool // Maildir D records of mail.log ("mailbox/new/name"), as seen before each cut
	// autoReplies counts the copies of each automatic answer (Auto-Submitted:
	// auto-replied) the sink received, by Message-ID: a second answer has its
	// own, a second delivery of the same answer does not.
	autoReplies map[string]int
	loss        lazyfs.Loss // summed over the cuts
	kills       []time.Time // by cycle
}

// plResult is what a run found.
type plResult struct {
	acked, refused, delivered int
	dupCopies                 int      // copies beyond the first, everywhere
	dupMessages               int      // messages with at least one duplicate copy
	dRecords                  int      // Maildir D records checked
	problems                  []string // losses: any is a failure
	dupNotes                  []string
}

func newPowerLossRun(t *testing.T, mtadBin string) *plRun {
	t.Helper()
	_, mtactlBin := buildBinaries(t)
	r := &plRun{t: t, mtadBin: mtadBin, mtactlBin: mtactlBin, fs: lazyfs.MountForTest(t),
		cfg: t.TempDir(), laterPort: closedPort(t), sink: newCopies(), later: newCopies(),
		acked: map[string]plMessage{}, dRecords: map[string]bool{}, autoReplies: map[string]int{}}
	r.data = filepath.Join(r.fs.Dir(), "data") // mtad creates it: its entry must be made durable too
	sk := smtptest.StartSink(t, smtptest.SinkConfig{Record: func(m smtptest.Message) {
		r.sink.add(m.Data)
		r.noteAutoReply(m.Data)
	}})
	r.sinkPort = sk.Port
	r.configure(powerLossFiles(sk.Port, r.laterPort))
	return r
}

// configure writes a configuration and compiles it (mtactl cnbuild). The
// configuration directory is not on the lazy filesystem: it is the
// administrator's, and cnbuild's own crash test covers the image.
func (r *plRun) configure(files map[string]string) {
	r.t.Helper()
	writeFiles(r.t, r.cfg, files)
	if out, err := mtactl(r.t, r.mtactlBin, "-config", r.cfg, "cnbuild"); err != nil {
		r.t.Fatalf("cnbuild: %v\n%s", err, out)
	}
}

// noteAutoReply counts a copy of an automatic answer that reached the sink.
func (r *plRun) noteAutoReply(content []byte) {
	if !bytes.Contains(content, []byte("\nAuto-Submitted: auto-replied")) {
		return
	}
	id := ""
	if m := messageIDRE.FindSubmatch(content); m != nil {
		id = string(m[1])
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.autoReplies[id]++
}

var messageIDRE = regexp.MustCompile(`(?mi)^Message-ID:\s*(\S+)\r?$`)

// powerCycle SIGKILLs mtad, cuts the power and starts mtad again on what survived.
func (r *plRun) powerCycle(p *proc, cycle int) *proc {
	r.t.Helper()
	p.kill()
	r.kills = append(r.kills, time.Now())
	r.cut(cycle)
	return startMtad(r.t, r.mtadBin, r.cfg, r.data)
}

// cut cuts the power of the stopped mtad's filesystem.
func (r *plRun) cut(cycle int) {
	r.t.Helper()
	r.readDRecords() // what an operator saw before the power went
	loss, err := r.fs.PowerCut()
	if err != nil {
		r.t.Fatalf("cycle %d: power cut: %v", cycle, err)
	}
	r.t.Logf("cycle %d: power cut: %v", cycle, loss)
	r.loss.Add(loss)
}

// run makes the cycles: load, SIGKILL, power cut, restart; then the last start
// with the later destination answering, until the queue is empty.
func (r *plRun) run(cycles int) plResult {
	t := r.t
	start := time.Now()
	for cycle := range cycles {
		p := startMtad(t, r.mtadBin, r.cfg, r.data)
		stop := r.load(p.addr, cycle)
		time.Sleep(plRunBefore + time.Duration(rand.Int64N(int64(plRunSpread))))
		p.kill()
		r.kills = append(r.kills, time.Now())
		stop()
		r.cut(cycle)
	}
	smtptest.StartSink(t, smtptest.SinkConfig{
		Addr:   fmt.Sprintf("127.0.0.1:%d", r.laterPort),
		Record: func(m smtptest.Message) { r.later.add(m.Data) },
	})
	p := startMtad(t, r.mtadBin, r.cfg, r.data)
	r.waitDrained(90 * time.Second)
	p.stop(t)
	r.readDRecords()
	res := r.check()
	t.Logf("power loss: %d cycles, %d senders, %v: %d acknowledged, %d not (refused while down, or cut by a kill); %d copies delivered; %d duplicate copies of %d messages; %d Maildir D records checked; the cuts dropped: %v",
		cycles, plSenders, time.Since(start).Round(time.Millisecond), res.acked, res.refused, res.delivered,
		res.dupCopies, res.dupMessages, res.dRecords, r.loss)
	return res
}

// load starts the senders; the function it returns stops them and waits.
func (r *plRun) load(addr string, cycle int) func() {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for w := range plSenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-quit:
					return
				default:
				}
				tok := fmt.Sprintf("p%d-w%d-%d", cycle, w, i)
				rcpt, dests := plRecipient(i + w)
				content, _ := message(tok, 200+rand.IntN(3000))
				_, sum := bodySum([]byte(content))
				ok := sendOne(addr, rcpt, content)
				at := time.Now()
				r.mu.Lock()
				if ok {
					r.acked[tok] = plMessage{sum: sum, dests: dests, at: at, cycle: cycle}
				} else {
					r.refused++
				}
				r.mu.Unlock()
				time.Sleep(plPace)
			}
		}()
	}
	return func() { close(quit); wg.Wait() }
}

// readDRecords collects the Maildir D records of mail.log as it is now (mail.log
// is not fsync'd: a cut may take lines an operator has already read).
func (r *plRun) readDRecords() {
	for _, line := range readLog(r.data) {
		f := strings.Fields(line)
		if len(f) < 9 || f[2] != "l" || !strings.HasPrefix(f[3], "D") {
			continue
		}
		for _, field := range f[8:] {
			name, ok := strings.CutPrefix(field, "maildir;")
			if !ok {
				continue
			}
			box, st := channels.MailboxOf(f[7])
			if st != nil {
				r.t.Errorf("D record for an unsafe mailbox: %s", line)
				continue
			}
			r.dRecords[box+"/"+name] = true
		}
	}
}

// summarize is mtactl qm summarize.
func summarize(t *testing.T, mtactlBin, cfg, data string) (control.Summary, error) {
	var sum control.Summary
	out, err := mtactl(t, mtactlBin, "-config", cfg, "-data", data, "qm", "summarize", "-json")
	if err != nil {
		return sum, fmt.Errorf("qm summarize: %w\n%s", err, out)
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		return sum, fmt.Errorf("qm summarize: %w\n%s", err, out)
	}
	return sum, nil
}

// waitDrained waits until the queue is empty: a message lost by a cut never
// arrives, so waiting for every acknowledged one would only wait for the timeout.
func (r *plRun) waitDrained(within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if sum, err := summarize(r.t, r.mtactlBin, r.cfg, r.data); err == nil && sum.Total.Messages == 0 {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	r.t.Errorf("the queue is not empty after %v", within)
}

// maildirCopies reads every message of every Maildir.
func (r *plRun) maildirCopies() map[string]*copies {
	boxes := map[string]*copies{}
	dirs, _ := filepath.Glob(filepath.Join(r.data, "mailboxes", "*"))
	for _, d := range dirs {
		c := newCopies()
		boxes[filepath.Base(d)] = c
		for _, sub := range []string{"new", "cur"} {
			files, _ := filepath.Glob(filepath.Join(d, sub, "*"))
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					r.t.Errorf("read %s: %v", f, err)
					continue
				}
				c.add(b)
			}
		}
	}
	return boxes
}

// check compares what was acknowledged with what arrived, and the Maildir D
// records with the Maildirs.
func (r *plRun) check() plResult {
	res := plResult{acked: len(r.acked), refused: r.refused, dRecords: len(r.dRecords)}
	boxes := r.maildirCopies()
	for tok, m := range r.acked {
		duplicated := false
		for _, d := range m.dests {
			var got [][32]byte
			switch {
			case d == "sink":
				got = r.sink.of(tok)
			case d == "later":
				got = r.later.of(tok)
			default:
				if c := boxes[strings.TrimPrefix(string(d), "box:")]; c != nil {
					got = c.of(tok)
				}
			}
			if len(got) == 0 {
				res.problems = append(res.problems, fmt.Sprintf("%s: acknowledged with 250, never delivered to %s", tok, d))
				continue
			}
			res.delivered += len(got)
			if len(got) > 1 {
				res.dupCopies += len(got) - 1
				duplicated = true
				res.dupNotes = append(res.dupNotes, fmt.Sprintf("%s: %d copies at %s (acknowledged %v before the kill)",
					tok, len(got), d, r.kills[m.cycle].Sub(m.at).Round(time.Millisecond)))
			}
			for _, s := range got {
				if s != m.sum {
					res.problems = append(res.problems, fmt.Sprintf("%s: the copy delivered to %s has another body", tok, d))
				}
			}
		}
		if duplicated {
			res.dupMessages++
		}
	}
	for rec := range r.dRecords {
		box, name, _ := strings.Cut(rec, "/")
		_, err := os.Stat(filepath.Join(r.data, "mailboxes", box, name))
		_, cerr := os.Stat(filepath.Join(r.data, "mailboxes", box, "cur", filepath.Base(name)))
		if err != nil && cerr != nil {
			res.problems = append(res.problems, fmt.Sprintf("mail.log reported %s delivered; it is not in the Maildir", rec))
		}
	}
	return res
}

// TestPowerLoss: after the cycles, every acknowledged message was delivered with
// its content to every place it was for, every Maildir delivery mail.log reported
// (before a cut or after) is in its Maildir, and duplicates stay rare.
//
// A duplicate is a delivery whose result the queue had not committed yet when the
// power went (up to 10 ms, the queue's wait for company, plus the commit). How
// many a cut makes is the delivery rate times that window, the same with a
// SIGKILL alone: the senders pause plPace between messages so that a cut finds
// about one such delivery in two cycles (at full speed it finds five, as
// TestCrashRelay's kills do). A message rerouted through reprocess counts once
// however many of its copies came twice.
func TestPowerLoss(t *testing.T) {
	mtadBin, _ := buildBinaries(t)
	r := newPowerLossRun(t, mtadBin)
	res := r.run(plCycles)
	for i, p := range res.problems {
		if i == 20 {
			t.Errorf("... and %d more", len(res.problems)-20)
			break
		}
		t.Error(p)
	}
	for _, n := range res.dupNotes {
		t.Log("duplicate: " + n)
	}
	if res.acked < 10*plCycles {
		t.Errorf("only %d messages acknowledged: the load did not exercise the daemon", res.acked)
	}
	// One per cycle on average; three cycles are too few for an average (a single
	// unlucky cut can make three), so the short run allows six.
	if limit := max(plCycles, 6); res.dupMessages > limit {
		t.Errorf("%d messages delivered twice for %d cycles (bound %d)", res.dupMessages, plCycles, limit)
	}
}

// faultBinary is mtad built with the build tag fsyncfault: the environment
// variable MTAD_FSYNC_FAULT=segment makes it leave out the fsync of each batch
// appended to a queue segment, the one every 250 rests on.
var faultBinary = struct {
	once sync.Once
	path string
	err  error
}{}

func buildFaultMtad(t *testing.T) string {
	t.Helper()
	buildBinaries(t) // makes the directory the binaries go to
	faultBinary.once.Do(func() {
		faultBinary.path = filepath.Join(binaries.dir, "mtad-fsyncfault")
		out, err := exec.Command("go", "build", "-tags", "fsyncfault", "-o", faultBinary.path, "mtad.dev/mta/cmd/mtad").CombinedOutput()
		if err != nil {
			faultBinary.err = fmt.Errorf("go build -tags fsyncfault: %w\n%s", err, out)
		}
	})
	if faultBinary.err != nil {
		t.Fatal(faultBinary.err)
	}
	return faultBinary.path
}

// TestPowerLossFailsWithoutFsync is the proof that TestPowerLoss can fail: the
// same run, one cycle, with a build of mtad that leaves out the segment's fsync,
// must find acknowledged messages lost.
func TestPowerLossFailsWithoutFsync(t *testing.T) {
	if err := lazyfs.Available(); err != nil {
		t.Skipf("lazyfs: %v", err)
	}
	bin := buildFaultMtad(t)
	t.Setenv("MTAD_FSYNC_FAULT", "segment") // read by the fsyncfault build only
	r := newPowerLossRun(t, bin)
	res := r.run(1)
	if len(res.problems) == 0 {
		t.Fatalf("without the segment's fsync the power-loss run found no loss among %d acknowledged messages: it cannot fail", res.acked)
	}
	t.Logf("without the segment's fsync: %d losses among %d acknowledged messages, the first: %s",
		len(res.problems), res.acked, res.problems[0])
}
