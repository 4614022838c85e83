package queue

import (
	"bufio"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// The crash test re-runs this test binary as a child that enqueues (and completes
// some messages) as fast as it can, printing each acknowledged operation, and kills
// it with SIGKILL at a random moment. Every acknowledged message must then be in the
// queue with intact content; every acknowledged completion must have stuck.

const (
	crashChildEnv = "MTA_QUEUE_CRASH_CHILD_DIR"
	// crashSlowIndexEnv makes the child's index commits slow, so that a kill almost
	// always finds acknowledged messages that are in the journal only.
	crashSlowIndexEnv = "MTA_QUEUE_CRASH_SLOW_INDEX"
)

func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("helper process of TestCrashRecovery")
	}
	// Small segments so that kills also land around segment rotation and removal.
	opts := Options{Logger: slog.New(slog.DiscardHandler), segmentSize: 1 << 20}
	if os.Getenv(crashSlowIndexEnv) != "" {
		opts.beforeCommit = func() error { time.Sleep(30 * time.Millisecond); return nil }
	}
	q, err := Open(dir, opts)
	if err != nil {
		fmt.Printf("OPENFAIL %v\n", err)
		os.Exit(3)
	}
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		// One write(2) per line: a pipe write under PIPE_BUF is atomic, so the parent
		// never sees half a line even though we are killed mid-flight.
		line := fmt.Sprintf(format, args...)
		outMu.Lock()
		os.Stdout.WriteString(line)
		outMu.Unlock()
	}
	for w := 0; w < 8; w++ {
		go func() {
			rnd := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for i := 0; ; i++ {
				body := make([]byte, rnd.IntN(64<<10))
				for j := range body {
					body[j] = byte(rnd.Uint32())
				}
				id, err := q.Enqueue(context.Background(), testEnvelope(i), body)
				if err != nil {
					say("ERR %v\n", err)
					continue
				}
				say("A %s %d %08x\n", id, len(body), crc32.Checksum(body, castagnoli))
				if i%3 == 0 {
					say("U %s\n", id) // from here it may be gone without a D line
					ups := []Update{{Rcpt: 0, State: Delivered}, {Rcpt: 1, State: Returned}}
					if err := q.Update(id, ups); err != nil {
						say("ERR %v\n", err)
						continue
					}
					say("D %s\n", id)
				}
			}
		}()
	}
	time.Sleep(30 * time.Second) // the parent kills us long before
	os.Exit(4)
}

type ackedMsg struct {
	size int64
	crc  uint32
}

func TestCrashRecovery(t *testing.T) {
	cycles := 4
	if testing.Short() {
		cycles = 2
	}
	dir := t.TempDir()
	acked := make(map[string]ackedMsg)
	done := make(map[string]bool)
	maybe := make(map[string]bool) // completion started, not acknowledged
	var replayed int64
	for cycle := 0; cycle < cycles; cycle++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		slow := cycle%2 == 1
		if slow {
			cmd.Env = append(cmd.Env, crashSlowIndexEnv+"=1")
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			r := bufio.NewReader(stdout)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					if err != io.EOF || line != "" {
						lines <- "PARTIAL " + line
					}
					return
				}
				lines <- strings.TrimSuffix(line, "\n")
			}
		}()
		// Kill at a random moment once the child is under way.
		var killAt <-chan time.Time
		timeout := time.After(20 * time.Second)
		killed := false
	read:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					break read
				}
				if killAt == nil && !killed {
					killAt = time.After(time.Duration(rand.IntN(150)) * time.Millisecond)
				}
				parseCrashLine(t, line, acked, done, maybe)
			case <-killAt:
				killAt = nil
				if err := cmd.Process.Kill(); err != nil {
					t.Fatalf("kill: %v", err)
				}
				killed = true
			case <-timeout:
				cmd.Process.Kill()
				t.Fatal("child did not get under way (or did not die) in time")
			}
		}
		if !killed {
			t.Fatalf("child exited by itself: %v", cmd.Wait())
		}
		cmd.Wait()

		q := openTest(t, dir, Options{})
		if qi := q.Quarantined(); len(qi) != 0 {
			t.Fatalf("cycle %d: kill -9 produced quarantined messages: %+v", cycle, qi)
		}
		if slow {
			replayed += q.Stats().Replayed
		}
		for id, m := range acked {
			if done[id] {
				if _, err := q.Get(id); err != ErrNotFound {
					t.Fatalf("cycle %d: completed message %s back after crash: %v", cycle, id, err)
				}
				continue
			}
			c, err := q.Content(id)
			if err == ErrNotFound && maybe[id] {
				// Its completion committed but the child died before saying so.
				done[id] = true
				continue
			}
			if err != nil {
				t.Fatalf("cycle %d: acknowledged message %s lost: %v", cycle, id, err)
			}
			b := make([]byte, c.Size())
			if _, err := c.ReadAt(b, 0); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			c.Close()
			if int64(len(b)) != m.size || crc32.Checksum(b, castagnoli) != m.crc {
				t.Fatalf("cycle %d: %s content differs from what was acknowledged", cycle, id)
			}
		}
		n := 0
		q.Walk(func(*Envelope) bool { n++; return true })
		t.Logf("cycle %d: %d acknowledged so far (%d completed), %d queued", cycle, len(acked), len(done), n)
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if len(acked) == 0 {
		t.Fatal("no message was ever acknowledged")
	}
	// With the index 30 ms behind, a kill finds acknowledged messages that only the
	// journal holds: the checks above passed for them because recovery replayed them.
	if replayed == 0 {
		t.Error("no kill with a slow index left a message to replay: the journal path was not exercised")
	}
	t.Logf("%d messages replayed from the journal after kills with a slow index", replayed)
}

func parseCrashLine(t *testing.T, line string, acked map[string]ackedMsg, done, maybe map[string]bool) {
	t.Helper()
	f := strings.Fields(line)
	switch {
	case len(f) == 4 && f[0] == "A":
		var m ackedMsg
		if _, err := fmt.Sscanf(f[2]+" "+f[3], "%d %x", &m.size, &m.crc); err != nil {
			t.Fatalf("bad child line %q", line)
		}
		acked[f[1]] = m
	case len(f) == 2 && f[0] == "U":
		maybe[f[1]] = true
	case len(f) == 2 && f[0] == "D":
		done[f[1]] = true
	case strings.HasPrefix(line, "PARTIAL") && len(f) == 1:
	case strings.HasPrefix(line, "ERR"), strings.HasPrefix(line, "OPENFAIL"), strings.HasPrefix(line, "PARTIAL"):
		t.Fatalf("child: %s", line)
	}
}
