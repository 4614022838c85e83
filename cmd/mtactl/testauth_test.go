package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mtad.dev/mta/internal/dnstest"
)

// authDNS serves football.example.com's records: its SPF policy, DMARC
// p=reject and RFC 8463's two DKIM keys.
func authDNS(t *testing.T) string {
	srv := dnstest.Start(t)
	srv.Add(t,
		`football.example.com. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
		`_dmarc.football.example.com. 300 IN TXT "v=DMARC1; p=reject; rua=mailto:d@football.example.com"`,
		`brisbane._domainkey.football.example.com. 300 IN TXT "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="`)
	return srv.Addr
}

const authCnf = `football.example.com $U%$D@tcp-daemon
mx.example.net $U%$D@localhost

l
localhost

tcp_local smtp spfhelo spfmailfrom dkimverify dmarcverify
tcp-daemon
`

// The RFC 8463 message, its Ed25519 signature only, as a file would hold it.
const authMessage = `DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;
 d=football.example.com; i=@football.example.com;
 q=dns/txt; s=brisbane; t=1528637909; h=from : to :
 subject : date : message-id : from : subject : date;
 bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;
 b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus
 Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==
From: Joe SixPack <joe@football.example.com>
To: Suzie Q <suzie@shopping.example.net>
Subject: Is dinner ready?
Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)
Message-ID: <20030712040037.46341.5F8J@football.example.com>

Hi.

We lost the game.  Are you hungry yet?

Joe.
`

// TestTestAuthGolden: every DNS question and answer, each check with the
// configuration line that set its policy, and the Authentication-Results:
// field, for a signed message from an allowed client and for the same message
// forged (a client outside the SPF record, the body changed).
func TestTestAuthGolden(t *testing.T) {
	dns := authDNS(t)
	dir := t.TempDir()
	for name, text := range map[string]string{"imta.cnf": authCnf, "option.dat": "AUTHSERV_ID=mx.example.net\nSPF_SMTP_STATUS_SOFTFAIL=4\n"} {
		os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644)
	}
	msg := filepath.Join(dir, "msg.eml")
	forged := filepath.Join(dir, "forged.eml")
	os.WriteFile(msg, []byte(authMessage), 0o644)
	os.WriteFile(forged, []byte(strings.Replace(authMessage, "hungry", "thirsty", 1)), 0o644)
	var out bytes.Buffer
	for _, c := range []struct{ file, ip string }{{msg, "192.0.2.25"}, {forged, "203.0.113.9"}} {
		var stdout, stderr bytes.Buffer
		args := []string{"-config", dir, "test", "-auth", "-message", c.file, "-ip", c.ip, "-helo", "mail.football.example.com",
			"-from", "joe@football.example.com", "-nameserver", dns, "-noimage"}
		code := run(args, &stdout, &stderr)
		out.WriteString("$ mtactl test -auth -message " + filepath.Base(c.file) + " -ip " + c.ip + "\n")
		out.Write(stdout.Bytes())
		out.Write(stderr.Bytes())
		if code != 0 {
			t.Errorf("exit %d", code)
		}
	}
	checkGoldenFile(t, "testdata/test_auth.golden", strings.ReplaceAll(out.String(), dir, "$DIR"))
}

// spfquery: the product's options, -v's DNS trace, and -e's exit status.
func TestSpfquery(t *testing.T) {
	dns := authDNS(t)
	var stdout, stderr bytes.Buffer
	code := run([]string{"spfquery", "-i", "192.0.2.7", "-s", "joe@x", "-v", "-nameserver", dns, "-e", "pass", "football.example.com"}, &stdout, &stderr)
	want := "dns: TXT football.example.com: \"v=spf1 ip4:192.0.2.0/24 -all\"\nReceived-SPF: pass (mtactl: domain of football.example.com matched ip4)\n"
	if code != 0 || !strings.HasPrefix(stdout.String(), want) {
		t.Errorf("exit %d\n%s%s\nwant prefix\n%s", code, stdout.String(), stderr.String(), want)
	}
	if code := run([]string{"spfquery", "-i", "203.0.113.1", "-nameserver", dns, "-e", "pass", "football.example.com"}, &stdout, &stderr); code != 1 {
		t.Errorf("-e pass on a fail: exit %d, want 1", code)
	}
}

func checkGoldenFile(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil || string(want) != got {
		t.Errorf("%s differs (run with -update to accept)\n--- got\n%s--- want\n%s", path, got, want)
	}
}
