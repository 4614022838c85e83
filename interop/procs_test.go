package interop

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// How long a peer may take to start, and to stop before it is killed. Both are far
// above what the programs need on an idle machine (Postfix about 2 s to create a
// fresh queue, Dovecot a tenth of that), so that a loaded machine does not fail
// the suite, and far below the test binary's own timeout.
const (
	startWithin = 20 * time.Second
	stopWithin  = 15 * time.Second
)

// requireProgram returns the path of a program the test needs, or skips the test
// with a one-line reason naming the Debian package to install.
func requireProgram(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not found in PATH (apt-get install -y %s)", name, pkg)
	}
	return path
}

// requireRoot skips a test whose peer can only be started by root: Postfix's
// master, and Dovecot delivering as another user than the one it runs as.
func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root: %s", why)
	}
}

// requireUser returns the uid and gid of a system user a peer runs as, or skips.
func requireUser(t *testing.T, name string) (uid, gid int) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Skipf("no system user %q (the peer's package creates it): %v", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		t.Skipf("system user %q has no numeric uid/gid (%s:%s)", name, u.Uid, u.Gid)
	}
	return uid, gid
}

// peerDir returns a fresh temporary directory that the peers' unprivileged
// processes (Postfix's daemons run as postfix, Dovecot's as dovecot and as the
// mail user) can traverse: t.TempDir's parent is private to the test's user.
func peerDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// writeFile writes a file, creating its directory.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// freePort returns a loopback TCP port that was free a moment ago, for a peer
// whose configuration must name its port before it starts. Another program could
// take it in between; the peer then fails to start and the test says so.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitListening waits until something accepts connections at addr ("tcp" or
// "unix"), or fails the test with the peer's log.
func waitListening(t *testing.T, network, addr string, logOf func() string) {
	t.Helper()
	deadline := time.Now().Add(startWithin)
	for {
		c, err := net.DialTimeout(network, addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens at %s after %v: %v\n%s", addr, startWithin, err, logOf())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// run runs a short command (a peer's control program, swaks, mtactl) with a time
// limit and returns its combined output.
func run(t *testing.T, within time.Duration, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(within):
		cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("%s did not finish in %v", name, within)
	}
}

// child is a long-running process the test started and must stop.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	out  *syncBuffer
}

// startChild starts a program in the foreground of the test, its output (what
// the command does not send elsewhere) collected for failure messages; t.Cleanup stops it
// with SIGTERM and, when that does not end it (and its own children) in time,
// kills them.
func startChild(t *testing.T, name string, cmd *exec.Cmd) *child {
	t.Helper()
	return startChildIn(t, name, cmd, nil)
}

// startChildIn is startChild with the start itself run by in (netns.do), when in
// is not nil.
func startChildIn(t *testing.T, name string, cmd *exec.Cmd, in func(func())) *child {
	t.Helper()
	c := &child{name: name, cmd: cmd, done: make(chan struct{}), out: &syncBuffer{}}
	if cmd.Stdout == nil {
		cmd.Stdout = c.out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = c.out
	}
	var err error
	if in != nil {
		in(func() { err = cmd.Start() })
	} else {
		err = cmd.Start()
	}
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		if err := stopProcessTree(c.cmd.Process.Pid, c.done); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	})
	return c
}

// exited tells whether the child has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stopProcessTree ends the process pid, which done reports the end of: SIGTERM,
// then after stopWithin SIGKILL for it and for the children it left behind. It
// signals process ids it knows only: the ones it started and their children.
func stopProcessTree(pid int, done <-chan struct{}) error {
	kids := childPIDs(pid)
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(stopWithin):
	}
	killAll(append(kids, childPIDs(pid)...), pid)
	<-done
	return fmt.Errorf("did not stop on SIGTERM in %v; killed", stopWithin)
}

// childPIDs lists the processes whose parent is pid, from /proc.
func childPIDs(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold blanks and parentheses, so the
		// fields are counted from the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 2 && f[1] == strconv.Itoa(pid) {
			kids = append(kids, p)
		}
	}
	return kids
}

// running tells whether a process exists and has not ended: a daemon's master
// that exited stays a zombie until init reaps it, and counts as gone.
func running(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// waitGone waits until the process pid has ended, at most within.
func waitGone(pid int, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for running(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// killAll sends SIGKILL to a process and to the processes listed (its children,
// collected before).
func killAll(kids []int, pid int) {
	syscall.Kill(pid, syscall.SIGKILL)
	for _, k := range kids {
		syscall.Kill(k, syscall.SIGKILL)
	}
}

// syncBuffer collects a process's output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tail returns the last n lines of a file, for failure messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return path + ":\n" + strings.Join(lines, "\n")
}
