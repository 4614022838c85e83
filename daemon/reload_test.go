package daemon

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mtad.dev/mta/compiler"
	"mtad.dev/mta/internal/smtptest"
)

// routeConfig is a configuration that sends mail for route.test to channel via (tcp_a
// or tcp_b), each a smart host on its own loopback sink. Both channels exist in both
// configurations, so a message routed before a swap is still delivered where it was
// routed: the channel a recipient is queued to is the route it took. The two
// configurations also differ in maxjobs and pool size, so that every swap changes
// the job controller's limits while deliveries run.
func routeConfig(via string, portA, portB int, extra map[string]string) map[string]string {
	maxJobs, poolLimit := 3, 4
	if via == "tcp_b" {
		maxJobs, poolLimit = 6, 8
	}
	files := map[string]string{
		"job_controller.cnf": fmt.Sprintf("[POOL=DEFAULT]\nJOB_LIMIT=%d\n", poolLimit),
		"imta.cnf": fmt.Sprintf(`! route.test follows the configuration in force
route.test       $U%%$D@%s-daemon
.                $U%%$H@tcp-daemon

l
localhost

tcp_local smtp nomx single_sys
tcp-daemon

tcp_a smtp nomx single_sys maxjobs %[4]d daemon 127.0.0.1 port %[2]d
tcp_a-daemon

tcp_b smtp nomx single_sys maxjobs %[4]d daemon 127.0.0.1 port %[3]d
tcp_b-daemon
`, via, portA, portB, maxJobs),
	}
	for k, v := range extra {
		files[k] = v
	}
	return files
}

// buildImage compiles a configuration given as file contents (in a scratch directory,
// so the configuration directory under test keeps only what the test puts there).
func buildImage(t testing.TB, files map[string]string) *compiler.Image {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img, err := compiler.BuildDir(dir)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return img
}

// installImage is `mtactl cnbuild`: the image replaces compiled.image atomically.
func installImage(t testing.TB, configDir string, img *compiler.Image) {
	t.Helper()
	if err := compiler.Write(compiler.ImagePath(configDir), img); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startWith starts a daemon with opts completed by test defaults; logs go to the
// returned buffer.
func startWith(t testing.TB, opts Options) (*Daemon, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	d, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return d, logs
}

// waitFor polls cond for up to 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func sameHeader(a, b compiler.Header) bool {
	return a.SourceHash == b.SourceHash && a.BuildTime.Equal(b.BuildTime)
}

// count counts the sink's messages whose Subject is token.
func (s *sink) count(token string) int {
	n := 0
	for _, m := range s.Messages() {
		if bytes.Contains(m.Data, []byte("Subject: "+token+"\r\n")) {
			n++
		}
	}
	return n
}

// subjects counts the sink's messages by Subject.
func (s *sink) subjects() map[string]int {
	msgs := s.Messages()
	out := make(map[string]int, len(msgs))
	for _, m := range msgs {
		_, rest, ok := bytes.Cut(m.Data, []byte("\r\nSubject: "))
		if !ok {
			continue
		}
		subj, _, _ := bytes.Cut(rest, []byte("\r\n"))
		out[string(subj)]++
	}
	return out
}

func (s *sink) len() int { return s.Count() }

// waitToken waits until token has reached one of the sinks and says which.
func waitToken(t *testing.T, token string, sinks map[string]*sink) string {
	t.Helper()
	var where string
	waitFor(t, "delivery of "+token, func() bool {
		for name, s := range sinks {
			if s.count(token) > 0 {
				where = name
				return true
			}
		}
		return false
	})
	return where
}

func msg(token string) []byte {
	return []byte("Subject: " + token + "\r\n\r\nbody of " + token + "\r\n")
}

// TestReloadTransactionKeepsItsImage: a transaction in progress when the image is
// swapped ends on the image it started with; the next transaction of the same session
// and new sessions use the new one (maddy's tests/reload_test.go, per transaction).
func TestReloadTransactionKeepsItsImage(t *testing.T) {
	a, b := newSink(t), newSink(t)
	sinks := map[string]*sink{"tcp_a": a, "tcp_b": b}
	cfg := t.TempDir()
	imgA := buildImage(t, routeConfig("tcp_a", a.port, b.port, nil))
	installImage(t, cfg, imgA)
	d, _ := startWith(t, Options{ConfigDir: cfg, Listen: "127.0.0.1:0", ReloadDebounce: 20 * time.Millisecond})
	if got := d.ImageInfo(); got.Source != "compiled.image" || !sameHeader(got.Header, imgA.Header) {
		t.Fatalf("ImageInfo at start: %+v", got)
	}

	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	c.Cmd("MAIL FROM:<me@localhost>", "250")
	c.Cmd("RCPT TO:<x@route.test>", "250")

	imgB := buildImage(t, routeConfig("tcp_b", a.port, b.port, nil))
	installImage(t, cfg, imgB)
	waitFor(t, "the watcher to swap in image B", func() bool { return sameHeader(d.ImageInfo().Header, imgB.Header) })

	c.Data(msg("straddling"), "250")
	c.Send("me@localhost", []string{"y@route.test"}, msg("next-transaction"))
	c.Cmd("QUIT", "221")
	c2 := dial(t, d.Addr().String())
	c2.Cmd("EHLO client.test", "250")
	c2.Send("me@localhost", []string{"z@route.test"}, msg("new-session"))
	c2.Cmd("QUIT", "221")

	for token, want := range map[string]string{"straddling": "tcp_a", "next-transaction": "tcp_b", "new-session": "tcp_b"} {
		if got := waitToken(t, token, sinks); got != want {
			t.Errorf("%s delivered via %s, want %s", token, got, want)
		}
	}
	info := d.ImageInfo()
	if info.ReloadsOK != 1 || info.LastReloadResult != "ok" || info.LastReloadTrigger != "watch" || info.LoadedAt.IsZero() {
		t.Errorf("ImageInfo after one reload: %+v", info)
	}
}

// TestReloadRefusesBadImage: an image that fails to load or to validate is refused
// with a clear error and log line; the old image stays in force and keeps routing.
func TestReloadRefusesBadImage(t *testing.T) {
	a, b := newSink(t), newSink(t)
	sinks := map[string]*sink{"tcp_a": a, "tcp_b": b}
	good := buildImage(t, routeConfig("tcp_a", a.port, b.port, nil))
	encode := func(img *compiler.Image) []byte {
		data, err := compiler.Encode(img)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	tests := []struct {
		name    string
		content func() []byte
		wantIs  error
		wantMsg string
	}{
		{"version mismatch", func() []byte {
			data := encode(buildImage(t, routeConfig("tcp_b", a.port, b.port, nil)))
			binary.BigEndian.PutUint32(data[len(compiler.Magic):], compiler.FormatVersion+1)
			return data
		}, compiler.ErrVersionMismatch, "compiled configuration version mismatch"},
		{"truncated", func() []byte {
			data := encode(buildImage(t, routeConfig("tcp_b", a.port, b.port, nil)))
			return data[:len(data)/2]
		}, compiler.ErrCorrupt, "corrupt image"},
		{"bit flip", func() []byte {
			data := encode(buildImage(t, routeConfig("tcp_b", a.port, b.port, nil)))
			data[len(data)/2] ^= 0x40
			return data
		}, compiler.ErrCorrupt, "checksum mismatch"},
		{"not an image", func() []byte { return []byte("imta.cnf contents copied by mistake\n") }, compiler.ErrCorrupt, "bad magic"},
		{"unknown pool", func() []byte {
			img := buildImage(t, routeConfig("tcp_b", a.port, b.port, map[string]string{
				"job_controller.cnf": "[POOL=DEFAULT]\nJOB_LIMIT=5\n"}))
			for i := range img.Channels {
				if img.Channels[i].Name == "tcp_b" {
					img.Channels[i].Pool = "NOSUCHPOOL"
				}
			}
			return encode(img)
		}, nil, "inconsistent image: channel tcp_b names pool NOSUCHPOOL, which job_controller.cnf does not define"},
		{"metrics on every interface", func() []byte {
			return encode(buildImage(t, routeConfig("tcp_b", a.port, b.port, map[string]string{
				"option.dat": "METRICS_LISTEN=0.0.0.0:0\n"})))
		}, nil, "METRICS_LISTEN is not a loopback address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := t.TempDir()
			installImage(t, cfg, good)
			d, logs := startWith(t, Options{ConfigDir: cfg, Listen: "127.0.0.1:0", ReloadDebounce: 20 * time.Millisecond})

			// through the watcher ...
			if err := os.WriteFile(compiler.ImagePath(cfg), tt.content(), 0o644); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the watcher to refuse the image", func() bool { return d.ImageInfo().ReloadsFailed >= 1 })
			// ... and on request (SIGHUP, mtactl reload)
			err := d.Reload()
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) || (tt.wantIs != nil && !errors.Is(err, tt.wantIs)) {
				t.Fatalf("Reload() = %v, want an error with %q", err, tt.wantMsg)
			}
			info := d.ImageInfo()
			if !sameHeader(d.Image().Header, good.Header) || !sameHeader(info.Header, good.Header) {
				t.Errorf("the refused image replaced the good one")
			}
			if info.ReloadsFailed != 2 || info.ReloadsOK != 0 || info.LastReloadResult != "failed" || !strings.Contains(info.LastReloadError, tt.wantMsg) {
				t.Errorf("ImageInfo: %+v", info)
			}
			if !strings.Contains(logs.String(), "reload refused; the previous configuration stays in force") {
				t.Errorf("no refusal logged:\n%s", logs)
			}
			c := dial(t, d.Addr().String())
			c.Cmd("EHLO client.test", "250")
			c.Send("me@localhost", []string{"x@route.test"}, msg("after-"+tt.name))
			if got := waitToken(t, "after-"+tt.name, sinks); got != "tcp_a" {
				t.Errorf("mail after the refused reload went via %s, want tcp_a", got)
			}
		})
	}
}

// TestReloadUnchangedAndTextEdits: an image equal to the one in force is a no-op;
// text edits without cnbuild neither reload nor log anything.
func TestReloadUnchangedAndTextEdits(t *testing.T) {
	a, b := newSink(t), newSink(t)
	cfg := t.TempDir()
	filesA := routeConfig("tcp_a", a.port, b.port, nil)
	writeConfig(t, cfg, filesA)
	img := buildImage(t, filesA)
	installImage(t, cfg, img)
	d, logs := startWith(t, Options{ConfigDir: cfg, Listen: "127.0.0.1:0", ReloadDebounce: 20 * time.Millisecond})

	// The same image written again (cnbuild of an image someone copied back).
	installImage(t, cfg, img)
	waitFor(t, "the watcher to look at the rewritten image", func() bool { return d.ImageInfo().ReloadsUnchanged == 1 })
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if info := d.ImageInfo(); info.ReloadsUnchanged != 2 || info.ReloadsOK != 0 || info.LastReloadResult != "unchanged" {
		t.Errorf("ImageInfo after unchanged reloads: %+v", info)
	}

	// Text edits: inert until cnbuild.
	before := logs.String()
	writeConfig(t, cfg, routeConfig("tcp_b", a.port, b.port, map[string]string{"option.dat": "LOG_MESSAGE_ID=1\n"}))
	if err := os.WriteFile(filepath.Join(cfg, "mappings"), []byte("! nothing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The watcher sees events in order: once it has dealt with a file written
	// after the edits, and no reload waits, the edits had their chance.
	marker := filepath.Join(cfg, "zz-edits-done")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the watcher to deal with the edits", func() bool { return d.watchSettled(marker) })
	if info := d.ImageInfo(); info.ReloadsUnchanged != 2 || info.ReloadsOK != 0 || info.ReloadsFailed != 0 {
		t.Errorf("a text edit caused a reload: %+v", info)
	}
	if after := logs.String(); after != before {
		t.Errorf("a text edit logged something:\n%s", after[len(before):])
	}
	if !sameHeader(d.Image().Header, img.Header) {
		t.Error("a text edit changed the image in force")
	}
}

func freePort(t testing.TB) int { return smtptest.FreePort(t) }

func dispatcher(ports ...int) string {
	var s []string
	for _, p := range ports {
		s = append(s, strconv.Itoa(p))
	}
	return "[SERVICE=SMTP]\nPORT=" + strings.Join(s, ",") + "\nINTERFACE_ADDRESS=127.0.0.1\n"
}

// TestReloadReopensChangedListeners: dispatcher.cnf ports that changed are opened
// first, then removed ones closed; unchanged listeners and sessions in progress are
// untouched; a port that cannot be opened refuses the whole reload.
func TestReloadReopensChangedListeners(t *testing.T) {
	a, b := newSink(t), newSink(t)
	sinks := map[string]*sink{"tcp_a": a, "tcp_b": b}
	p1, p2, p3 := freePort(t), freePort(t), freePort(t)
	addr := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }
	cfg := t.TempDir()
	img1 := buildImage(t, routeConfig("tcp_a", a.port, b.port, map[string]string{"dispatcher.cnf": dispatcher(p1, p2)}))
	installImage(t, cfg, img1)
	d, _ := startWith(t, Options{ConfigDir: cfg, ReloadDebounce: 20 * time.Millisecond})
	if got := fmt.Sprint(d.Addrs()); got != fmt.Sprint([]string{addr(p1), addr(p2)}) {
		t.Fatalf("listening on %s", got)
	}
	onP1 := dial(t, addr(p1))
	onP1.Cmd("EHLO client.test", "250")
	onP2 := dial(t, addr(p2))
	onP2.Cmd("EHLO client.test", "250")
	onP2.Cmd("MAIL FROM:<me@localhost>", "250")
	onP2.Cmd("RCPT TO:<x@route.test>", "250")

	img2 := buildImage(t, routeConfig("tcp_b", a.port, b.port, map[string]string{"dispatcher.cnf": dispatcher(p1, p3)}))
	installImage(t, cfg, img2)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(d.Addrs()); got != fmt.Sprint([]string{addr(p1), addr(p3)}) {
		t.Fatalf("after reload listening on %s", got)
	}
	// The session on the removed port finishes its transaction on the old image.
	onP2.Data(msg("on-removed-port"), "250")
	onP2.Cmd("QUIT", "221")
	// The session on the kept port goes on, now on the new image.
	onP1.Send("me@localhost", []string{"y@route.test"}, msg("on-kept-port"))
	onP1.Cmd("QUIT", "221")
	onP3 := dial(t, addr(p3))
	onP3.Cmd("EHLO client.test", "250")
	onP3.Send("me@localhost", []string{"z@route.test"}, msg("on-new-port"))
	onP3.Cmd("QUIT", "221")
	for token, want := range map[string]string{"on-removed-port": "tcp_a", "on-kept-port": "tcp_b", "on-new-port": "tcp_b"} {
		if got := waitToken(t, token, sinks); got != want {
			t.Errorf("%s delivered via %s, want %s", token, got, want)
		}
	}
	waitFor(t, "the removed port to close", func() bool {
		c, err := net.DialTimeout("tcp", addr(p2), time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})

	// A port held by someone else: the reload is refused as a whole.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	p4 := busy.Addr().(*net.TCPAddr).Port
	p5 := freePort(t)
	img3 := buildImage(t, routeConfig("tcp_a", a.port, b.port, map[string]string{"dispatcher.cnf": dispatcher(p1, p5, p4)}))
	installImage(t, cfg, img3)
	err = d.Reload()
	if err == nil || !strings.Contains(err.Error(), "listen "+addr(p4)) {
		t.Fatalf("Reload with a busy port = %v", err)
	}
	if got := fmt.Sprint(d.Addrs()); got != fmt.Sprint([]string{addr(p1), addr(p3)}) {
		t.Errorf("after a refused reload listening on %s", got)
	}
	if !sameHeader(d.Image().Header, img2.Header) {
		t.Error("a refused reload changed the image")
	}
	// p5 was opened beside the others and must be closed again.
	if c, err := net.DialTimeout("tcp", addr(p5), time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts after the refused reload", addr(p5))
	}
	onP3 = dial(t, addr(p3))
	onP3.Cmd("EHLO client.test", "250")
	onP3.Cmd("QUIT", "221")
}

// loadTxn is one transaction of the load test.
type loadTxn struct {
	token            string
	start, mailReply time.Time // MAIL sent, its 250 read: the policy snapshot is taken between
}

// swapRec is one image swap: the image was written at written and seen in force at
// inForce; route is the channel route.test takes from then on.
type swapRec struct {
	written, inForce time.Time
	route            string
}

// TestReloadUnderLoad sends a steady stream of SMTP sessions while the image is
// rebuilt and swapped, alternating two configurations that route route.test to two
// different sinks. Every session must succeed, every accepted message must arrive
// exactly once, and every transaction that began after a swap completed (and before
// the next one began) must follow that swap's route. The normal run swaps 10 times;
// MTAD_RELOAD_SOAK=1 swaps 100 times with more senders.
func TestReloadUnderLoad(t *testing.T) {
	// The normal run shortens the debounce to stay fast; the soak run uses the
	// daemon's default, as in production.
	swaps, workers, debounce, dwell := 10, 4, 20*time.Millisecond, 40*time.Millisecond
	if os.Getenv("MTAD_RELOAD_SOAK") != "" {
		swaps, workers, debounce, dwell = 100, 8, 0, 300*time.Millisecond
	} else if testing.Short() {
		swaps = 4
	}
	a, b := newSink(t), newSink(t)
	cfgFiles := map[string]map[string]string{
		"tcp_a": routeConfig("tcp_a", a.port, b.port, nil),
		"tcp_b": routeConfig("tcp_b", a.port, b.port, nil),
	}
	srcDirs := map[string]string{}
	for route, files := range cfgFiles {
		dir := t.TempDir()
		writeConfig(t, dir, files)
		srcDirs[route] = dir
	}
	cfg := t.TempDir()
	img, err := compiler.BuildDir(srcDirs["tcp_a"])
	if err != nil {
		t.Fatal(err)
	}
	installImage(t, cfg, img)
	d, logs := startWith(t, Options{ConfigDir: cfg, Listen: "127.0.0.1:0", ReloadDebounce: debounce})
	addr := d.Addr().String()

	var (
		mu       sync.Mutex
		txns     []loadTxn
		failures []string
		sessions atomic.Int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := 0; ; s++ {
				select {
				case <-stop:
					return
				default:
				}
				done, err := loadSession(addr, fmt.Sprintf("w%d-s%d", w, s), 1+s%3)
				mu.Lock()
				txns = append(txns, done...)
				if err != nil {
					failures = append(failures, err.Error())
				}
				mu.Unlock()
				sessions.Add(1)
			}
		}()
	}

	began := time.Now()
	recs := []swapRec{{inForce: began, route: "tcp_a"}}
	var maxLatency, maxWrite time.Duration
	for i := 1; i <= swaps; i++ {
		route := "tcp_b"
		if i%2 == 0 {
			route = "tcp_a"
		}
		img, err := compiler.BuildDir(srcDirs[route]) // a fresh build: new BuildTime
		if err != nil {
			t.Fatal(err)
		}
		written := time.Now()
		installImage(t, cfg, img)
		// cnbuild's fsyncs compete with the queue's: measure from their end
		fsynced := time.Now()
		waitFor(t, fmt.Sprintf("swap %d", i), func() bool { return sameHeader(d.ImageInfo().Header, img.Header) })
		inForce := time.Now()
		maxLatency = max(maxLatency, inForce.Sub(fsynced))
		maxWrite = max(maxWrite, fsynced.Sub(written))
		recs = append(recs, swapRec{written: written, inForce: inForce, route: route})
		time.Sleep(dwell) // traffic on this image alone
	}
	close(stop)
	wg.Wait()
	elapsed := time.Since(began)

	mu.Lock()
	defer mu.Unlock()
	for _, f := range failures {
		t.Errorf("session failed: %s", f)
	}
	total := len(txns)
	waitFor(t, fmt.Sprintf("%d messages at the sinks", total), func() bool { return a.len()+b.len() >= total })
	byA, byB := a.subjects(), b.subjects()
	determinate, ambiguous := 0, 0
	for _, tx := range txns {
		na, nb := byA[tx.token], byB[tx.token]
		if na+nb != 1 {
			t.Errorf("%s arrived %d times via tcp_a and %d via tcp_b, want once", tx.token, na, nb)
			continue
		}
		got := "tcp_a"
		if nb == 1 {
			got = "tcp_b"
		}
		// the swap in force over the whole [start, mailReply] window, if any
		want := ""
		for k, r := range recs {
			next := time.Time{}
			if k+1 < len(recs) {
				next = recs[k+1].written
			}
			if !tx.start.Before(r.inForce) && (next.IsZero() || tx.mailReply.Before(next)) {
				want = r.route
			}
		}
		if want == "" {
			ambiguous++ // its MAIL crossed a swap: either image is right
			continue
		}
		determinate++
		if got != want {
			t.Errorf("%s (MAIL at %s) delivered via %s, want %s", tx.token, tx.start.Format("15:04:05.000000"), got, want)
		}
	}
	if a.len()+b.len() != total {
		t.Errorf("sinks hold %d messages, %d were accepted", a.len()+b.len(), total)
	}
	if total < 5*swaps || determinate < total/4 {
		t.Errorf("too little traffic to prove anything: %d messages, %d of them between swaps", total, determinate)
	}
	info := d.ImageInfo()
	if info.ReloadsOK != uint64(swaps) || info.ReloadsFailed != 0 {
		t.Errorf("reload counters: %+v", info)
	}
	wantMax, wantPool := 3, 4 // routeConfig's limits of the last image
	if recs[len(recs)-1].route == "tcp_b" {
		wantMax, wantPool = 6, 8
	}
	st := d.metricsStats()
	for _, cs := range st.Channels {
		if (cs.Name == "tcp_a" || cs.Name == "tcp_b") && cs.MaxJobs != wantMax {
			t.Errorf("%s maxjobs %d after the last swap, want %d", cs.Name, cs.MaxJobs, wantMax)
		}
	}
	if len(st.Pools) != 1 || st.Pools[0].JobLimit != wantPool {
		t.Errorf("pools after the last swap: %+v, want DEFAULT with %d", st.Pools, wantPool)
	}
	t.Logf("%d swaps in %s with %d senders: %d sessions, %d messages (%.0f/s), 0 failed, %d routed between swaps, %d across one; image write max %s, written to in force max %s (debounce %s)",
		swaps, elapsed.Round(time.Millisecond), workers, sessions.Load(), total, float64(total)/elapsed.Seconds(),
		determinate, ambiguous, maxWrite.Round(time.Millisecond), maxLatency.Round(time.Millisecond), cmp.Or(debounce, DefaultReloadDebounce))
	// the reload itself (load, validate, swap), from the daemon's log lines
	var took []time.Duration
	for _, line := range strings.Split(logs.String(), "\n") {
		if _, v, ok := strings.Cut(line, " took="); ok {
			if d, err := time.ParseDuration(strings.Fields(v)[0]); err == nil {
				took = append(took, d)
			}
		}
	}
	if len(took) != swaps {
		t.Errorf("%d reloads logged, want %d", len(took), swaps)
	} else {
		slices.Sort(took)
		t.Logf("reload (load, validate, swap): median %s, max %s", took[len(took)/2], took[len(took)-1])
	}
}

// loadSession runs one SMTP session with n transactions and returns those that were
// accepted. Any unexpected reply or I/O error fails the session.
func loadSession(addr, id string, n int) ([]loadTxn, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%s: dial: %w", id, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	expect := func(code string) error {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return fmt.Errorf("%s: waiting for %s: %w", id, code, err)
			}
			if !strings.HasPrefix(line, code) {
				return fmt.Errorf("%s: want %s, got %q", id, code, line)
			}
			if len(line) < 4 || line[3] != '-' {
				return nil
			}
		}
	}
	send := func(line, code string) error {
		if _, err := io.WriteString(conn, line); err != nil {
			return fmt.Errorf("%s: write: %w", id, err)
		}
		return expect(code)
	}
	if err := expect("220"); err != nil {
		return nil, err
	}
	if err := send("EHLO load.test\r\n", "250"); err != nil {
		return nil, err
	}
	var done []loadTxn
	for i := range n {
		tx := loadTxn{token: fmt.Sprintf("%s-t%d", id, i), start: time.Now()}
		if err := send("MAIL FROM:<load@localhost>\r\n", "250"); err != nil {
			return done, err
		}
		tx.mailReply = time.Now()
		if err := send("RCPT TO:<"+tx.token+"@route.test>\r\n", "250"); err != nil {
			return done, err
		}
		if err := send("DATA\r\n", "354"); err != nil {
			return done, err
		}
		if err := send(string(msg(tx.token))+".\r\n", "250"); err != nil {
			return done, err
		}
		done = append(done, tx)
	}
	return done, send("QUIT\r\n", "221")
}
