package interop

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The early-talker check exempts loopback clients (127.0.0.0/8 and ::1: local
// programs never talk first, and the benchmarks connect over loopback), so no
// client on this machine's loopback, 127.0.0.2 included, can be refused. The case
// that is refused needs a client at an address of its own that is not loopback,
// and the suite must not listen on a real interface. So mtad runs in a network
// namespace of the test's own, whose only interface is its own lo, given the
// documentation address 203.0.113.1 besides 127.0.0.1, and the test's clients
// connect from inside it. Nothing outside the namespace can reach it, and it
// disappears with the test.
const (
	nsAddr      = "203.0.113.1" // TEST-NET-3: a documentation address, never a real host
	bannerDelay = 2 * time.Second
)

// netns is a network namespace held by one OS thread of the test: what runs on
// that thread (a program it starts, a socket it makes) is in the namespace. A
// program started there stays in it, and a socket keeps its namespace whatever
// thread uses it later.
type netns struct {
	id   string // the namespace's /proc link ("net:[4026532281]")
	work chan func()
}

// newNetns makes the namespace, with lo up and nsAddr on it, or skips the test
// when it cannot (not root, no ip(8), or namespaces not allowed here).
func newNetns(t *testing.T) *netns {
	t.Helper()
	requireRoot(t, "a network namespace with an address of its own")
	ip := requireProgram(t, "ip", "iproute2")
	n := &netns{work: make(chan func())}
	made := make(chan error, 1)
	go func() {
		// Never unlocked: the thread leaves the test's namespace, so it must end
		// with this goroutine (the runtime then ends the thread, and makes new
		// threads from a clean one, never from this).
		runtime.LockOSThread()
		before, _ := os.Readlink("/proc/thread-self/ns/net")
		if err := syscall.Unshare(syscall.CLONE_NEWNET); err != nil {
			made <- err
			return
		}
		n.id, _ = os.Readlink("/proc/thread-self/ns/net")
		if n.id == "" || n.id == before {
			made <- fmt.Errorf("the thread is still in the namespace %q", before)
			return
		}
		made <- nil
		for f := range n.work {
			f()
		}
	}()
	if err := <-made; err != nil {
		t.Skipf("cannot make a network namespace here: %v", err)
	}
	t.Cleanup(func() { close(n.work) })
	for _, args := range [][]string{{"link", "set", "lo", "up"}, {"addr", "add", nsAddr + "/24", "dev", "lo"}} {
		var out []byte
		var err error
		n.do(func() { out, err = exec.Command(ip, args...).CombinedOutput() })
		if err != nil {
			t.Fatalf("ip %s in the namespace: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return n
}

// do runs f on the namespace's thread and waits for it.
func (n *netns) do(f func()) {
	done := make(chan struct{})
	n.work <- func() { defer close(done); f() }
	<-done
}

// dial connects to addr from the address from, inside the namespace.
func (n *netns) dial(t *testing.T, addr, from string) *bufio.ReadWriter {
	t.Helper()
	var c net.Conn
	var err error
	n.do(func() {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err = d.Dial("tcp", addr)
	})
	if err != nil {
		t.Fatalf("dial %s from %s in the namespace: %v", addr, from, err)
	}
	c.SetDeadline(time.Now().Add(deliverWithin))
	t.Cleanup(func() { c.Close() })
	return bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c))
}

// say writes a line at once and returns the next reply's last line ("" and the
// error when the connection ended first).
func say(rw *bufio.ReadWriter, line string) (string, error) {
	if line != "" {
		rw.WriteString(line + "\r\n")
		if err := rw.Flush(); err != nil {
			return "", err
		}
	}
	for {
		l, err := rw.ReadString('\n')
		if err != nil {
			return strings.TrimSpace(l), err
		}
		if len(l) < 4 || l[3] != '-' {
			return strings.TrimSpace(l), nil
		}
	}
}

// TestEarlyTalkerRefused: a client that sends EHLO before mtad's delayed banner
// gets 554 and is disconnected, and mail.log records it with its address; a
// client at the same address that waits is greeted after BANNER_DELAY and served;
// a loopback client that talks first is greeted at once (exempt).
func TestEarlyTalkerRefused(t *testing.T) {
	t.Parallel()
	ns := newNetns(t)
	m := startMtadWith(t, map[string]string{
		"imta.cnf":         "mtad.test       $U%$D@mtad.test\n\nl\nmtad.test\n\ntcp_local smtp nomx single_sys identnonenumeric\ntcp-daemon\n",
		"tcp_local_option": fmt.Sprintf("BANNER_DELAY=%ds\n", int(bannerDelay/time.Second)),
		"option.dat":       "LOG_CONNECTION=3\n",
	}, mtadOptions{listen: nsAddr + ":0", in: ns.do})
	if id, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", m.proc.cmd.Process.Pid)); id != ns.id {
		t.Fatalf("mtad runs in the namespace %q, want the test's %q", id, ns.id)
	}

	// Talks first: refused as soon as it speaks, then closed.
	early := ns.dial(t, m.addr, nsAddr)
	reply, err := say(early, "EHLO early.test")
	const want = "554 5.5.0 mtad.test Error: SMTP synchronization error: input before the greeting"
	if reply != want || err != nil {
		t.Errorf("early talker got %q (%v), want %q", reply, err, want)
	}
	if rest, err := io.ReadAll(early); err != nil || len(rest) != 0 {
		t.Errorf("after the 554: %q (%v), want the connection closed", rest, err)
	}

	// Waits for the banner: greeted after the delay, and served.
	began := time.Now()
	patient := ns.dial(t, m.addr, nsAddr)
	if banner, err := say(patient, ""); !strings.HasPrefix(banner, "220 ") || err != nil {
		t.Fatalf("patient client got %q (%v), want the banner", banner, err)
	}
	if took := time.Since(began); took < bannerDelay-100*time.Millisecond {
		t.Errorf("banner after %v, want BANNER_DELAY %v", took, bannerDelay)
	}
	if r, _ := say(patient, "EHLO patient.test"); !strings.HasPrefix(r, "250 ") {
		t.Errorf("patient client's EHLO got %q", r)
	}
	say(patient, "QUIT")

	// Loopback talks first and is greeted at once: the exemption.
	began = time.Now()
	local := ns.dial(t, m.addr, "127.0.0.2")
	if r, err := say(local, "EHLO loopback.test"); !strings.HasPrefix(r, "220 ") || err != nil {
		t.Errorf("loopback early talker got %q (%v), want the banner", r, err)
	}
	if r, _ := say(local, ""); !strings.HasPrefix(r, "250 ") {
		t.Errorf("loopback early talker's EHLO got %q", r)
	}
	if took := time.Since(began); took > bannerDelay/2 {
		t.Errorf("loopback client greeted after %v, want at once", took)
	}
	say(local, "QUIT")

	m.waitLog(t, "J record of the early talker", func(l string) bool {
		return containsAll(l, " tcp_local J 0 <> ", "(["+nsAddr+"]) "+want)
	})
	if !strings.Contains(m.proc.out.String(), "early talker refused") {
		t.Errorf("mtad's log has no \"early talker refused\" line:\n%s", m.proc.out)
	}
}
