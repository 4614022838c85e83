package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"mtad.dev/mta/control"
	"mtad.dev/mta/daemon"
	"mtad.dev/mta/jobctl"
	"mtad.dev/mta/queue"
)

// dataDir is a fresh data directory with a short path: a Unix socket's path is
// limited to about 108 bytes and t.TempDir() names can be long.
func dataDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "qm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// startMTAD runs an mtad in-process on data with the given configuration ("" =
// the embedded default). stop shuts it down (also done at cleanup).
func startMTAD(t *testing.T, data, config string) (d *daemon.Daemon, stop func()) {
	t.Helper()
	d, err := daemon.Start(context.Background(), daemon.Options{
		ConfigDir: config, DataDir: data, Listen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("start mtad: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := d.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return d, stop
}

// mtactl runs one command against data with a frozen clock.
func mtactl(t *testing.T, data string, now time.Time, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	rc := runIO(append([]string{"-data", data}, args...), strings.NewReader(""), false, &out, &errb, func() time.Time { return now })
	return out.String(), errb.String(), rc
}

// mustMtactl is mtactl that fails the test on a non-zero exit.
func mustMtactl(t *testing.T, data string, args ...string) string {
	t.Helper()
	out, errs, rc := mtactl(t, data, time.Now(), args...)
	if rc != 0 {
		t.Fatalf("mtactl %s: exit %d\n%s%s", strings.Join(args, " "), rc, out, errs)
	}
	return out
}

// fixtureQueue writes a queue with known messages (arrivals relative to now)
// into data and stops every fixture channel in the hold list, so that an mtad
// started on it changes nothing. It returns the ids in enqueue order.
func fixtureQueue(t *testing.T, data string, now time.Time) []string {
	t.Helper()
	q, err := queue.Open(filepath.Join(data, "queue"), queue.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	envs := []struct {
		env     queue.Envelope
		content string
	}{
		{queue.Envelope{From: "alice@example.org", Arrival: now.Add(-26 * time.Hour), Source: "tcp_intranet",
			Client: "client.example.org ([127.0.0.1])", MessageID: "<m1@example.org>",
			Rcpts: []queue.Recipient{
				{Addr: "bob@yahoo.com", Orig: "Bob@Yahoo.com", Channel: "tcp_local", Host: "yahoo.com", Attempts: 7,
					NextAttempt: now.Add(25 * time.Minute), LastError: "smtp;421 4.7.0 [TSS04] Messages temporarily deferred due to user complaints"},
				{Addr: "carol@yahoo.com", Channel: "tcp_local", Host: "yahoo.com", Attempts: 7,
					NextAttempt: now.Add(25 * time.Minute), LastError: "smtp;421 4.7.0 [TSS04] Messages temporarily deferred due to user complaints"},
				{Addr: "dan@localhost", Channel: "l", Host: "localhost", State: queue.Delivered, Attempts: 1},
			}}, "Subject: quarterly report\r\nFrom: Alice <alice@example.org>\r\nTo: bob@yahoo.com, carol@yahoo.com\r\nMessage-ID: <m1@example.org>\r\n\r\n" + strings.Repeat("report line\r\n", 200)},
		{queue.Envelope{From: "", Arrival: now.Add(-10 * time.Minute), Source: "l", Client: "localhost (internal)",
			Rcpts: []queue.Recipient{
				{Addr: "eve@mail.example.net", Channel: "tcp_local", Host: "mail.example.net", Attempts: 1,
					NextAttempt: now.Add(5 * time.Minute), LastError: "smtp;450 4.2.0 mailbox busy"},
			}}, "Subject: Delivery Status Notification\r\nFrom: postmaster@localhost\r\n\r\nnotice\r\n"},
		{queue.Envelope{From: "loop@example.org", Arrival: now.Add(-90 * time.Minute), Source: "tcp_local",
			Held: true, HeldReason: "Received count exceeded; message held",
			Rcpts: []queue.Recipient{{Addr: "frank@localhost", Channel: "l", Host: "localhost"}}},
			"Received: from a\r\nReceived: from b\r\nSubject: loop\r\n\r\nagain\r\n"},
		{queue.Envelope{From: "news@lists.example.com", Arrival: now.Add(-3*time.Hour - 30*time.Second), Source: "tcp_local",
			Rcpts: []queue.Recipient{
				{Addr: "x1@yahoo.com", Channel: "tcp_local", Host: "yahoo.com", Attempts: 3,
					NextAttempt: now.Add(10 * time.Minute), LastError: "smtp;421 4.7.0 [TSS04] Messages temporarily deferred due to user complaints"},
				{Addr: "x2@gmail.com", Channel: "tcp_local", Host: "gmail.com", Attempts: 1,
					NextAttempt: now.Add(time.Minute), LastError: "connect to gmail-smtp-in.l.google.com[142.250.0.27]:25: connection timed out"},
				{Addr: "x3@gmail.com", Channel: "tcp_local", Host: "gmail.com", Attempts: 1,
					NextAttempt: now.Add(time.Minute), LastError: "connect to gmail-smtp-in.l.google.com[142.250.0.27]:25: connection timed out"},
			}}, "Subject: newsletter\r\n\r\nnews\r\n"},
	}
	var ids []string
	for _, e := range envs {
		id, err := q.Enqueue(context.Background(), &e.env, []byte(e.content))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := os.WriteFile(filepath.Join(data, "holdlist"), []byte("l\ntcp_local\ntcp_intranet\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	return ids
}

var (
	rfc3339    = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	sourceHash = regexp.MustCompile(`source hash [0-9a-f]+`) // changes with the embedded configuration
)

// mask makes output stable: ids become ID00000000000001.., absolute times <TIME>, data $DATA.
func mask(s, data string, ids []string) string {
	for i, id := range ids {
		s = strings.ReplaceAll(s, id, fmt.Sprintf("ID%014d", i+1)) // as wide as an id: columns stay aligned
	}
	s = strings.ReplaceAll(s, data, "$DATA")
	s = sourceHash.ReplaceAllString(s, "source hash <HASH>")
	return rfc3339.ReplaceAllString(s, "<TIME>")
}

// TestQmGolden runs testdata/qm/*.txt: the first line is "online" or "offline",
// the second the command (after "mtactl -data $DATA"), then the separator and
// the expected output (stdout, stderr, [exit N]). $ID1.. name the fixture ids.
func TestQmGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "qm", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	now := time.Now().Truncate(time.Second)
	online, offline := dataDir(t), dataDir(t)
	onIDs, offIDs := fixtureQueue(t, online, now), fixtureQueue(t, offline, now)
	startMTAD(t, online, "")
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			head, want, ok := strings.Cut(string(b), "\n"+separator+"\n")
			if !ok {
				t.Fatal("no separator")
			}
			mode, cmdline, _ := strings.Cut(head, "\n")
			data, ids := online, onIDs
			if mode == "offline" {
				data, ids = offline, offIDs
			} else if mode != "online" {
				t.Fatalf("first line %q: want online or offline", mode)
			}
			args := strings.Fields(cmdline)
			for i, a := range args {
				for k := len(ids); k >= 1; k-- {
					a = strings.ReplaceAll(a, fmt.Sprintf("$ID%d", k), ids[k-1])
				}
				args[i] = a
			}
			out, errs, rc := mtactl(t, data, now, args...)
			got := mask(out+errs+fmt.Sprintf("[exit %d]\n", rc), data, ids)
			if *update {
				if err := os.WriteFile(f, []byte(head+"\n"+separator+"\n"+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("output differs (run with -update to accept)\n--- got\n%s--- want\n%s", got, want)
			}
		})
	}
}

func sendMail(t *testing.T, d *daemon.Daemon, from string, to []string, subject string) {
	t.Helper()
	msg := "Subject: " + subject + "\r\nFrom: " + from + "\r\n\r\nbody of " + subject + "\r\n"
	if err := smtp.SendMail(d.Addr().String(), nil, from, to, []byte(msg)); err != nil {
		t.Fatalf("send: %v", err)
	}
}

func countMaildir(data, mailbox string) int {
	ents, _ := os.ReadDir(filepath.Join(data, "mailboxes", mailbox, "new"))
	return len(ents)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// queuedIDs lists the ids qm directory shows (with -json) for a filter.
func queuedIDs(t *testing.T, data string, args ...string) []string {
	t.Helper()
	var es []control.DirEntry
	out := mustMtactl(t, data, append([]string{"qm", "directory", "-json"}, args...)...)
	if err := jsonUnmarshal(out, &es); err != nil {
		t.Fatalf("directory -json: %v\n%s", err, out)
	}
	var ids []string
	for _, e := range es {
		ids = append(ids, e.ID)
	}
	return ids
}

func mailLog(data string) string {
	b, _ := os.ReadFile(filepath.Join(data, "mail.log"))
	return string(b)
}

func TestControlSocketMode(t *testing.T) {
	data := dataDir(t)
	d, stop := startMTAD(t, data, "")
	fi, err := os.Stat(d.ControlSocket())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v, want socket 0600", fi.Mode())
	}
	stop()
	// The socket goes as the control server stops, shortly after Shutdown's cancel.
	waitFor(t, "the socket removed after shutdown", func() bool {
		_, err := os.Stat(d.ControlSocket())
		return os.IsNotExist(err)
	})
}

func TestHoldReleaseDelete(t *testing.T) {
	data := dataDir(t)
	d, _ := startMTAD(t, data, "")
	mustMtactl(t, data, "qm", "stop", "l")
	sendMail(t, d, "sender@localhost", []string{"alice@localhost"}, "one")
	sendMail(t, d, "sender@localhost", []string{"alice@localhost"}, "two")
	var ids []string
	waitFor(t, "two queued messages", func() bool { ids = queuedIDs(t, data, "-channel=l"); return len(ids) == 2 })

	out := mustMtactl(t, data, "qm", "hold", ids[0])
	if out != ids[0]+": held\n" {
		t.Errorf("hold: %q", out)
	}
	if held := queuedIDs(t, data, "-held"); len(held) != 1 || held[0] != ids[0] {
		t.Errorf("directory -held = %v, want [%s]", held, ids[0])
	}
	out = mustMtactl(t, data, "qm", "delete", ids[1])
	if out != ids[1]+": deleted\n" {
		t.Errorf("delete: %q", out)
	}
	mustMtactl(t, data, "qm", "start", "l")
	// Neither the held nor the deleted message is delivered.
	time.Sleep(300 * time.Millisecond)
	if n := countMaildir(data, "alice"); n != 0 {
		t.Fatalf("%d messages delivered while held/deleted", n)
	}
	if _, errs, rc := mtactl(t, data, time.Now(), "qm", "view", ids[1]); rc != 1 || !strings.Contains(errs, "no such message") {
		t.Errorf("view deleted: %d %q", rc, errs)
	}
	out = mustMtactl(t, data, "qm", "release", ids[0])
	if out != ids[0]+": released\n" {
		t.Errorf("release: %q", out)
	}
	waitFor(t, "the released message delivered", func() bool { return countMaildir(data, "alice") == 1 })
	waitFor(t, "mail.log lines", func() bool {
		l := mailLog(data)
		return strings.Contains(l, " l H ") && strings.Contains(l, " l K ") && strings.Contains(l, " l D ")
	})
	if l := mailLog(data); !regexp.MustCompile(` l K .* `+ids[1]+` .*deleted by the postmaster`).MatchString(l) ||
		!regexp.MustCompile(` l H .* `+ids[0]+` .*held by the postmaster`).MatchString(l) {
		t.Errorf("mail.log:\n%s", l)
	}
	// Unknown ids fail, per id, with exit 1.
	out, errs, rc := mtactl(t, data, time.Now(), "qm", "hold", "NOSUCHID")
	if rc != 1 || !strings.Contains(errs, "NOSUCHID: no such message") {
		t.Errorf("hold unknown: %d %q %q", rc, out, errs)
	}
	// counters: received counts new and released messages' recipients.
	var c control.CountersCleared
	if err := jsonUnmarshal(mustMtactl(t, data, "counters", "-json"), &c); err != nil {
		t.Fatal(err)
	}
	var l control.CounterRow
	for _, r := range c.Rows {
		if r.Channel == "l" {
			l = r
		}
	}
	if l.Total.Delivered != 1 || l.Total.Received != 3 {
		t.Errorf("counters for l: %+v (want 1 delivered; 3 received: two new, one release)", l.Total)
	}
	mustMtactl(t, data, "qm", "counters", "-clear")
	if err := jsonUnmarshal(mustMtactl(t, data, "qm", "counters", "-json"), &c); err != nil {
		t.Fatal(err)
	}
	for _, r := range c.Rows {
		if r.Since != (control.Counters{}) || (r.Channel == "l" && r.Total.Delivered != 1) {
			t.Errorf("after -clear: %+v", r)
		}
	}
}

func TestReturnSendsNotice(t *testing.T) {
	data := dataDir(t)
	d, _ := startMTAD(t, data, "")
	mustMtactl(t, data, "qm", "stop", "l")
	sendMail(t, d, "sender@localhost", []string{"bob@localhost", "carl@localhost"}, "to bounce")
	var ids []string
	waitFor(t, "queued", func() bool { ids = queuedIDs(t, data); return len(ids) == 1 })
	out := mustMtactl(t, data, "qm", "return", ids[0])
	if out != ids[0]+": returned (2 recipient(s) returned)\n" {
		t.Errorf("return: %q", out)
	}
	mustMtactl(t, data, "qm", "start", "l")
	waitFor(t, "the notice in the sender's Maildir", func() bool { return countMaildir(data, "sender") == 1 })
	ents, _ := os.ReadDir(filepath.Join(data, "mailboxes", "sender", "new"))
	b, _ := os.ReadFile(filepath.Join(data, "mailboxes", "sender", "new", ents[0].Name()))
	for _, want := range []string{"multipart/report", "Action: failed", "Status: 5.0.0", "returned by the postmaster", "bob@localhost"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("notice lacks %q:\n%s", want, b)
		}
	}
	if countMaildir(data, "bob") != 0 || countMaildir(data, "carl") != 0 {
		t.Error("a returned message was delivered")
	}
	waitFor(t, "R lines", func() bool { return strings.Count(mailLog(data), " l R ") == 2 })
}

func TestStopStartWhileSending(t *testing.T) {
	data := dataDir(t)
	d, _ := startMTAD(t, data, "")
	mustMtactl(t, data, "qm", "stop", "l")
	for i := 0; i < 5; i++ {
		sendMail(t, d, "s@localhost", []string{"rcpt@localhost"}, fmt.Sprint("stopped ", i))
	}
	time.Sleep(300 * time.Millisecond)
	if n := countMaildir(data, "rcpt"); n != 0 {
		t.Fatalf("%d delivered on a stopped channel", n)
	}
	out, _, _ := mtactl(t, data, time.Now(), "qm", "summarize")
	if !regexp.MustCompile(`(?m)^l\s+5\s+5\s+0\s+5\s+\S+\s+0\s+stopped$`).MatchString(out) {
		t.Errorf("summarize while stopped:\n%s", out)
	}
	// Toggle while more mail arrives; everything is delivered once started.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 10; i++ {
			sendMail(t, d, "s@localhost", []string{"rcpt@localhost"}, fmt.Sprint("toggling ", i))
		}
	}()
	for i := 0; i < 6; i++ {
		mustMtactl(t, data, "qm", []string{"start", "stop"}[i%2], "l")
	}
	wg.Wait()
	mustMtactl(t, data, "qm", "start", "l")
	waitFor(t, "15 deliveries", func() bool { return countMaildir(data, "rcpt") == 15 })
	// Results are committed after the Maildir write: the queue empties shortly after.
	waitFor(t, "an empty queue", func() bool { return len(queuedIDs(t, data)) == 0 })
}

// TestStopStartHammer: 50 concurrent mtactl stop/start through the socket never
// fail, and the hold list on disk ends equal to the job controller's.
func TestStopStartHammer(t *testing.T) {
	data := dataDir(t)
	d, _ := startMTAD(t, data, "")
	chans := []string{"l", "tcp_local", "tcp_intranet"}
	var wg sync.WaitGroup
	errs := make(chan string, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cmd := []string{"stop", "start"}[i%2]
			var out, eb bytes.Buffer
			if rc := runIO([]string{"-data", data, "qm", cmd, chans[i%3]}, strings.NewReader(""), false, &out, &eb, time.Now); rc != 0 {
				errs <- fmt.Sprintf("qm %s %s: exit %d: %s", cmd, chans[i%3], rc, eb.String())
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	b, err := os.ReadFile(filepath.Join(data, "holdlist"))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && !strings.HasPrefix(l, "!") {
			onDisk = append(onDisk, l)
		}
	}
	sort.Strings(onDisk)
	if got := strings.Join(d.Jobs().Stopped(), ","); got != strings.Join(onDisk, ",") {
		t.Errorf("job controller says stopped %q, hold list file %q", got, onDisk)
	}
	// Settle: the last word is the state.
	for _, c := range chans {
		mustMtactl(t, data, "qm", "start", c)
	}
	mustMtactl(t, data, "qm", "stop", "tcp_local")
	if got := strings.Join(d.Jobs().Stopped(), ","); got != "tcp_local" {
		t.Errorf("stopped = %q, want tcp_local", got)
	}
}

// TestOffline: a queue left by a stopped mtad is read from disk; commands that
// need mtad say so; a locked queue means mtad runs but does not answer.
func TestOffline(t *testing.T) {
	data := dataDir(t)
	d, stop := startMTAD(t, data, "")
	mustMtactl(t, data, "qm", "stop", "l")
	sendMail(t, d, "s@localhost", []string{"left@localhost"}, "left behind")
	var ids []string
	waitFor(t, "queued", func() bool { ids = queuedIDs(t, data); return len(ids) == 1 })
	stop()

	out, errs, rc := mtactl(t, data, time.Now(), "qm", "directory")
	if rc != 0 || !strings.Contains(errs, "mtad is not running: reading the queue on disk") || !strings.Contains(out, ids[0]) || !strings.Contains(out, "left@localhost") {
		t.Errorf("offline directory: %d\n%s%s", rc, out, errs)
	}
	out, _, rc = mtactl(t, data, time.Now(), "qm", "view", ids[0])
	if rc != 0 || !strings.Contains(out, "Subject: left behind") {
		t.Errorf("offline view: %d\n%s", rc, out)
	}
	out, _, rc = mtactl(t, data, time.Now(), "qm", "summarize")
	if rc != 0 || !regexp.MustCompile(`(?m)^l\s+1\s+1\s+0\s+1\s+\S+\s+-\s+stopped$`).MatchString(out) {
		t.Errorf("offline summarize: %d\n%s", rc, out)
	}
	out, errs, rc = mtactl(t, data, time.Now(), "qm", "start", "l")
	if rc != 0 || out != "channel l started\n" || !strings.Contains(errs, "updating the hold list on disk") {
		t.Errorf("offline start: %d %q %q", rc, out, errs)
	}
	if _, _, rc = mtactl(t, data, time.Now(), "qm", "stop", "nosuch"); rc != 1 {
		t.Errorf("offline stop of an unknown channel: exit %d", rc)
	}
	for _, args := range [][]string{{"qm", "run", "l"}, {"qm", "counters"}, {"qm", "jobs"}, {"qm", "return", ids[0]}, {"reload"}, {"process"}} {
		_, errs, rc := mtactl(t, data, time.Now(), args...)
		if rc != 1 || !strings.Contains(errs, "mtad is not running") || !strings.Contains(errs, "this command needs it") {
			t.Errorf("%v offline: %d %q", args, rc, errs)
		}
	}
	// The queue locked by another process, no socket: running but not answering.
	q, err := queue.Open(filepath.Join(data, "queue"), queue.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	_, errs, rc = mtactl(t, data, time.Now(), "qm", "directory")
	if rc != 1 || !strings.Contains(errs, "mtad is running but not answering") {
		t.Errorf("locked queue: %d %q", rc, errs)
	}
	// The next mtad delivers what was left, the channel having been started offline.
	q.Close()
	startMTAD(t, data, "")
	waitFor(t, "delivery after restart", func() bool { return countMaildir(data, "left") == 1 })
}

// TestRunShowsOutcomes: qm run attempts a channel's deferred mail now and streams
// the mail.log lines of what happened.
func TestRunShowsOutcomes(t *testing.T) {
	data := dataDir(t)
	d, _ := startMTAD(t, data, deferringConfig(t))
	sendMail(t, d, "me@localhost", []string{"you@remote.example"}, "deferred")
	waitFor(t, "a first Q", func() bool { return strings.Contains(mailLog(data), " tcp_local Q ") })
	out, errs, rc := mtactl(t, data, time.Now(), "qm", "run", "-timeout=10s", "tcp_local")
	if rc != 0 || !regexp.MustCompile(`(?m)^\S+ \S+ tcp_local Q 1 me@localhost rfc822;you@remote.example you@remote.example \S+ .*$`).MatchString(out) ||
		!strings.Contains(out, "tcp_local: 0 recipients delivered, 1 recipient requeued, 0 recipients returned; 1 entry left") {
		t.Errorf("run: %d\n%s%s", rc, out, errs)
	}
	out = mustMtactl(t, data, "qm", "summarize", "-by=domain")
	if !regexp.MustCompile(`(?m)^remote\.example\s+tcp_local\s+1\s+1\s+\S+\s+2\s+.*connect`).MatchString(out) {
		t.Errorf("summarize -by=domain:\n%s", out)
	}
	if out, errs, rc := mtactl(t, data, time.Now(), "qm", "run", "nosuch"); rc != 1 || !strings.Contains(errs, "no such channel: nosuch") {
		t.Errorf("run nosuch: %d %q %q", rc, out, errs)
	}
	out = mustMtactl(t, data, "qm", "submit", "tcp_local")
	if !strings.HasPrefix(out, "tcp_local: submitted; ") {
		t.Errorf("submit: %q", out)
	}
}

// deferringConfig is a configuration whose tcp_local relays everything to a
// loopback port nothing listens on: every attempt fails temporarily.
func deferringConfig(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg := t.TempDir()
	os.WriteFile(filepath.Join(cfg, "imta.cnf"), []byte(fmt.Sprintf(`.                $U%%$H@tcp-daemon

l
localhost

tcp_local smtp nomx single_sys daemon 127.0.0.1 port %d
tcp-daemon
`, port)), 0o644)
	return cfg
}

// TestRunDoesNotReadMailLog: qm run learns the outcomes from the job controller,
// not from mail.log: with the file moved away (logrotate before its reopen), the
// outcome still shows and is counted.
func TestRunDoesNotReadMailLog(t *testing.T) {
	data := dataDir(t)
	d, _ := startMTAD(t, data, deferringConfig(t))
	sendMail(t, d, "me@localhost", []string{"you@remote.example"}, "deferred")
	waitFor(t, "a first Q", func() bool { return strings.Contains(mailLog(data), " tcp_local Q ") })
	if err := os.Rename(filepath.Join(data, "mail.log"), filepath.Join(data, "mail.log.1")); err != nil {
		t.Fatal(err)
	}
	out, errs, rc := mtactl(t, data, time.Now(), "qm", "run", "-timeout=10s", "tcp_local")
	if rc != 0 || !regexp.MustCompile(`(?m)^\S+ \S+ tcp_local Q 1 me@localhost rfc822;you@remote.example you@remote.example \S+ .*$`).MatchString(out) ||
		!strings.Contains(out, "1 recipient requeued") {
		t.Errorf("run: %d\n%s%s", rc, out, errs)
	}
}

// TestAdminCommands: reload, log -reopen, process, jobs, cache -flush and version
// against a running mtad.
func TestAdminCommands(t *testing.T) {
	data := dataDir(t)
	startMTAD(t, data, "")
	if out := mustMtactl(t, data, "reload"); !strings.HasPrefix(out, "configuration reloaded: image built ") {
		t.Errorf("reload: %q", out)
	}
	os.Rename(filepath.Join(data, "mail.log"), filepath.Join(data, "mail.log.1"))
	if out := mustMtactl(t, data, "log", "-reopen"); out != "mail.log reopened\n" {
		t.Errorf("log -reopen: %q", out)
	}
	if _, err := os.Stat(filepath.Join(data, "mail.log")); err != nil {
		t.Errorf("mail.log not recreated: %v", err)
	}
	out := mustMtactl(t, data, "process")
	for _, want := range []string{"dispatcher: SMTP listening on 127.0.0.1:", "SMTP_POOL", "tcp_local", "MAXJOBS"} {
		if !strings.Contains(out, want) {
			t.Errorf("process lacks %q:\n%s", want, out)
		}
	}
	if out := mustMtactl(t, data, "qm", "jobs", "-hosts", "-messages"); !strings.HasSuffix(out, "0 jobs (0 idle) in 0 channels\n") {
		t.Errorf("jobs: %q", out)
	}
	if out := mustMtactl(t, data, "cache", "-flush"); !strings.HasPrefix(out, "DNS cache flushed (") {
		t.Errorf("cache -flush: %q", out)
	}
	out = mustMtactl(t, data, "version")
	if !strings.Contains(out, "running mtad: pid ") || !regexp.MustCompile(`source hash = [0-9a-f]{64}`).MatchString(out) {
		t.Errorf("version:\n%s", out)
	}
	if _, errs, rc := mtactl(t, data, time.Now(), "qm", "frob"); rc != 2 || !strings.Contains(errs, `unknown subcommand "frob"`) {
		t.Errorf("qm frob: %d %q", rc, errs)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// TestRunShowsDialogue: qm run shows the SMTP dialogue of the connections it makes,
// as the product's `qm run` shows the master program's output.
func TestRunShowsDialogue(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				r := bufio.NewReader(c)
				io.WriteString(c, "220 deferring.test ESMTP\r\n")
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch cmd := strings.ToUpper(line); {
					case strings.HasPrefix(cmd, "EHLO"):
						io.WriteString(c, "250 deferring.test\r\n")
					case strings.HasPrefix(cmd, "RCPT"):
						io.WriteString(c, "451 4.3.0 come back later-xyzzy\r\n")
					case strings.HasPrefix(cmd, "DATA"):
						io.WriteString(c, "503 5.5.1 no valid recipients\r\n")
					case strings.HasPrefix(cmd, "QUIT"):
						io.WriteString(c, "221 bye\r\n")
						return
					default:
						io.WriteString(c, "250 ok\r\n")
					}
				}
			}(c)
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	cfg := t.TempDir()
	os.WriteFile(filepath.Join(cfg, "imta.cnf"), []byte(fmt.Sprintf(`.                $U%%$H@tcp-daemon

l
localhost

tcp_local smtp nomx single_sys daemon 127.0.0.1 port %d
tcp-daemon
`, port)), 0o644)
	data := dataDir(t)
	d, _ := startMTAD(t, data, cfg)
	sendMail(t, d, "me@localhost", []string{"you@remote.example"}, "deferred")
	waitFor(t, "a first Q", func() bool { return strings.Contains(mailLog(data), " tcp_local Q ") })
	// The first attempt's connection may still be cached; qm run's attempt then reuses
	// it. Retry once so that at least one run opens a connection of its own.
	var out string
	for i := 0; i < 3; i++ {
		o, errs, rc := mtactl(t, data, time.Now(), "qm", "run", "-timeout=10s", "tcp_local")
		if rc != 0 {
			t.Fatalf("run: %d\n%s%s", rc, o, errs)
		}
		out = o
		if strings.Contains(out, "451 4.3.0 come back later-xyzzy") && strings.Contains(out, "RCPT TO:<you@remote.example>") {
			t.Logf("qm run output:\n%s", out)
			return
		}
		// qm run drops the channel's idle connections before it starts, and a
		// connection a delivery still uses is not idle: wait until none does.
		waitFor(t, "no tcp_local delivery in flight", func() bool {
			return !slices.ContainsFunc(d.Jobs().Snapshot().Jobs, func(j jobctl.JobInfo) bool { return j.Channel == "tcp_local" })
		})
	}
	t.Errorf("qm run shows no dialogue:\n%s", out)
}

// TestRunReportsLostOutcomes: when mtad could not stream every outcome (the
// command fell behind), qm run prints what it got, the usual summary on stdout,
// and says on stderr how many outcomes it did not show.
func TestRunReportsLostOutcomes(t *testing.T) {
	data := dataDir(t)
	srv, err := control.Listen(filepath.Join(data, control.SocketName), func(ctx context.Context, req *control.Request, w *control.Writer) {
		w.Event("07-Dec-2026 05:37:26.07 tcp_local D 1 a@x rfc822;b@y b@y ID1 smtp;250 ok")
		w.Result(control.RunResult{Channel: req.Channel, Delivered: 1, Reason: "no work left that can be attempted now", Lost: 3}, "")
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-served })
	out, errs, rc := mtactl(t, data, time.Now(), "qm", "run", "tcp_local")
	if rc != 0 || !strings.HasPrefix(out, "07-Dec-2026 05:37:26.07 tcp_local D 1 ") ||
		!strings.Contains(out, "tcp_local: 1 recipient delivered, 0 recipients requeued, 0 recipients returned; 0 entries left") ||
		errs != "mtactl qm run: 3 outcomes not shown (this command fell behind); mail.log has them\n" {
		t.Errorf("run: %d\n%s--- stderr\n%s", rc, out, errs)
	}
}
