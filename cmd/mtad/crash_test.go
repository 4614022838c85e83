package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mtad.dev/mta/internal/smtptest"
)

// TestCrashKeepsAcknowledgedMail runs the real binary under a stream of messages,
// kills it with SIGKILL at random moments, restarts it, and checks that every message
// that got a 250 reaches its Maildir. Duplicates are possible only when a crash falls
// between a Maildir write and the queue recording it; they are counted and bounded.
func TestCrashKeepsAcknowledgedMail(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the daemon; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "mtad")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	data := t.TempDir()
	const kills = 3

	var (
		mu    sync.Mutex
		acked = map[string]bool{}
	)
	seq := 0
	for cycle := 0; cycle <= kills; cycle++ {
		cmd, addr := startBinary(t, bin, data)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			base := seq + w*100000
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					token := fmt.Sprintf("c%d-%d", cycle, base+i)
					if sendOne(addr, token) {
						mu.Lock()
						acked[token] = true
						mu.Unlock()
					}
				}
			}()
		}
		seq += 1000000
		if cycle < kills {
			time.Sleep(time.Duration(200+rand.IntN(600)) * time.Millisecond)
			cmd.Process.Signal(syscall.SIGKILL)
			close(stop)
			wg.Wait()
			cmd.Wait()
			continue
		}
		time.Sleep(300 * time.Millisecond)
		close(stop)
		wg.Wait()
		// Final run: let the queue drain, then stop gracefully.
		waitDelivered(t, data, acked)
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}

	counts := deliveredTokens(t, data)
	dups := 0
	for tok := range acked {
		switch n := counts[tok]; {
		case n == 0:
			t.Errorf("message %s got 250 but was never delivered", tok)
		case n > 1:
			dups += n - 1
		}
	}
	t.Logf("%d messages acknowledged across %d kills; %d duplicate deliveries", len(acked), kills, dups)
	if len(acked) < 20 {
		t.Errorf("only %d messages acknowledged: the test did not exercise the daemon", len(acked))
	}
	// A crash can duplicate at most the deliveries in flight at that instant.
	if dups > kills*20 {
		t.Errorf("%d duplicate deliveries for %d kills", dups, kills)
	}
}

func startBinary(t *testing.T, bin, data string) (*exec.Cmd, string) {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(bin, "-data", data, "-listen", "127.0.0.1:0", "-ready-file", ready, "-log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(ready); err == nil && strings.HasSuffix(string(b), "\n") {
			return cmd, strings.TrimSpace(string(b))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("mtad did not become ready in 20 s")
	return nil, ""
}

// sendOne sends one message and reports whether it was acknowledged with 250.
func sendOne(addr, token string) bool {
	return smtptest.SendOne(addr, smtptest.Transaction{
		Helo:    "crash.test",
		From:    "crash@localhost",
		To:      []string{"sink@localhost"},
		Content: "Subject: " + token + "\r\n\r\nbody of " + token + "\r\n",
	})
}

// subjectRE finds the token in a delivered message, which a Maildir holds in its
// LF form (every CRLF written as LF).
var subjectRE = regexp.MustCompile(`(?m)^Subject: (c\d+-\d+)$`)

func deliveredTokens(t *testing.T, data string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	dir := filepath.Join(data, "mailboxes", "sink", "new")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if m := subjectRE.FindSubmatch(b); m != nil {
			counts[string(m[1])]++
		}
	}
	return counts
}

func waitDelivered(t *testing.T, data string, acked map[string]bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		counts := deliveredTokens(t, data)
		missing := 0
		for tok := range acked {
			if counts[tok] == 0 {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
