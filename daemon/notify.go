package daemon

// The service manager's readiness protocol (systemd's sd_notify): a datagram of
// "KEY=value" lines sent to the Unix socket $NOTIFY_SOCKET names (a name
// starting with "@" is in the abstract namespace). mtad says READY=1 once the
// queue is recovered and the listeners are open, RELOADING=1 then READY=1
// around a reload, STOPPING=1 when it begins to stop, and a STATUS= line with
// the queue's size every few seconds; with a watchdog (WATCHDOG_USEC) it also
// sends WATCHDOG=1 at half the interval, from the goroutine that reads the job
// controller's totals, so that a daemon whose controller is wedged stops
// pinging. Without NOTIFY_SOCKET nothing is sent. Sending never blocks mail: a
// datagram that cannot be sent is logged once and dropped.

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// notifyStatusEvery is how often the STATUS line is refreshed.
const notifyStatusEvery = 5 * time.Second

// notifier sends state changes to the service manager; a nil *notifier sends
// nothing.
type notifier struct {
	addr *net.UnixAddr
	mu   sync.Mutex // one datagram at a time; warned
	conn *net.UnixConn
	warn bool // a failure was logged already
}

// newNotifier returns the notifier of socket ("" : nil, nothing is sent).
func newNotifier(socket string) *notifier {
	if socket == "" {
		return nil
	}
	name := socket
	if strings.HasPrefix(name, "@") {
		name = "\x00" + name[1:] // the abstract namespace
	}
	return &notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}
}

// send sends one datagram of lines; errors are returned for the caller to log.
func (n *notifier) send(lines ...string) error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		c, err := net.DialUnix("unixgram", nil, n.addr)
		if err != nil {
			return fmt.Errorf("notify socket: %w", err)
		}
		n.conn = c
	}
	n.conn.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := n.conn.Write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
		n.conn.Close()
		n.conn = nil
		return fmt.Errorf("notify socket: %w", err)
	}
	return nil
}

func (n *notifier) close() {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn != nil {
		n.conn.Close()
		n.conn = nil
	}
}

// notify sends lines to the service manager and logs the first failure.
func (d *Daemon) notify(lines ...string) {
	if err := d.sd.send(lines...); err != nil {
		d.sd.mu.Lock()
		first := !d.sd.warn
		d.sd.warn = true
		d.sd.mu.Unlock()
		if first {
			d.log.Warn("cannot tell the service manager", "err", err)
		}
	}
}

// notifyReloading is sent when a reload begins. MONOTONIC_USEC lets systemd
// (Type=notify-reload) tell this reload from an earlier one.
func (d *Daemon) notifyReloading() {
	d.notify("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(monotonicMicros(), 10), "STATUS=reloading the configuration")
}

// statusLine describes the queue for the service manager's STATUS=.
func (d *Daemon) statusLine() string {
	t := d.jc.Totals()
	q, h := t.Total.Queued, t.Total.Held
	s := fmt.Sprintf("STATUS=queue: %d messages, %d recipients", q.Messages+h.Messages, q.Recipients+h.Recipients)
	if h.Messages > 0 {
		s += fmt.Sprintf(" (%d held)", h.Messages)
	}
	if !t.Complete {
		s += "; reading the queue"
	}
	return s
}

// notifyLoop refreshes STATUS= and pings the watchdog until ctx ends.
func (d *Daemon) notifyLoop(ctx context.Context, watchdog time.Duration) {
	every := notifyStatusEvery
	if watchdog > 0 && watchdog/2 < every {
		every = watchdog / 2
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			lines := []string{d.statusLine()}
			if watchdog > 0 {
				lines = append(lines, "WATCHDOG=1")
			}
			d.notify(lines...)
		}
	}
}

// monotonicMicros is CLOCK_MONOTONIC in microseconds, the clock systemd
// compares MONOTONIC_USEC with (Go's monotonic clock is not exposed as such).
func monotonicMicros() int64 {
	var ts syscall.Timespec
	const clockMonotonic = 1
	syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Sec*1_000_000 + ts.Nsec/1000
}
