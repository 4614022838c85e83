package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/internal/smtptest"
)

// The open-relay proof. A daemon runs examples/site with two changes: only
// 127.0.0.1 is an internal (switched) client, and every SMTP channel delivers to a
// loopback sink instead of the Internet (so a relay, if one slipped through, would
// be seen, and nothing ever leaves the machine). A client connecting from
// 127.0.0.2 stays in tcp_local, the untrusted Internet channel; Linux routes all
// of 127/8 to lo, so no setup is needed.

// relayConfig writes the derived configuration into a fresh directory.
func relayConfig(t *testing.T, sinkPort int) string {
	t.Helper()
	src := filepath.Join("..", "examples", "site")
	dir := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".image") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "imta.cnf" {
			b = []byte(deriveRelayCnf(t, string(b), sinkPort))
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// deriveRelayCnf edits examples/site/imta.cnf; each edit must apply exactly once,
// so that a change to the example breaks this test loudly rather than silently
// testing something else.
func deriveRelayCnf(t *testing.T, cnf string, sinkPort int) string {
	t.Helper()
	daemon := fmt.Sprintf(" nomx daemon 127.0.0.1 port %d single_sys", sinkPort)
	for _, r := range []struct{ old, new string }{
		// Only 127.0.0.1 is internal: the second rule of the same pattern is what
		// the switchchannel probe from tcp_local falls through to.
		{"\n[127.]                  $U%[127.$L]@tcp_intranet-daemon\n",
			"\n[127.0.0.1]             $U%[127.0.0.1]@tcp_intranet-daemon\n"},
		{"\ntcp_local smtp mx single_sys", "\ntcp_local smtp" + daemon},
		{"\ntcp_intranet smtp mx single_sys", "\ntcp_intranet smtp" + daemon},
		{"\ntcp_auth smtp mx single_sys", "\ntcp_auth smtp" + daemon},
		{"\ntcp_siroe smtp nomx single_sys", "\ntcp_siroe smtp" + daemon},
	} {
		if n := strings.Count(cnf, r.old); n != 1 {
			t.Fatalf("examples/site/imta.cnf: %q occurs %d times, want 1: update relay_test.go", strings.TrimSpace(r.old), n)
		}
		cnf = strings.Replace(cnf, r.old, r.new, 1)
	}
	return cnf
}

// dialFrom connects from a chosen loopback source address.
func dialFrom(t *testing.T, local, addr string) *smtptest.Client {
	return smtptest.Dial(t, addr, smtptest.From(local))
}

// rcpt sends RCPT TO and returns the reply without judging it.
func rcpt(c *smtptest.Client, addr string) string {
	c.Write(fmt.Sprintf("RCPT TO:<%s>\r\n", addr))
	return c.Reply()
}

// relayProbe is one classic relay attempt. untrusted is what the Internet client
// must get: "5" (refused), or "250" for the few probes that are really local mail
// (go-smtp drops a source route, as RFC 5321 §C allows, so @remote:u@localhost is
// u@localhost); the mail.log check below proves that those went to the local
// channel only. trusted is what an internal client (127.0.0.1, tcp_intranet,
// allowed to relay) must get: "250" where relaying or local delivery is
// legitimate, "5" where the address is bad for anyone.
type relayProbe struct {
	name, addr, untrusted, trusted string
}

var relayProbes = []relayProbe{
	{"plain remote", "user@remote.example", "5", "250"},
	{"remote postmaster", "postmaster@remote.example", "5", "250"},
	{"percent hack", "user%remote.example@localhost", "5", "250"},
	{"percent hack, local domain", "user%remote.example@example.com", "5", "250"},
	{"percent hack, local host name", "user%remote.example@mail.example.com", "5", "250"},
	{"percent hack, upper-case local", "user%remote.example@LOCALHOST", "5", "250"},
	{"percent hack, postmaster", "postmaster%remote.example@localhost", "5", "250"},
	{"percent hack, two hops", "user%remote.example%localhost@localhost", "5", "250"},
	{"percent only, no @", "user%remote.example", "5", "5"}, // RFC 5321 wants a domain,
	{"bang path at local host", "remote.example!user@localhost", "5", "250"},
	{"bang path alone", "remote.example!user", "5", "5"},
	{"bang and percent", "remote.example!user%localhost@localhost", "5", "250"},
	// The command parser writes a quoted local part that is a dot-string
	// unquoted, so the quoted percent hack and bang path are the unquoted ones to
	// the rules; the quoted at-sign stays quoted, and the engine refuses a local
	// mailbox with @ % or ! (engine/resolve.go).
	{"quoted at-sign", `"user@remote.example"@localhost`, "5", "5"},
	{"quoted percent", `"user%remote.example"@localhost`, "5", "250"},
	{"quoted bang", `"remote.example!user"@localhost`, "5", "250"},
	{"source route", "@localhost:user@remote.example", "5", "250"},
	{"source route, two hops", "@localhost,@mail.example.com:user@remote.example", "5", "250"},
	{"source route through remote", "@remote.example:user@localhost", "250", "250"},
	{"double at", "user@remote.example@localhost", "5", "5"},
	{"IP literal, remote", "user@[192.0.2.1]", "5", "250"},
	{"IP literal, internal net", "user@[10.0.0.1]", "5", "250"},
	{"IP literal 127.0.0.1", "user@[127.0.0.1]", "5", "250"},
	{"IP literal 127.0.0.2", "user@[127.0.0.2]", "5", "250"},
	{"IP literal IPv6 loopback", "user@[IPv6:::1]", "5", "250"},
	{"percent hack at IP literal", "user%remote.example@[127.0.0.1]", "5", "250"},
	{"trailing dot", "user@remote.example.", "5", "5"},
	{"internal host by name", "user@host.example.com", "5", "250"},
	{"siroe.com", "user@siroe.com", "5", "250"},
	{"siroe.com subdomain", "user@host1.siroe.com", "5", "250"},
	{"percent hack to siroe", "user%siroe.com@localhost", "5", "250"},
}

// TestOpenRelayProbes is the proof that examples/site is not an open relay: every
// probe is refused from the Internet, nothing reaches the sink, and the positive
// controls show that the untrusted session does accept local mail and that the
// trusted one does relay to the sink (so "nothing arrived" means something).
func TestOpenRelayProbes(t *testing.T) {
	sink := newSink(t)
	d, data := startDaemon(t, relayConfig(t, sink.port))
	addr := d.Addr().String()

	t.Run("untrusted 127.0.0.2", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.2", addr)
		// The client claims to be us, and tries an outside, a forged local and the
		// null sender: none of it may matter.
		c.Cmd("EHLO mail.example.com", "250")
		for _, from := range []string{"spammer@remote.example", "alice@example.com", ""} {
			t.Run("from <"+from+">", func(t *testing.T) {
				c.Cmd("MAIL FROM:<"+from+">", "250")
				for _, p := range relayProbes {
					t.Run(p.name, func(t *testing.T) {
						r := rcpt(c, p.addr)
						if !strings.HasPrefix(r, p.untrusted) {
							t.Errorf("RCPT TO:<%s> from an untrusted client: %q, want %s", p.addr, strings.TrimSpace(r), p.untrusted)
						}
					})
				}
				c.Cmd("RSET", "250")
			})
		}
		// Positive control: local mail is accepted in a transaction that also
		// tried every probe, and the message goes through with only that recipient.
		c.Cmd("MAIL FROM:<spammer@remote.example>", "250")
		for _, p := range relayProbes {
			rcpt(c, p.addr)
		}
		c.Cmd("RCPT TO:<alice@example.com>", "250")
		c.Data([]byte("Subject: relay probes\r\n\r\nonly alice may get this\r\n"), "250")
		c.Cmd("QUIT", "221")
		waitMaildir(t, data, "alice", 1)
	})

	// Everything the untrusted session enqueued went to the local channel, and the
	// session really was tcp_local (else the probes proved nothing).
	// Enqueue lines: date time SOURCE DEST E[modifiers] ...
	enqueued := func(f []string) bool { return len(f) > 4 && strings.HasPrefix(f[4], "E") }
	records := waitLog(t, data, func(f []string) bool { return enqueued(f) && f[2] == "tcp_local" && f[3] == "l" })
	for _, f := range records {
		if enqueued(f) && f[2] != "tcp_local" {
			t.Errorf("the untrusted session was not tcp_local: %v", f)
		}
		if enqueued(f) && f[3] != "l" {
			t.Errorf("untrusted session enqueued for channel %s: %v", f[3], f)
		}
	}
	if n := sinkCount(sink); n != 0 {
		t.Fatalf("the sink received %d messages from the untrusted session", n)
	}

	t.Run("trusted 127.0.0.1", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.1", addr)
		c.Cmd("EHLO inside.test", "250")
		c.Cmd("MAIL FROM:<staff@example.com>", "250")
		for _, p := range relayProbes {
			t.Run(p.name, func(t *testing.T) {
				r := rcpt(c, p.addr)
				if !strings.HasPrefix(r, p.trusted) {
					t.Errorf("RCPT TO:<%s> from an internal client: %q, want %s", p.addr, strings.TrimSpace(r), p.trusted)
				}
			})
		}
		c.Cmd("RSET", "250")
		// Positive control: an internal client's relayed mail reaches the sink.
		c.Send("staff@example.com", []string{"user@remote.example"}, []byte("Subject: relayed\r\n\r\nlegitimate\r\n"))
		c.Cmd("QUIT", "221")
		msgs := sink.wait(t, 1)
		if len(msgs) != 1 || strings.Join(msgs[0].To, ",") != "user@remote.example" {
			t.Errorf("sink got %+v", msgs)
		}
	})
}

// waitLog waits until some mail.log line satisfies ok and returns all lines split
// in fields.
func waitLog(t *testing.T, data string, ok func([]string) bool) [][]string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(data, "mail.log"))
		var out [][]string
		found := false
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" {
				f := strings.Fields(l)
				out = append(out, f)
				found = found || ok(f)
			}
		}
		if found {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("mail.log after 10 s:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sinkCount(s *sink) int { return s.Count() }

// A quoted local part is relayed quoted: the next hop gets a valid RCPT TO for
// the same mailbox ("john doe"@route.test), not "john doe@route.test", which an
// RFC 5321 server refuses as a syntax error (the message would bounce).
func TestRelayQuotedLocalPart(t *testing.T) {
	s := newSink(t)
	d, _, _, _ := startMetricsDaemon(t, s.port)
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	c.Send(`"sender x"@localhost`, []string{`"john doe"@route.test`}, msg("quoted"))
	c.Cmd("QUIT", "221")
	got := s.wait(t, 1)[0]
	if len(got.To) != 1 || got.To[0] != "john doe@route.test" || got.From != "sender x@localhost" {
		t.Errorf("sink got MAIL FROM %q, RCPT TO %q (go-smtp unquotes both); want the quoted mailboxes", got.From, got.To)
	}
}
