package intake

import (
	"testing"

	"mtad.dev/mta/queue"
)

func TestHoldLimitReason(t *testing.T) {
	rules := &Rules{Channels: map[string]Channel{"tcp_local": {HoldLimit: 2}, "l": {}}}
	rs := func(chs ...string) []queue.Recipient {
		var out []queue.Recipient
		for _, c := range chs {
			out = append(out, queue.Recipient{Addr: "a@x", Channel: c})
		}
		return out
	}
	for _, tt := range []struct {
		name  string
		rcpts []queue.Recipient
		want  string
	}{
		{"none", nil, ""},
		{"at the limit", rs("tcp_local", "tcp_local", "l", "l", "l"), ""},
		{"over", rs("l", "tcp_local", "tcp_local", "tcp_local"), "holdlimit: 3 recipients for channel tcp_local (holdlimit 2)"},
		{"no limit on the channel", rs("l", "l", "l", "other", "other", "other"), ""},
	} {
		if got := rules.holdLimitReason(tt.rcpts); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}
