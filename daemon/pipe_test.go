package daemon

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A channel with PIPE_COMMAND in its option file delivers through that program:
// content on stdin, no shell, ${user} substituted in the argument.
func TestPipeChannelDelivers(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	writeConfig(t, dir, map[string]string{
		"imta.cnf":    "pipe.test  $U%$D@pipe-daemon\n\nl\nlocalhost\n\npipe\npipe-daemon\n\ntcp_local smtp\ntcp-daemon\n",
		"pipe_option": fmt.Sprintf("PIPE_COMMAND=/usr/bin/tee %s/${user}.msg\nPIPE_TIMEOUT=10\n", out),
	})
	d, _ := startDaemon(t, dir)
	body := []byte("Subject: piped\r\n\r\n$(touch /tmp/never) ; `id`\r\n")
	c := dial(t, d.Addr().String())
	c.cmd("EHLO client.test", "250")
	c.send("a@localhost", []string{"alice@pipe.test"}, body)
	path := filepath.Join(out, "alice.msg")
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, err := os.ReadFile(path)
		if err == nil && bytes.HasSuffix(got, body) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipe output %s: %q (err %v)", path, got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
