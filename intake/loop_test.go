package intake

import (
	"fmt"
	"testing"
)

// TestReceivedBy: the "by" clause names the host, case-insensitively, and
// comments, quoted strings and the date never count as the clause.
func TestReceivedBy(t *testing.T) {
	tests := []struct {
		value string
		host  string
		want  bool
	}{
		{"from a ([192.0.2.1]) by mx.test (mtad) with ESMTP id 1; Mon, 1 Jan 2026", "mx.test", true},
		{"from a\tby MX.Test with SMTP", "mx.test", true},
		{"from a by mx.test. with SMTP", "mx.test", true},
		{"from a by mx.test with SMTP", "mx.test.", true},
		{"from a BY mx.test", "mx.test", true},
		{"from mx.test by relay.example", "mx.test", false},
		{"from a by mx.test.example with SMTP", "mx.test", false},
		{"from a (authenticated by mx.test) by relay.example", "mx.test", false},
		{"from a (nested (by mx.test)) by relay.example", "mx.test", false},
		{`from a (comment \) by mx.test) by relay.example`, "mx.test", false},
		{`from "x by mx.test" by relay.example`, "mx.test", false},
		{"from a with SMTP; by mx.test", "mx.test", false},
		{"from a by", "mx.test", false},
		{"by mx.test", "", false},
		{"(by mx.test) from a by mx.test", "mx.test", true},
	}
	for _, tt := range tests {
		if got := ReceivedBy(tt.value, tt.host); got != tt.want {
			t.Errorf("ReceivedBy(%q, %q) = %v, want %v", tt.value, tt.host, got, tt.want)
		}
	}
}

// TestCountTraceLocal: both loop counts of one header section.
func TestCountTraceLocal(t *testing.T) {
	tests := []struct {
		name           string
		msg            string
		local          string
		received, byUs int
	}{
		{"none", "Subject: x\r\n\r\nReceived: from a by mx.test\r\n", "mx.test", 0, 0},
		{"folded by line", "Received: from a\r\n\tby MX.TEST\r\n with SMTP; date\r\n\r\n", "mx.test", 1, 1},
		{"mixed", "Received: from a by mx.test\r\nReceived: from b by other.test\r\nreceived : from c by Mx.Test; d\r\n\r\n", "mx.test", 3, 2},
		{"no local name", "Received: from a by mx.test\r\n\r\n", "", 1, 0},
		{"comment only", "Received: from a (by mx.test) by relay.test\r\n\r\n", "mx.test", 1, 0},
		{"body not scanned", "X: y\r\n\r\nReceived: from a by mx.test\r\n", "mx.test", 0, 0},
	}
	for _, tt := range tests {
		h := countTrace([]byte(tt.msg), tt.local)
		if h.received != tt.received || h.local != tt.byUs {
			t.Errorf("%s: received %d local %d, want %d %d", tt.name, h.received, h.local, tt.received, tt.byUs)
		}
	}
}

func TestLoopReason(t *testing.T) {
	for _, tt := range []struct {
		received, local, maxAll, maxLocal int
		want                              string
	}{
		{5, 1, 0, 0, ""},
		{DefaultMaxReceivedLines + 1, 1, 0, 0, fmt.Sprintf("loop: %d Received: lines", DefaultMaxReceivedLines+1)},
		{DefaultMaxReceivedLines, 1, 0, 0, ""},
		{6, 1, 5, 0, "loop: 6 Received: lines"},
		{11, 11, 0, 0, "loop: 11 Received: lines by mx.test"},
		{60, 60, 0, 0, "loop: 60 Received: lines"}, // the total is checked first
		{4, 4, 0, 3, "loop: 4 Received: lines by mx.test"},
	} {
		if got := LoopReason(tt.received, tt.local, tt.maxAll, tt.maxLocal, "mx.test"); got != tt.want {
			t.Errorf("LoopReason(%d, %d, %d, %d) = %q, want %q", tt.received, tt.local, tt.maxAll, tt.maxLocal, got, tt.want)
		}
	}
}
