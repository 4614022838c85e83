package smtpserver

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"mtad.dev/mta/mappings"
)

// TestAccessProbes checks the probe string each access table gets, in order:
// PORT_ACCESS, FROM_ACCESS, then the SEND and MAIL access tables, in the forms
// the product's documentation gives.
func TestAccessProbes(t *testing.T) {
	e := startServer(t)
	c := dialRaw(t, e.addr)
	c.hello()
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<List@local.test> NOTIFY=DELAY", "250")
	c.cmd("QUIT", "221")

	port := portOf(t, e.addr)
	// client port: the one PORT_ACCESS saw
	probes := e.access.got()
	if len(probes) == 0 || !strings.HasPrefix(probes[0], "PORT_ACCESS TCP|127.0.0.1|"+port+"|127.0.0.1|") {
		t.Fatalf("first probe %q", probes)
	}
	pp := strings.TrimPrefix(probes[0], "PORT_ACCESS ")
	want := []string{
		"PORT_ACCESS " + pp,
		"FROM_ACCESS " + pp + "|SMTP/client.test|MAIL|tcp_local|a@example.org|",
		"ORIG_SEND_ACCESS tcp_local|a@example.org|l|list@local.test",
		"ORIG_MAIL_ACCESS " + pp + "|SMTP/client.test|MAIL|tcp_local|a@example.org|l|list@local.test",
		"SEND_ACCESS tcp_local|a@example.org|l|ann@local.test",
		"MAIL_ACCESS " + pp + "|SMTP/client.test|MAIL|tcp_local|a@example.org|l|ann@local.test",
		"SEND_ACCESS tcp_local|a@example.org|tcp_local|bob@elsewhere.org",
		"MAIL_ACCESS " + pp + "|SMTP/client.test|MAIL|tcp_local|a@example.org|tcp_local|bob@elsewhere.org",
	}
	if strings.Join(probes, "\n") != strings.Join(want, "\n") {
		t.Errorf("probes\n got %s\nwant %s", strings.Join(probes, "\n     "), strings.Join(want, "\n     "))
	}
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	return addr[i+1:]
}

// rule is one scripted access entry: table, a probe predicate, the decoded result.
type rule struct {
	table string
	match func(probe string) bool
	a     mappings.Access
}

func decideBy(rules ...rule) func(table, probe string) (mappings.Access, bool) {
	return func(table, probe string) (mappings.Access, bool) {
		for _, r := range rules {
			if r.table == table && r.match(probe) {
				a := r.a
				a.Matched = true
				return a, true
			}
		}
		return mappings.Access{}, false
	}
}

func contains(s string) func(string) bool {
	return func(p string) bool { return strings.Contains(p, s) }
}

func TestAccessDecisions(t *testing.T) {
	relay := func(p string) bool {
		// tcp_local|*|tcp_local|*  $NRelaying$ denied
		f := strings.Split(p, "|")
		return len(f) == 4 && f[0] == "tcp_local" && f[2] == "tcp_local"
	}
	tests := []struct {
		name  string
		rules []rule
		from  string
		rcpt  string
		mail  string // MAIL reply prefix
		want  string // RCPT reply prefix
		jlog  string // expected J line fragment, "" none
	}{
		{
			name:  "relaying denied",
			rules: []rule{{"ORIG_SEND_ACCESS", relay, mappings.Access{Reject: true, Text: "Relaying denied"}}},
			from:  "a@example.org", rcpt: "bob@x.org",
			want: "550 5.7.1 Relaying denied bob@x.org",
			jlog: " tcp_local tcp_local J 0 a@example.org rfc822;bob@x.org bob@x.org - - 550 5.7.1 Relaying denied bob@x.org\n",
		},
		{
			name:  "local delivery not relaying",
			rules: []rule{{"ORIG_SEND_ACCESS", relay, mappings.Access{Reject: true, Text: "Relaying denied"}}},
			from:  "a@example.org", rcpt: "ann@local.test",
			want: "250",
		},
		{
			// the product documentation's example of a temporary refusal:
			// *|*@sesta.com|*|*  $X4.2.1|$NHost$ temporarily$ blocked
			name: "sesta temporary block",
			rules: []rule{{"ORIG_SEND_ACCESS", contains("|joe@sesta.com|"),
				mappings.Access{Reject: true, Enhanced: "4.2.1", Text: "Host temporarily blocked"}}},
			from: "joe@sesta.com", rcpt: "ann@siroe.com",
			want: "450 4.2.1 Host temporarily blocked ann@siroe.com",
			jlog: " J 0 joe@sesta.com rfc822;ann@siroe.com ann@siroe.com - - 450 4.2.1 Host temporarily blocked ann@siroe.com\n",
		},
		{
			name:  "default text",
			rules: []rule{{"ORIG_SEND_ACCESS", contains("x.org"), mappings.Access{Reject: true}}},
			from:  "a@example.org", rcpt: "bob@x.org",
			want: "550 5.7.1 Access denied bob@x.org",
		},
		{
			name:  "explicit allow wins nothing else",
			rules: []rule{{"ORIG_SEND_ACCESS", contains("x.org"), mappings.Access{Allow: true}}},
			from:  "a@example.org", rcpt: "bob@x.org",
			want: "250",
		},
		{
			name:  "ORIG_MAIL after ORIG_SEND",
			rules: []rule{{"ORIG_MAIL_ACCESS", contains("SMTP/client.test|MAIL|tcp_local|forged@siroe.com|"), mappings.Access{Reject: true, Text: "Forged sender"}}},
			from:  "forged@siroe.com", rcpt: "bob@x.org",
			want: "550 5.7.1 Forged sender bob@x.org",
		},
		{
			name:  "FROM_ACCESS",
			rules: []rule{{"FROM_ACCESS", contains("|spammer@bad.example|"), mappings.Access{Reject: true, Text: "Go away!", Enhanced: "5.7.0"}}},
			from:  "spammer@bad.example",
			mail:  "550 5.7.0 Go away! spammer@bad.example",
			jlog:  " tcp_local J 0 spammer@bad.example - - - - 550 5.7.0 Go away! spammer@bad.example\n",
		},
		{
			name: "SEND_ACCESS refuses one expansion",
			rules: []rule{{"SEND_ACCESS", contains("|bob@elsewhere.org"),
				mappings.Access{Reject: true, Text: "Blocked"}}},
			from: "a@example.org", rcpt: "list@local.test",
			want: "250",
			jlog: " tcp_local tcp_local J 0 a@example.org rfc822;bob@elsewhere.org bob@elsewhere.org - - 550 5.7.1 Blocked bob@elsewhere.org\n",
		},
		{
			name: "MAIL_ACCESS refuses the only expansion",
			rules: []rule{{"MAIL_ACCESS", contains("|l|ann@local.test"),
				mappings.Access{Reject: true, Text: "Mail Blocked"}}},
			from: "a@example.org", rcpt: "ann@local.test",
			want: "550 5.7.1 Mail Blocked ann@local.test",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startServer(t)
			e.access.setDecide(decideBy(tt.rules...))
			c := dialRaw(t, e.addr)
			c.hello()
			mail := tt.mail
			if mail == "" {
				mail = "250"
			}
			c.cmd("MAIL FROM:<"+tt.from+">", mail)
			if tt.rcpt != "" {
				c.cmd("RCPT TO:<"+tt.rcpt+">", tt.want)
			}
			c.cmd("QUIT", "221")
			log := e.mailLog(t)
			if tt.jlog != "" && !strings.Contains(log, tt.jlog) {
				t.Errorf("mail.log lacks %q:\n%s", tt.jlog, log)
			}
			refused := tt.want
			if tt.mail != "" {
				refused = tt.mail
			}
			switch {
			case tt.jlog != "":
			case !strings.HasPrefix(refused, "250"):
				if !strings.Contains(log, " J ") || !strings.Contains(log, refused+"\n") {
					t.Errorf("no J record with %q:\n%s", refused, log)
				}
			case strings.Contains(log, " J "):
				t.Errorf("unexpected J record:\n%s", log)
			}
		})
	}
}

func TestAccessHold(t *testing.T) {
	e := startServer(t)
	e.access.setDecide(decideBy(rule{"ORIG_SEND_ACCESS", contains("held.example"), mappings.Access{Hold: true, Src: "mappings:12"}}))
	c := dialRaw(t, e.addr)
	c.hello()
	c.cmd("MAIL FROM:<a@held.example>", "250")
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.cmd("DATA", "354")
	c.send("\r\n.\r\n")
	c.expect("250")
	env, _ := e.q.get(0)
	if !env.Held || env.HeldReason != "access: held by mappings:12" {
		t.Errorf("held %v %q", env.Held, env.HeldReason)
	}
}

// flagRecorder records the input flags each table is run with.
type flagRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (f *flagRecorder) Access(table, probe string, in mappings.Flags) (mappings.Access, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, table+"="+in.String())
	return mappings.Access{}, false
}

// TestAccessInputFlags: $E (EHLO) and the NOTIFY letters reach the tables.
func TestAccessInputFlags(t *testing.T) {
	rec := &flagRecorder{}
	e := startServer(t, func(p *Policy, _ *Config) { p.Intake.Access = rec })
	c := dialRaw(t, e.addr)
	c.hello()
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<b@example.net> NOTIFY=SUCCESS,DELAY", "250")
	c.cmd("QUIT", "221")
	rec.mu.Lock()
	got := fmt.Sprint(rec.seen)
	rec.mu.Unlock()
	want := fmt.Sprint([]string{"PORT_ACCESS=", "FROM_ACCESS=E", "ORIG_SEND_ACCESS=DES", "ORIG_MAIL_ACCESS=DES", "SEND_ACCESS=DES", "MAIL_ACCESS=DES"})
	if got != want {
		t.Errorf("flags %v, want %v", got, want)
	}
}

func TestPortAccess(t *testing.T) {
	tests := []struct {
		name, port string // "" : the server's own port
		want       string
	}{
		{"blocked", "", "500 can't connect now"},
		{"other port", "587", "220 mx.test ESMTP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startServer(t)
			port := tt.port
			if port == "" {
				port = portOf(t, e.addr)
			}
			// TCP|*|25|IP_address_to_block|*  $N500$ can't$ connect$ now
			e.access.mu.Lock()
			e.access.decide = decideBy(rule{"PORT_ACCESS", func(p string) bool {
				f := strings.Split(p, "|")
				return len(f) == 5 && f[0] == "TCP" && f[2] == port && f[3] == "127.0.0.1"
			}, mappings.Access{Reject: true, Text: "500 can't connect now"}})
			e.access.mu.Unlock()
			c := dialRaw(t, e.addr)
			if got := c.reply(); got != tt.want && !strings.HasPrefix(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if tt.port == "" {
				if got := c.reply(); got != "EOF" {
					t.Errorf("after the refusal: %q", got)
				}
			}
		})
	}
}
