package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"mtad.dev/mta/control"
	"mtad.dev/mta/internal/smtptest"
)

// asUser runs bin with args as uid/gid (its own groups only) with stdin, and
// returns its output and exit status.
func asUser(t *testing.T, uid, gid uint32, stdin, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}}
	// It claims to be root: the claim must count for nothing.
	cmd.Env = []string{"LOGNAME=root", "USER=root", "PATH=/usr/bin:/bin"}
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s as %d: %v", bin, uid, err)
	}
	return string(out), 0
}

// TestSendmailAsOrdinaryUser: a user who is neither root nor mtad's user runs a
// setgid-mtadrop mtactl as sendmail with mtad stopped: the message is spooled
// (exit 0), queued when mtad starts, and submitted as that user whatever the
// environment claims. With mtad running it goes through the maildrop at once.
// The user cannot write into or read the maildrop without mtactl, and an mtactl
// that is not setgid gets EX_UNAVAILABLE; every other command gives the group
// up.
func TestSendmailAsOrdinaryUser(t *testing.T) {
	if testing.Short() {
		t.Skip("builds mtactl and creates a user; skipped with -short")
	}
	acct := smtptest.NewAccount(t, control.MaildropGroup)
	name, uid, gid, dropGID := acct.Name, acct.UID, acct.GID, int(acct.GroupID)
	base, err := os.MkdirTemp("", "maildrop-user")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	setgid, plain := filepath.Join(base, "mtactl"), filepath.Join(base, "mtactl-plain")
	if out, err := exec.Command("go", "build", "-o", plain, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(plain)
	os.WriteFile(setgid, b, 0o755)
	if err := os.Chown(setgid, 0, dropGID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(setgid, 0o755|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	data, config := filepath.Join(base, "data"), unroutableConfig(t)
	_, stop := startMTAD(t, data, config) // creates DATA (0751) and the maildrop (1730, group mtadrop)
	stop()

	out, rc := asUser(t, uid, gid, "Subject: from cron\n\nnightly\n", setgid, "-data", data, "sendmail", "-v", "alice@localhost")
	if rc != 0 || !strings.Contains(out, "spooled as") {
		t.Fatalf("sendmail as %s with mtad stopped: exit %d\n%s", name, rc, out)
	}
	drop := filepath.Join(data, control.MaildropName)
	ents, _ := os.ReadDir(drop)
	if len(ents) != 1 {
		t.Fatalf("maildrop holds %d files, want 1", len(ents))
	}
	if fi, _ := os.Stat(filepath.Join(drop, ents[0].Name())); fi.Sys().(*syscall.Stat_t).Uid != uid {
		t.Errorf("spooled file not owned by the user")
	}
	for _, c := range []struct {
		what string
		args []string
	}{
		{"write into the maildrop directly", []string{"/bin/sh", "-c", "echo x > " + filepath.Join(drop, "forged")}},
		{"list the maildrop", []string{"/bin/ls", drop}},
		{"read the spooled file", []string{"/bin/cat", filepath.Join(drop, ents[0].Name())}},
	} {
		if out, rc := asUser(t, uid, gid, "", c.args[0], c.args[1:]...); rc == 0 {
			t.Errorf("the user could %s:\n%s", c.what, out)
		}
	}
	if out, rc := asUser(t, uid, gid, "x\n", plain, "-data", data, "sendmail", "bob@localhost"); rc != exUnavailable {
		t.Errorf("sendmail from an mtactl that is not setgid: exit %d, want %d\n%s", rc, exUnavailable, out)
	}
	// Every other command gives the group up: purge cannot read a directory
	// only the group may read.
	probe := filepath.Join(base, "probe")
	os.MkdirAll(filepath.Join(probe, "log"), 0o755)
	os.Chown(filepath.Join(probe, "log"), 0, dropGID)
	os.Chmod(filepath.Join(probe, "log"), 0o770)
	if out, rc := asUser(t, uid, gid, "", setgid, "-data", probe, "purge"); rc == 0 || !strings.Contains(out, "permission denied") {
		t.Errorf("purge kept the setgid group: exit %d\n%s", rc, out)
	}

	startMTAD(t, data, config)
	var msgs []string
	waitFor(t, "the spooled message delivered", func() bool { msgs = maildirFiles(t, data, "alice"); return len(msgs) == 1 })
	if want := "(from " + name + "@localhost)"; !strings.Contains(msgs[0], want) || strings.Contains(msgs[0], "from root@") {
		t.Errorf("submitter is not %s:\n%s", name, msgs[0])
	}
	waitFor(t, "the E line with the user as sender", func() bool { return strings.Contains(mailLog(data), " l l E 1 "+name+"@localhost ") })
	if out, rc := asUser(t, uid, gid, "Subject: live\n\nx\n", setgid, "-data", data, "sendmail", "carol@localhost"); rc != 0 {
		t.Fatalf("sendmail as %s with mtad running: exit %d\n%s", name, rc, out)
	}
	waitFor(t, "the message spooled while mtad runs delivered", func() bool { return len(maildirFiles(t, data, "carol")) == 1 })
	if ents, _ := os.ReadDir(drop); len(ents) != 0 {
		t.Errorf("maildrop not emptied: %v", ents)
	}
}
