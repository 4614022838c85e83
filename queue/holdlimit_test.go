package queue

import "testing"

func TestHoldLimitReason(t *testing.T) {
	limits := map[string]int{"tcp_local": 2, "l": 0}
	limit := func(ch string) int { return limits[ch] }
	rs := func(chs ...string) []Recipient {
		var out []Recipient
		for _, c := range chs {
			out = append(out, Recipient{Addr: "a@x", Channel: c})
		}
		return out
	}
	for _, tt := range []struct {
		name  string
		rcpts []Recipient
		want  string
	}{
		{"none", nil, ""},
		{"at the limit", rs("tcp_local", "tcp_local", "l", "l", "l"), ""},
		{"over", rs("l", "tcp_local", "tcp_local", "tcp_local"), "holdlimit: 3 recipients for channel tcp_local (holdlimit 2)"},
		{"no limit on the channel", rs("l", "l", "l", "other", "other", "other"), ""},
	} {
		if got := HoldLimitReason(tt.rcpts, limit); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}
