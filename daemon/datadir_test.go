package daemon

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"mtad.dev/mta/internal/lazyfs"
	"mtad.dev/mta/queue"
)

// TestDataDirSurvivesPowerCut: on a first start the data directory (and here two
// parents of it) does not exist; a message acknowledged by that daemon must still
// be queued after a power cut that forgets every directory entry not fsync'd.
// Without makeDataDir's fsyncs the new directories, and the queue in them, vanish.
func TestDataDirSurvivesPowerCut(t *testing.T) {
	fs := lazyfs.MountForTest(t)
	closed := freePort(t) // nothing listens there: the message stays queued
	cfg := t.TempDir()
	writeConfig(t, cfg, map[string]string{"imta.cnf": fmt.Sprintf(`.                $U%%$H@tcp-daemon

l
relay.invalid

tcp_local smtp nomx single_sys daemon 127.0.0.1 port %d
tcp-daemon
`, closed)})
	data := filepath.Join(fs.Dir(), "var", "spool", "mtad")
	d := startDaemonAt(t, cfg, data)
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	reply := c.Attempt("a@localhost", []string{"b@remote.test"}, []byte("Subject: kept\r\n\r\nbody\r\n"))
	c.Cmd("QUIT", "221")
	if !strings.HasPrefix(reply, "250") {
		t.Fatalf("refused: %q", reply)
	}
	id := strings.TrimSpace(reply[strings.LastIndex(reply, " ")+1:])
	stopDaemon(t, d)

	loss, err := fs.PowerCut()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("power cut: %v", loss)
	q, err := queue.OpenReadOnly(filepath.Join(data, "queue"), 0)
	if err != nil {
		t.Fatalf("the queue did not survive the power cut: %v", err)
	}
	defer q.Close()
	if _, err := q.Get(id); err != nil {
		t.Errorf("%s: acknowledged, then lost in a power cut: %v", id, err)
	}
}
