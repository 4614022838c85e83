package jobctl

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mtad.dev/mta/channels"
)

// TestHoldListConcurrent: 100 goroutines stop and start 20 channels at random,
// then one final call per channel races with the others. Nothing fails, the file
// is never seen corrupt, and the final state is the last call per channel, in
// memory and on disk. (The product answers QM-E-NOTSTOPPED here.)
func TestHoldListConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hold_list")
	hl, err := OpenHoldList(path)
	if err != nil {
		t.Fatal(err)
	}
	hl.noSync = true // fsync is exercised by TestHoldListFile; here it only costs time
	chans := make([]string, 20)
	for i := range chans {
		chans[i] = fmt.Sprintf("tcp_%02d", i)
	}
	valid := map[string]bool{}
	for _, c := range chans {
		valid[c] = true
	}

	// A reader checks the file parses and holds only known names while writers run.
	var stopReader atomic.Bool
	var readerErr atomic.Value
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		for !stopReader.Load() {
			time.Sleep(200 * time.Microsecond)
			set, err := readHoldFile(path)
			if err != nil {
				readerErr.Store(err.Error())
				return
			}
			for c := range set {
				if !valid[c] {
					readerErr.Store("corrupt entry " + c)
					return
				}
			}
		}
	}()

	var wg sync.WaitGroup
	for g := 0; g < 100; g++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 1))
			for k := 0; k < 3; k++ {
				c := chans[r.IntN(len(chans))]
				var err error
				if r.IntN(2) == 0 {
					err = hl.Stop(c)
				} else {
					err = hl.Start(c)
				}
				if err != nil {
					t.Errorf("%s: %v", c, err)
				}
			}
		}(uint64(g))
	}
	wg.Wait()
	// Final round: one call per channel, all at once (each channel's last call).
	want := map[string]bool{}
	for i, c := range chans {
		want[c] = i%3 != 0
	}
	for _, c := range chans {
		wg.Add(1)
		go func(c string) {
			defer wg.Done()
			var err error
			// A second handle, as another process would have.
			other, err := OpenHoldList(path)
			if err != nil {
				t.Error(err)
				return
			}
			other.noSync = true
			if want[c] {
				err = other.Stop(c)
			} else {
				err = other.Start(c)
			}
			if err != nil {
				t.Errorf("%s: %v", c, err)
			}
		}(c)
	}
	wg.Wait()
	stopReader.Store(true)
	rwg.Wait()
	if e := readerErr.Load(); e != nil {
		t.Fatalf("reader saw a bad file: %v", e)
	}
	reloaded, err := OpenHoldList(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chans {
		if got := reloaded.Stopped(c); got != want[c] {
			t.Errorf("%s stopped=%v on disk, last call said %v", c, got, want[c])
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".hold_list.tmp*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// TestControllerStopStartConcurrent drives the same race through the controller.
func TestControllerStopStartConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hold_list")
	c := New(Config{Queue: newMemQueue(), Clock: newFakeClock(t0), HoldList: path})
	c.hold.noSync = true
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ch := fmt.Sprintf("ch%d", i%20)
			var err error
			if i/20%2 == 0 {
				err = c.Stop(ch)
			} else {
				err = c.Start(ch)
			}
			if err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	// Goroutine i/20 even stopped, odd started; the last wave (i/20 == 4) stops,
	// but waves overlap, so check disk and memory agree rather than a value.
	reloaded, err := OpenHoldList(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, mem := strings.Join(reloaded.List(), ","), strings.Join(c.Stopped(), ","); got != mem {
		t.Errorf("disk %q, memory %q", got, mem)
	}
	for i := 0; i < 20; i++ {
		if err := c.Stop(fmt.Sprintf("ch%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Stopped(); len(got) != 20 {
		t.Errorf("stopped %v", got)
	}
	s := c.Snapshot()
	for _, ci := range s.Channels {
		if !ci.Stopped {
			t.Errorf("%s not stopped in the controller", ci.Name)
		}
	}
}

func TestHoldListFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hold_list")
	if err := os.WriteFile(path, []byte("! comment\n\ntcp_local\n  conversion  \n"), 0o640); err != nil {
		t.Fatal(err)
	}
	hl, err := OpenHoldList(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(hl.List(), ","); got != "conversion,tcp_local" {
		t.Errorf("list %q", got)
	}
	for _, bad := range []string{"", "a b", "x\ny"} {
		if err := hl.Stop(bad); err == nil {
			t.Errorf("Stop(%q): want error", bad)
		}
	}
	if err := hl.Start("tcp_local"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "tcp_local") || !strings.Contains(string(b), "conversion\n") {
		t.Errorf("file after start: %q", b)
	}
	// An unreadable hold list is reported by Run, not ignored.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	c := New(Config{Queue: newMemQueue(), HoldList: path})
	if err := c.Run(t.Context()); err == nil {
		t.Error("Run with an unreadable hold list: want error")
	}
}

// TestReloadHoldList: a stop written by another process (mtactl on the file)
// takes effect in the running controller after ReloadHoldList.
func TestReloadHoldList(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hold_list")
	p := &program{}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p}, HoldList: path})
	h.start()
	other, err := OpenHoldList(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Stop("tcp_local"); err != nil {
		t.Fatal(err)
	}
	if err := h.c.ReloadHoldList(); err != nil {
		t.Fatal(err)
	}
	h.enqueue(env("s@a", rcpt("tcp_local", "u@b.example")))
	settle()
	if n := len(p.callList()); n != 0 {
		t.Fatalf("externally stopped channel delivered")
	}
	if err := other.Start("tcp_local"); err != nil {
		t.Fatal(err)
	}
	if err := h.c.ReloadHoldList(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivered after external start", func() bool { return h.q.len() == 0 })
}
