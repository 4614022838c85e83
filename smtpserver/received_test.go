package smtpserver

import (
	"strings"
	"testing"
)

// TestReceivedWithProtocol: the "with" word of our Received: field names what the
// session used (RFC 3848): SMTP after HELO, ESMTP after EHLO, ESMTPS inside TLS,
// ESMTPA after AUTH without TLS (the loopback exception), ESMTPSA after AUTH
// inside TLS.
func TestReceivedWithProtocol(t *testing.T) {
	tests := []struct {
		name      string
		helo      string
		tls, auth bool
		want      string
	}{
		{"HELO", "HELO", false, false, "SMTP"},
		{"EHLO", "EHLO", false, false, "ESMTP"},
		{"EHLO and TLS", "EHLO", true, false, "ESMTPS"},
		{"EHLO and AUTH", "EHLO", false, true, "ESMTPA"},
		{"EHLO, TLS and AUTH", "EHLO", true, true, "ESMTPSA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startServer(t, func(p *Policy, c *Config) {
				c.TLS = testTLSConfig(t)
				c.Auth = fakeAuth{"alice": "pw"}
				p.Channels["tcp_local"] = ChannelPolicy{Name: "tcp_local", SASL: SASLMay, AllowPlainAuthLoopback: true}
			})
			c := dialRaw(t, e.addr)
			c.expect("220")
			if tt.tls {
				c.cmd("EHLO client.test", "250")
				c.cmd("STARTTLS", "220")
				c.upgrade()
			}
			c.cmd(tt.helo+" client.test", "250")
			if tt.auth {
				c.cmd("AUTH PLAIN "+plainIR("alice", "pw"), "235")
			}
			sendOne(c, "a@example.org", "bob@local.test")
			c.cmd("QUIT", "221")
			_, content := e.q.get(0)
			if want := " with " + tt.want + " id "; !strings.Contains(string(content), want) {
				t.Errorf("Received: lacks %q:\n%s", want, content)
			}
		})
	}
}
