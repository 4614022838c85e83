package daemon

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/control"
	"mtad.dev/mta/intake"
)

// holdSite routes held.test to the hold channel when hold is set; everything else
// (and held.test otherwise) goes to the loopback sink.
func holdSite(port int, hold bool, options string) map[string]string {
	rule := ""
	if hold {
		rule = "held.test        $U%held.test@hold-daemon\n"
	}
	files := map[string]string{
		"imta.cnf": fmt.Sprintf(`localhost        $U%%localhost@localhost
%s.                $U%%$H@tcp-daemon

l
localhost

hold
hold-daemon

tcp_local smtp nomx single_sys daemon 127.0.0.1 port %d
tcp-daemon
`, rule, port),
	}
	if options != "" {
		files["option.dat"] = options
	}
	return files
}

// heldEntries is `qm held`: the held messages as the control interface lists them.
func heldEntries(t *testing.T, d *Daemon) []control.DirEntry {
	t.Helper()
	ents, err := control.Directory(d.queue, control.Filter{Held: true}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ents
}

// waitHeld waits for exactly one held message and returns it.
func waitHeld(t *testing.T, d *Daemon) control.DirEntry {
	t.Helper()
	var ents []control.DirEntry
	waitFor(t, "a held message", func() bool {
		ents = heldEntries(t, d)
		return len(ents) == 1
	})
	return ents[0]
}

// release is `qm release ID`.
func release(t *testing.T, d *Daemon, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r := d.runMessageCommand(ctx, control.CmdRelease, id); r.Error != "" || r.Note != "" {
		t.Fatalf("release %s: %+v", id, r)
	}
}

// TestHoldChannelReleaseFollowsNewRules: mail the rules route to the hold channel
// is kept .HELD; after the rules change, `qm release` sends it where they route
// it now, byte-exact.
func TestHoldChannelReleaseFollowsNewRules(t *testing.T) {
	s := newSink(t)
	dir := t.TempDir()
	writeConfig(t, dir, holdSite(s.port, true, ""))
	data := t.TempDir()
	d, _ := startWith(t, Options{ConfigDir: dir, DataDir: data, Listen: "127.0.0.1:0"})

	body := []byte("Subject: migrating\r\nMessage-ID: <h1@test>\r\n\r\n.dot\r\nwait for me\r\n")
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	c.Cmd("MAIL FROM:<sender@remote.example> RET=HDRS ENVID=hold-1", "250")
	c.Cmd("RCPT TO:<user@held.test> NOTIFY=FAILURE ORCPT=rfc822;user@held.test", "250")
	id := queueID(c.Data(body, "250"))
	c.Cmd("QUIT", "221")

	h := waitHeld(t, d)
	if h.HeldReason != intake.HoldChannelReason || !strings.Contains(strings.Join(h.Channels, ","), "hold") ||
		strings.Join(h.Rcpts, ",") != "user@held.test" {
		t.Fatalf("held entry %+v", h)
	}
	waitLogMatch(t, data, 10*time.Second, `hold D .*user@held.test `+id+` .*held as `+h.ID)
	stored, err := d.queue.Content(h.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, stored.Size())
	if _, err := stored.ReadAt(want, 0); err != nil {
		t.Fatal(err)
	}
	stored.Close()
	// Held means held: nothing reaches the sink while the rules still say hold.
	channelsIdle(t, d, "hold", "tcp_local")
	if n := s.len(); n != 0 {
		t.Fatalf("sink got %d messages while held", n)
	}

	writeConfig(t, dir, holdSite(s.port, false, ""))
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	release(t, d, h.ID)
	m := s.wait(t, 1)[0]
	if !bytes.Equal(m.Data, want) || !bytes.HasSuffix(m.Data, body) {
		t.Errorf("released content differs:\n got %q\nwant %q", m.Data, want)
	}
	if m.From != "sender@remote.example" || strings.Join(m.To, ",") != "user@held.test" {
		t.Errorf("envelope from %q to %q", m.From, m.To)
	}
	waitLogMatch(t, data, 10*time.Second, `hold tcp_local E.* user@held.test `, `tcp_local D .*user@held.test`)
	if ents := heldEntries(t, d); len(ents) != 0 {
		t.Errorf("still held: %+v", ents)
	}
}

// TestLoopHeldNoticeAndRelease: more Received: lines than MAX_RECEIVED_LINES
// queue the message .HELD with a WARN notice (HELD_SNDOPR=1); `qm release`
// delivers it.
func TestLoopHeldNoticeAndRelease(t *testing.T) {
	s := newSink(t)
	dir := t.TempDir()
	writeConfig(t, dir, holdSite(s.port, false, "MAX_RECEIVED_LINES=3\nHELD_SNDOPR=1\n"))
	d, logs := startWith(t, Options{ConfigDir: dir, Listen: "127.0.0.1:0"})

	body := []byte(strings.Repeat("Received: from a by b; Mon, 23 Nov 2026 18:00:00 +0000\r\n", 3) + "Subject: loop\r\n\r\nround and round\r\n")
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	id := queueID(c.Send("sender@remote.example", []string{"user@remote.example"}, body))
	c.Cmd("QUIT", "221")

	h := waitHeld(t, d)
	if h.ID != id || !strings.HasPrefix(h.HeldReason, "loop: 4 Received: lines") {
		t.Fatalf("held entry %+v, want %s held for the loop", h, id)
	}
	waitFor(t, "the HELD_SNDOPR notice", func() bool {
		l := logs.String()
		return strings.Contains(l, `level=WARN msg="message forced .HELD"`) && strings.Contains(l, "id="+id) &&
			strings.Contains(l, "from=sender@remote.example")
	})
	release(t, d, id)
	if m := s.wait(t, 1)[0]; !bytes.HasSuffix(m.Data, body) {
		t.Errorf("released content %q", m.Data)
	}
}
