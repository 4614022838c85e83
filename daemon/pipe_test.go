package daemon

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
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
	c.Cmd("EHLO client.test", "250")
	c.Send("a@localhost", []string{"alice@pipe.test"}, body)
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

// writeScript writes an executable /bin/sh script.
func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// PIPE_MODE=message runs the program once for every recipient of the message
// (${recipients} one argument each, RECIPIENTS in the environment); the exit
// overrides turn an unknown failure (1) into a return and EX_NOUSER (67) into a
// deferral, as mail.log shows.
func TestPipeChannelModesAndExitOverrides(t *testing.T) {
	dir, out, data := t.TempDir(), t.TempDir(), t.TempDir()
	dump := filepath.Join(out, "dump.sh")
	writeScript(t, dump, `{ for a in "$@"; do printf '%s|' "$a"; done; printf 'RECIPIENTS=%s\n' "$RECIPIENTS"; } >> "`+out+`/runs"; cat > "`+out+`/content"`)
	exits := filepath.Join(out, "exit.sh")
	writeScript(t, exits, `cat >/dev/null; case "$USER" in one) echo "one refused" >&2; exit 1;; nouser) echo "try later" >&2; exit 67;; esac; exit 0`)
	writeConfig(t, dir, map[string]string{
		"imta.cnf": `m.test     $U%$D@pipem-daemon
x.test     $U%$D@pipex-daemon
localhost  $U%localhost@localhost

l
localhost

pipem
pipem-daemon

pipex backoff "pt1h"
pipex-daemon

tcp_local smtp
tcp-daemon
`,
		"pipem_option": "PIPE_COMMAND=" + dump + " --from ${sender} ${recipients}\nPIPE_MODE=message\n",
		"pipex_option": "PIPE_COMMAND=" + exits + "\nPIPE_PERMANENT_EXITS=1\nPIPE_TEMPORARY_EXITS=67\n",
	})
	d := startDaemonAt(t, dir, data)
	body := []byte("Subject: once\r\n\r\nfor everyone\r\n")
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	idm := queueID(c.Send("me@localhost", []string{"a@m.test", "b@m.test"}, body))
	idx := queueID(c.Send("me@localhost", []string{"one@x.test", "nouser@x.test", "fine@x.test"}, body))
	c.Cmd("QUIT", "221")

	qm, qx := regexp.QuoteMeta(idm), regexp.QuoteMeta(idx)
	waitLogMatch(t, data, 15*time.Second,
		` pipem D .* a@m\.test `+qm, ` pipem D .* b@m\.test `+qm,
		` pipex R .* one@x\.test `+qx+` .*exited 1: one refused`,
		` pipex Q .* nouser@x\.test `+qx+` .*exited 67: try later`,
		` pipex D .* fine@x\.test `+qx,
	)
	runs, err := os.ReadFile(filepath.Join(out, "runs"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "--from|me@localhost|a@m.test|b@m.test|RECIPIENTS=a@m.test,b@m.test\n"; string(runs) != want {
		t.Errorf("runs:\n got %q\nwant %q (one run for both recipients)", runs, want)
	}
	got, err := os.ReadFile(filepath.Join(out, "content"))
	if err != nil || !bytes.HasSuffix(got, body) {
		t.Errorf("content %q (err %v), want suffix %q", got, err, body)
	}
}
