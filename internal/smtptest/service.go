package smtptest

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// FreePort is a loopback TCP port nothing listens on (at the moment of the
// call): a destination that refuses connections, or a port to listen on.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// NotifyListener listens as a service manager does for the notifications of
// the daemon under test (systemd's sd_notify): name is a socket path, or
// "@name" in the abstract namespace. The socket may be written by any user.
// Each datagram arrives on the channel; it is closed with the test.
func NotifyListener(tb testing.TB, name string) <-chan string {
	tb.Helper()
	addr := name
	if strings.HasPrefix(addr, "@") {
		addr = "\x00" + addr[1:]
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		tb.Fatal(err)
	}
	if !strings.HasPrefix(name, "@") {
		os.Chmod(name, 0o666)
	}
	tb.Cleanup(func() { c.Close() })
	out := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			out <- string(buf[:n])
		}
	}()
	return out
}

// NextNotify waits (30 s at most) for the next notification that contains want,
// skipping the others, and returns it.
func NextNotify(tb testing.TB, ch <-chan string, want string) string {
	tb.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case m := <-ch:
			if strings.Contains(m, want) {
				return m
			}
		case <-deadline:
			tb.Fatalf("no notification with %q in 30 s", want)
			return ""
		}
	}
}
