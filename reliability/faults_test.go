package reliability

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// faultCnf routes bad.test to tcp_bad (the faulty server) and good.test to tcp_good
// (a healthy sink); local mail (the sender's, and so the bounces) stays in l.
func faultCnf(badPort, goodPort int) string {
	return fmt.Sprintf(`! reliability: remote faults
bad.test     $U%%$D@tcp_bad-daemon
good.test    $U%%$D@tcp_good-daemon

l
localhost

tcp_local smtp nomx single_sys
tcp-daemon

tcp_bad smtp nomx single_sys daemon 127.0.0.1 port %d
tcp_bad-daemon

tcp_good smtp nomx single_sys daemon 127.0.0.1 port %d
tcp_good-daemon
`, badPort, goodPort)
}

// isEntry reports whether mail.log line l is a delivery entry of code (Q, R, D) by
// channel ch for recipient rcpt. Delivery entries are "date time CHANNEL CODE ...";
// enqueue entries have two channels before their E code.
func isEntry(l, ch, code, rcpt string) bool {
	f := strings.Fields(l)
	return len(f) > 6 && f[2] == ch && f[3] == code && strings.Contains(l, " rfc822;"+rcpt+" ")
}

// outcome is what one recipient of the faulty destination must come to.
type outcome struct {
	rcpt string
	code string   // mail.log entry: Q (deferred, will retry), R (returned), D (delivered)
	diag []string // text the entry must contain (case-insensitive)
}

func TestRemoteFaults(t *testing.T) {
	t.Parallel()
	trickle := 20 * time.Millisecond
	if soak {
		trickle = time.Second // one byte a second, as a slow attacker sends
	}
	// The faulty channel's reply timeouts, short so that a stalled server costs
	// the test under a second, yet longer than the gaps of a trickled reply:
	// 40 gaps, where the EHLO reply is 46 bytes. A trickled reply thus outlasts
	// the timeout, and still arrives: the timeouts bound inactivity, not a reply.
	stage := 40 * trickle
	badOptions := fmt.Sprintf("! short stage timeouts (values with a unit: our extension)\n"+
		"STATUS_GREETING_RECEIVE_TIME=%v\nSTATUS_RECEIVE_TIME=%v\nSTATUS_DATA_RECEIVE_TIME=%v\n", stage, stage, stage)
	cases := []struct {
		fault string
		rcpts []outcome
	}{
		{fault: fRefused, rcpts: []outcome{{"u@bad.test", "Q", []string{"smtp;451 4.4.1", "connection refused"}}}},
		{fault: fReset, rcpts: []outcome{{"u@bad.test", "Q", []string{"smtp;451 4.4.", "reset"}}}},
		{fault: f421, rcpts: []outcome{{"u@bad.test", "Q", []string{"smtp;421 4.3.2 fault.test service not available"}}}},
		{fault: fRcptMixed, rcpts: []outcome{
			{"tmp@bad.test", "Q", []string{"smtp;450 4.2.1 mailbox temporarily unavailable"}},
			{"bad@bad.test", "R", []string{"550 5.1.1 no such user here"}},
			{"ok@bad.test", "D", []string{"smtp;250"}},
		}},
		{fault: fDrop354, rcpts: []outcome{{"u@bad.test", "Q", []string{"smtp;451 4.4.2", "connection lost"}}}},
		{fault: fDropMid, rcpts: []outcome{{"u@bad.test", "Q", []string{"smtp;451 4.4.2", "connection lost"}}}},
		// Timeouts bound inactivity, not a whole reply: a slow but live server
		// gets the mail.
		{fault: fTrickle, rcpts: []outcome{{"u@bad.test", "D", []string{"smtp;250 2.0.0 queued"}}}},
		{fault: fHangDot, rcpts: []outcome{{"u@bad.test", "Q", []string{"smtp;451 4.4.2", "timeout waiting for end of DATA reply"}}}},
		{fault: fNoGreet, rcpts: []outcome{{"u@bad.test", "Q", []string{"smtp;451 4.4.2", "timeout waiting for greeting reply"}}}},
	}
	for _, tc := range cases {
		t.Run(tc.fault, func(t *testing.T) {
			t.Parallel()
			bad := newFaultServer(t, tc.fault, trickle)
			good := newSink(t)
			cfg := t.TempDir()
			writeFiles(t, cfg, map[string]string{"imta.cnf": faultCnf(bad.port, good.port), "tcp_bad_option": badOptions})
			d, data := startDaemon(t, cfg)
			c := dial(t, d.Addr().String())
			c.Cmd("EHLO client.test", "250")
			var to []string
			for _, o := range tc.rcpts {
				to = append(to, o.rcpt)
			}
			content, _ := message("fault-"+tc.fault, 2000)
			if r := c.Attempt("alice@localhost", to, []byte(content)); !strings.HasPrefix(r, "250") {
				t.Fatalf("message to the faulty destination: %q", r)
			}
			// Meanwhile a healthy destination keeps receiving.
			goodContent, goodSum := message("good-"+tc.fault, 300)
			if r := c.Attempt("alice@localhost", []string{"x@good.test"}, []byte(goodContent)); !strings.HasPrefix(r, "250") {
				t.Fatalf("message to the healthy destination: %q", r)
			}
			c.Cmd("QUIT", "221")
			good.waitToken(t, "good-"+tc.fault, 15*time.Second)
			if got := good.copies("good-" + tc.fault); got[0] != goodSum {
				t.Errorf("healthy destination: body hash differs")
			}

			// A trickled session is about 200 reply bytes long.
			within := 30*time.Second + 200*trickle
			for _, o := range tc.rcpts {
				l := waitLogLine(t, data, within, o.code+" for "+o.rcpt, func(l string) bool {
					return isEntry(l, "tcp_bad", o.code, o.rcpt)
				})
				for _, want := range o.diag {
					if !strings.Contains(strings.ToLower(l), strings.ToLower(want)) {
						t.Errorf("%s entry for %s lacks %q: %s", o.code, o.rcpt, want, l)
					}
				}
				// Nothing else final for that recipient.
				for _, other := range readLog(data) {
					for _, code := range []string{"D", "R"} {
						if code != o.code && isEntry(other, "tcp_bad", code, o.rcpt) {
							t.Errorf("%s: unexpected %s entry: %s", o.rcpt, code, other)
						}
					}
				}
				if o.code == "R" {
					dsn := waitBounce(t, data, "alice", o.rcpt)
					for _, want := range o.diag {
						if !strings.Contains(dsn, want) {
							t.Errorf("bounce for %s lacks %q:\n%s", o.rcpt, want, dsn)
						}
					}
				}
			}
			if t.Failed() {
				t.Logf("mail.log:\n%s", strings.Join(readLog(data), "\n"))
			}
		})
	}
}

// waitBounce waits for a delivery status notification about rcpt in mailbox's
// Maildir and returns it.
func waitBounce(t *testing.T, data, mailbox, rcpt string) string {
	t.Helper()
	dir := filepath.Join(data, "mailboxes", mailbox, "new")
	deadline := time.Now().Add(15 * time.Second)
	for {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			if s := string(b); strings.Contains(s, "multipart/report") && strings.Contains(s, rcpt) {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no bounce about %s in %s after 15 s", rcpt, dir)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestShutdownDuringSlowDelivery stops the daemon while a delivery is still in
// progress and lasts longer than the shutdown deadline (a slow remote server):
// Shutdown must return its deadline error and the late delivery must end quietly,
// its outcome still recorded or left for the next start, never crash the process.
func TestShutdownDuringSlowDelivery(t *testing.T) {
	bad := newFaultServer(t, fTrickle, 30*time.Millisecond) // the session takes about 6 s
	good := newSink(t)
	cfg, data := t.TempDir(), t.TempDir()
	writeFiles(t, cfg, map[string]string{"imta.cnf": faultCnf(bad.port, good.port)})
	d := startDaemonData(t, cfg, data)
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	content, _ := message("slow", 500)
	if r := c.Attempt("alice@localhost", []string{"u@bad.test"}, []byte(content)); !strings.HasPrefix(r, "250") {
		t.Fatalf("%q", r)
	}
	c.Cmd("QUIT", "221")
	time.Sleep(500 * time.Millisecond) // the delivery has started
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := d.Shutdown(ctx); err == nil {
		t.Errorf("Shutdown returned nil while a delivery was still running")
	}
	// Let the slow delivery end: a panic here kills the test binary.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, ok := bad.counts(); ok > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
}
