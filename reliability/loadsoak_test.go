package reliability

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mtad.dev/mta/compiler"
)

// The load soak: capacity is measured first, then 80 % of it is offered for the soak
// duration while the configuration is swapped and the relay channel stopped and
// started every cycle. The sizes: under the soak tag 30 min with one cycle a minute;
// in CI a few seconds, enough to run every step once or twice. SOAK_DURATION (a Go
// duration) overrides the duration of either size.
const (
	loadSoakCI        = 6 * time.Second
	loadSoakLong      = 30 * time.Minute
	loadSoakLoadShare = 0.8
)

// Flatness tolerance, the median of the last third against the second third's:
// 20 % plus a constant, because the stopped channel's backlog and the swap of the
// image move both figures by a few MiB and a few dozen goroutines at any instant,
// while a leak of 100 bytes or 1/5000 goroutine a message, over the 300 000
// messages a 10-minute third carries at 500 msg/s, grows past it. The flatness is
// only judged from loadSoakJudge on: a run of seconds is all warm-up.
const (
	flatRatio      = 1.20
	flatRSSBytes   = 16 << 20
	flatGoroutines = 20
	loadSoakJudge  = 5 * time.Minute
	// idleGoroutines: once the queue has drained and the sessions closed, mtad must
	// be back to its idle goroutine count (measured before the load) within this.
	idleGoroutines = 10
)

// loadSoakCnf is variant 0 (everything to the load sink, maxjobs 4) or variant 1
// (maxjobs 8, and alt.test routed to a second sink over its own channel): the swap
// changes routing, so the probes prove which image is in force.
func loadSoakCnf(sinkPort, altPort, variant int) string {
	if variant == 0 {
		return fmt.Sprintf(`! load soak, variant 0
.                $U%%$H@tcp-daemon

l
relay.invalid

tcp_local smtp nomx single_sys daemon 127.0.0.1 port %d maxjobs 4
tcp-daemon
`, sinkPort)
	}
	return fmt.Sprintf(`! load soak, variant 1: alt.test to the second sink
alt.test         $U%%$D@tcp_alt-daemon
.                $U%%$H@tcp-daemon

l
relay.invalid

tcp_local smtp nomx single_sys daemon 127.0.0.1 port %d maxjobs 8
tcp-daemon

tcp_alt smtp nomx single_sys daemon 127.0.0.1 port %d maxjobs 1
tcp_alt-daemon
`, sinkPort, altPort)
}

// freePort returns a loopback port that was free a moment ago (mtaload's sink and
// the metrics endpoint need a port number before they listen).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// soakSample is one reading of mtad's metrics endpoint.
type soakSample struct {
	at         time.Duration // since the load started (negative: before)
	rss        float64       // process_resident_memory_bytes
	goroutines float64       // go_goroutines
	queued     float64       // sum of mtad_queue_messages
	load1      string        // /proc/loadavg's first field
}

// scrapeMtad reads the figures of one soakSample from the metrics endpoint.
func scrapeMtad(addr string) (rss, goroutines, queued float64, err error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, 0, 0, fmt.Errorf("scrape: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, 0, fmt.Errorf("scrape: %s", resp.Status)
	}
	seen := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		v, perr := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if perr != nil {
			continue
		}
		switch {
		case name == "process_resident_memory_bytes":
			rss = v
			seen++
		case name == "go_goroutines":
			goroutines = v
			seen++
		case strings.HasPrefix(name, "mtad_queue_messages{"):
			queued += v
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, 0, fmt.Errorf("scrape: %w", err)
	}
	if seen != 2 {
		return 0, 0, 0, fmt.Errorf("scrape: go_goroutines or process_resident_memory_bytes missing")
	}
	return rss, goroutines, queued, nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// runMtaload runs the load generator and returns its key=value report.
func runMtaload(t *testing.T, bin string, within time.Duration, args ...string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "-timeout", within.String())...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	kv := map[string]string{}
	for _, f := range strings.Fields(string(out)) {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		}
	}
	if len(kv) == 0 {
		t.Fatalf("mtaload %v: %v, no report\n%s%s", args, err, out, stderr.String())
	}
	if err != nil {
		t.Errorf("mtaload %v: %v\n%s%s", args, err, out, stderr.String())
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
	return kv
}

func kvFloat(t *testing.T, kv map[string]string, key string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(kv[key], 64)
	if err != nil {
		t.Fatalf("mtaload report: %s=%q: %v", key, kv[key], err)
	}
	return v
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestLoadSoak offers 80 % of the measured capacity to the mtad binary for the
// soak duration while, every cycle, the compiled image is rebuilt and swapped
// (alternating two configurations that route a probe domain differently) and the
// relay channel is stopped and started. Proven: no SMTP error, every accepted
// message delivered exactly once, every swap in force (running image hash and the
// probe's route), the queue drains, and memory and goroutines stay flat.
func TestLoadSoak(t *testing.T) {
	duration, cycle, stopFor, sampleEvery, capN := loadSoakCI, 2*time.Second, 500*time.Millisecond, 250*time.Millisecond, 1000
	if soak {
		duration, cycle, stopFor, sampleEvery, capN = loadSoakLong, time.Minute, 10*time.Second, 10*time.Second, 15000
	}
	if s := os.Getenv("SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("SOAK_DURATION=%q: want a positive Go duration", s)
		}
		duration = d
	}
	mtadBin, mtactlBin := buildBinaries(t)
	mtaloadBin := filepath.Join(t.TempDir(), "mtaload")
	if out, err := exec.Command("go", "build", "-o", mtaloadBin, "mtad.dev/mta/cmd/mtaload").CombinedOutput(); err != nil {
		t.Fatalf("go build mtaload: %v\n%s", err, out)
	}

	sinkPort := freePort(t)
	sinkAddr := fmt.Sprintf("127.0.0.1:%d", sinkPort)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	alt := newSink(t)
	cfg, data := t.TempDir(), t.TempDir()
	writeFiles(t, cfg, map[string]string{
		"imta.cnf":   loadSoakCnf(sinkPort, alt.port, 0),
		"option.dat": "METRICS_LISTEN=" + metricsAddr + "\n",
	})
	if out, err := mtactl(t, mtactlBin, "-config", cfg, "cnbuild"); err != nil {
		t.Fatalf("cnbuild: %v\n%s", err, out)
	}
	p := startMtad(t, mtadBin, cfg, data)
	_, idle, _, err := scrapeMtad(metricsAddr)
	if err != nil {
		t.Fatal(err)
	}

	// Capacity: a closed loop, as fast as mtad accepts and delivers.
	capKV := runMtaload(t, mtaloadBin, 5*time.Minute, "-addr", p.addr, "-sink", sinkAddr, "-n", strconv.Itoa(capN), "-c", "20")
	capacity := min(kvFloat(t, capKV, "accept_msgs_per_s"), kvFloat(t, capKV, "e2e_msgs_per_s"))
	if capKV["errors"] != "0" || capKV["lost"] != "0" || capKV["dup"] != "0" {
		t.Fatalf("capacity run not clean: errors=%s lost=%s dup=%s", capKV["errors"], capKV["lost"], capKV["dup"])
	}
	rate := loadSoakLoadShare * capacity
	n := int(rate * duration.Seconds())

	// The samples go to a file as they come (a long run's figures survive a
	// failure); SOAK_SAMPLES names another file to keep them after the test.
	samplesPath := filepath.Join(t.TempDir(), "loadsoak-samples.tsv")
	if s := os.Getenv("SOAK_SAMPLES"); s != "" {
		samplesPath = s
	}
	sf, err := os.Create(samplesPath)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	fmt.Fprintln(sf, "elapsed_s\trss_bytes\tgoroutines\tqueued_messages\tload1")

	var (
		mu       sync.Mutex
		samples  []soakSample
		problems []string
	)
	problem := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, a...))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the sampler
		defer wg.Done()
		tick := time.NewTicker(sampleEvery)
		defer tick.Stop()
		for {
			rss, g, q, err := scrapeMtad(metricsAddr)
			if err != nil {
				problem("%v", err)
			} else {
				s := soakSample{at: time.Since(start), rss: rss, goroutines: g, queued: q, load1: loadAvg()}
				mu.Lock()
				samples = append(samples, s)
				mu.Unlock()
				fmt.Fprintf(sf, "%.1f\t%.0f\t%.0f\t%.0f\t%s\n", s.at.Seconds(), s.rss, s.goroutines, s.queued, s.load1)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	var (
		swaps      int
		swapWait   []time.Duration
		altProbes  []string // sent under variant 1: must reach the second sink
		mainProbes []string // sent under variant 0: must not
	)
	wg.Add(1)
	go func() { // the operator: swap the image, stop and start tcp_local, each cycle
		defer wg.Done()
		for i := 1; time.Since(start)+cycle <= duration && ctx.Err() == nil; i++ {
			cycleStart := time.Now()
			v := i % 2
			// Not writeFiles: t.Fatal belongs to the test's goroutine.
			if err := os.WriteFile(filepath.Join(cfg, "imta.cnf"), []byte(loadSoakCnf(sinkPort, alt.port, v)), 0o644); err != nil {
				problem("cycle %d: %v", i, err)
				return
			}
			if out, err := mtactl(t, mtactlBin, "-config", cfg, "cnbuild"); err != nil {
				problem("cycle %d: cnbuild: %v\n%s", i, err, out)
				return
			}
			img, err := compiler.Load(compiler.ImagePath(cfg))
			if err != nil {
				problem("cycle %d: %v", i, err)
				return
			}
			want := "source hash = " + hex.EncodeToString(img.Header.SourceHash[:])
			inForce := false
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				out, _ := mtactl(t, mtactlBin, "-config", cfg, "-data", data, "version")
				if _, running, ok := strings.Cut(out, "running mtad: pid"); ok && strings.Contains(running, want) {
					inForce = true
					break
				}
			}
			if !inForce {
				problem("cycle %d: the new image was not in force 30 s after cnbuild", i)
				return
			}
			swaps++
			swapWait = append(swapWait, time.Since(cycleStart))

			tok := fmt.Sprintf("probe-%d", i)
			content, _ := message(tok, 300)
			if !sendOne(p.addr, "probe@alt.test", content) {
				problem("cycle %d: probe not acknowledged", i)
			} else if v == 1 {
				altProbes = append(altProbes, tok)
				// Delivered before the next swap removes tcp_alt from the image.
				for deadline := time.Now().Add(30 * time.Second); len(alt.copies(tok)) == 0; time.Sleep(50 * time.Millisecond) {
					if time.Now().After(deadline) {
						problem("cycle %d: %s not at the second sink after 30 s", i, tok)
						break
					}
				}
			} else {
				mainProbes = append(mainProbes, tok)
			}

			if out, err := mtactl(t, mtactlBin, "-data", data, "qm", "stop", "tcp_local"); err != nil {
				problem("cycle %d: qm stop: %v\n%s", i, err, out)
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(stopFor):
			}
			if out, err := mtactl(t, mtactlBin, "-data", data, "qm", "start", "tcp_local"); err != nil {
				problem("cycle %d: qm start: %v\n%s", i, err, out)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(cycleStart.Add(cycle))):
			}
		}
	}()

	// mtaload itself waits, after its last message, until the sink has them all;
	// what it does not get within its bound it reports as lost.
	drainBound := 2 * time.Minute
	if soak {
		drainBound = 10 * time.Minute
	}
	soakKV := runMtaload(t, mtaloadBin, duration+drainBound,
		"-addr", p.addr, "-sink", sinkAddr, "-n", strconv.Itoa(n), "-c", "64",
		"-rate", strconv.FormatFloat(rate, 'f', 1, 64))
	loadTime := time.Since(start)

	// The queue drains: mtaload saw every message, the commits of their
	// deliveries follow within moments.
	drained := false
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, _, q, err := scrapeMtad(metricsAddr); err == nil && q == 0 {
			drained = true
			break
		}
	}
	if !drained {
		t.Errorf("the queue did not drain within a minute of the end of the load")
	}
	// Back to idle: what the load started must have ended.
	var after float64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, g, _, err := scrapeMtad(metricsAddr); err == nil {
			if after = g; g <= idle+idleGoroutines {
				break
			}
		}
	}
	if after > idle+idleGoroutines {
		t.Errorf("goroutines: %.0f idle before the load, %.0f after it drained (tolerance %d)", idle, after, idleGoroutines)
	}
	cancel()
	wg.Wait()
	p.stop(t)

	for _, pr := range problems {
		t.Error(pr)
	}
	if e := soakKV["errors"]; e != "0" {
		t.Errorf("SMTP errors: %s", e)
	}
	if soakKV["accepted"] != strconv.Itoa(n) || soakKV["lost"] != "0" || soakKV["dup"] != "0" {
		t.Errorf("of %d messages: accepted=%s lost=%s dup=%s (want all accepted, delivered exactly once)",
			n, soakKV["accepted"], soakKV["lost"], soakKV["dup"])
	}
	// The variant-0 probes went over tcp_local to the load sink, which counts
	// them as foreign (no load id); each must arrive there exactly once.
	foreign := soakKV["foreign"]
	if foreign == "" {
		foreign = "0"
	}
	if foreign != strconv.Itoa(len(mainProbes)) {
		t.Errorf("load sink got %s messages without a load id, want the %d variant-0 probes", foreign, len(mainProbes))
	}
	for _, tok := range altProbes {
		if c := len(alt.copies(tok)); c != 1 {
			t.Errorf("%s (variant 1) reached the second sink %d times, want 1", tok, c)
		}
	}
	for _, tok := range mainProbes {
		if c := len(alt.copies(tok)); c != 0 {
			t.Errorf("%s (variant 0) reached the second sink: an old image was in force", tok)
		}
	}
	if swaps < 1 {
		t.Errorf("no image swap happened during the load")
	}
	if got := kvFloat(t, soakKV, "accept_msgs_per_s"); got < rate/2 {
		t.Errorf("accepted %.0f msg/s, offered %.0f: the load did not reach mtad", got, rate)
	}
	if strings.Contains(p.logs.String(), "level=ERROR") {
		t.Errorf("mtad logged errors:\n%s", p.logs)
	}

	// Flatness: the thirds of the load phase.
	var during []soakSample
	for _, s := range samples {
		if s.at <= duration {
			during = append(during, s)
		}
	}
	third := func(k int) (rss, g []float64) {
		lo, hi := k*len(during)/3, (k+1)*len(during)/3
		for _, s := range during[lo:hi] {
			rss = append(rss, s.rss)
			g = append(g, s.goroutines)
		}
		return rss, g
	}
	r1, g1 := third(0)
	r2, g2 := third(1)
	r3, g3 := third(2)
	mib := func(b float64) float64 { return b / (1 << 20) }
	var maxQ float64
	var loads []string
	for _, s := range samples {
		maxQ = max(maxQ, s.queued)
		loads = append(loads, s.load1)
	}
	t.Logf("load soak: %v load (%v with the drain), capacity %.0f msg/s, offered %.0f msg/s (%d messages), %d image swaps (in force after %v..%v), tcp_local stopped %v per %v cycle",
		duration, loadTime.Round(time.Second), capacity, rate, n, swaps, soakMinDur(swapWait), soakMaxDur(swapWait), stopFor, cycle)
	t.Logf("samples: %d every %v in %s; RSS median MiB by third %.1f / %.1f / %.1f; goroutines median %.0f / %.0f / %.0f; idle goroutines %.0f before, %.0f after; queue max %.0f messages; load1 first/last %s/%s",
		len(during), sampleEvery, samplesPath, mib(median(r1)), mib(median(r2)), mib(median(r3)),
		median(g1), median(g2), median(g3), idle, after, maxQ, firstOf(loads), lastOf(loads))
	if duration < loadSoakJudge {
		t.Logf("flatness not judged: a %v run is all warm-up (judged from %v on)", duration, loadSoakJudge)
		return
	}
	if m2, m3 := median(r2), median(r3); m3 > m2*flatRatio+flatRSSBytes {
		t.Errorf("RSS grows: median %.1f MiB in the second third, %.1f MiB in the last", mib(m2), mib(m3))
	}
	if m2, m3 := median(g2), median(g3); m3 > m2*flatRatio+flatGoroutines {
		t.Errorf("goroutines grow: median %.0f in the second third, %.0f in the last", m2, m3)
	}
}

func soakMinDur(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return slices.Min(d).Round(time.Millisecond)
}

func soakMaxDur(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return slices.Max(d).Round(time.Millisecond)
}

func firstOf(s []string) string {
	if len(s) == 0 {
		return "?"
	}
	return s[0]
}

func lastOf(s []string) string {
	if len(s) == 0 {
		return "?"
	}
	return s[len(s)-1]
}
