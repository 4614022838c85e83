package smtpserver

import (
	"strings"
	"testing"
)

// step is one line a client sends and the prefix of the reply it must get; a step
// with an empty want reads nothing (a message body line before the final dot).
type step struct{ send, want string }

// txn is one whole transaction that must be accepted.
func txn(rcpts ...string) []step {
	out := []step{{"MAIL FROM:<a@example.org>", "250"}}
	for _, r := range rcpts {
		out = append(out, step{"RCPT TO:<" + r + ">", "250"})
	}
	return append(out, step{"DATA", "354"}, step{"Subject: t\r\n\r\nx\r\n.", "250 2.0.0 Ok: queued"})
}

func steps(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// body is a message of n lines after its header.
func body(n int) string {
	return "Subject: lines\r\n" + strings.Repeat("line\r\n", n) + "."
}

// TestChannelSessionLimits runs the channels' limits on a session and a message
// (transactionlimit, recipientcutoff, deferralrejectlimit, the disconnect*limit
// keywords, linelimit) and musttlsserver through whole SMTP dialogues.
func TestChannelSessionLimits(t *testing.T) {
	tests := []struct {
		name   string
		local  func(*ChannelPolicy) // tcp_local, the source channel
		pol    func(*Policy)
		script []step
		queued int
	}{
		{
			name:  "transactionlimit: MAIL beyond it is refused, connection kept",
			local: func(c *ChannelPolicy) { c.TransactionLimit = 2 },
			script: steps(txn("b@example.net"), txn("b@example.net"),
				[]step{{"MAIL FROM:<a@example.org>", "452 4.5.3 Too many transactions"}, {"NOOP", "250"}, {"RSET", "250"},
					{"MAIL FROM:<a@example.org>", "452 4.5.3"}, {"QUIT", "221"}}),
			queued: 2,
		},
		{
			name:  "transactionlimit: refused transactions count too",
			local: func(c *ChannelPolicy) { c.TransactionLimit = 1 },
			script: []step{{"MAIL FROM:<a@example.org>", "250"}, {"RCPT TO:<nouser@local.test>", "550"}, {"RSET", "250"},
				{"MAIL FROM:<a@example.org>", "452 4.5.3"}},
		},
		{
			name:   "recipientcutoff: at the cutoff the message is accepted",
			local:  func(c *ChannelPolicy) { c.RecipientCutoff = 2 },
			script: txn("b@example.net", "c@example.net"),
			queued: 1,
		},
		{
			name:  "recipientcutoff: one more presented, refused or not, refuses all at DATA",
			local: func(c *ChannelPolicy) { c.RecipientCutoff = 2 },
			script: steps([]step{{"MAIL FROM:<a@example.org>", "250"}, {"RCPT TO:<b@example.net>", "250"},
				{"RCPT TO:<nouser@local.test>", "550"}, {"RCPT TO:<c@example.net>", "250"},
				{"DATA", "354"}, {"Subject: t\r\n\r\nx\r\n.", "550 5.5.3 Too many recipients: 3 presented, at most 2"}},
				// not a protocol error: with a bad command limit of 1 the session goes on
				txn("b@example.net")),
			pol:    func(p *Policy) { p.MaxErrors = 1 },
			queued: 1,
		},
		{
			name:  "recipientcutoff and recipientlimit: refused RCPTs still count",
			local: func(c *ChannelPolicy) { c.RecipientCutoff = 2; c.RecipientLimit = 1 },
			script: []step{{"MAIL FROM:<a@example.org>", "250"}, {"RCPT TO:<b@example.net>", "250"},
				{"RCPT TO:<c@example.net>", "452 4.5.3 Too many recipients"}, {"RCPT TO:<d@example.net>", "452 4.5.3"},
				{"DATA", "354"}, {"Subject: t\r\n\r\nx\r\n.", "550 5.5.3"}},
		},
		{
			name:  "disconnecttransactionlimit: the MAIL that would exceed it",
			local: func(c *ChannelPolicy) { c.DisconnectTransactionLimit = 1 },
			script: steps(txn("b@example.net"), []step{{"RSET", "250"},
				{"MAIL FROM:<a@example.org>", "421 4.7.0 mx.test Error: too many transactions, closing connection"}, {"NOOP", "EOF"}}),
			queued: 1,
		},
		{
			name:  "disconnectrecipientlimit: checked at RSET",
			local: func(c *ChannelPolicy) { c.DisconnectRecipientLimit = 2 },
			script: []step{{"MAIL FROM:<a@example.org>", "250"}, {"RCPT TO:<b@example.net>", "250"},
				{"RCPT TO:<c@example.net>", "250"}, {"RCPT TO:<d@example.net>", "250"},
				{"RSET", "421 4.7.0 mx.test Error: too many recipients"}, {"NOOP", "EOF"}},
		},
		{
			name:   "disconnectrecipientlimit: at the limit the session goes on",
			local:  func(c *ChannelPolicy) { c.DisconnectRecipientLimit = 2 },
			script: steps(txn("b@example.net", "c@example.net"), []step{{"RSET", "250"}, {"QUIT", "221"}}),
			queued: 1,
		},
		{
			name:  "disconnectrejectlimit: checked at MAIL",
			local: func(c *ChannelPolicy) { c.DisconnectRejectLimit = 1 },
			script: []step{{"MAIL FROM:<a@example.org>", "250"}, {"RCPT TO:<nouser@local.test>", "550"},
				{"RCPT TO:<x@host.invalid>", "550"}, {"RCPT TO:<b@example.net>", "250"},
				{"MAIL FROM:<a@example.org>", "421 4.7.0 mx.test Error: too many rejected recipients"}, {"NOOP", "EOF"}},
		},
		{
			name:  "disconnectbadcommandlimit: the N-th bad command",
			local: func(c *ChannelPolicy) { c.DisconnectBadCommandLimit = 2 },
			script: []step{{"FOO", "500 5.5.2"}, {"NOOP", "250"},
				{"BAR", "500 5.5.2 Error: command not recognized\n421 4.7.0 mx.test Error: too many errors"}, {"NOOP", "EOF"}},
		},
		{
			name:   "disconnectbadcommandlimit overrides MaxErrors",
			local:  func(c *ChannelPolicy) { c.DisconnectBadCommandLimit = 3 },
			pol:    func(p *Policy) { p.MaxErrors = 1 },
			script: []step{{"FOO", "500"}, {"FOO", "500"}, {"NOOP", "250"}, {"FOO", "500 5.5.2 Error: command not recognized\n421"}},
		},
		{
			name:  "deferralrejectlimit: 4xx after N refusals",
			local: func(c *ChannelPolicy) { c.DeferralRejectLimit = 2 },
			script: []step{{"MAIL FROM:<a@example.org>", "250"}, {"RCPT TO:<b@example.net>", "250"},
				{"RCPT TO:<nouser@local.test>", "550"}, {"RCPT TO:<c@example.net>", "250"},
				{"RCPT TO:<nouser@local.test>", "550"}, {"RCPT TO:<d@example.net>", "452 4.5.3 Too many rejected recipients"},
				{"DATA", "354"}, {"Subject: t\r\n\r\nx\r\n.", "250"}},
			queued: 1,
		},
		{
			name: "linelimit of the destination channel",
			pol: func(p *Policy) {
				p.Channels["l"] = ChannelPolicy{Name: "l", LineLimit: 12}
			},
			script: []step{{"MAIL FROM:<a@example.org>", "250"}, {"RCPT TO:<ann@local.test>", "250"},
				{"DATA", "354"}, {body(5), "250"},
				{"MAIL FROM:<a@example.org>", "250"}, {"RCPT TO:<ann@local.test>", "250"}, {"RCPT TO:<b@example.net>", "250"},
				{"DATA", "354"}, {body(12), "552 5.3.4 Message exceeds maximum number of lines for channel l (12)"},
				// other destinations are not limited
				{"MAIL FROM:<a@example.org>", "250"}, {"RCPT TO:<b@example.net>", "250"},
				{"DATA", "354"}, {body(12), "250"}},
			queued: 2,
		},
		{
			name: "LINE_LIMIT for every message",
			pol:  func(p *Policy) { p.LineLimit = 12 },
			script: []step{{"MAIL FROM:<a@example.org>", "250"}, {"RCPT TO:<b@example.net>", "250"},
				{"DATA", "354"}, {body(12), "552 5.3.4 Message exceeds fixed maximum number of lines (12)"}},
		},
		{
			name:   "musttlsserver: no MAIL in clear text",
			local:  func(c *ChannelPolicy) { c.RequireTLS = true },
			script: []step{{"MAIL FROM:<a@example.org>", "530 5.7.0 Must issue a STARTTLS command first"}, {"QUIT", "221"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := startServer(t, func(p *Policy, _ *Config) {
				local := p.Channels["tcp_local"]
				if tc.local != nil {
					tc.local(&local)
				}
				p.Channels["tcp_local"] = local
				if tc.pol != nil {
					tc.pol(p)
				}
			})
			c := dialRaw(t, e.addr)
			c.hello()
			for _, s := range tc.script {
				c.send(s.send + "\r\n")
				if s.want == "" {
					continue
				}
				if got := c.reply(); !strings.HasPrefix(got, s.want) {
					// a 4xx/5xx followed by 421 arrives as two replies
					if more := strings.SplitN(s.want, "\n", 2); len(more) == 2 && strings.HasPrefix(got, more[0]) {
						if next := c.reply(); strings.HasPrefix(next, more[1]) {
							continue
						}
					}
					t.Fatalf("after %q: reply %q, want prefix %q", s.send, got, s.want)
				}
			}
			if n := e.q.count(); n != tc.queued {
				t.Errorf("queued %d messages, want %d", n, tc.queued)
			}
		})
	}
}

// TestTLSSwitchChannel: after STARTTLS the source channel becomes the
// tlsswitchchannel target, under saslswitchchannel's rules.
func TestTLSSwitchChannel(t *testing.T) {
	tests := []struct {
		name     string
		channels map[string]ChannelPolicy
		want     string // source channel of the queued message
	}{
		{"switch", map[string]ChannelPolicy{
			"tcp_local": {Name: "tcp_local", TLSSwitchChannel: "tcp_tls"}, "tcp_tls": {Name: "tcp_tls"}}, "tcp_tls"},
		{"target unknown", map[string]ChannelPolicy{
			"tcp_local": {Name: "tcp_local", TLSSwitchChannel: "tcp_tls"}}, "tcp_local"},
		{"source noswitchchannel", map[string]ChannelPolicy{
			"tcp_local": {Name: "tcp_local", TLSSwitchChannel: "tcp_tls", NoSwitchChannel: true}, "tcp_tls": {Name: "tcp_tls"}}, "tcp_local"},
		{"target's own limits apply", map[string]ChannelPolicy{
			"tcp_local": {Name: "tcp_local", TLSSwitchChannel: "tcp_tls", RequireTLS: true, RecipientLimit: 1},
			"tcp_tls":   {Name: "tcp_tls"}}, "tcp_tls"},
		{"none", map[string]ChannelPolicy{"tcp_local": {Name: "tcp_local"}}, "tcp_local"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := startServer(t, func(p *Policy, c *Config) {
				p.Channels = tc.channels
				c.TLS = testTLSConfig(t)
			})
			c := dialRaw(t, e.addr)
			c.hello()
			c.cmd("STARTTLS", "220")
			c.upgrade()
			c.cmd("EHLO client.test", "250")
			c.cmd("MAIL FROM:<a@example.org>", "250")
			c.cmd("RCPT TO:<b@example.net>", "250")
			c.cmd("RCPT TO:<c@example.net>", "250")
			c.cmd("DATA", "354")
			c.send("Subject: tls\r\n\r\nx\r\n.\r\n")
			c.expect("250 2.0.0 Ok: queued")
			c.cmd("QUIT", "221")
			env, _ := e.q.get(0)
			if env.Source != tc.want {
				t.Errorf("source channel %q, want %q", env.Source, tc.want)
			}
		})
	}
}

// TestAuthAfterTLSSwitch: AUTH's switch takes precedence over tlsswitchchannel;
// when the TLS channel has no saslswitchchannel, the one of the channel before
// STARTTLS applies.
func TestAuthAfterTLSSwitch(t *testing.T) {
	tests := []struct {
		name     string
		channels map[string]ChannelPolicy
		want     string
	}{
		{"TLS channel's own saslswitchchannel", map[string]ChannelPolicy{
			"tcp_local": {SASLSwitchChannel: "tcp_auth"}, "tcp_tls": {SASLSwitchChannel: "tcp_tlsauth"},
			"tcp_auth": {}, "tcp_tlsauth": {}}, "tcp_tlsauth"},
		{"inherited from the channel before STARTTLS", map[string]ChannelPolicy{
			"tcp_local": {SASLSwitchChannel: "tcp_auth"}, "tcp_tls": {}, "tcp_auth": {}}, "tcp_auth"},
		{"none anywhere", map[string]ChannelPolicy{"tcp_local": {}, "tcp_tls": {}}, "tcp_tls"},
		{"TLS channel noswitchchannel", map[string]ChannelPolicy{
			"tcp_local": {SASLSwitchChannel: "tcp_auth"}, "tcp_tls": {NoSwitchChannel: true}, "tcp_auth": {}}, "tcp_tls"},
		{"channel before STARTTLS noswitchchannel", map[string]ChannelPolicy{
			"tcp_local": {SASLSwitchChannel: "tcp_auth", NoSwitchChannel: true}, "tcp_tls": {}, "tcp_auth": {}}, "tcp_tls"},
	}
	for _, tt := range tests {
		g := &conn{pol: &Policy{Channels: tt.channels}, src: "tcp_tls", preTLS: "tcp_local"}
		s := &session{g: g}
		s.authenticated()
		if g.src != tt.want || !g.auth {
			t.Errorf("%s: src %q auth %v, want %q", tt.name, g.src, g.auth, tt.want)
		}
	}
}
