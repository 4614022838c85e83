package daemon

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/control"
	"mtad.dev/mta/internal/smtptest"
)

// capDispatcher is dispatcher.cnf for one SMTP port with a connection cap of
// MAX_PROCS x MAX_CONNS = conns.
func capDispatcher(port, conns int) string {
	return fmt.Sprintf("[SERVICE=SMTP]\nPORT=%d\nINTERFACE_ADDRESS=127.0.0.1\nMAX_PROCS=1\nMAX_CONNS=%d\n", port, conns)
}

// dialBanner connects and returns the client and the greeting (220, or 421 when
// the connection is over the cap).
func dialBanner(t *testing.T, addr string) (*smtptest.Client, string) {
	return smtptest.DialBanner(t, addr)
}

// TestReloadConnectionCapAndProcess: mtactl process shows the open sessions of
// each listener and the jobs per channel and pool; a reload applies a new SMTP
// connection cap to new connections, and sessions over a lowered cap finish.
func TestReloadConnectionCapAndProcess(t *testing.T) {
	a, b := newSink(t), newSink(t)
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg := t.TempDir()
	build := func(conns int) {
		img := buildImage(t, routeConfig("tcp_a", a.port, b.port, map[string]string{"dispatcher.cnf": capDispatcher(port, conns)}))
		installImage(t, cfg, img)
	}
	build(2)
	d, _ := startWith(t, Options{ConfigDir: cfg, ReloadDebounce: time.Hour})

	sessions := func() (int, []int) {
		p := d.process()
		return p.Sessions, p.ListenerSessions
	}
	waitSessions := func(want int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d open sessions", want), func() bool {
			n, per := sessions()
			return n == want && slices.Equal(per, []int{want})
		})
	}

	var open []*smtptest.Client
	steps := []struct {
		name      string
		cap       int // 0: no reload at this step
		dial      int // new connections that must get 220
		thenFull  bool
		endOldest int // sessions to end (QUIT) before the next step
	}{
		{name: "cap at start", dial: 2, thenFull: true},
		{name: "raised by reload", cap: 4, dial: 2, thenFull: true},
		{name: "lowered under the open sessions", cap: 1, dial: 0, thenFull: true, endOldest: 4},
		{name: "back under the lowered cap", dial: 1, thenFull: true},
	}
	for _, st := range steps {
		if st.cap > 0 {
			build(st.cap)
			if err := d.Reload(); err != nil {
				t.Fatalf("%s: reload: %v", st.name, err)
			}
			if p := d.process(); p.MaxConns != st.cap {
				t.Fatalf("%s: process shows max %d connections, want %d", st.name, p.MaxConns, st.cap)
			}
		}
		for i := range st.dial {
			c, banner := dialBanner(t, addr)
			if !strings.HasPrefix(banner, "220") {
				t.Fatalf("%s: connection %d: %q, want 220", st.name, i+1, banner)
			}
			open = append(open, c)
		}
		waitSessions(len(open))
		if st.thenFull {
			_, banner := dialBanner(t, addr)
			if !strings.HasPrefix(banner, "421 4.3.2") {
				t.Fatalf("%s: connection over the cap: %q, want 421", st.name, banner)
			}
		}
		// Every open session still works, those over a lowered cap included.
		for _, c := range open {
			c.Cmd("NOOP", "250")
		}
		for range st.endOldest {
			open[0].Cmd("QUIT", "221")
			open = open[1:]
		}
		waitSessions(len(open))
	}

	p := d.process()
	if len(p.Listeners) != 1 || p.Listeners[0] != addr {
		t.Errorf("listeners %v, want [%s]", p.Listeners, addr)
	}
	if !slices.ContainsFunc(p.Pools, func(pl control.PoolProcess) bool { return pl.Name == "DEFAULT" && pl.Limit == 4 }) {
		t.Errorf("pools %+v: want DEFAULT with limit 4", p.Pools)
	}
	if !slices.ContainsFunc(p.Channels, func(c control.JobChannel) bool { return c.Name == "tcp_a" && c.MaxJobs == 3 }) {
		t.Errorf("channels %+v: want tcp_a with maxjobs 3", p.Channels)
	}
}
