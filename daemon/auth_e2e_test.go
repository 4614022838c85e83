package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mtad.dev/mta/internal/dnstest"
	"mtad.dev/mta/internal/smtptest"
)

// authJobs is the job controller of the sender authentication tests' daemons.
const authJobs = "[POOL=DEFAULT]\nJOB_LIMIT=4\n[POOL=LOCAL_POOL]\nJOB_LIMIT=2\n[POOL=SMTP_POOL]\nJOB_LIMIT=4\n"

// startAuthDaemon writes a configuration (file name to text) and runs an mtad
// on port with every DNS question going to dns.
func startAuthDaemon(t *testing.T, port int, dns string, files map[string]string) (*Daemon, string) {
	t.Helper()
	dir := t.TempDir()
	files["dispatcher.cnf"] = dispatcher(port)
	files["job_controller.cnf"] = authJobs
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data := t.TempDir()
	d, err := Start(context.Background(), Options{ConfigDir: dir, DataDir: data, NoticeUnit: time.Second,
		Listen: fmt.Sprintf("127.0.0.1:%d", port), DNSServers: []string{dns},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d.Shutdown(ctx)
	})
	return d, data
}

// A forged From: of a domain whose DMARC policy is p=reject is refused in the
// SMTP transaction, 550 5.7.1, and logged J; the same message signed off by
// an aligned SPF pass is delivered with our Authentication-Results: on top.
func TestDMARCRejectE2E(t *testing.T) {
	dns := dnstest.Start(t)
	dns.Add(t, `_dmarc.bank.test. 300 IN TXT "v=DMARC1; p=reject"`,
		`bank.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"`,
		`mail.bank.test. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"`)
	port := freePort(t)
	d, data := startAuthDaemon(t, port, dns.Addr, map[string]string{
		"imta.cnf": "mx.test $U%$D@localhost\n. $U%$H@tcp-daemon\n\n" +
			"l pool LOCAL_POOL\nlocalhost\n\ntcp_local smtp spfmailfrom dmarcverify pool SMTP_POOL\ntcp-daemon\n",
		"option.dat": "AUTHSERV_ID=mx.test\n",
	})
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO attacker.test", "250")
	c.Cmd("MAIL FROM:<x@attacker.test>", "250")
	c.Cmd("RCPT TO:<victim@mx.test>", "250")
	c.Cmd("DATA", "354")
	c.Write("From: CEO <ceo@bank.test>\r\nSubject: wire the money\r\n\r\nnow\r\n.\r\n")
	if r := c.Reply(); !strings.HasPrefix(r, "550 5.7.1 ") || !strings.Contains(r, "DMARC") {
		t.Fatalf("forged From: got %q, want 550 5.7.1", r)
	}
	waitLog(t, data, func(f []string) bool {
		return len(f) > 4 && f[4] == "J" && strings.Contains(strings.Join(f, " "), "DMARC")
	})

	c.Cmd("MAIL FROM:<ceo@mail.bank.test>", "250")
	c.Cmd("RCPT TO:<victim@mx.test>", "250")
	c.Data([]byte("From: CEO <ceo@bank.test>\r\nSubject: real\r\n\r\nhello\r\n"), "250")
	c.Cmd("QUIT", "221")
	got := string(waitMaildir(t, data, "victim", 1)[0])
	if !strings.Contains(got, "Authentication-Results: mx.test;\n\tspf=pass smtp.mailfrom=ceo@mail.bank.test;\n\tdkim=none;\n\tdmarc=pass header.from=bank.test\n") {
		t.Errorf("delivered message lacks our Authentication-Results:\n%s", got)
	}
}

// An aliased message forwarded with SRS passes SPF at the next hop, and the
// next hop's bounce comes home: forwarder A expands friend@fwd.test to
// bob@next.test and sends the copy from an SRS0 address at srs.fwd.test; next
// hop B checks SPF (without SRS the original sender's record refuses our
// address, as the control shows), accepts, fails to deliver, and bounces to
// the SRS address; A decodes it and the bounce reaches joe@origin.test's own
// server. A forged SRS address is refused.
func TestSRSForwardingE2E(t *testing.T) {
	dns := dnstest.Start(t)
	dns.Add(t, `origin.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"`,
		`srs.fwd.test. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"`)
	home := newSink(t) // joe@origin.test's own server
	dead := smtptest.StartSink(t, smtptest.SinkConfig{Rcpt: func(string, int) error {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
	}})
	portA, portB := freePort(t), freePort(t)
	a, _ := startAuthDaemon(t, portA, dns.Addr, map[string]string{
		"imta.cnf": "fwd.test $U%$D@localhost\nnext.test $U%$D@tcp_b-daemon\norigin.test $U%$D@tcp_o-daemon\n. $U%$H@tcp-daemon\n\n" +
			"l pool LOCAL_POOL\nlocalhost\n\n" +
			"tcp_local smtp sourcesrs pool SMTP_POOL\ntcp-daemon\n\n" +
			fmt.Sprintf("tcp_b smtp nomx daemon 127.0.0.1 port %d destinationsrs pool SMTP_POOL\ntcp_b-daemon\n\n", portB) +
			fmt.Sprintf("tcp_o smtp nomx daemon 127.0.0.1 port %d addresssrs pool SMTP_POOL\ntcp_o-daemon\n", home.port),
		"option.dat": "SRS_DOMAIN=srs.fwd.test\nSRS_SECRETS=first-key,older-key\n",
		"aliases":    "friend: bob@next.test\n",
	})
	b, _ := startAuthDaemon(t, portB, dns.Addr, map[string]string{
		"imta.cnf": "next.test $U%$D@tcp_dead-daemon\nsrs.fwd.test $U%$D@tcp_a-daemon\n. $U%$H@tcp-daemon\n\n" +
			"l pool LOCAL_POOL\nlocalhost\n\n" +
			"tcp_local smtp spfmailfrom pool SMTP_POOL\ntcp-daemon\n\n" +
			fmt.Sprintf("tcp_dead smtp nomx daemon 127.0.0.1 port %d pool SMTP_POOL\ntcp_dead-daemon\n\n", dead.Port) +
			fmt.Sprintf("tcp_a smtp nomx daemon 127.0.0.1 port %d pool SMTP_POOL\ntcp_a-daemon\n", portA),
		"option.dat": "AUTHSERV_ID=next.test\nRETURN_ADDRESS=postmaster@next.test\n",
	})

	// Control: joe's own address from our IP fails SPF at B.
	cb := dial(t, b.Addr().String())
	cb.Cmd("EHLO fwd.test", "250")
	cb.Cmd("MAIL FROM:<joe@origin.test>", "550 5.7.23")
	cb.Cmd("MAIL FROM:<SRS0=AAAA=AA=origin.test=joe@srs.fwd.test>", "250")
	cb.Cmd("QUIT", "221")

	ca := dial(t, a.Addr().String())
	ca.Cmd("EHLO origin.test", "250")
	ca.Send("joe@origin.test", []string{"friend@fwd.test"}, []byte("From: joe@origin.test\r\nSubject: forwarded\r\n\r\nhi\r\n"))
	ca.Cmd("MAIL FROM:<>", "250")
	ca.Cmd("RCPT TO:<SRS0=ZZZZ=AA=origin.test=joe@srs.fwd.test>", "550 5.1.1")
	ca.Cmd("QUIT", "221")

	bounce := home.wait(t, 1)[0]
	if bounce.From != "" || len(bounce.To) != 1 || bounce.To[0] != "joe@origin.test" {
		t.Fatalf("bounce from <%s> to %v, want from <> to joe@origin.test", bounce.From, bounce.To)
	}
	body := string(bounce.Data)
	if !strings.Contains(body, "bob@next.test") || !strings.Contains(body, `spf=pass smtp.mailfrom="SRS0=`) {
		t.Errorf("the bounce does not show B's SPF pass for the SRS sender:\n%s", body)
	}
}
