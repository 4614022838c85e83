package reliability

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mtad.dev/mta/daemon"
)

// deferCnf relays everything to port, retrying every second: with nothing
// listening on port, messages stay queued.
func deferCnf(port int) string {
	return fmt.Sprintf(`.                $U%%$H@tcp-daemon

l
relay.invalid

tcp_local smtp nomx single_sys daemon 127.0.0.1 port %d backoff "pt1s"
tcp-daemon
`, port)
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func shutdown(t *testing.T, d *daemon.Daemon) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// segmentWith finds the queue segment holding token and the token's offset.
func segmentWith(t *testing.T, data, token string) (string, int64) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(data, "queue", "segments", "*.seg"))
	for _, s := range segs {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, []byte(token)); i >= 0 {
			return s, int64(i)
		}
	}
	t.Fatalf("no segment holds %s (segments %v)", token, segs)
	return "", 0
}

// TestCorruptQueueRecords damages the queue while mtad is stopped: one message's
// content gets a flipped byte (its CRC no longer matches) and the segment is
// truncated inside another's content. mtad must start, quarantine exactly those
// two, deliver the intact one, and keep accepting mail.
func TestCorruptQueueRecords(t *testing.T) {
	t.Parallel()
	cfg, data := t.TempDir(), t.TempDir()
	writeFiles(t, cfg, map[string]string{"imta.cnf": deferCnf(closedPort(t))})
	d := startDaemonData(t, cfg, data)
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	ids := map[string]string{}
	sums := map[string][32]byte{}
	for _, tok := range []string{"intact-1", "flipped-2", "truncated-3"} {
		content, sum := message(tok, 3000)
		r := c.Attempt("a@localhost", []string{"x@remote.test"}, []byte(content))
		if !strings.HasPrefix(r, "250") {
			t.Fatalf("%s: %q", tok, r)
		}
		ids[tok] = strings.TrimSpace(r[strings.LastIndex(r, " ")+1:])
		sums[tok] = sum
	}
	c.Cmd("QUIT", "221")
	waitLogLine(t, data, 10*time.Second, "a deferral", func(l string) bool { return strings.Contains(l, " Q ") })
	shutdown(t, d)

	// Damage: one byte of flipped-2's body, then cut the segment inside
	// truncated-3's body (it was written last, so it is at the end).
	seg, off := segmentWith(t, data, "<flipped-2@reliability.test>\r\n\r\n")
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	f.ReadAt(b, off+100)
	b[0] ^= 0x20
	f.WriteAt(b, off+100)
	f.Close()
	seg3, off3 := segmentWith(t, data, "<truncated-3@reliability.test>\r\n\r\n")
	if err := os.Truncate(seg3, off3+200); err != nil {
		t.Fatal(err)
	}

	// Restart, now with a healthy destination.
	sk := newSink(t)
	writeFiles(t, cfg, map[string]string{"imta.cnf": deferCnf(sk.port)})
	d = startDaemonData(t, cfg, data)
	reasons := map[string]string{}
	for _, qi := range d.Queue().Quarantined() {
		reasons[qi.ID] = qi.Reason
	}
	if len(reasons) != 2 {
		t.Errorf("quarantined %v, want flipped-2 %s and truncated-3 %s", reasons, ids["flipped-2"], ids["truncated-3"])
	}
	for tok, want := range map[string]string{"flipped-2": "checksum mismatch", "truncated-3": "truncated"} {
		if r, ok := reasons[ids[tok]]; !ok || !strings.Contains(r, want) {
			t.Errorf("%s (%s): quarantine reason %q (quarantined %v), want one with %q", tok, ids[tok], r, ok, want)
		}
	}
	sk.waitToken(t, "intact-1", 15*time.Second)
	if c := sk.copies("intact-1"); c[0] != sums["intact-1"] {
		t.Errorf("intact-1: body hash differs")
	}
	// Damaged messages are never delivered, and the daemon still takes mail.
	c = dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	content, _ := message("after-5", 100)
	if r := c.Attempt("a@localhost", []string{"x@remote.test"}, []byte(content)); !strings.HasPrefix(r, "250") {
		t.Fatalf("after recovery: %q", r)
	}
	c.Cmd("QUIT", "221")
	sk.waitToken(t, "after-5", 15*time.Second)
	for _, tok := range []string{"flipped-2", "truncated-3"} {
		if n := len(sk.copies(tok)); n != 0 {
			t.Errorf("damaged %s delivered %d times", tok, n)
		}
	}

	t.Run("qm reports quarantined", func(t *testing.T) {
		_, mtactlBin := buildBinaries(t)
		out, err := mtactl(t, mtactlBin, "-config", cfg, "-data", data, "qm", "directory")
		if err != nil {
			t.Fatalf("qm directory: %v\n%s", err, out)
		}
		for _, tok := range []string{"flipped-2", "truncated-3"} {
			if !strings.Contains(out, ids[tok]) || !strings.Contains(strings.ToLower(out), "quarantin") {
				t.Errorf("qm directory does not report quarantined %s:\n%s", ids[tok], out)
			}
		}
	})
}

// TestDiskFull puts the data directory on a 4 MiB tmpfs (root only; skipped
// elsewhere), fills it, and checks that SMTP answers 452 4.3.1 for new mail, that
// what was acknowledged before is delivered, and that mtad recovers by itself
// when space returns.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	data := smallDisk(t)
	sk := newSink(t)
	// hold.test goes to a port nobody listens on until the disk has been full: a
	// message acknowledged before, and retried during, the full disk.
	holdPort := closedPort(t)
	cfg := holdConfig(t, sk.port, holdPort)
	d := startDaemonData(t, cfg, data)
	addr := d.Addr().String()

	before, sumBefore := message("before-full", 20000)
	c := dial(t, addr)
	c.Cmd("EHLO client.test", "250")
	if r := c.Attempt("a@localhost", []string{"x@remote.test"}, []byte(before)); !strings.HasPrefix(r, "250") {
		t.Fatalf("before full: %q", r)
	}
	sk.waitToken(t, "before-full", 15*time.Second)
	pending, sumPending := message("pending", 5000)
	if r := c.Attempt("a@localhost", []string{"u@hold.test"}, []byte(pending)); !strings.HasPrefix(r, "250") {
		t.Fatalf("pending: %q", r)
	}
	waitLogLine(t, data, 10*time.Second, "the deferral of pending", func(l string) bool { return isEntry(l, "tcp_hold", "Q", "u@hold.test") })

	fill := filepath.Join(data, "filler")
	fillDisk(t, fill)

	refused := 0
	for i := range 5 {
		content, _ := message(fmt.Sprintf("full-%d", i), 50000)
		r := c.Attempt("a@localhost", []string{"x@remote.test"}, []byte(content))
		switch {
		case strings.HasPrefix(r, "452 4.3.1"):
			refused++
		case strings.HasPrefix(r, "250"):
			t.Logf("full-%d accepted on a full disk: %q (then it must be delivered)", i, r)
		default:
			t.Fatalf("full-%d on a full disk: %q, want 452 4.3.1", i, r)
		}
	}
	if refused == 0 {
		t.Fatalf("no message refused with 452 4.3.1 on a full filesystem")
	}
	c.Cmd("QUIT", "221")

	// Space returns: mtad must take mail again without a restart.
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	var after string
	var sumAfter [32]byte
	deadline := time.Now().Add(15 * time.Second)
	for {
		after, sumAfter = message("after-full", 20000)
		c = dial(t, addr)
		c.Cmd("EHLO client.test", "250")
		r := c.Attempt("a@localhost", []string{"x@remote.test"}, []byte(after))
		c.Cmd("QUIT", "221")
		if strings.HasPrefix(r, "250") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mtad did not recover within 15 s after space returned: %q", r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	sk.waitToken(t, "after-full", 15*time.Second)
	if sk.copies("before-full")[0] != sumBefore || sk.copies("after-full")[0] != sumAfter {
		t.Errorf("body hash differs")
	}
	// The message acknowledged before the disk filled up, retried while it was
	// full, is delivered once its destination answers.
	hold := newSinkOn(t, fmt.Sprintf("127.0.0.1:%d", holdPort))
	hold.waitToken(t, "pending", 15*time.Second)
	if hold.copies("pending")[0] != sumPending {
		t.Errorf("pending: body hash differs")
	}
	// Anything accepted while full must have been delivered too.
	for i := range 5 {
		tok := fmt.Sprintf("full-%d", i)
		for _, l := range readLog(data) {
			if strings.Contains(l, " E") && strings.Contains(l, tok) {
				sk.waitToken(t, tok, 15*time.Second)
			}
		}
	}
	select {
	case err := <-d.Errors():
		t.Errorf("daemon reported a fatal error: %v", err)
	default:
	}
}

// fillDisk writes into path until the filesystem is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling: %v", err)
			}
			break
		}
	}
	// Fill the last partial block too.
	for {
		if _, err := f.Write(buf[:512]); err != nil {
			break
		}
	}
}

// sendReply is one SMTP transaction on its own connection, like sendOne, but it
// returns the reply that ended it: the one after the final dot, or the first
// reply that refused a step ("" when the connection failed).
func sendReply(addr, rcpt, content string) string {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return ""
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	reply := func() string {
		var all strings.Builder
		for {
			line, err := r.ReadString('\n')
			all.WriteString(line)
			if err != nil || len(line) < 4 || line[3] != '-' {
				return all.String()
			}
		}
	}
	steps := []struct{ send, code string }{
		{"", "220"},
		{"EHLO load.test\r\n", "250"},
		{"MAIL FROM:<load@localhost>\r\n", "250"},
		{"RCPT TO:<" + rcpt + ">\r\n", "250"},
		{"DATA\r\n", "354"},
		{content + ".\r\n", "250"},
	}
	last := ""
	for _, s := range steps {
		if s.send != "" {
			if _, err := io.WriteString(conn, s.send); err != nil {
				return ""
			}
		}
		if last = reply(); !strings.HasPrefix(last, s.code) {
			return last
		}
	}
	io.WriteString(conn, "QUIT\r\n")
	return last
}

// TestDiskFullKill SIGKILLs the mtad binary while its data directory (a 4 MiB
// tmpfs) is full and SMTP answers 452, with senders still sending and deferred
// messages being retried. After the space returns and mtad restarts, every
// message acknowledged with 250 is delivered exactly once with its body intact,
// no message refused with 452 is delivered, and mtad takes mail again.
func TestDiskFullKill(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	mtadBin, mtactlBin := buildBinaries(t)
	data := smallDisk(t)
	sk := newSink(t)
	// hold.test has no listener until the restart: everything sent to it stays
	// queued (and is retried every second) through the full disk and the kill.
	holdPort := closedPort(t)
	cfg := holdConfig(t, sk.port, holdPort)
	if out, err := mtactl(t, mtactlBin, "-config", cfg, "cnbuild"); err != nil {
		t.Fatalf("cnbuild: %v\n%s", err, out)
	}
	p := startMtad(t, mtadBin, cfg, data)

	var (
		mu      sync.Mutex
		acked   = map[string][32]byte{}
		refused = map[string]bool{} // answered 452 4.3.1
		other   []string            // any other refusal
		cut     int                 // connection failed: cut by the kill, or refused after it
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tok := fmt.Sprintf("dk-w%d-%d", w, i)
				content, sum := message(tok, 20000)
				r := sendReply(p.addr, "u@hold.test", content)
				mu.Lock()
				switch {
				case strings.HasPrefix(r, "250"):
					acked[tok] = sum
				case strings.HasPrefix(r, "452 4.3.1"):
					refused[tok] = true
				case r == "":
					cut++
				default:
					if len(other) < 5 {
						other = append(other, tok+": "+r)
					}
				}
				mu.Unlock()
				if !strings.HasPrefix(r, "250") {
					time.Sleep(20 * time.Millisecond) // do not spin on a full disk or a dead mtad
				}
			}
		}()
	}
	count := func() (a, r int) {
		mu.Lock()
		defer mu.Unlock()
		return len(acked), len(refused)
	}
	// Some mail in the queue first, then the disk fills up under the load.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if a, _ := count(); a >= 20 {
			break
		}
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("fewer than 20 messages acknowledged in 20 s\n%s", p.logs)
		}
	}
	fill := filepath.Join(data, "filler")
	fillDisk(t, fill)
	_, r0 := count()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, r := count(); r >= r0+10 {
			break
		}
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("the full disk did not give ten 452 4.3.1 replies in 20 s (other refusals: %v)\n%s", other, p.logs)
		}
	}
	select {
	case <-p.done:
		t.Fatalf("mtad exited on the full disk: %v\n%s", p.cmd.ProcessState, p.logs)
	default:
	}
	p.kill() // while full, senders still sending
	close(stop)
	wg.Wait()

	// Space returns; the destination answers; mtad starts on the same data.
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	hold := newSinkOn(t, fmt.Sprintf("127.0.0.1:%d", holdPort))
	p = startMtad(t, mtadBin, cfg, data)
	if missing := hold.waitAll(acked, 60*time.Second); missing > 0 {
		t.Fatalf("%d of %d acknowledged messages not delivered 60 s after the restart\n%s", missing, len(acked), p.logs)
	}
	// The queue must be empty, and mtad must take mail again.
	content, sum := message("after-kill", 20000)
	if r := sendReply(p.addr, "x@remote.test", content); !strings.HasPrefix(r, "250") {
		t.Fatalf("after the restart: %q", r)
	}
	sk.waitToken(t, "after-kill", 15*time.Second)
	if sk.copies("after-kill")[0] != sum {
		t.Errorf("after-kill: body hash differs")
	}
	p.stop(t)

	for tok, sum := range acked {
		copies := hold.copies(tok)
		if len(copies) != 1 {
			t.Errorf("%s: acknowledged, delivered %d times (nothing could be delivered before the kill)", tok, len(copies))
		}
		for _, c := range copies {
			if c != sum {
				t.Errorf("%s: body hash differs", tok)
			}
		}
	}
	for tok := range refused {
		if n := len(hold.copies(tok)); n != 0 {
			t.Errorf("%s: refused with 452, delivered %d times", tok, n)
		}
	}
	for _, o := range other {
		t.Errorf("unexpected refusal %s", o)
	}
	notAcked := hold.count() - len(acked)
	for tok := range acked {
		notAcked -= len(hold.copies(tok)) - 1
	}
	t.Logf("disk full + SIGKILL: %d acknowledged (all delivered once), %d refused 452 4.3.1 (none delivered), %d connections cut by the kill or refused after it, %d delivered without a 250 (killed between commit and reply)",
		len(acked), len(refused), cut, notAcked)
}

// smallDisk mounts a 4 MiB tmpfs on a new temporary directory, so that a data
// directory fills up in a second; the test is skipped without root or tmpfs.
// The unmount is registered first, so it runs after the cleanups registered
// later (the daemon's, or the one that kills mtad).
func smallDisk(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", data).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", data).CombinedOutput(); err != nil {
			t.Errorf("umount: %v %s", err, out)
		}
	})
	return data
}

// holdConfig writes a configuration directory whose hold.test goes to holdPort
// (retried every second) and everything else as deferCnf routes it to the sink.
func holdConfig(t *testing.T, sinkPort, holdPort int) string {
	t.Helper()
	cfg := t.TempDir()
	writeFiles(t, cfg, map[string]string{"imta.cnf": fmt.Sprintf(`hold.test    $U%%$D@tcp_hold-daemon
`+"%s"+`
tcp_hold smtp nomx single_sys daemon 127.0.0.1 port %d backoff "pt1s"
tcp_hold-daemon
`, deferCnf(sinkPort), holdPort)})
	return cfg
}
