package smtpserver

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/engine"
	"mtad.dev/mta/intake"
	"mtad.dev/mta/mappings"
)

// The tests in this file run the real rewrite engine and mapping tables, compiled
// from a small configuration written the way imta.cnf and the mappings file hold it.

const realRules = `mail.example.net   $U%$D@mail.example.net
[127.]             $U%[127.$L]@tcp_intranet-daemon
.bad               $?No mail for .bad hosts
.                  $U%$H@tcp_local-daemon
`

// realMappings: table name, then indented "pattern template" entries.
const realMappings = `PORT_ACCESS
  TCP|*|*|127.0.0.2|*          $N500$ can't$ connect$ now

ORIG_SEND_ACCESS
  *|*@sesta.com|*|*            $X4.2.1|$NHost$ temporarily$ blocked
  tcp_local|*|tcp_local|*      $NRelaying$ denied

FROM_ACCESS
  *|SMTP/bogus.example|*       $NBad$ HELO
`

func compileRules(t *testing.T, rules string) []engine.RuleSource {
	t.Helper()
	var rs []engine.RuleSource
	for i, line := range strings.Split(rules, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		rs = append(rs, engine.RuleSource{Pattern: f[0], Template: strings.Join(f[1:], " "), Src: fmt.Sprintf("imta.cnf:%d", i+1)})
	}
	return rs
}

func compileMappings(t *testing.T, text string) *mappings.Set {
	t.Helper()
	var tables []mappings.TableSource
	for i, line := range strings.Split(text, "\n") {
		src := fmt.Sprintf("mappings:%d", i+1)
		switch {
		case strings.TrimSpace(line) == "":
		case line[0] != ' ':
			tables = append(tables, mappings.TableSource{Name: strings.TrimSpace(line), Src: src})
		default:
			f := strings.Fields(line)
			tb := &tables[len(tables)-1]
			tb.Entries = append(tb.Entries, mappings.EntrySource{Pattern: f[0], Template: strings.Join(f[1:], " "), Src: src})
		}
	}
	set, errs := mappings.Compile(tables)
	if len(errs) > 0 {
		t.Fatalf("mappings.Compile: %v", errs)
	}
	return set
}

// realPolicy compiles the configuration; switchchannel is on tcp_local when switching.
func realPolicy(t *testing.T, switching bool) *Policy {
	t.Helper()
	m := compileMappings(t, realMappings)
	aliases, errs := mappings.CompileAliases([]mappings.AliasSource{
		{Name: "list", Targets: []string{"ann", "bob@elsewhere.org"}, Src: "aliases:1"},
		{Name: "ann", Targets: []string{"ann"}, Src: "aliases:2"},
	})
	if len(errs) > 0 {
		t.Fatalf("CompileAliases: %v", errs)
	}
	ch := func(name, official string) engine.Channel {
		return engine.Channel{Name: name, Official: official, Src: "imta.cnf:100", Rules: true}
	}
	local := ch("l", "mail.example.net")
	local.Local = true
	local.ViaAliasRequired = true
	rs, errs := engine.Compile(engine.Config{
		Rules:    compileRules(t, realRules),
		Channels: []engine.Channel{local, ch("tcp_local", "tcp_local-daemon"), ch("tcp_intranet", "tcp_intranet-daemon")},
		Mappings: m,
		Aliases:  aliases,
	})
	if len(errs) > 0 {
		t.Fatalf("engine.Compile: %v", errs)
	}
	return &Policy{
		Intake: &intake.Rules{Resolver: rs, Access: intake.Tables(m, nil), Hostname: "mx.example.net"},
		Channels: map[string]ChannelPolicy{
			"tcp_local":    {Name: "tcp_local", SwitchChannel: switching},
			"tcp_intranet": {Name: "tcp_intranet", AllowSwitchChannel: true},
			"l":            {Name: "l"},
		},
		DefaultSource: "tcp_local",
	}
}

func useReal(switching bool, t *testing.T) option {
	pol := realPolicy(t, switching)
	return func(p *Policy, _ *Config) { *p = *pol }
}

func TestRealEngine(t *testing.T) {
	type step struct{ send, want string }
	tests := []struct {
		name      string
		switching bool
		steps     []step
		source    string // expected envelope source when a message is queued
		rcpts     string
	}{
		{"relaying denied from tcp_local", false, []step{
			{"MAIL FROM:<a@example.org>", "250"},
			{"RCPT TO:<bob@x.org>", "550 5.7.1 Relaying denied bob@x.org"},
		}, "", ""},
		{"switchchannel to tcp_intranet may relay", true, []step{
			{"MAIL FROM:<a@example.org>", "250"},
			{"RCPT TO:<bob@x.org>", "250"},
		}, "tcp_intranet", "tcp_local:bob@x.org"},
		{"sesta recipe", true, []step{
			{"MAIL FROM:<joe@sesta.com>", "250"},
			{"RCPT TO:<ann@siroe.com>", "450 4.2.1 Host temporarily blocked ann@siroe.com"},
		}, "", ""},
		{"local delivery and alias expansion", false, []step{
			{"MAIL FROM:<a@example.org>", "250"},
			{"RCPT TO:<list@mail.example.net>", "250"},
			{"RCPT TO:<nobody@mail.example.net>", "550 5.1.1 unknown or illegal user"},
			{"RCPT TO:<x@host.bad>", "550 5.1.2 No mail for .bad hosts"},
		}, "tcp_local", "l:ann@mail.example.net tcp_local:bob@elsewhere.org"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startServer(t, useReal(tt.switching, t))
			c := dialRaw(t, e.addr)
			c.hello()
			for _, s := range tt.steps {
				c.cmd(s.send, s.want)
			}
			if tt.rcpts == "" {
				return
			}
			c.cmd("DATA", "354")
			c.send("Subject: real\r\n\r\nx\r\n.\r\n")
			c.expect("250 2.0.0 Ok: queued")
			env, _ := e.q.get(0)
			var got []string
			for _, r := range env.Rcpts {
				got = append(got, r.Channel+":"+r.Addr)
			}
			if env.Source != tt.source || strings.Join(got, " ") != tt.rcpts {
				t.Errorf("source %q rcpts %v", env.Source, got)
			}
		})
	}
}

func TestRealFromAccessAndPortAccess(t *testing.T) {
	e := startServer(t, useReal(false, t))
	c := dialRaw(t, e.addr)
	c.expect("220")
	c.cmd("EHLO bogus.example", "250")
	c.cmd("MAIL FROM:<a@example.org>", "550 5.7.1 Bad HELO a@example.org")

	// PORT_ACCESS refuses 127.0.0.2 before the banner, on the wire.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 2 * time.Second}
	conn, err := d.Dial("tcp", e.addr)
	if err != nil {
		t.Skipf("cannot dial from 127.0.0.2: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(conn)
	if string(b) != "500 can't connect now\r\n" {
		t.Errorf("PORT_ACCESS refusal %q", b)
	}
}
