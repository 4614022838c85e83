package daemon

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mtad.dev/mta/control"
)

// startLogged starts a daemon on config and data whose diagnostics go to log.
func startLogged(t *testing.T, config, data string, log io.Writer) *Daemon {
	t.Helper()
	d, err := Start(context.Background(), Options{ConfigDir: config, DataDir: data, Listen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { stopDaemon(t, d) })
	return d
}

// TestMaildropPickup: messages spooled while mtad is down are queued at start,
// as the user who owns the file (root here), and the file removed; a recipient
// refused for good comes back to the sender in a failure notice while the other
// is delivered; hostile files are moved aside and logged, never read; a file
// not marked complete is left to its writer; a file spooled while mtad runs is
// picked up at once.
func TestMaildropPickup(t *testing.T) {
	config := t.TempDir()
	writeConfig(t, config, map[string]string{"imta.cnf": `localhost        $U%localhost@localhost
.invalid         $?No mail for .invalid hosts
.                $U%$H@tcp-daemon

l
localhost

tcp_local smtp nomx single_sys daemon 127.0.0.1 port 9
tcp-daemon
`})
	data := t.TempDir()
	stopDaemon(t, startDaemonAt(t, config, data)) // creates the maildrop
	drop := filepath.Join(data, control.MaildropName)
	if fi, err := os.Stat(drop); err != nil || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o730 {
		t.Fatalf("maildrop: %v %v, want mode 1730", fi.Mode(), err)
	}
	spool := func(sub *control.Submission) {
		t.Helper()
		if _, err := control.WriteDrop(drop, sub); err != nil {
			t.Fatal(err)
		}
	}
	spool(&control.Submission{User: "alice", Recipients: []string{"alice@localhost"}, Content: []byte("Subject: spooled\r\n\r\nwhile down\r\n")})
	spool(&control.Submission{Recipients: []string{"bob@localhost", "x@nowhere.invalid"}, Content: []byte("Subject: partly\r\n\r\nx\r\n")})
	os.Symlink("/etc/passwd", filepath.Join(drop, "evil-symlink"))
	syscall.Mkfifo(filepath.Join(drop, "evil-fifo"), 0o644)
	os.WriteFile(filepath.Join(drop, "evil-half"), []byte("MTADROP 1\n{\"size\":100}\nshort"), 0o744)
	os.WriteFile(filepath.Join(drop, "being-written"), []byte("MTADROP 1\n"), 0o644)

	var log syncBuffer
	startLogged(t, config, data, &log)
	alice := waitMaildir(t, data, "alice", 1)
	if !bytes.Contains(alice[0], []byte("(from root@localhost)")) || !bytes.Contains(alice[0], []byte("Subject: spooled")) {
		t.Errorf("spooled message not submitted as the file's owner (root):\n%s", alice[0])
	}
	waitMaildir(t, data, "bob", 1)
	notice := waitMaildir(t, data, "root", 1)
	if !bytes.Contains(notice[0], []byte("x@nowhere.invalid")) || !bytes.Contains(notice[0], []byte("No mail for .invalid hosts")) {
		t.Errorf("failure notice:\n%s", notice[0])
	}
	waitFor(t, "the maildrop emptied", func() bool {
		ents, _ := os.ReadDir(drop)
		return len(ents) == 1 && ents[0].Name() == "being-written" // left to its writer
	})
	refused, _ := os.ReadDir(filepath.Join(data, control.MaildropRefused))
	if len(refused) != 3 {
		t.Errorf("refused files: %v", refused)
	}
	for _, want := range []string{"file=evil-symlink", "not a regular file (symbolic link)", "file=evil-fifo", "FIFO",
		"file=evil-half", "truncated or overlong"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}

	spool(&control.Submission{Recipients: []string{"carol@localhost"}, Content: []byte("Subject: live\r\n\r\nx\r\n")})
	deadline := time.Now().Add(5 * time.Second)
	waitMaildir(t, data, "carol", 1)
	if time.Now().After(deadline) {
		t.Error("a file spooled while mtad runs waited for the rescan")
	}
}
