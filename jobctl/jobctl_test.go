package jobctl

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/queue"
	"mtad.dev/mta/status"
)

func tempFail(remote string) func(*channels.Message, channels.Rcpt) channels.Result {
	return func(_ *channels.Message, r channels.Rcpt) channels.Result {
		return channels.Result{Err: status.New(451, "4.3.0", "try later"), Remote: remote, Reply: "smtp;451 4.3.0 try later"}
	}
}

func TestDeliverRecordsDurablyAndLogs(t *testing.T) {
	dir := t.TempDir()
	ml, err := maillog.Open(filepath.Join(dir, "mail.log"), maillog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := &program{result: func(_ *channels.Message, r channels.Rcpt) channels.Result {
		switch r.Addr {
		case "temp@b.example":
			return channels.Result{Err: status.New(452, "4.2.2", "mailbox full"), Remote: "mx.b.example", Reply: "smtp;452 4.2.2 mailbox full"}
		case "never@b.example":
			return channels.Result{Err: status.New(550, "5.1.1", "no such user"), Remote: "mx.b.example", Reply: "smtp;550 5.1.1 no such user"}
		case "perm@b.example":
			return channels.Result{Err: status.New(550, "5.1.1", "no such user"), Remote: "mx.b.example", Reply: "smtp;550 5.1.1 no such user"}
		}
		return channels.Result{Remote: "mx.b.example", Reply: "smtp;250 2.0.0 ok"}
	}}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p}, MailLog: ml})
	h.start()
	never := rcpt("tcp_local", "never@b.example")
	never.Notify = "NEVER"
	id := h.enqueue(env("alice@a.example",
		rcpt("tcp_local", "ok@b.example"), rcpt("tcp_local", "temp@b.example"), rcpt("tcp_local", "perm@b.example"), never))
	waitFor(t, "results recorded", func() bool {
		r, ok := h.q.rcpt(id, 1)
		return ok && r.Attempts == 1
	})
	r0, _ := h.q.rcpt(id, 0)
	r1, _ := h.q.rcpt(id, 1)
	r2, _ := h.q.rcpt(id, 2)
	if r0.State != queue.Delivered || r2.State != queue.Returned || r1.State != queue.Pending {
		t.Fatalf("states %v %v %v", r0.State, r1.State, r2.State)
	}
	if want := t0.Add(time.Hour); !r1.NextAttempt.Equal(want) {
		t.Errorf("next attempt %v, want %v (normal class, first interval)", r1.NextAttempt, want)
	}
	if r1.LastError != "smtp;452 4.2.2 mailbox full" {
		t.Errorf("last error %q", r1.LastError)
	}
	waitFor(t, "bounce", func() bool { return len(h.noticeList()) == 1 })
	h.stop()
	ml.Close()
	b, _ := os.ReadFile(filepath.Join(dir, "mail.log"))
	log := string(b)
	for _, want := range []string{
		" tcp_local D 1 alice@a.example rfc822;ok@b.example ok@b.example " + id + " smtp;250 2.0.0 ok",
		" tcp_local Q 1 alice@a.example rfc822;temp@b.example temp@b.example " + id + " smtp;452 4.2.2 mailbox full",
		" tcp_local R 1 alice@a.example rfc822;perm@b.example perm@b.example " + id + " smtp;550 5.1.1 no such user",
		" tcp_local K 1 alice@a.example rfc822;never@b.example never@b.example " + id + " smtp;550 5.1.1 no such user",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("mail.log lacks %q:\n%s", want, log)
		}
	}
	s := h.c.Snapshot()
	ci, _ := s.Channel("tcp_local")
	if ci.Counters != (Counters{Delivered: 1, Requeued: 1, Returned: 2}) {
		t.Errorf("counters %+v", ci.Counters)
	}
}

// TestLimitsNeverExceeded: three channels in one pool of 3 jobs, each channel at
// most 2 jobs; concurrent Deliver calls are counted per channel and across the pool.
func TestLimitsNeverExceeded(t *testing.T) {
	var poolCur, poolMax atomic.Int64
	progs := map[string]channels.Program{}
	ps := map[string]*program{}
	chs := map[string]Channel{}
	for _, name := range []string{"tcp_a", "tcp_b", "tcp_c"} {
		p := &program{delay: 2 * time.Millisecond, shared: &poolCur, sharedMx: &poolMax}
		ps[name], progs[name] = p, p
		chs[name] = Channel{MaxJobs: 2, ThreadDepth: 1, Pool: "SMTP_POOL"}
	}
	h := newHarness(t, Config{Programs: progs, Channels: chs, Pools: map[string]int{"DEFAULT": 10, "SMTP_POOL": 3}, DefaultPool: "DEFAULT"})
	h.start()
	var envs []*queue.Envelope
	for i := 0; i < 40; i++ {
		for _, name := range []string{"tcp_a", "tcp_b", "tcp_c"} {
			envs = append(envs, h.q.put(env("s@x.example", rcpt(name, fmt.Sprintf("u@h%d.example", i))), "x"))
		}
	}
	h.c.Add(envs)
	waitFor(t, "all delivered", func() bool { return h.q.len() == 0 })
	for name, p := range ps {
		if m := p.max.Load(); m > 2 {
			t.Errorf("%s: %d concurrent jobs, maxjobs 2", name, m)
		}
		if len(p.callList()) != 40 {
			t.Errorf("%s: %d deliveries", name, len(p.callList()))
		}
	}
	if m := poolMax.Load(); m > 3 {
		t.Errorf("pool: %d concurrent jobs, job_limit 3", m)
	} else if m < 3 {
		t.Errorf("pool never used its 3 slots (max %d): limits not exercised", m)
	}
}

func TestUnknownPoolKeepsMailQueued(t *testing.T) {
	p := &program{}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_x": p},
		Channels: map[string]Channel{"tcp_x": {Pool: "NOPE"}}, Pools: map[string]int{"DEFAULT": 2}})
	h.start()
	h.enqueue(env("s@x", rcpt("tcp_x", "a@b.example")))
	settle()
	if n := len(p.callList()); n != 0 {
		t.Fatalf("%d deliveries through an unknown pool", n)
	}
}

func TestThreadDepth(t *testing.T) {
	p := &program{block: make(chan struct{})}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p},
		Channels: map[string]Channel{"tcp_*": {MaxJobs: 10, ThreadDepth: 5}}})
	h.start()
	var envs []*queue.Envelope
	for i := 0; i < 12; i++ {
		envs = append(envs, h.q.put(env("s@x", rcpt("tcp_local", fmt.Sprintf("u@h%d.example", i))), "x"))
	}
	h.c.Add(envs)
	waitFor(t, "3 jobs delivering", func() bool { return p.cur.Load() == 3 })
	settle()
	if n := p.cur.Load(); n != 3 {
		t.Errorf("%d jobs for 12 messages at threaddepth 5, want 3", n)
	}
	if s := h.c.Snapshot(); len(s.Jobs) != 3 {
		t.Errorf("snapshot shows %d active jobs", len(s.Jobs))
	}
	close(p.block)
	waitFor(t, "all delivered", func() bool { return h.q.len() == 0 })
}

// TestDeadHostDoesNotDelayHealthy: 1000 messages to a dead host queued before 20
// to healthy hosts in the same channel; the healthy ones go through at once and
// the dead host is tried once (per job), then backed off as a whole.
func TestDeadHostDoesNotDelayHealthy(t *testing.T) {
	p := &program{delay: 5 * time.Millisecond, result: func(_ *channels.Message, r channels.Rcpt) channels.Result {
		if r.Host == "dead.example" {
			return channels.Result{Err: status.New(421, "4.4.1", "connection refused"), Reply: "TCP active open: Failed connect() Error: Connection refused", ConnFailed: true}
		}
		return channels.Result{Remote: "mx." + r.Host, Reply: "smtp;250 2.0.0 ok"}
	}}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p},
		Channels: map[string]Channel{"tcp_local": {MaxJobs: 2, ThreadDepth: 1}}})
	var envs []*queue.Envelope
	for i := 0; i < 1000; i++ {
		envs = append(envs, h.q.put(env("s@x", rcpt("tcp_local", fmt.Sprintf("u%d@dead.example", i))), "x"))
	}
	h.c.Add(envs)
	var good []string
	for i := 0; i < 20; i++ {
		good = append(good, h.q.put(env("s@x", rcpt("tcp_local", fmt.Sprintf("u@good%d.example", i%5))), "x").ID)
	}
	h.c.Add(nil)
	start := time.Now()
	h.start()
	for _, id := range good {
		h.c.Add([]*queue.Envelope{mustGet(t, h.q, id)})
	}
	waitFor(t, "healthy hosts delivered", func() bool { return h.q.len() == 1000 })
	elapsed := time.Since(start)
	deadCalls := 0
	for _, c := range p.callList() {
		if c.hosts[0] == "dead.example" {
			deadCalls++
		}
	}
	if deadCalls > 2 {
		t.Errorf("dead host tried %d times before backoff; want at most one per job (2)", deadCalls)
	}
	if elapsed > 2*time.Second {
		t.Errorf("healthy mail took %v behind a dead host", elapsed)
	}
	s := h.c.Snapshot()
	ci, _ := s.Channel("tcp_local")
	var dead HostInfo
	for _, hi := range ci.Hosts {
		if hi.Host == "dead.example" {
			dead = hi
		}
	}
	if dead.Queued != 1000 || dead.BackoffUntil.IsZero() || !strings.Contains(dead.LastError, "Connection refused") {
		t.Errorf("dead host info %+v", dead)
	}
	// When the backoff ends the host is probed by a single job, not all of them.
	h.clock.Advance(time.Hour)
	waitFor(t, "probe", func() bool { return deadCalls+1 <= countHost(p, "dead.example") })
	settle()
	if n := countHost(p, "dead.example"); n != deadCalls+1 {
		t.Errorf("after backoff the dead host got %d attempts, want 1 probe", n-deadCalls)
	}
}

func countHost(p *program, host string) int {
	n := 0
	for _, c := range p.callList() {
		if c.hosts[0] == host {
			n++
		}
	}
	return n
}

func mustGet(t *testing.T, q *memQueue, id string) *queue.Envelope {
	t.Helper()
	e, err := q.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestRoundRobinAcrossHosts: with one job, hosts alternate instead of draining
// one host's backlog first.
func TestRoundRobinAcrossHosts(t *testing.T) {
	p := &program{}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p},
		Channels: map[string]Channel{"tcp_local": {MaxJobs: 1}}})
	var envs []*queue.Envelope
	for i := 0; i < 6; i++ {
		envs = append(envs, h.q.put(env("s@x", rcpt("tcp_local", "u@big.example")), "x"))
	}
	envs = append(envs, h.q.put(env("s@x", rcpt("tcp_local", "u@small.example")), "x"))
	h.c.Add(envs)
	h.start()
	waitFor(t, "delivered", func() bool { return h.q.len() == 0 })
	calls := p.callList()
	pos := -1
	for i, c := range calls {
		if c.hosts[0] == "small.example" {
			pos = i
		}
	}
	if pos > 1 {
		t.Errorf("small.example delivered in position %d of %d: not round-robin", pos, len(calls))
	}
}

func TestBackoffSchedule(t *testing.T) {
	p := &program{result: tempFail("mx.b.example")}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p},
		Channels: map[string]Channel{"tcp_local": {Backoff: [3]Backoff{Normal: {time.Minute, 5 * time.Minute, 10 * time.Minute}}}}})
	p.clock = h.clock
	h.start()
	id := h.enqueue(env("s@a.example", rcpt("tcp_local", "u@b.example")))
	offsets := []time.Duration{0, time.Minute, 6 * time.Minute, 16 * time.Minute, 26 * time.Minute, 36 * time.Minute}
	for k, off := range offsets {
		if k > 0 {
			h.clock.Set(t0.Add(off - time.Second))
			settle()
			if n := len(p.callList()); n != k {
				t.Fatalf("attempt %d ran early (at %v)", k+1, off-time.Second)
			}
			h.clock.Set(t0.Add(off))
		}
		waitFor(t, fmt.Sprintf("attempt %d", k+1), func() bool {
			r, _ := h.q.rcpt(id, 0)
			return len(p.callList()) == k+1 && r.Attempts == k+1
		})
		if at := p.callList()[k].at; !at.Equal(t0.Add(off)) {
			t.Errorf("attempt %d at %v, want %v", k+1, at, t0.Add(off))
		}
	}
	r, _ := h.q.rcpt(id, 0)
	if want := t0.Add(46 * time.Minute); !r.NextAttempt.Equal(want) {
		t.Errorf("durable next attempt %v, want %v (last interval repeats)", r.NextAttempt, want)
	}
}

func TestRetryDelayDefaults(t *testing.T) {
	var ch Channel
	tests := []struct {
		class    Class
		attempts int
		want     time.Duration
	}{
		{Urgent, 1, 30 * time.Minute},
		{Urgent, 7, 240 * time.Minute},
		{Urgent, 50, 240 * time.Minute},
		{Normal, 0, 60 * time.Minute},
		{Normal, 2, 120 * time.Minute},
		{Normal, 4, 240 * time.Minute},
		{Normal, 8, 480 * time.Minute},
		{NonUrgent, 1, 120 * time.Minute},
		{NonUrgent, 9, 960 * time.Minute},
	}
	for _, tt := range tests {
		if got := ch.RetryDelay(tt.class, tt.attempts); got != tt.want {
			t.Errorf("RetryDelay(%v, %d) = %v, want %v", tt.class, tt.attempts, got, tt.want)
		}
	}
}

// TestRestartKeepsRetryTimes: a new controller on the same queue honours each
// recipient's recorded attempt count and next attempt.
func TestRestartKeepsRetryTimes(t *testing.T) {
	q := newMemQueue()
	clock := newFakeClock(t0)
	p := &program{result: tempFail("mx.b.example"), clock: clock}
	cfg := Config{Queue: q, Clock: clock, Programs: map[string]channels.Program{"tcp_local": p},
		Channels: map[string]Channel{"tcp_local": {Backoff: [3]Backoff{Normal: {10 * time.Minute, 20 * time.Minute}}}}}
	h := newHarness(t, cfg)
	h.start()
	id := h.enqueue(env("s@a.example", rcpt("tcp_local", "u@b.example")))
	waitFor(t, "first attempt", func() bool { r, _ := q.rcpt(id, 0); return r.Attempts == 1 })
	h.stop()

	clock.Advance(5 * time.Minute)
	h2 := newHarness(t, cfg)
	h2.start()
	settle()
	if n := len(p.callList()); n != 1 {
		t.Fatalf("restart retried before the recorded next attempt (%d calls)", n)
	}
	clock.Set(t0.Add(10 * time.Minute))
	waitFor(t, "second attempt", func() bool { r, _ := q.rcpt(id, 0); return r.Attempts == 2 })
	r, _ := q.rcpt(id, 0)
	if want := t0.Add(30 * time.Minute); !r.NextAttempt.Equal(want) {
		t.Errorf("next attempt %v, want %v: attempt count lost across restart", r.NextAttempt, want)
	}
}

func TestStopStart(t *testing.T) {
	hold := filepath.Join(t.TempDir(), "hold_list")
	p := &program{}
	cfg := Config{Programs: map[string]channels.Program{"tcp_local": p}, HoldList: hold}
	h := newHarness(t, cfg)
	h.start()
	if err := h.c.Stop("tcp_local"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		h.enqueue(env("s@a", rcpt("tcp_local", fmt.Sprintf("u%d@b.example", i))))
	}
	settle()
	if n := len(p.callList()); n != 0 {
		t.Fatalf("stopped channel delivered %d", n)
	}
	s := h.c.Snapshot()
	ci, _ := s.Channel("tcp_local")
	if !ci.Stopped || ci.Ready != 3 || ci.Jobs != 0 {
		t.Errorf("snapshot of stopped channel %+v", ci)
	}
	// The stop survives a restart.
	h2 := New(Config{Queue: newMemQueue(), HoldList: hold})
	if got := h2.Stopped(); len(got) != 1 || got[0] != "tcp_local" {
		t.Errorf("reloaded hold list %v", got)
	}
	if err := h.c.Start("tcp_local"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivered after start", func() bool { return h.q.len() == 0 })
	h3 := New(Config{Queue: newMemQueue(), HoldList: hold})
	if got := h3.Stopped(); len(got) != 0 {
		t.Errorf("hold list after start %v", got)
	}
}

func TestDeliveryWindow(t *testing.T) {
	w, err := ParseWindow("08:00-20:00")
	if err != nil {
		t.Fatal(err)
	}
	p := &program{}
	clock := newFakeClock(time.Date(2024, 3, 4, 7, 0, 0, 0, time.UTC))
	p.clock = clock
	h := newHarness(t, Config{Clock: clock, Programs: map[string]channels.Program{"tcp_bulk": p},
		Channels: map[string]Channel{"tcp_bulk": {Windows: [3]Window{Normal: *w}}}})
	h.start()
	h.enqueue(env("s@a", rcpt("tcp_bulk", "u@b.example")))
	urgent := env("s@a", rcpt("tcp_bulk", "v@b.example"))
	urgent.Priority = 1
	h.enqueue(urgent) // no urgent window: goes now
	waitFor(t, "urgent delivered", func() bool { return len(p.callList()) == 1 })
	clock.Set(time.Date(2024, 3, 4, 7, 59, 0, 0, time.UTC))
	settle()
	if n := len(p.callList()); n != 1 {
		t.Fatalf("normal message delivered outside its window")
	}
	clock.Set(time.Date(2024, 3, 4, 8, 0, 0, 0, time.UTC))
	waitFor(t, "window opens", func() bool { return len(p.callList()) == 2 })
	if at := p.callList()[1].at; at.Hour() != 8 {
		t.Errorf("delivered at %v", at)
	}
}

func TestWindowParseOpenNext(t *testing.T) {
	day := func(h, m int) time.Time { return time.Date(2024, 3, 4, h, m, 0, 0, time.UTC) }
	tests := []struct {
		spec string
		at   time.Time
		open bool
		next time.Time
	}{
		{"08:00-20:00", day(7, 59), false, day(8, 0)},
		{"08:00-20:00", day(8, 0), true, day(8, 0)},
		{"08:00-20:00", day(20, 0), false, day(32, 0)},
		{"22:00-06:00", day(23, 0), true, day(23, 0)},
		{"22:00-06:00", day(5, 59), true, day(5, 59)},
		{"22:00-06:00", day(6, 0), false, day(22, 0)},
		{"20:00-24:00", day(23, 59), true, day(23, 59)},
		{"20:00-23:59", day(23, 59), false, day(44, 0)},
		{"09:00-09:00", day(3, 0), true, day(3, 0)},
	}
	for _, tt := range tests {
		w, err := ParseWindow(tt.spec)
		if err != nil {
			t.Fatalf("%s: %v", tt.spec, err)
		}
		if got := w.Open(tt.at); got != tt.open {
			t.Errorf("%s Open(%v) = %v", tt.spec, tt.at, got)
		}
		if got := w.NextOpen(tt.at); !got.Equal(tt.next) {
			t.Errorf("%s NextOpen(%v) = %v, want %v", tt.spec, tt.at, got, tt.next)
		}
	}
	for _, bad := range []string{"", "8-20", "08:00", "25:00-01:00", "08:60-09:00", "24:00-01:00", "08:0-09:00", "aa:bb-cc:dd"} {
		if _, err := ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q): want error", bad)
		}
	}
}

func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"08:00-20:00", "22:00-06:00", "24:00-00:00", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWindow(s)
		if err != nil {
			return
		}
		if w.Start < 0 || w.Start >= 1440 || w.End < 0 || w.End > 1440 {
			t.Fatalf("%q parsed to %+v", s, w)
		}
		at := time.Date(2024, 1, 1, 13, 37, 0, 0, time.UTC)
		n := w.NextOpen(at)
		if n.Before(at) || !w.Open(n) || n.Sub(at) > 24*time.Hour {
			t.Fatalf("%q: NextOpen(%v) = %v", s, at, n)
		}
	})
}

func TestSetConfigHotReload(t *testing.T) {
	p := &program{block: make(chan struct{})}
	cfg := Config{Programs: map[string]channels.Program{"tcp_local": p},
		Channels: map[string]Channel{"tcp_local": {MaxJobs: 1, ThreadDepth: 1}}}
	h := newHarness(t, cfg)
	h.start()
	for i := 0; i < 5; i++ {
		h.enqueue(env("s@a", rcpt("tcp_local", fmt.Sprintf("u@h%d.example", i))))
	}
	waitFor(t, "one job", func() bool { return p.cur.Load() == 1 })
	settle()
	if p.cur.Load() != 1 {
		t.Fatalf("maxjobs 1 exceeded")
	}
	cfg.Channels = map[string]Channel{"tcp_local": {MaxJobs: 3, ThreadDepth: 1}}
	cfg.Clock, cfg.Queue = h.clock, h.q
	h.c.SetConfig(cfg)
	waitFor(t, "three jobs after reload", func() bool { return p.cur.Load() == 3 })
	if got := len(p.callList()); got != 3 {
		t.Errorf("%d calls: the running job was restarted", got)
	}
	close(p.block)
	waitFor(t, "all delivered", func() bool { return h.q.len() == 0 })
}

func TestRunNow(t *testing.T) {
	fail := atomic.Bool{}
	fail.Store(true)
	p := &program{result: func(m *channels.Message, r channels.Rcpt) channels.Result {
		if fail.Load() {
			return tempFail("mx")(m, r)
		}
		return channels.Result{Reply: "ok"}
	}}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p}})
	h.start()
	h.enqueue(env("s@a", rcpt("tcp_local", "u@b.example")))
	waitFor(t, "first attempt", func() bool { return len(p.callList()) == 1 })
	waitFor(t, "delayed", func() bool { s := h.c.Snapshot(); ci, _ := s.Channel("tcp_local"); return ci.Delayed == 1 })
	fail.Store(false)
	h.c.RunNow("tcp_local")
	waitFor(t, "delivered by RunNow", func() bool { return h.q.len() == 0 })
}

// TestShutdownRecordsCancelledDeliveries: a blocked delivery is cancelled after
// the grace period and its (temporary) result is still recorded.
func TestShutdownRecordsCancelledDeliveries(t *testing.T) {
	p := &program{block: make(chan struct{})}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p}, ShutdownGrace: 10 * time.Second})
	h.start()
	id := h.enqueue(env("s@a", rcpt("tcp_local", "u@b.example")))
	waitFor(t, "delivering", func() bool { return p.cur.Load() == 1 })
	h.stop()
	r, ok := h.q.rcpt(id, 0)
	if !ok || r.State != queue.Pending || r.Attempts != 1 || r.NextAttempt.IsZero() {
		t.Errorf("after shutdown: %+v", r)
	}
}

func TestHeldAndDuplicateAdds(t *testing.T) {
	p := &program{}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p}})
	held := env("s@a", rcpt("tcp_local", "u@b.example"))
	held.Held = true
	h.enqueue(held)
	e := h.q.put(env("s@a", rcpt("tcp_local", "v@b.example")), "x")
	h.c.Add([]*queue.Envelope{e, e})
	h.start() // Walk adds everything again
	waitFor(t, "delivered", func() bool { return h.q.len() == 1 })
	settle()
	if n := len(p.callList()); n != 1 {
		t.Errorf("%d deliveries, want 1 (held skipped, duplicates ignored)", n)
	}
	s := h.c.Snapshot()
	ci, _ := s.Channel("tcp_local")
	if ci.Counters.Held < 1 {
		t.Errorf("held not counted: %+v", ci.Counters)
	}
}

func TestHeapOrder(t *testing.T) {
	var h minHeap[*item]
	keys := []int64{5, 3, 9, 1, 7, 3, 8, 2}
	var items []*item
	for _, k := range keys {
		it := &item{at: k, hidx: -1}
		items = append(items, it)
		h.push(it)
	}
	h.remove(int(items[2].hidx)) // 9
	items[4].at = 0              // 7 -> 0
	h.fix(int(items[4].hidx))
	var got []int64
	for h.len() > 0 {
		got = append(got, h.remove(0).at)
	}
	want := []int64{0, 1, 2, 3, 3, 5, 8}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("heap order %v, want %v", got, want)
	}
}

// TestIndexMemory guards the "a million messages in < 1 GiB" budget by measuring
// the index cost per queued message.
func TestIndexMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates ~15 MB")
	}
	const n = 50_000
	c := New(Config{Queue: newMemQueue(), Clock: newFakeClock(t0)})
	envs := make([]*queue.Envelope, 0, 1000)
	var before, after runtimeMem
	before.read()
	for i := 0; i < n; i++ {
		e := &queue.Envelope{ID: fmt.Sprintf("%016x", i), From: "s@a", Arrival: t0,
			Rcpts: []queue.Recipient{{Addr: "u@b", Channel: "tcp_local", Host: fmt.Sprintf("h%d.example", i%5000),
				NextAttempt: t0.Add(time.Duration(i) * time.Second)}}}
		envs = append(envs, e)
		if len(envs) == cap(envs) {
			c.Add(envs)
			envs = envs[:0]
		}
	}
	c.Add(envs)
	after.read()
	per := (int64(after.heap) - int64(before.heap)) / n
	t.Logf("index: %d bytes per message", per)
	if per > 600 {
		t.Errorf("index costs %d bytes per message; 1e6 messages would not fit the budget", per)
	}
	if s := c.Snapshot(); len(s.Channels) != 1 || s.Channels[0].Delayed != n-1 {
		t.Errorf("indexed %+v", s.Channels)
	}

}

// TestPoolSharedAcrossChannels: two channels in a one-job pool both make progress
// instead of the first one keeping the only slot until its backlog is gone.
func TestPoolSharedAcrossChannels(t *testing.T) {
	var cur, mx atomic.Int64
	a := &program{delay: time.Millisecond, shared: &cur, sharedMx: &mx}
	b := &program{delay: time.Millisecond, shared: &cur, sharedMx: &mx}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_a": a, "tcp_b": b},
		Pools: map[string]int{"SINGLE": 1}, DefaultPool: "SINGLE"})
	var envs []*queue.Envelope
	for i := 0; i < 10; i++ {
		envs = append(envs, h.q.put(env("s@x", rcpt("tcp_a", fmt.Sprintf("u@a%d.example", i))), "x"))
	}
	h.c.Add(envs)
	h.start()
	waitFor(t, "a started", func() bool { return len(a.callList()) > 0 })
	h.enqueue(env("s@x", rcpt("tcp_b", "u@b.example")))
	waitFor(t, "b delivered", func() bool { return len(b.callList()) == 1 })
	if n := len(a.callList()); n == 10 {
		t.Errorf("tcp_b waited for all of tcp_a's backlog")
	}
	waitFor(t, "all delivered", func() bool { return h.q.len() == 0 })
	if mx.Load() != 1 {
		t.Errorf("pool job_limit 1 exceeded: %d", mx.Load())
	}
}

// TestSystemClock runs one retry on the real clock, so the production timer path
// is exercised too.
func TestSystemClock(t *testing.T) {
	var n atomic.Int64
	p := &program{result: func(m *channels.Message, r channels.Rcpt) channels.Result {
		if n.Add(1) == 1 {
			return tempFail("mx")(m, r)
		}
		return channels.Result{Reply: "ok"}
	}}
	q := newMemQueue()
	c := New(Config{Queue: q, Clock: SystemClock{}, Programs: map[string]channels.Program{"l": p},
		Channels: map[string]Channel{"l": {Backoff: [3]Backoff{Normal: {20 * time.Millisecond}}}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	e := q.put(&queue.Envelope{From: "s@x", Arrival: time.Now(), Rcpts: []queue.Recipient{rcpt("l", "u@localhost")}}, "x")
	c.Add([]*queue.Envelope{e})
	waitFor(t, "retried and delivered", func() bool { return q.len() == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n.Load() != 2 {
		t.Errorf("%d attempts", n.Load())
	}
}

func TestProgramPanicDefers(t *testing.T) {
	p := &program{result: func(*channels.Message, channels.Rcpt) channels.Result { panic("boom") }}
	h := newHarness(t, Config{Programs: map[string]channels.Program{"tcp_local": p}})
	h.start()
	id := h.enqueue(env("s@a", rcpt("tcp_local", "u@b.example")))
	waitFor(t, "recorded", func() bool { r, _ := h.q.rcpt(id, 0); return r.Attempts == 1 })
	r, _ := h.q.rcpt(id, 0)
	if r.State != queue.Pending || !strings.Contains(r.LastError, "4.3.0") {
		t.Errorf("after a panic: %+v", r)
	}
}

// addrsperfile splits one message's recipients for a host into several calls
// (transactions), in order, and every recipient's result is recorded.
func TestAddrsPerFile(t *testing.T) {
	for _, tt := range []struct {
		per   int
		want  []int // recipients per call
		rcpts int   // u3 is deferred, so the message stays queued for the checks
	}{
		{0, []int{5}, 5},
		{2, []int{2, 2, 1}, 5},
		{5, []int{5}, 5},
		{1, []int{1, 1, 1, 1, 1}, 5},
	} {
		t.Run(fmt.Sprint(tt.per), func(t *testing.T) {
			p := &program{result: func(_ *channels.Message, r channels.Rcpt) channels.Result {
				if strings.HasPrefix(r.Addr, "u3@") {
					return channels.Result{Err: status.New(452, "4.2.2", "full"), Reply: "smtp;452 4.2.2 full", ConnFailed: true}
				}
				return channels.Result{Reply: "smtp;250 2.0.0 ok"}
			}}
			h := newHarness(t, Config{
				Programs: map[string]channels.Program{"tcp_local": p},
				Channels: map[string]Channel{"tcp_local": {AddrsPerFile: tt.per}},
			})
			h.start()
			var rs []queue.Recipient
			for i := range tt.rcpts {
				rs = append(rs, rcpt("tcp_local", fmt.Sprintf("u%d@b.example", i)))
			}
			id := h.enqueue(env("a@a.example", rs...))
			waitFor(t, "every recipient attempted", func() bool {
				for i := range tt.rcpts {
					if r, ok := h.q.rcpt(id, i); !ok || r.Attempts != 1 {
						return false
					}
				}
				return true
			})
			p.mu.Lock()
			var got []int
			var order []string
			for _, c := range p.calls {
				got = append(got, len(c.addrs))
				order = append(order, c.addrs...)
			}
			p.mu.Unlock()
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("recipients per call %v, want %v", got, tt.want)
			}
			for i, a := range order {
				if want := fmt.Sprintf("u%d@b.example", i); a != want {
					t.Errorf("call order: recipient %d is %s, want %s", i, a, want)
				}
			}
			for i := range tt.rcpts {
				r, _ := h.q.rcpt(id, i)
				if want := map[bool]queue.RcptState{true: queue.Pending, false: queue.Delivered}[i == 3]; r.State != want {
					t.Errorf("u%d: state %v, want %v", i, r.State, want)
				}
			}
		})
	}
}
