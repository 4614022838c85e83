package smtpserver

import (
	"net"
	"strings"
	"testing"
	"time"
)

// waitSessions polls until the listener at addr has want open sessions and the
// caps count as many connections as there are sessions: a session is counted once admitted, and its
// end is counted a little after the client saw 221 (Sessions before the socket
// closes, the caps' count after).
func waitSessions(t *testing.T, s *Server, addr string, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		all := s.Sessions()
		sum := 0
		for _, n := range all {
			sum += n
		}
		got := all[addr]
		if got == want && s.openConns() == sum {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("open sessions on %s: %d, want %d (all: %v)", addr, got, want, s.Sessions())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSetMaxConns: a reload's new cap applies to new connections; sessions over a
// lowered cap go on and finish.
func TestSetMaxConns(t *testing.T) {
	tests := []struct {
		name     string
		start    int // cap at New
		open     int // sessions opened before the change
		set      int // new cap
		admitted int // further connections that must get 220
	}{
		{name: "raised", start: 1, open: 1, set: 3, admitted: 2},
		{name: "lowered below open sessions", start: 3, open: 3, set: 1, admitted: 0},
		{name: "zero is the default", start: 1, open: 1, set: 0, admitted: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := startServer(t, func(_ *Policy, c *Config) { c.MaxConns = tc.start })
			var open []*rawClient
			for range tc.open {
				c := dialRaw(t, e.addr)
				c.expect("220")
				open = append(open, c)
			}
			waitSessions(t, e.srv, e.addr, tc.open)
			e.srv.SetMaxConns(tc.set)
			want := tc.set
			if want <= 0 {
				want = DefaultMaxConns
			}
			if got := e.srv.MaxConns(); got != want {
				t.Fatalf("MaxConns after SetMaxConns(%d) = %d, want %d", tc.set, got, want)
			}
			for range tc.admitted {
				c := dialRaw(t, e.addr)
				c.expect("220")
				open = append(open, c)
			}
			if tc.set > 0 {
				over := dialRaw(t, e.addr)
				over.expect("421 4.3.2 Too many connections")
			}
			// Sessions admitted under the old cap still work to the end.
			for _, c := range open[:tc.open] {
				c.cmd("EHLO client.test", "250")
				c.cmd("QUIT", "221")
			}
			waitSessions(t, e.srv, e.addr, tc.admitted)
			// Once enough of them have ended, the new cap admits again.
			if tc.admitted < want {
				c := dialRaw(t, e.addr)
				c.expect("220")
			}
		})
	}
}

// TestSessionsByListener: each listener's open sessions are counted apart, and a
// session leaves the count when it ends.
func TestSessionsByListener(t *testing.T) {
	e := startServer(t)
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.srv.Serve(t.Context(), l2)
	addr2 := l2.Addr().String()

	a1 := dialRaw(t, e.addr)
	a1.expect("220")
	a2 := dialRaw(t, e.addr)
	a2.expect("220")
	b1 := dialRaw(t, addr2)
	b1.expect("220")
	waitSessions(t, e.srv, e.addr, 2)
	waitSessions(t, e.srv, addr2, 1)

	a1.cmd("QUIT", "221")
	waitSessions(t, e.srv, e.addr, 1)
	b1.cmd("QUIT", "221")
	waitSessions(t, e.srv, addr2, 0)
	if _, ok := e.srv.Sessions()[addr2]; ok {
		t.Errorf("a listener with no session is listed: %v", e.srv.Sessions())
	}
	if got := e.srv.Sessions()[e.addr]; got != 1 {
		t.Errorf("first listener: %d sessions, want 1", got)
	}
	if !strings.Contains(a2.cmd("NOOP", "250"), "250") {
		t.Error("remaining session broken")
	}
}
