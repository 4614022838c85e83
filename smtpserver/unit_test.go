package smtpserver

import (
	"testing"

	"mtad.dev/mta/status"
)

func TestBareLineEnd(t *testing.T) {
	tests := []struct {
		in   string
		bare bool
	}{
		{"", false},
		{"a\r\nb\r\n", false},
		{"a\nb\r\n", true},
		{"a\rb\r\n", true},
		{"a\r\n\r", true},
		{"a\r\r\n", true},
		{"\n", true},
	}
	for _, tt := range tests {
		if got := bareLineEnd([]byte(tt.in)); got != tt.bare {
			t.Errorf("bareLineEnd(%q) = %v", tt.in, got)
		}
	}
}

func TestSMTPErr(t *testing.T) {
	e := smtpErr(status.New(550, "5.1.2", "line one\r\nline two"))
	if e.Code != 550 || e.EnhancedCode != [3]int{5, 1, 2} || e.Message != "line one  line two" {
		t.Errorf("%+v", e)
	}
	if e := smtpErr(status.New(451, "", "x")); e.EnhancedCode != [3]int{0, 0, 0} {
		t.Errorf("no enhanced code: %+v", e)
	}
	if st := reply(status.New(250, "2.0.0", "odd")); st.Code != 451 {
		t.Errorf("a 2xx refusal became %v", st)
	}
}

func TestAuthenticatedHook(t *testing.T) {
	tests := []struct {
		name     string
		channels map[string]ChannelPolicy
		want     string
	}{
		{"switch", map[string]ChannelPolicy{"tcp_local": {SASLSwitchChannel: "tcp_auth"}, "tcp_auth": {}}, "tcp_auth"},
		{"target unknown", map[string]ChannelPolicy{"tcp_local": {SASLSwitchChannel: "tcp_auth"}}, "tcp_local"},
		{"target noswitchchannel", map[string]ChannelPolicy{"tcp_local": {SASLSwitchChannel: "tcp_auth"}, "tcp_auth": {NoSwitchChannel: true}}, "tcp_auth"},
		{"source noswitchchannel", map[string]ChannelPolicy{"tcp_local": {SASLSwitchChannel: "tcp_auth", NoSwitchChannel: true}, "tcp_auth": {}}, "tcp_local"},
		{"none", map[string]ChannelPolicy{"tcp_local": {}}, "tcp_local"},
	}
	for _, tt := range tests {
		g := &conn{pol: &Policy{Channels: tt.channels}, src: "tcp_local"}
		s := &session{g: g}
		s.authenticated()
		if g.src != tt.want || !g.auth {
			t.Errorf("%s: src %q auth %v", tt.name, g.src, g.auth)
		}
		if !inFlags(false, false, g.auth).Has('A') {
			t.Errorf("%s: no $A input flag", tt.name)
		}
	}
}
