package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/control"
)

// TestProcessOpenSessions: mtactl process counts the SMTP sessions open on the
// listener, in text and JSON, and lists the job controller's pools and channels.
func TestProcessOpenSessions(t *testing.T) {
	data := dataDir(t)
	d, _ := startMTAD(t, data, "")
	addr := d.Addrs()[0].String()

	var conns []net.Conn
	for range 2 {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "220") {
			t.Fatalf("greeting %q, %v", line, err)
		}
		conns = append(conns, c)
	}
	tests := []struct {
		name string
		open int // sessions left open
	}{
		{"two open", 2},
		{"one closed", 1},
		{"none", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for len(conns) > tc.open {
				conns[0].Close()
				conns = conns[1:]
			}
			want := fmt.Sprintf("dispatcher: SMTP listening on %s, max 100 connections, open sessions %d\n", addr, tc.open)
			var out string
			// The server counts a session's end when it sees the close: poll, bounded.
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				out = mustMtactl(t, data, "process")
				if strings.Contains(out, want) || time.Now().After(deadline) {
					break
				}
			}
			if !strings.Contains(out, want) {
				t.Fatalf("want %q in:\n%s", want, out)
			}
			for _, s := range []string{"job controller:\n", "  POOL ", "  CHANNEL ", "\n  l "} {
				if !strings.Contains(out, s) {
					t.Errorf("want %q in:\n%s", s, out)
				}
			}
			var p control.Process
			if err := json.Unmarshal([]byte(mustMtactl(t, data, "process", "-json")), &p); err != nil {
				t.Fatal(err)
			}
			if p.Sessions != tc.open || len(p.ListenerSessions) != 1 || p.ListenerSessions[0] != tc.open {
				t.Errorf("json: sessions %d, by listener %v, want %d", p.Sessions, p.ListenerSessions, tc.open)
			}
		})
	}
}
