package daemon

import (
	"bufio"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDovecotReadsFiledMail: messages mtad's users' filters file into Maildir++
// folders, with IMAP flags, are listed by Dovecot in the right IMAP folders
// with the right flags. The test runs Debian's dovecot-imapd itself, on
// loopback, with a configuration it writes (never the system's service); it
// is skipped where Dovecot is not installed (.ci/run installs it).
func TestDovecotReadsFiledMail(t *testing.T) {
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/dovecot"); statErr != nil {
			t.Skip("dovecot not installed (apt-get install dovecot-imapd)")
		}
		bin = "/usr/sbin/dovecot"
	}
	sink := newSink(t)
	dir := filterConfig(t, sink.port, "")
	writeConfig(t, dir, map[string]string{"sieve/bob.sieve": `require ["fileinto", "imap4flags"];
if header :contains "Subject" "go" { fileinto :flags ["\\Seen", "\\Flagged"] "Lists/Go"; stop; }
if header :contains "Subject" "draft" { fileinto "Entwürfe"; stop; }
`})
	d, data := startDaemon(t, dir)
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	for _, s := range []string{"go release", "draft reply", "plain"} {
		c.Send("sender@remote.example", []string{"bob@localhost"}, filterMsg(s))
	}
	c.Cmd("QUIT", "221")
	waitFolder(t, data, "bob", ".Lists.Go", "cur", 1)
	waitFolder(t, data, "bob", ".Entw&APw-rfe", "new", 1)
	waitFolder(t, data, "bob", "", "new", 1)

	imap := startDovecot(t, bin, filepath.Join(data, "mailboxes"))
	imap.cmd("LOGIN bob secret")
	list := strings.Join(imap.cmd(`LIST "" "*"`), "\n")
	for _, want := range []string{`"." Lists.Go`, `"." Entw&APw-rfe`, `"." INBOX`} {
		if !strings.Contains(strings.ReplaceAll(list, `"Entw&APw-rfe"`, `Entw&APw-rfe`), want) {
			t.Errorf("LIST lacks %s:\n%s", want, list)
		}
	}
	folders := map[string][2]string{ // folder: subject, flags it must have
		"Lists.Go":     {"go release", `\Seen`},
		"Entw&APw-rfe": {"draft reply", ""},
		"INBOX":        {"plain", ""},
	}
	for folder, want := range folders {
		imap.cmd(`SELECT "` + folder + `"`)
		fetch := strings.Join(imap.cmd("FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"), "\n")
		if strings.Count(fetch, "FETCH (") != 1 || !strings.Contains(fetch, "Subject: "+want[0]) {
			t.Errorf("%s: %s", folder, fetch)
		}
		if want[1] != "" && !(strings.Contains(fetch, `\Seen`) && strings.Contains(fetch, `\Flagged`)) {
			t.Errorf("%s: flags lost: %s", folder, fetch)
		}
	}
	imap.cmd("LOGOUT")
}

// imapClient speaks just enough IMAP for the test: tagged commands, the lines
// each answer has.
type imapClient struct {
	t   *testing.T
	c   net.Conn
	r   *bufio.Reader
	tag int
}

func (m *imapClient) cmd(line string) []string {
	m.t.Helper()
	m.tag++
	tag := "a" + strconv.Itoa(m.tag)
	m.c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(m.c, "%s %s\r\n", tag, line)
	var out []string
	for {
		l, err := m.r.ReadString('\n')
		if err != nil {
			m.t.Fatalf("IMAP %s: %v (after %q)", line, err, out)
		}
		l = strings.TrimRight(l, "\r\n")
		out = append(out, l)
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				m.t.Fatalf("IMAP %s: %s", line, strings.Join(out, "\n"))
			}
			return out
		}
	}
}

// startDovecot runs Dovecot on a free loopback port over the mailboxes under
// root (user bob, password secret) and returns a logged-out client. Dovecot
// will not give mail to uid 0: run as root, the test hands the mailboxes to
// "nobody".
func startDovecot(t *testing.T, bin, root string) *imapClient {
	t.Helper()
	uid, gid, internal, login := os.Getuid(), os.Getgid(), "", ""
	if me, err := user.Current(); err == nil {
		internal, login = me.Username, me.Username
	}
	if uid == 0 {
		nobody, err := user.Lookup("nobody")
		if err != nil {
			t.Skip("running as root without a nobody user for Dovecot's mail access")
		}
		uid, _ = strconv.Atoi(nobody.Uid)
		gid, _ = strconv.Atoi(nobody.Gid)
		internal, login = "dovecot", "dovenull"
		if _, err := user.Lookup("dovecot"); err != nil {
			internal = "nobody"
		}
		if _, err := user.Lookup("dovenull"); err != nil {
			login = "nobody"
		}
		giveTo(t, root, uid, gid)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	work := t.TempDir()
	conf := filepath.Join(work, "dovecot.conf")
	text := fmt.Sprintf(`protocols = imap
listen = 127.0.0.1
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = %[2]s
default_login_user = %[3]s
first_valid_uid = 1
passdb {
  driver = static
  args = password=secret
}
userdb {
  driver = static
  args = uid=%[4]d gid=%[5]d home=%[6]s/%%u
}
mail_location = maildir:%[6]s/%%u
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = %[7]d
  }
  inet_listener imaps {
    port = 0
  }
}
`, work, internal, login, uid, gid, root, port)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(work, "state"), 0o755)
	cmd := exec.Command(bin, "-F", "-c", conf)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dovecot: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			m := &imapClient{t: t, c: conn, r: bufio.NewReader(conn)}
			t.Cleanup(func() { conn.Close() })
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			if greeting, err := m.r.ReadString('\n'); err != nil || !strings.HasPrefix(greeting, "* OK") {
				t.Fatalf("dovecot greeting %q, %v", greeting, err)
			}
			return m
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(work, "dovecot.log"))
			t.Fatalf("dovecot did not listen on %d within 10 s: %v\n%s", port, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// giveTo hands a mailbox tree to uid:gid, and lets that user through the
// test's private directories above it.
func giveTo(t *testing.T, root string, uid, gid int) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Clean(os.TempDir())
	for dir := filepath.Dir(root); strings.HasPrefix(dir, tmp+string(filepath.Separator)); dir = filepath.Dir(dir) {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}
