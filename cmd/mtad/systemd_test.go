package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mtad.dev/mta/control"
	"mtad.dev/mta/internal/smtptest"
)

const unitFile = "../../examples/systemd/mtad.service"

// readUnit returns the [Service] settings of the shipped unit, in order.
func readUnit(t *testing.T) [][2]string {
	t.Helper()
	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][2]string
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, _ := strings.Cut(line, "=")
			out = append(out, [2]string{k, v})
		}
	}
	return out
}

// unitSetting is the value of key in settings ("" when absent).
func unitSetting(settings [][2]string, key string) string {
	for _, kv := range settings {
		if kv[0] == key {
			return kv[1]
		}
	}
	return ""
}

// TestServiceManagerEnvironment: mtad takes the notification socket and the
// watchdog from the environment and removes them, so that the programs it runs
// do not inherit them; a watchdog meant for another process is ignored.
func TestServiceManagerEnvironment(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "@sd")
	t.Setenv("WATCHDOG_USEC", "60000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	sock, wd := serviceManager()
	if sock != "@sd" || wd != time.Minute {
		t.Errorf("serviceManager() = %q, %v", sock, wd)
	}
	for _, v := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		if _, ok := os.LookupEnv(v); ok {
			t.Errorf("%s left in the environment", v)
		}
	}
	t.Setenv("WATCHDOG_USEC", "1000")
	t.Setenv("WATCHDOG_PID", "1")
	if _, wd := serviceManager(); wd != 0 {
		t.Errorf("a watchdog for pid 1 was taken: %v", wd)
	}
}

// TestServiceUnitVerifies runs systemd-analyze verify on the shipped unit (its
// ExecStart pointed at an existing program): no error, no warning.
func TestServiceUnitVerifies(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed; the unit is only checked where systemd is")
	}
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	unit := filepath.Join(t.TempDir(), "mtad.service")
	os.WriteFile(unit, []byte(strings.ReplaceAll(string(b), "/usr/local/sbin/mtad", self)), 0o644)
	out, err := exec.Command("systemd-analyze", "verify", unit).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// emulated lists the [Service] settings of the unit that TestServiceUnitHardening
// reproduces (or that need no sandbox); a setting added to the unit must be
// added here with its emulation, so that the unit promises nothing untested.
var emulated = map[string]bool{
	"Type": true, "NotifyAccess": true, "WatchdogSec": true, "ExecStart": true, "ExecReload": true,
	"KillSignal": true, "TimeoutStopSec": true, "Restart": true, "LimitNOFILE": true,
	"User": true, "Group": true, "SupplementaryGroups": true, "AmbientCapabilities": true,
	"CapabilityBoundingSet": true, "NoNewPrivileges": true, "ProtectSystem": true, "ReadWritePaths": true,
	"ProtectHome": true, "PrivateTmp": true, "UMask": true,
}

// TestServiceUnitHardening runs the real mtad the way the shipped unit says,
// without systemd: an unprivileged user with CAP_NET_BIND_SERVICE alone and no
// new privileges (setpriv), the file system read-only but the data directory,
// /tmp private and the home directories hidden (a mount namespace), its umask,
// and the notification socket. mtad must listen on a privileged port, say
// READY=1, deliver a message, reload on SIGHUP and stop on SIGTERM.
func TestServiceUnitHardening(t *testing.T) {
	if testing.Short() {
		t.Skip("builds mtad and runs it in a sandbox; skipped with -short")
	}
	settings := readUnit(t)
	for _, kv := range settings {
		if !emulated[kv[0]] {
			t.Errorf("the unit sets %s, which this test does not reproduce", kv[0])
		}
	}
	for _, tool := range []string{"unshare", "setpriv", "findmnt"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s to reproduce the unit's sandbox", tool)
		}
	}
	if want := "CAP_NET_BIND_SERVICE"; unitSetting(settings, "AmbientCapabilities") != want || unitSetting(settings, "CapabilityBoundingSet") != want ||
		unitSetting(settings, "NoNewPrivileges") != "yes" || unitSetting(settings, "ProtectSystem") != "strict" ||
		unitSetting(settings, "PrivateTmp") != "yes" || unitSetting(settings, "ProtectHome") != "yes" ||
		unitSetting(settings, "SupplementaryGroups") != control.MaildropGroup {
		t.Fatalf("the unit's hardening is not the one this test reproduces: %v", settings)
	}
	acct := smtptest.NewAccount(t, control.MaildropGroup)
	base, err := os.MkdirTemp("/var/lib", "mtad-unit-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	bin, config, data := filepath.Join(base, "mtad"), filepath.Join(base, "config"), filepath.Join(base, "data")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	os.MkdirAll(config, 0o755)
	for _, f := range []string{"imta.cnf", "aliases", "dispatcher.cnf", "job_controller.cnf", "option.dat"} {
		if b, err := os.ReadFile(filepath.Join("../../examples/default", f)); err == nil {
			os.WriteFile(filepath.Join(config, f), b, 0o644)
		}
	}
	os.Mkdir(data, 0o751)
	os.Chown(data, int(acct.UID), int(acct.GID))
	notify := smtptest.NotifyListener(t, filepath.Join(data, "notify.sock"))
	port := privilegedPort(t)

	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
		sandboxScript(t, settings, acct, map[string]string{"/usr/local/sbin/mtad": bin, "/etc/mta": config, "/var/mta/data": data}, port))
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "NOTIFY_SOCKET=" + filepath.Join(data, "notify.sock"), "WATCHDOG_USEC=60000000"}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if m := smtptest.NextNotify(t, notify, "READY=1"); !strings.Contains(m, "STATUS=queue:") {
		t.Errorf("READY without STATUS: %q", m)
	}
	checkSandboxed(t, cmd.Process.Pid, acct.UID)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if !smtptest.SendOne(addr, smtptest.Transaction{Helo: "unit.test", From: "root@localhost", To: []string{"alice@localhost"},
		Content: "Subject: sandboxed\r\n\r\nhello\r\n"}) {
		t.Fatal("the sandboxed mtad did not accept a message")
	}
	waitForFile(t, filepath.Join(data, "mailboxes", "alice", "new"))
	if fi, err := os.Stat(filepath.Join(data, control.MaildropName)); err != nil || fi.Sys().(*syscall.Stat_t).Gid != acct.GroupID {
		t.Errorf("maildrop not given to group %s: %v", control.MaildropGroup, err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	smtptest.NextNotify(t, notify, "RELOADING=1")
	smtptest.NextNotify(t, notify, "READY=1")
	cmd.Process.Signal(syscall.SIGTERM)
	smtptest.NextNotify(t, notify, "STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Errorf("mtad under the unit's sandbox exited with %v", err)
	}
}

// sandboxScript is the shell that sets the unit's mount namespace up and then
// runs ExecStart (paths mapped, listening on port) as the unit's user.
func sandboxScript(t *testing.T, settings [][2]string, acct smtptest.Account, paths map[string]string, port int) string {
	t.Helper()
	mapPath := func(s string) string {
		for from, to := range paths {
			s = strings.ReplaceAll(s, from, to)
		}
		return s
	}
	rw := mapPath(unitSetting(settings, "ReadWritePaths"))
	umask := unitSetting(settings, "UMask")
	exe := mapPath(unitSetting(settings, "ExecStart")) + fmt.Sprintf(" -listen 127.0.0.1:%d -log-level error", port)
	return strings.Join([]string{
		"set -e",
		// ProtectSystem=strict: every mount read-only but the API file systems
		// (and FUSE mounts, which a dead server would make hang).
		`findmnt -rno TARGET,FSTYPE | while read -r m ty; do case "$m $ty" in /proc*|/sys*|/dev*|*\ fuse*) continue;; esac; mount -o remount,bind,ro "$m" 2>/dev/null || true; done`,
		// ReadWritePaths=
		"mount --bind " + rw + " " + rw, "mount -o remount,bind,rw " + rw,
		// PrivateTmp=yes
		"mount -t tmpfs -o mode=1777 tmpfs /tmp", "mount -t tmpfs -o mode=1777 tmpfs /var/tmp",
		// ProtectHome=yes
		"for d in /home /root /run/user; do [ -d $d ] && mount -t tmpfs -o ro,mode=0755 tmpfs $d; done; true",
		"umask " + umask,
		// User=, Group=, SupplementaryGroups=, the capabilities, NoNewPrivileges=yes
		fmt.Sprintf("exec setpriv --reuid=%d --regid=%d --groups=%d --inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service --bounding-set=-all,+net_bind_service --no-new-privs -- %s",
			acct.UID, acct.GID, acct.GroupID, exe),
	}, "\n")
}

// checkSandboxed reads /proc for the running mtad: its user, its only
// capability, no new privileges, and a read-only root.
func checkSandboxed(t *testing.T, pid int, uid uint32) {
	t.Helper()
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, want := range []string{fmt.Sprintf("Uid:\t%d\t%d", uid, uid), "CapEff:\t0000000000000400", "CapBnd:\t0000000000000400", "NoNewPrivs:\t1"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("mtad's /proc status lacks %q:\n%s", want, status)
		}
	}
	mounts, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	for line := range strings.Lines(string(mounts)) {
		if f := strings.Fields(line); len(f) > 5 && f[4] == "/" && !strings.HasPrefix(f[5], "ro") {
			t.Errorf("mtad's root is not read-only: %s", line)
		}
	}
}

// privilegedPort is a free loopback port below 1024 (25 when free).
func privilegedPort(t *testing.T) int {
	t.Helper()
	for _, p := range []int{25, 587, 465, 1023, 1022, 1021} {
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			l.Close()
			return p
		}
	}
	t.Skip("no free privileged port on 127.0.0.1")
	return 0
}

func waitForFile(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if ents, _ := os.ReadDir(dir); len(ents) > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing in %s after 15 s", dir)
}

// TestLogrotateFile checks the shipped logrotate file with logrotate -d (a dry
// run) where logrotate is installed, its paths and user pointed at the test's.
func TestLogrotateFile(t *testing.T) {
	if _, err := exec.LookPath("logrotate"); err != nil {
		t.Skip("logrotate is not installed")
	}
	b, err := os.ReadFile("../../examples/systemd/mtad.logrotate")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "mail.log"), []byte("x\n"), 0o640)
	conf := strings.ReplaceAll(string(b), "/var/mta/data", dir)
	conf = strings.ReplaceAll(conf, "su mta mta", "su root root")
	path := filepath.Join(dir, "mtad.conf")
	os.WriteFile(path, []byte(conf), 0o644)
	out, err := exec.Command("logrotate", "-d", "-s", filepath.Join(dir, "state"), path).CombinedOutput()
	if err != nil || strings.Contains(string(out), "error") {
		t.Errorf("logrotate -d: %v\n%s", err, out)
	}
}
