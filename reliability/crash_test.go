package reliability

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mtad.dev/mta/compiler"
)

// relayCnf relays every recipient over tcp_local to a smart host on loopback (the
// shape of examples/bench-relay). The local channel's name is reserved (.invalid) so
// that nothing stays local.
func relayCnf(port int, extra string) string {
	return fmt.Sprintf(`! reliability: everything to the sink
.                $U%%$H@tcp-daemon

l
relay.invalid

tcp_local smtp nomx single_sys daemon 127.0.0.1 port %d maxjobs 4 %s
tcp-daemon
`, port, extra)
}

// TestCrashRelay is the crash proof: several senders load the real mtad binary
// while it relays to a loopback sink; mtad is SIGKILLed at random instants and
// restarted on the same data directory. After the last restart every message that
// got 250 must have reached the sink with the right body hash. A message may reach
// the sink twice only if a kill fell between the sink's 250 and our commit of the
// delivery: those are counted and bounded by what can be in flight at one instant.
func TestCrashRelay(t *testing.T) {
	mtadBin, mtactlBin := buildBinaries(t)
	sk := newSink(t)
	cfg, data := t.TempDir(), t.TempDir()
	writeFiles(t, cfg, map[string]string{"imta.cnf": relayCnf(sk.port, "")})
	if out, err := mtactl(t, mtactlBin, "-config", cfg, "cnbuild"); err != nil {
		t.Fatalf("cnbuild: %v\n%s", err, out)
	}

	var (
		mu     sync.Mutex
		acked  = map[string][32]byte{}
		failed int
	)
	start := time.Now()
	for cycle := 0; cycle <= crashKills; cycle++ {
		p := startMtad(t, mtadBin, cfg, data)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range crashSenders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					tok := fmt.Sprintf("c%d-w%d-%d", cycle, w, i)
					content, sum := message(tok, 200+rand.IntN(4000))
					ok := sendOne(p.addr, "user"+fmt.Sprint(i%7)+"@remote.test", content)
					mu.Lock()
					if ok {
						acked[tok] = sum
					} else {
						failed++
					}
					mu.Unlock()
				}
			}()
		}
		run := crashRunBefore + time.Duration(rand.Int64N(int64(crashRunSpread)))
		time.Sleep(run)
		if cycle < crashKills {
			p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
			close(stop)
			wg.Wait()
			continue
		}
		close(stop)
		wg.Wait()
		// The last run: everything acknowledged must arrive.
		mu.Lock()
		want := len(acked)
		mu.Unlock()
		if missing := sk.waitAll(acked, 60*time.Second); missing > 0 {
			t.Errorf("%d of %d acknowledged messages not at the sink after 60 s", missing, want)
		}
		p.stop(t)
	}

	dups, bad := 0, 0
	for tok, sum := range acked {
		copies := sk.copies(tok)
		if len(copies) == 0 {
			t.Errorf("%s: acknowledged with 250, never delivered", tok)
			continue
		}
		dups += len(copies) - 1
		for _, c := range copies {
			if c != sum {
				bad++
				t.Errorf("%s: delivered body hash %x, sent %x", tok, c[:8], sum[:8])
			}
		}
	}
	t.Logf("crash: %d kills, %d senders, %v: %d acknowledged, %d not acknowledged (refused while down, or cut by a kill), %d received by the sink, %d duplicate deliveries",
		crashKills, crashSenders, time.Since(start).Round(time.Millisecond), len(acked), failed, sk.count(), dups)
	if len(acked) < 20*(crashKills+1) {
		t.Errorf("only %d messages acknowledged: the load did not exercise the daemon", len(acked))
	}
	// A kill can duplicate only deliveries whose remote 250 was in but not yet
	// committed: at most maxjobs (4) connections, each one transaction, plus the
	// group commit's window of async updates (10 ms at these rates: a few dozen).
	if limit := crashKills * 40; dups > limit {
		t.Errorf("%d duplicate deliveries for %d kills (bound %d)", dups, crashKills, limit)
	}
}

// bigCnf is a configuration with n rewrite rules, large enough that writing its
// image takes a while (the window a kill must hit).
func bigCnf(n int, port int, variant string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "! large configuration, variant %s\n", variant)
	for i := range n {
		fmt.Fprintf(&b, "host%d-%s.example   $U%%$D@tcp-daemon\n", i, variant)
	}
	b.WriteString(strings.SplitN(relayCnf(port, ""), "\n", 2)[1])
	return b.String()
}

// TestCrashDuringCnbuild kills mtactl cnbuild at random instants while it compiles
// and writes a large image over a valid one: compiled.image must always be a valid
// image, either the old or the new one, never a torn file.
func TestCrashDuringCnbuild(t *testing.T) {
	_, mtactlBin := buildBinaries(t)
	cfg := t.TempDir()
	variants := []string{"a", "b"}
	hashes := map[[32]byte]string{}
	// Learn both images' source hashes, and how long a full cnbuild takes.
	var full time.Duration
	for _, v := range variants {
		writeFiles(t, cfg, map[string]string{"imta.cnf": bigCnf(cnbuildRules, 2525, v)})
		t0 := time.Now()
		if out, err := mtactl(t, mtactlBin, "-config", cfg, "cnbuild"); err != nil {
			t.Fatalf("cnbuild: %v\n%s", err, out)
		}
		full = time.Since(t0)
		img, err := compiler.Load(compiler.ImagePath(cfg))
		if err != nil {
			t.Fatal(err)
		}
		hashes[img.Header.SourceHash] = v
	}
	st, _ := os.Stat(compiler.ImagePath(cfg))
	t.Logf("cnbuild of %d rules: %v, image %d bytes", cnbuildRules, full, st.Size())

	outcome := map[string]int{}
	for i := range cnbuildKills {
		v := variants[i%2]
		writeFiles(t, cfg, map[string]string{"imta.cnf": bigCnf(cnbuildRules, 2525, v)})
		cmd := exec.Command(mtactlBin, "-config", cfg, "cnbuild")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Spread the kills over the whole run, the write at its end included.
		time.Sleep(time.Duration(rand.Int64N(int64(full) + int64(full)/4)))
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		img, lerr := compiler.Load(compiler.ImagePath(cfg))
		if lerr != nil {
			t.Fatalf("kill %d (%v): compiled.image is not valid: %v", i, err, lerr)
		}
		got, ok := hashes[img.Header.SourceHash]
		if !ok {
			t.Fatalf("kill %d: compiled.image is valid but neither the old nor the new image", i)
		}
		if got == v {
			outcome["new"]++
		} else {
			outcome["old"]++
		}
	}
	leftovers := func() []string {
		var out []string
		ents, _ := os.ReadDir(cfg)
		for _, e := range ents {
			if e.Name() != compiler.ImageName && e.Name() != "imta.cnf" {
				out = append(out, e.Name())
			}
		}
		return out
	}
	outcome["leftover files"] = len(leftovers())
	t.Logf("cnbuild kills: %v", outcome)

	// A later, complete cnbuild must leave the directory clean: the temporary file
	// of an interrupted one would otherwise stay forever, one image size each.
	t.Run("no temporary files accumulate", func(t *testing.T) {
		if out, err := mtactl(t, mtactlBin, "-config", cfg, "cnbuild"); err != nil {
			t.Fatalf("cnbuild: %v\n%s", err, out)
		}
		if l := leftovers(); len(l) > 0 {
			t.Errorf("files left in the configuration directory: %v", l)
		}
	})
}

// TestCrashAfterReload replaces compiled.image under a running mtad and kills it
// at once (before, during or after the watcher's reload): mtad must restart on a
// valid image, and the new image must be the one in force.
func TestCrashAfterReload(t *testing.T) {
	mtadBin, mtactlBin := buildBinaries(t)
	sk := newSink(t)
	cfg, data := t.TempDir(), t.TempDir()
	// The two configurations differ by a keyword the message path does not see.
	cnfs := []string{relayCnf(sk.port, ""), relayCnf(sk.port, "threaddepth 50")}
	writeFiles(t, cfg, map[string]string{"imta.cnf": cnfs[0]})
	if out, err := mtactl(t, mtactlBin, "-config", cfg, "cnbuild"); err != nil {
		t.Fatalf("cnbuild: %v\n%s", err, out)
	}
	for i := range reloadKills {
		p := startMtad(t, mtadBin, cfg, data)
		tok := fmt.Sprintf("reload-%d", i)
		content, sum := message(tok, 500)
		if !sendOne(p.addr, "someone@remote.test", content) {
			t.Fatalf("cycle %d: message not acknowledged", i)
		}
		writeFiles(t, cfg, map[string]string{"imta.cnf": cnfs[(i+1)%2]})
		if out, err := mtactl(t, mtactlBin, "-config", cfg, "cnbuild"); err != nil {
			t.Fatalf("cnbuild: %v\n%s", err, out)
		}
		want, err := compiler.Load(compiler.ImagePath(cfg))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond) // the watcher debounces 200 ms
		p.kill()

		p = startMtad(t, mtadBin, cfg, data)
		sk.waitToken(t, tok, 30*time.Second)
		if c := sk.copies(tok); c[0] != sum {
			t.Errorf("cycle %d: body hash differs", i)
		}
		// The restarted daemon must run the new image: mtactl version shows the
		// running mtad's source hash next to the file's.
		out, err := mtactl(t, mtactlBin, "-config", cfg, "-data", data, "version")
		if err != nil {
			t.Fatalf("mtactl version: %v\n%s", err, out)
		}
		hash := hex.EncodeToString(want.Header.SourceHash[:])
		if _, running, ok := strings.Cut(out, "running mtad: pid"); !ok || !strings.Contains(running, "source hash = "+hash) {
			t.Errorf("cycle %d: running mtad is not on the new image %s:\n%s", i, hash[:12], out)
		}
		if bytes.Contains([]byte(p.logs.String()), []byte("ERROR")) {
			t.Errorf("cycle %d: mtad logged errors:\n%s", i, p.logs)
		}
		p.stop(t)
	}
}
