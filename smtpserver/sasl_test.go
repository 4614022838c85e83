package smtpserver

import (
	"encoding/base64"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"mtad.dev/mta/auth"
	"mtad.dev/mta/engine"
	"mtad.dev/mta/intake"
)

var _ Authenticator = (*auth.Store)(nil)

// fakeAuth is a password table without bcrypt, so that the exchange tests are fast.
type fakeAuth map[string]string

func (f fakeAuth) Verify(user, pass string) bool {
	p, ok := f[user]
	return ok && p == pass
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func plainIR(user, pass string) string { return b64("\x00" + user + "\x00" + pass) }

// authMappings: tcp_local may not relay (ORIG_SEND_ACCESS) unless the session used
// SASL ($:A, for a channel without saslswitchchannel); FROM_ACCESS refuses the
// authenticated user "mallory" through the auth-from field.
const authMappings = `ORIG_SEND_ACCESS
  tcp_local|*|tcp_local|*      $:A$Y
  tcp_local|*|tcp_local|*      $NRelaying$ denied

FROM_ACCESS
  *|MAIL|*|*|mallory           $NUser$ blocked
`

// authPolicy is a real engine and mapping configuration with a tcp_auth channel:
//
//	tcp_local maysaslserver saslswitchchannel tcp_auth   (when switching)
//	tcp_auth  mustsaslserver noswitchchannel
func authPolicy(t *testing.T, switching bool) *Policy {
	t.Helper()
	m := compileMappings(t, authMappings)
	ch := func(name, official string) engine.Channel {
		return engine.Channel{Name: name, Official: official, Src: "imta.cnf:100", Rules: true}
	}
	rs, errs := engine.Compile(engine.Config{
		Rules:    compileRules(t, realRules),
		Channels: []engine.Channel{ch("tcp_local", "tcp_local-daemon"), ch("tcp_auth", "tcp_auth-daemon"), ch("tcp_intranet", "tcp_intranet-daemon")},
		Mappings: m,
	})
	if len(errs) > 0 {
		t.Fatalf("engine.Compile: %v", errs)
	}
	local := ChannelPolicy{Name: "tcp_local", SASL: SASLMay}
	if switching {
		local.SASLSwitchChannel = "tcp_auth"
	}
	return &Policy{
		Intake: &intake.Rules{Resolver: rs, Access: intake.Tables(m, nil), Hostname: "mx.example.net"},
		Channels: map[string]ChannelPolicy{
			"tcp_local": local,
			"tcp_auth":  {Name: "tcp_auth", SASL: SASLMust, NoSwitchChannel: true},
		},
		DefaultSource: "tcp_local",
	}
}

// TestAuthRelay: the whole path with the real engine, a real password store and
// STARTTLS: no AUTH in clear text, relaying refused before AUTH, AUTH PLAIN, the
// switch to tcp_auth, relaying allowed, mail.log U and ...A records.
func TestAuthRelay(t *testing.T) {
	// bcrypt's lowest cost (the store loads weak hashes from a file), so that the
	// test stays fast under -race; the store's Set would refuse it.
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	store, err := auth.Parse(strings.NewReader("alice:"+string(hash)+"\n"), "passwd")
	if err != nil {
		t.Fatal(err)
	}
	pol := authPolicy(t, true)
	e := startServer(t, func(p *Policy, c *Config) {
		*p = *pol
		c.TLS = testTLSConfig(t)
		c.Auth = store
	})
	c := dialRaw(t, e.addr)
	c.expect("220")
	if ehlo := c.cmd("EHLO client.test", "250"); strings.Contains(ehlo, "AUTH") {
		t.Errorf("AUTH offered before TLS:\n%s", ehlo)
	}
	c.cmd("AUTH PLAIN "+plainIR("alice", "s3cret pass"), "538 5.7.11 Encryption required")
	c.cmd("STARTTLS", "220")
	c.upgrade()
	if ehlo := c.cmd("EHLO client.test", "250"); !strings.Contains(ehlo, "\n250-AUTH PLAIN LOGIN\n") {
		t.Errorf("AUTH not offered inside TLS:\n%s", ehlo)
	}
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<bob@x.org>", "550 5.7.1 Relaying denied bob@x.org")
	c.cmd("AUTH PLAIN "+plainIR("alice", "s3cret pass"), "503 5.5.1") // inside a transaction
	c.cmd("RSET", "250")
	c.cmd("AUTH PLAIN "+plainIR("alice", "wrong"), "535 5.7.8")
	c.cmd("AUTH PLAIN "+plainIR("alice", "s3cret pass"), "235 2.7.0 Authentication successful")
	c.cmd("AUTH PLAIN "+plainIR("alice", "s3cret pass"), "503 5.5.1 Error: already authenticated")
	if ehlo := c.cmd("EHLO client.test", "250"); strings.Contains(ehlo, "AUTH") {
		t.Errorf("AUTH offered after AUTH:\n%s", ehlo)
	}
	c.cmd("MAIL FROM:<a@example.org> AUTH=alice@example.org", "250")
	c.cmd("RCPT TO:<bob@x.org>", "250")
	c.cmd("DATA", "354")
	c.send("Subject: relayed\r\n\r\nx\r\n.\r\n")
	c.expect("250 2.0.0 Ok: queued")
	c.cmd("QUIT", "221")
	env, _ := e.q.get(0)
	if env.Source != "tcp_auth" || len(env.Rcpts) != 1 || env.Rcpts[0].Channel != "tcp_local" {
		t.Errorf("envelope %+v", env)
	}
	log := e.mailLog(t)
	for _, want := range []string{
		" tcp_local UES 0 alice - - - - AUTH PLAIN (TCP|127.0.0.1|",
		") 535 5.7.8 Error: authentication failed\n",
		") 235 2.7.0 Authentication successful\n",
		" tcp_auth tcp_local EESA 1 a@example.org rfc822;bob@x.org bob@x.org ",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("mail.log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "s3cret") || strings.Contains(log, "wrong") || strings.Contains(log, plainIR("alice", "wrong")) {
		t.Errorf("a password reached mail.log:\n%s", log)
	}
}

// TestAuthExchange covers the replies of the AUTH exchange over TLS with a fake
// password table.
func TestAuthExchange(t *testing.T) {
	users := fakeAuth{"alice": "pw", "mallory": "pw"}
	type step struct{ send, want string }
	tests := []struct {
		name    string
		opt     func(*Policy, *Config)
		noTLS   bool // do not STARTTLS before the steps
		steps   []step
		closed  bool // the connection must be closed after the steps
		queued  string
		logWant string
	}{
		{name: "PLAIN without initial response", steps: []step{
			{"AUTH PLAIN", "334 "},
			{plainIR("alice", "pw"), "235 2.7.0"},
		}},
		{name: "LOGIN", steps: []step{
			{"AUTH LOGIN", "334 " + b64("Username:")},
			{b64("alice"), "334 " + b64("Password:")},
			{b64("pw"), "235 2.7.0"},
		}},
		{name: "LOGIN with initial response, bad password", steps: []step{
			{"AUTH LOGIN " + b64("alice"), "334 " + b64("Password:")},
			{b64("nope"), "535 5.7.8"},
		}},
		{name: "bad password three times", steps: []step{
			{"AUTH PLAIN " + plainIR("alice", "x"), "535 5.7.8"},
			{"AUTH PLAIN " + plainIR("nobody", "pw"), "535 5.7.8"},
			{"AUTH PLAIN " + plainIR("alice", "y"), "421 4.7.0 mx.example.net Error: too many failed authentications"},
		}, closed: true},
		{name: "disconnectbadauthlimit 1", opt: func(p *Policy, _ *Config) {
			cp := p.Channels["tcp_local"]
			cp.DisconnectBadAuthLimit = 1
			p.Channels["tcp_local"] = cp
		}, steps: []step{
			{"AUTH PLAIN " + plainIR("alice", "x"), "421 4.7.0"},
		}, closed: true},
		{name: "per-address limiter", opt: func(_ *Policy, c *Config) {
			c.AuthLimiter = auth.NewLimiter(auth.LimiterConfig{MaxFailures: 1})
			c.AuthLimiter.Fail(netip.MustParseAddr("127.0.0.1"))
		}, steps: []step{
			// right password, but the address is over its limit: not even checked
			{"AUTH PLAIN " + plainIR("alice", "pw"), "454 4.7.0 Temporary authentication failure"},
			{"MAIL FROM:<a@example.org>", "250"},
			{"RCPT TO:<bob@x.org>", "550 5.7.1 Relaying denied"},
		}, logWant: " tcp_local UES 0 - - - - - AUTH PLAIN "},
		{name: "limiter forgets after success", opt: func(_ *Policy, c *Config) {
			c.AuthLimiter = auth.NewLimiter(auth.LimiterConfig{MaxFailures: 2})
		}, steps: []step{
			{"AUTH PLAIN " + plainIR("alice", "x"), "535"},
			{"AUTH PLAIN " + plainIR("alice", "pw"), "235"},
		}},
		{name: "cancelled", steps: []step{
			{"AUTH LOGIN", "334 "},
			{"*", "501 5.7.0 Authentication cancelled"},
			{"AUTH PLAIN " + plainIR("alice", "pw"), "235"},
		}},
		{name: "bad base64 and unknown mechanism", steps: []step{
			{"AUTH PLAIN !!!", "501 5.5.2"},
			{"AUTH PLAIN", "334"},
			{"%%%", "501 5.5.2"},
			{"AUTH CRAM-MD5", "504 5.5.4"},
			{"AUTH", "501 5.5.4"},
		}},
		{name: "PLAIN authorization identity of another user", steps: []step{
			{"AUTH PLAIN " + b64("bob\x00alice\x00pw"), "535 5.7.8"},
			{"AUTH PLAIN " + b64("alice\x00alice\x00pw"), "235"},
		}},
		{name: "relaying with $A and no switch; FROM_ACCESS auth-from", opt: func(p *Policy, _ *Config) {
			p.Channels["tcp_local"] = ChannelPolicy{Name: "tcp_local", SASL: SASLMay}
		}, steps: []step{
			{"AUTH PLAIN " + plainIR("mallory", "pw"), "235"},
			{"MAIL FROM:<m@example.org>", "550 5.7.1 User blocked m@example.org"},
		}},
		{name: "relaying with $A and no switch", opt: func(p *Policy, _ *Config) {
			p.Channels["tcp_local"] = ChannelPolicy{Name: "tcp_local", SASL: SASLMay}
		}, steps: []step{
			{"AUTH PLAIN " + plainIR("alice", "pw"), "235"},
			{"MAIL FROM:<a@example.org>", "250"},
			{"RCPT TO:<bob@x.org>", "250"},
		}, queued: "tcp_local", logWant: " tcp_local tcp_local EESA "},
		{name: "mustsaslserver", opt: func(p *Policy, _ *Config) {
			p.Channels["tcp_local"] = ChannelPolicy{Name: "tcp_local", SASL: SASLMust}
		}, steps: []step{
			{"MAIL FROM:<a@example.org>", "530 5.7.0 Authentication required"},
			{"AUTH PLAIN " + plainIR("alice", "pw"), "235"},
			{"MAIL FROM:<a@example.org>", "250"},
		}},
		{name: "channel without SASL", opt: func(p *Policy, _ *Config) {
			p.Channels["tcp_local"] = ChannelPolicy{Name: "tcp_local"}
		}, steps: []step{
			{"AUTH PLAIN " + plainIR("alice", "pw"), "503 5.5.1 Error: authentication not enabled"},
		}},
		{name: "no password store", opt: func(_ *Policy, c *Config) { c.Auth = nil }, steps: []step{
			{"AUTH PLAIN " + plainIR("alice", "pw"), "503 5.5.1 Error: authentication not enabled"},
		}},
		{name: "nothing pipelined after AUTH", steps: []step{
			// the credentials, sent blind, are dropped with the refusal
			{"AUTH LOGIN\r\n" + b64("alice") + "\r\n" + b64("pw"), "503 5.5.1 Error: AUTH must be the last command"},
			{"NOOP", "250"},
			{"AUTH PLAIN " + plainIR("alice", "pw") + "\r\nNOOP", "235"},
			{"", "250"}, // NOOP pipelined after an initial response is allowed
		}},
		{name: "HELO session", steps: []step{
			{"HELO client.test", "250"},
			{"AUTH PLAIN " + plainIR("alice", "pw"), "503 5.5.1 Error: send EHLO first"},
		}},
		{name: "loopback plaintext allowed", noTLS: true, opt: func(p *Policy, _ *Config) {
			cp := p.Channels["tcp_local"]
			cp.AllowPlainAuthLoopback = true
			p.Channels["tcp_local"] = cp
		}, steps: []step{
			{"EHLO client.test", "250-mx.example.net"},
			{"AUTH PLAIN " + plainIR("alice", "pw"), "235"},
			{"MAIL FROM:<a@example.org>", "250"},
			{"RCPT TO:<bob@x.org>", "250"},
		}, queued: "tcp_auth", logWant: " tcp_local UE 0 alice "},
		{name: "plaintext refused without the option", noTLS: true, steps: []step{
			{"AUTH PLAIN " + plainIR("alice", "pw"), "538 5.7.11"},
			{"AUTH LOGIN", "538 5.7.11"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := authPolicy(t, true)
			e := startServer(t, func(p *Policy, c *Config) {
				*p = *pol
				c.TLS = testTLSConfig(t)
				c.Auth = users
				if tt.opt != nil {
					tt.opt(p, c)
				}
			})
			c := dialRaw(t, e.addr)
			c.expect("220")
			c.cmd("EHLO client.test", "250")
			if !tt.noTLS {
				c.cmd("STARTTLS", "220")
				c.upgrade()
				c.cmd("EHLO client.test", "250")
			}
			for _, s := range tt.steps {
				if s.send != "" {
					c.send(s.send + "\r\n")
				}
				c.expect(s.want)
			}
			if tt.closed {
				if got := c.reply(); got != "EOF" {
					t.Errorf("after 421: %q", got)
				}
				return
			}
			if tt.queued != "" {
				c.cmd("DATA", "354")
				c.send("Subject: t\r\n\r\nx\r\n.\r\n")
				c.expect("250 2.0.0 Ok: queued")
				if env, _ := e.q.get(0); env.Source != tt.queued {
					t.Errorf("source %q, want %q", env.Source, tt.queued)
				}
			}
			c.cmd("QUIT", "221")
			if tt.logWant != "" {
				if log := e.mailLog(t); !strings.Contains(log, tt.logWant) {
					t.Errorf("mail.log lacks %q:\n%s", tt.logWant, log)
				}
			}
		})
	}
}

// TestAuthEHLOAdvertisement: AUTH is listed exactly when it could be used.
func TestAuthEHLOAdvertisement(t *testing.T) {
	tests := []struct {
		name     string
		sasl     SASLMode
		loopback bool
		auth     Authenticator
		want     bool
	}{
		{"maysaslserver, loopback option", SASLMay, true, fakeAuth{}, true},
		{"mustsaslserver, loopback option", SASLMust, true, fakeAuth{}, true},
		{"maysaslserver, clear text", SASLMay, false, fakeAuth{}, false},
		{"nosaslserver", SASLNone, true, fakeAuth{}, false},
		{"no store", SASLMay, true, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startServer(t, func(p *Policy, c *Config) {
				p.Channels["tcp_local"] = ChannelPolicy{Name: "tcp_local", SASL: tt.sasl, AllowPlainAuthLoopback: tt.loopback}
				c.Auth = tt.auth
			})
			c := dialRaw(t, e.addr)
			c.expect("220")
			ehlo := c.cmd("EHLO client.test", "250")
			if got := strings.Contains(ehlo, "\n250-AUTH PLAIN LOGIN\n"); got != tt.want {
				t.Errorf("AUTH offered %v, want %v:\n%s", got, tt.want, ehlo)
			}
		})
	}
}

// TestAuthForgottenAtSTARTTLS: an AUTH done in clear text on loopback does not
// survive STARTTLS (RFC 3207 §4.2), and the source channel switches back.
func TestAuthForgottenAtSTARTTLS(t *testing.T) {
	pol := authPolicy(t, true)
	e := startServer(t, func(p *Policy, c *Config) {
		*p = *pol
		cp := p.Channels["tcp_local"]
		cp.AllowPlainAuthLoopback = true
		p.Channels["tcp_local"] = cp
		c.TLS = testTLSConfig(t)
		c.Auth = fakeAuth{"alice": "pw"}
	})
	c := dialRaw(t, e.addr)
	c.hello()
	c.cmd("AUTH PLAIN "+plainIR("alice", "pw"), "235")
	c.cmd("STARTTLS", "220")
	c.upgrade()
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<bob@x.org>", "550 5.7.1 Relaying denied")
}

func TestParsePlain(t *testing.T) {
	tests := []struct {
		in         string
		user, pass string
		ok         bool
	}{
		{"\x00alice\x00pw", "alice", "pw", true},
		{"alice\x00alice\x00pw", "alice", "pw", true},
		{"bob\x00alice\x00pw", "alice", "", false},
		{"\x00\x00pw", "", "pw", false},
		{"alice\x00pw", "", "", false},
		{"\x00a\x00b\x00c", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		u, p, ok := parsePlain([]byte(tt.in))
		if u != tt.user || p != tt.pass || ok != tt.ok {
			t.Errorf("parsePlain(%q) = %q %q %v", tt.in, u, p, ok)
		}
	}
}
