package smtpserver

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	netsmtp "net/smtp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mtad.dev/mta/status"
)

func TestBannerAndEHLO(t *testing.T) {
	e := startServer(t)
	c := dialRaw(t, e.addr)
	c.expect("220 mx.test ESMTP")
	ehlo := c.cmd("EHLO client.test", "250-mx.test Hello client.test")
	for _, want := range []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN", "SIZE 52428800"} {
		if !strings.Contains(ehlo, want) {
			t.Errorf("EHLO reply lacks %s:\n%s", want, ehlo)
		}
	}
	for _, bad := range []string{"CHUNKING", "STARTTLS", "AUTH"} {
		if strings.Contains(ehlo, bad) {
			t.Errorf("EHLO reply advertises %s:\n%s", bad, ehlo)
		}
	}
	c.cmd("HELO client.test", "250 ")
	c.cmd("QUIT", "221")
}

// TestDeliveryByteExact sends messages through real clients and checks the queued
// content is our Received: line followed by the message exactly as sent.
func TestDeliveryByteExact(t *testing.T) {
	long := strings.Repeat("x", 998)
	tests := []struct {
		name string
		body string
		opt  *smtp.MailOptions
	}{
		{"7bit", "Subject: hi\r\nMessage-ID: <m1@client.test>\r\n\r\nhello\r\n", nil},
		{"8bit", "Subject: caf\xc3\xa9\r\n\r\n\xe2\x82\xac 100\r\n", &smtp.MailOptions{Body: smtp.Body8BitMIME}},
		{"dot stuffing", "Subject: dots\r\n\r\n.\r\n..\r\n.x\r\nend.\r\n", nil},
		{"998-octet lines", "Subject: long\r\n\r\n" + long + "\r\n" + long + "\r\n", nil},
		{"no final CRLF", "Subject: x\r\n\r\nlast line", nil},
		{"empty body", "", nil},
	}
	e := startServer(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := smtp.Dial(e.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Hello("client.test"); err != nil {
				t.Fatal(err)
			}
			if err := c.Mail("alice@example.org", tt.opt); err != nil {
				t.Fatal(err)
			}
			if err := c.Rcpt("bob@example.net", nil); err != nil {
				t.Fatal(err)
			}
			w, err := c.Data()
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte(tt.body))
			resp, err := w.CloseWithResponse()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(resp.StatusText, "Ok: queued as Q") {
				t.Errorf("DATA reply %q", resp.StatusText)
			}
			env, content := e.q.get(i)
			want := tt.body
			if !strings.HasSuffix(want, "\r\n") {
				want += "\r\n" // the client's dot writer ends the last line
			}
			rcvd, rest, ok := strings.Cut(string(content), "\r\n\t")
			if !ok || !strings.HasPrefix(rcvd, "Received: from client.test ([127.0.0.1])") {
				t.Fatalf("no Received: line first: %q", content)
			}
			_, body, _ := strings.Cut(rest, "+0000\r\n")
			if !strings.Contains(rest, "by mx.test (mtad) with ESMTP id ") {
				t.Errorf("Received: %q", rcvd+rest)
			}
			if body != want {
				t.Errorf("body\n got %q\nwant %q", body, want)
			}
			if env.From != "alice@example.org" || len(env.Rcpts) != 1 || env.Rcpts[0].Addr != "bob@example.net" ||
				env.Rcpts[0].Channel != "tcp_local" || env.Rcpts[0].Host != "example.net" || env.Source != "tcp_local" {
				t.Errorf("envelope %+v", env)
			}
			if env.Client != "client.test ([127.0.0.1])" {
				t.Errorf("Client = %q", env.Client)
			}
			if tt.name == "7bit" && env.MessageID != "<m1@client.test>" {
				t.Errorf("MessageID = %q", env.MessageID)
			}
			c.Quit()
		})
	}
}

func TestNetSMTPClient(t *testing.T) {
	e := startServer(t)
	msg := "Subject: net/smtp\r\n\r\nbody\r\n"
	if err := netsmtp.SendMail(e.addr, nil, "a@example.org", []string{"b@example.net", "list@local.test"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	env, content := e.q.get(0)
	if !bytes.HasSuffix(content, []byte(msg)) {
		t.Errorf("content %q", content)
	}
	var got []string
	for _, r := range env.Rcpts {
		got = append(got, r.Channel+":"+r.Addr+"<"+r.Orig)
	}
	want := "tcp_local:b@example.net<b@example.net l:ann@local.test<list@local.test tcp_local:bob@elsewhere.org<list@local.test"
	if strings.Join(got, " ") != want {
		t.Errorf("recipients %v", got)
	}
}

func TestPipelining(t *testing.T) {
	e := startServer(t)
	c := dialRaw(t, e.addr)
	c.hello()
	c.send("MAIL FROM:<a@example.org> SIZE=100\r\nRCPT TO:<b@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B@example.net\r\n" +
		"RCPT TO:<c@x.invalid>\r\nRCPT TO:<d@example.net>\r\nDATA\r\n")
	c.expect("250 2.1.0")
	c.expect("250 2.1.5")
	c.expect("550 5.1.2 unknown host or domain c@x.invalid")
	c.expect("250 2.1.5")
	c.expect("354")
	c.send("Subject: p\r\n\r\nx\r\n.\r\nMAIL FROM:<> BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<e@example.net>\r\nDATA\r\n")
	c.expect("250 2.0.0 Ok: queued as QA")
	c.expect("250 2.1.0")
	c.expect("250 2.1.5")
	c.expect("354")
	c.send("\r\n.\r\nQUIT\r\n")
	c.expect("250 2.0.0 Ok: queued as QB")
	c.expect("221")
	env, _ := e.q.get(0)
	if len(env.Rcpts) != 2 || env.Rcpts[0].Notify != "SUCCESS,FAILURE" || env.Rcpts[0].ORCPT != "rfc822;B@example.net" {
		t.Errorf("rcpts %+v", env.Rcpts)
	}
	if env.Body8Bit || env.SMTPUTF8 {
		t.Errorf("first: Body8Bit %v SMTPUTF8 %v", env.Body8Bit, env.SMTPUTF8)
	}
	env, _ = e.q.get(1)
	if env.From != "" || !env.Body8Bit || !env.SMTPUTF8 {
		t.Errorf("second: From = %q, Body8Bit %v SMTPUTF8 %v", env.From, env.Body8Bit, env.SMTPUTF8)
	}
}

func TestSequenceAndSyntax(t *testing.T) {
	e := startServer(t, func(p *Policy, _ *Config) { p.MaxErrors = 50 })
	c := dialRaw(t, e.addr)
	c.expect("220")
	c.cmd("MAIL FROM:<a@example.org>", "503 5.5.1")
	c.cmd("EHLO client.test", "250")
	c.cmd("RCPT TO:<b@example.net>", "503 5.5.1")
	c.cmd("DATA", "503 5.5.1")
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("MAIL FROM:<a@example.org>", "503 5.5.1 Error: nested MAIL")
	c.cmd("RCPT TO:<nouser@local.test>", "550 5.1.1")
	c.cmd("RCPT TO:<x@temp.test>", "451 4.4.3")
	c.cmd("DATA", "503 5.5.1")
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.cmd("RSET", "250")
	c.cmd("RCPT TO:<b@example.net>", "503 5.5.1")
	c.cmd("MAIL FROM:<a@example.org> RET=HDRS ENVID=abc+2Bdef", "250")
	c.cmd("RCPT TO:<b@exa\x00mple.net>", "501 5.5.2")
	c.cmd("RCPT TO:<b@exa\rmple.net>", "501 5.5.2")
	c.cmd("RCPT TO:<b@example.net> ORCPT=rfc822;a+0Db", "501")
	c.cmd("BDAT 10 LAST", "500 5.5.1")
	c.cmd("XYZZY", "500 5.5.2")
	c.cmd("NOOP "+strings.Repeat("a", 600), "500 5.5.2 Line too long")
	c.cmd("NOOP", "250")
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.cmd("DATA", "354")
	c.send("Subject: s\r\n\r\nx\r\n.\r\n")
	c.expect("250 2.0.0 Ok: queued")
	env, _ := e.q.get(0)
	if env.RET != "HDRS" || env.EnvID != "abc+def" {
		t.Errorf("RET %q ENVID %q", env.RET, env.EnvID)
	}
}

func TestTooManyErrors(t *testing.T) {
	e := startServer(t, func(p *Policy, _ *Config) { p.MaxErrors = 5 })
	c := dialRaw(t, e.addr)
	c.hello()
	for i := 0; i < 4; i++ {
		c.cmd("BOGUS", "500 5.5.2")
	}
	c.send("RCPT TO:<a@b.example>\r\n")
	c.expect("503 5.5.1")
	c.expect("421 4.7.0 mx.test Error: too many errors")
	if got := c.reply(); got != "EOF" {
		t.Errorf("after 421: %q", got)
	}
}

func TestTooManyRecipients(t *testing.T) {
	e := startServer(t, func(p *Policy, _ *Config) { p.MaxRecipients = 2 })
	c := dialRaw(t, e.addr)
	c.hello()
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<b1@example.net>", "250")
	c.cmd("RCPT TO:<b2@example.net>", "250")
	c.cmd("RCPT TO:<b3@example.net>", "452 4.5.3 Too many recipients")
	c.cmd("DATA", "354")
	c.send("\r\n.\r\n")
	c.expect("250")
	if env, _ := e.q.get(0); len(env.Rcpts) != 2 {
		t.Errorf("rcpts %+v", env.Rcpts)
	}
	if log := e.mailLog(t); !strings.Contains(log, " tcp_local J 0 a@example.org rfc822;b3@example.net b3@example.net - - 452 4.5.3 Too many recipients\n") {
		t.Errorf("mail.log:\n%s", log)
	}
}

func TestSizeLimit(t *testing.T) {
	e := startServer(t, func(p *Policy, _ *Config) { p.MaxMessageBytes = 100 })
	c := dialRaw(t, e.addr)
	c.expect("220")
	if got := c.cmd("EHLO client.test", "250"); !strings.Contains(got, "SIZE 100") {
		t.Errorf("EHLO %q", got)
	}
	c.cmd("MAIL FROM:<a@example.org> SIZE=101", "552 5.3.4 Message size exceeds fixed maximum message size")
	// over 32 bits (RFC 1870 allows 20 digits): still 552, not a syntax error
	c.cmd("MAIL FROM:<a@example.org> SIZE=99999999999", "552 5.3.4 Message size exceeds fixed maximum message size")
	c.cmd("MAIL FROM:<a@example.org> size=18446744073709551615", "552 5.3.4")
	c.cmd("MAIL FROM:<a@example.org> SIZE=12x", "501")
	c.cmd("MAIL FROM:<a@example.org> SIZE=100", "250")
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.cmd("DATA", "354")
	// 101 octets of content: one byte too many (go-smtp #98: never queue truncated)
	c.send(strings.Repeat("y", 99) + "\r\n.\r\n")
	c.expect("552 5.3.4 Message size exceeds fixed maximum message size")
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.cmd("DATA", "354")
	c.send(strings.Repeat("y", 98) + "\r\n.\r\n") // exactly 100
	c.expect("250 2.0.0 Ok: queued as QA")
	if e.q.count() != 1 {
		t.Fatalf("%d messages queued", e.q.count())
	}
	if _, content := e.q.get(0); !bytes.HasSuffix(content, []byte(strings.Repeat("y", 98)+"\r\n")) {
		t.Errorf("content %q", content)
	}
	log := e.mailLog(t)
	if !strings.Contains(log, "J 1 a@example.org rfc822;b@example.net b@example.net - - 552 5.3.4") {
		t.Errorf("mail.log:\n%s", log)
	}
}

func TestChannelBlockLimit(t *testing.T) {
	e := startServer(t, func(p *Policy, _ *Config) {
		p.Channels["l"] = ChannelPolicy{Name: "l", BlockLimit: 1}
	})
	c := dialRaw(t, e.addr)
	c.hello()
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<ann@local.test>", "250")
	c.cmd("DATA", "354")
	c.send(strings.Repeat("z", 1100) + "\r\n.\r\n")
	c.expect("552 5.3.4")
	if e.q.count() != 0 {
		t.Error("queued")
	}
}

// TestSmuggling sends every bare-LF/CR end-of-data variant in one session, each
// followed by a smuggled second transaction, then one honest message. Exactly the
// honest message may be queued.
func TestSmuggling(t *testing.T) {
	variants := []struct{ name, eod string }{
		{"LF.LF", "\n.\n"},
		{"CR.CR", "\r.\r"},
		{"LF.CRLF", "\n.\r\n"},
		{"CRLF.LF", "\r\n.\n"},
		{"CR.CRLF", "\r.\r\n"},
		{"CRLF.CR", "\r\n.\r"},
		{"CRCRLF.CRLF", "\r\r\n.\r\n"},
		{"NUL", "\r\n\x00.\r\n"},
	}
	e := startServer(t)
	c := dialRaw(t, e.addr)
	c.hello()
	smuggled := "MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n"
	for _, v := range variants {
		c.cmd("MAIL FROM:<a@example.org>", "250")
		c.cmd("RCPT TO:<b@example.net>", "250")
		c.cmd("DATA", "354")
		c.send("Subject: " + v.name + "\r\n\r\nhello" + v.eod + smuggled + ".\r\n")
		got := c.reply()
		if v.name == "NUL" {
			// NUL is not a line-end trick; the message is legal and carries it all
			if !strings.HasPrefix(got, "250") {
				t.Errorf("%s: %q", v.name, got)
			}
			continue
		}
		if !strings.HasPrefix(got, "550 5.5.2 bare LF/CR not allowed") {
			t.Errorf("%s: reply %q", v.name, got)
		}
	}
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.cmd("DATA", "354")
	c.send("Subject: honest\r\n\r\nok\r\n.\r\n")
	c.expect("250 2.0.0 Ok: queued")
	c.cmd("QUIT", "221")
	if n := e.q.count(); n != 2 {
		t.Fatalf("%d messages queued, want the NUL one and the honest one", n)
	}
	for i := 0; i < 2; i++ {
		env, content := e.q.get(i)
		if env.From != "a@example.org" || bytes.Contains(content, []byte("Subject: smuggled\r\n")) && i == 1 {
			t.Errorf("message %d: from %q content %q", i, env.From, content)
		}
	}
	if _, content := e.q.get(1); !bytes.HasSuffix(content, []byte("Subject: honest\r\n\r\nok\r\n")) {
		t.Errorf("honest message %q", content)
	}
}

func TestEnqueueFailure(t *testing.T) {
	e := startServer(t)
	e.q.err = status.New(452, "4.3.1", "Insufficient system storage")
	c := dialRaw(t, e.addr)
	c.hello()
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.cmd("DATA", "354")
	c.send("Subject: x\r\n\r\nx\r\n.\r\n")
	c.expect("452 4.3.1 Insufficient system storage")
	if log := e.mailLog(t); !strings.Contains(log, " J 1 a@example.org rfc822;b@example.net b@example.net - - 452 4.3.1 Insufficient system storage") {
		t.Errorf("mail.log:\n%s", log)
	}
}

func TestMailLogRecords(t *testing.T) {
	e := startServer(t)
	c := dialRaw(t, e.addr)
	c.hello()
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<b@example.net> ORCPT=rfc822;B@Example.NET", "250")
	c.cmd("RCPT TO:<nouser@local.test>", "550 5.1.1")
	c.cmd("RCPT TO:<x@y.invalid>", "550 5.1.2")
	c.cmd("DATA", "354")
	c.send("Message-ID: <id1@client.test>\r\n\r\nx\r\n.\r\n")
	c.expect("250 2.0.0 Ok: queued as QA")
	c.cmd("QUIT", "221")
	log := e.mailLog(t)
	for _, want := range []string{
		" tcp_local l J 0 a@example.org rfc822;nouser@local.test nouser@local.test - - 550 5.1.1 unknown or illegal user: nouser@local.test\n",
		" tcp_local J 0 a@example.org rfc822;x@y.invalid x@y.invalid - - 550 5.1.2 unknown host or domain x@y.invalid\n",
		" tcp_local tcp_local EE 1 a@example.org rfc822;B@Example.NET b@example.net QA <id1@client.test>\n",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("mail.log lacks %q:\n%s", want, log)
		}
	}
}

func TestReceivedLoopHeld(t *testing.T) {
	e := startServer(t, func(p *Policy, _ *Config) { p.Intake.MaxReceivedLines = 3 })
	send := func(n int) {
		c := dialRaw(t, e.addr)
		c.hello()
		c.cmd("MAIL FROM:<a@example.org>", "250")
		c.cmd("RCPT TO:<b@example.net>", "250")
		c.cmd("DATA", "354")
		c.send(strings.Repeat("Received: from a\r\n\tby b; date\r\n", n) + "Subject: x\r\n\r\nReceived: in body\r\n.\r\n")
		c.expect("250")
		c.cmd("QUIT", "221")
	}
	send(2) // 2 + ours = 3: not over
	send(3) // 4: over
	if env, _ := e.q.get(0); env.Held {
		t.Errorf("first held: %q", env.HeldReason)
	}
	if env, _ := e.q.get(1); !env.Held || env.HeldReason != "loop: 4 Received: lines" {
		t.Errorf("second: held %v %q", env.Held, env.HeldReason)
	}
}

func TestConnectionCap(t *testing.T) {
	e := startServer(t, func(_ *Policy, c *Config) { c.MaxConns = 2 })
	c1 := dialRaw(t, e.addr)
	c1.expect("220")
	c2 := dialRaw(t, e.addr)
	c2.expect("220")
	c3 := dialRaw(t, e.addr)
	c3.expect("421 4.3.2 Too many connections, try again later")
	if got := c3.reply(); got != "EOF" {
		t.Errorf("after 421: %q", got)
	}
	c1.cmd("QUIT", "221")
	// the slot comes back once the first connection is gone
	deadline := time.Now().Add(2 * time.Second)
	for {
		c4 := dialRaw(t, e.addr)
		if got := c4.reply(); strings.HasPrefix(got, "220") {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("slot not released: %q", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConnectionCapPerIP(t *testing.T) {
	e := startServer(t, func(_ *Policy, c *Config) { c.MaxConnsPerIP = 1 })
	c1 := dialRaw(t, e.addr)
	c1.expect("220")
	c2 := dialRaw(t, e.addr)
	c2.expect("421 4.3.2 Too many connections from your address")
}

func TestConnectionCapPerIPExempt(t *testing.T) {
	e := startServer(t, func(_ *Policy, c *Config) {
		c.MaxConnsPerIP = 1
		c.PerIPExempt = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	c1 := dialRaw(t, e.addr)
	c1.expect("220")
	c2 := dialRaw(t, e.addr)
	c2.expect("220")
}

func TestTimeouts(t *testing.T) {
	t.Run("command", func(t *testing.T) {
		e := startServer(t, func(p *Policy, _ *Config) {
			p.Timeouts = Timeouts{Greeting: 5 * time.Second, Command: 300 * time.Millisecond}
		})
		c := dialRaw(t, e.addr)
		c.hello()
		c.expect("421 4.4.2 mx.test Error: timeout exceeded")
		if got := c.reply(); got != "EOF" {
			t.Errorf("after 421: %q", got)
		}
	})
	t.Run("stalled DATA is closed", func(t *testing.T) {
		e := startServer(t, func(p *Policy, _ *Config) {
			p.Timeouts = Timeouts{DataBlock: 300 * time.Millisecond}
		})
		c := dialRaw(t, e.addr)
		c.hello()
		c.cmd("MAIL FROM:<a@example.org>", "250")
		c.cmd("RCPT TO:<b@example.net>", "250")
		c.cmd("DATA", "354")
		c.send("Subject: stall\r\n\r\nhalf a mess")
		c.expect("421 4.4.2")
		if got := c.reply(); got != "EOF" {
			t.Errorf("after 421: %q", got)
		}
		if e.q.count() != 0 {
			t.Error("a stalled message was queued")
		}
	})
}

// TestPolicySnapshot: a transaction keeps the policy it started with; the next one
// takes the new one.
func TestPolicySnapshot(t *testing.T) {
	var cur atomic.Pointer[Policy]
	rules, acc := &fakeRules{}, &fakeAccess{}
	a := basePolicy(rules, acc)
	a.Intake.Hostname = "old.test"
	b := basePolicy(rules, acc)
	b.Intake.Hostname = "new.test"
	cur.Store(a)
	q := &fakeQueue{}
	srv := New(Config{Policy: cur.Load, Queue: q})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(context.Background(), l)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	c := dialRaw(t, l.Addr().String())
	c.expect("220 old.test")
	c.cmd("EHLO client.test", "250-old.test")
	c.cmd("MAIL FROM:<a@example.org>", "250")
	cur.Store(b) // reload in the middle of a transaction
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.cmd("DATA", "354")
	c.send("\r\n.\r\n")
	c.expect("250")
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.cmd("DATA", "354")
	c.send("\r\n.\r\n")
	c.expect("250")
	if _, m := q.get(0); !bytes.Contains(m, []byte("by old.test")) {
		t.Errorf("first message %q", m)
	}
	if _, m := q.get(1); !bytes.Contains(m, []byte("by new.test")) {
		t.Errorf("second message %q", m)
	}
}

func TestSwitchChannel(t *testing.T) {
	tests := []struct {
		name    string
		literal string
		mod     func(map[string]ChannelPolicy)
		want    string
	}{
		{"switch", "tcp_intranet", nil, "tcp_intranet"},
		{"target does not allow", "tcp_intranet", func(m map[string]ChannelPolicy) {
			m["tcp_intranet"] = ChannelPolicy{Name: "tcp_intranet"}
		}, "tcp_local"},
		{"target noswitchchannel", "tcp_intranet", func(m map[string]ChannelPolicy) {
			m["tcp_intranet"] = ChannelPolicy{Name: "tcp_intranet", AllowSwitchChannel: true, NoSwitchChannel: true}
		}, "tcp_local"},
		{"no switchchannel on source", "tcp_intranet", func(m map[string]ChannelPolicy) {
			m["tcp_local"] = ChannelPolicy{Name: "tcp_local"}
		}, "tcp_local"},
		{"literal routes to source", "", nil, "tcp_local"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startServer(t, func(p *Policy, _ *Config) {
				if tt.mod != nil {
					tt.mod(p.Channels)
				}
			})
			e.rules.mu.Lock()
			e.rules.literal = tt.literal
			e.rules.mu.Unlock()
			c := dialRaw(t, e.addr)
			c.hello()
			c.cmd("MAIL FROM:<a@example.org>", "250")
			c.cmd("RCPT TO:<b@example.net>", "250")
			c.cmd("DATA", "354")
			c.send("\r\n.\r\n")
			c.expect("250")
			env, _ := e.q.get(0)
			if env.Source != tt.want {
				t.Errorf("Source = %q, want %q", env.Source, tt.want)
			}
			e.rules.mu.Lock()
			defer e.rules.mu.Unlock()
			if tt.want == "tcp_intranet" && e.rules.calls[0].Address != "postmaster@[127.0.0.1]" {
				t.Errorf("switch probe %+v", e.rules.calls[0])
			}
			// the RCPT is resolved from the session's source channel
			last := e.rules.calls[len(e.rules.calls)-1]
			if last.SourceChannel != tt.want {
				t.Errorf("RCPT resolved from %q", last.SourceChannel)
			}
		})
	}
}

func TestShutdown(t *testing.T) {
	e := startServer(t)
	idle := dialRaw(t, e.addr)
	idle.hello()
	busy := dialRaw(t, e.addr)
	busy.hello()
	busy.cmd("MAIL FROM:<a@example.org>", "250")
	busy.cmd("RCPT TO:<b@example.net>", "250")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	idle.expect("421 4.3.2 mx.test Service shutting down")
	// the transaction in progress may finish
	busy.cmd("DATA", "354")
	busy.send("\r\n.\r\n")
	busy.expect("250 2.0.0 Ok: queued")
	busy.expect("421 4.3.2") // and is told goodbye at its next command
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	if _, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
		t.Error("still accepting after Shutdown")
	}
}

func TestShutdownDeadline(t *testing.T) {
	e := startServer(t)
	busy := dialRaw(t, e.addr)
	busy.hello()
	busy.cmd("MAIL FROM:<a@example.org>", "250")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err == nil {
		t.Error("Shutdown returned nil with a session still open")
	}
	if got := busy.reply(); got != "EOF" {
		t.Errorf("after forced shutdown: %q", got)
	}
}

func TestIPv6Loopback(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	rules, acc := &fakeRules{}, &fakeAccess{}
	pol := basePolicy(rules, acc)
	q := &fakeQueue{}
	srv := New(Config{Policy: func() *Policy { return pol }, Queue: q})
	go srv.Serve(context.Background(), l)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	c := dialRaw(t, l.Addr().String())
	c.hello()
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.cmd("DATA", "354")
	c.send("\r\n.\r\n")
	c.expect("250")
	env, m := q.get(0)
	if env.Client != "client.test ([IPv6:::1])" || !bytes.HasPrefix(m, []byte("Received: from client.test ([IPv6:::1])")) {
		t.Errorf("client %q message %q", env.Client, m)
	}
	probes := acc.got()
	port := portOf(t, l.Addr().String())
	if !strings.HasPrefix(probes[0], "PORT_ACCESS TCP|::1|"+port+"|::1|") {
		t.Errorf("probe %q", probes[0])
	}
	rules.mu.Lock()
	defer rules.mu.Unlock()
	if rules.calls[0].Address != "postmaster@[IPv6:::1]" {
		t.Errorf("switchchannel probe %q", rules.calls[0].Address)
	}
}

// TestFailedEHLODoesNotGreet: after STARTTLS, a refused EHLO is not the new greeting.
func TestFailedEHLODoesNotGreet(t *testing.T) {
	e := startServer(t, func(_ *Policy, c *Config) { c.TLS = testTLSConfig(t) })
	c := dialRaw(t, e.addr)
	c.hello()
	c.send("STARTTLS\r\n")
	c.expect("220")
	c.upgrade()
	c.cmd("EHLO", "501")
	c.cmd("MAIL FROM:<a@example.org>", "503 5.5.1 Error: send HELO/EHLO first")
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<a@example.org>", "250")
}
