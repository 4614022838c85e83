package smtpserver

import (
	"fmt"
	"strings"
	"testing"

	"mtad.dev/mta/intake"
)

// TestLocalReceivedLoopHeld: the DATA check. Our own trace line names the
// policy's host name, so it counts in MAX_LOCAL_RECEIVED_LINES as well.
func TestLocalReceivedLoopHeld(t *testing.T) {
	tests := []struct {
		name   string
		max    int // MaxLocalReceivedLines; 0: the default
		byUs   int // Received: fields naming mx.test in the message
		others int // Received: fields naming another host
		reason string
	}{
		{"at the limit", 3, 2, 5, ""},
		{"over the limit", 3, 3, 0, "loop: 4 Received: lines by mx.test"},
		{"default at the limit", 0, intake.DefaultMaxLocalReceivedLines - 1, 0, ""},
		{"default over the limit", 0, intake.DefaultMaxLocalReceivedLines, 0, fmt.Sprintf("loop: %d Received: lines by mx.test", intake.DefaultMaxLocalReceivedLines+1)},
		{"other hosts do not count", 1, 0, 20, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startServer(t, func(p *Policy, _ *Config) { p.Intake.MaxLocalReceivedLines = tt.max })
			c := dialRaw(t, e.addr)
			c.hello()
			c.cmd("MAIL FROM:<a@example.org>", "250")
			c.cmd("RCPT TO:<b@example.net>", "250")
			c.cmd("DATA", "354")
			c.send(strings.Repeat("Received: from x\r\n\tby MX.test (mtad); date\r\n", tt.byUs) +
				strings.Repeat("Received: from x by relay.test; date\r\n", tt.others) +
				"Subject: x\r\n\r\nbody\r\n.\r\n")
			c.expect("250")
			c.cmd("QUIT", "221")
			e.q.mu.Lock()
			n := len(e.q.envs)
			e.q.mu.Unlock()
			if n != 1 {
				t.Fatalf("%d messages queued, want 1", n)
			}
			env, _ := e.q.get(0)
			if env.HeldReason != tt.reason || env.Held != (tt.reason != "") {
				t.Errorf("held %v %q, want %q", env.Held, env.HeldReason, tt.reason)
			}
		})
	}
}
