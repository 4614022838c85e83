package daemon

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"mtad.dev/mta/auth"
)

// An untrusted client may not relay until it authenticates (over STARTTLS); then
// saslswitchchannel moves it to tcp_auth, which may. The password file is read from
// the data directory and a change to it takes effect without a restart.
func TestAuthenticatedRelay(t *testing.T) {
	sink := newSink(t)
	dir := t.TempDir()
	writeTestCert(t, dir)
	writeConfig(t, dir, map[string]string{
		"imta.cnf": fmt.Sprintf(`localhost  $U%%$D@localhost
.          $U%%$H@tcp-daemon

l
localhost

tcp_local smtp nomx daemon 127.0.0.1 port %d maytlsserver maysaslserver saslswitchchannel tcp_auth
tcp-daemon

tcp_auth smtp mustsaslserver noswitchchannel
tcp_auth-daemon
`, sink.port),
		"mappings": "ORIG_SEND_ACCESS\n\n  tcp_local|*|tcp_local|*  $X5.7.1|$NRelaying$ denied\n",
		"dispatcher.cnf": "[SERVICE=SMTP]\nPORT=2525\nINTERFACE_ADDRESS=127.0.0.1\n" +
			"TLS_CERTIFICATE=cert.pem\nTLS_KEY=key.pem\n",
	})
	d, data := startDaemon(t, dir)

	writePasswd := func(user, pw string) {
		s, err := auth.Load(filepath.Join(data, auth.DefaultFileName))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Set(user, pw, auth.MinCost); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteFile(filepath.Join(data, auth.DefaultFileName)); err != nil {
			t.Fatal(err)
		}
	}
	plain := func(user, pw string) string {
		return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pw))
	}
	writePasswd("alice", "first secret")

	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	c.Cmd("STARTTLS", "220")
	c.StartTLS(&tls.Config{InsecureSkipVerify: true})
	if ehlo := c.Cmd("EHLO client.test", "250"); !strings.Contains(ehlo, "AUTH PLAIN LOGIN") {
		t.Fatalf("AUTH not offered after STARTTLS:\n%s", ehlo)
	}
	c.Cmd("MAIL FROM:<alice@localhost>", "250")
	c.Cmd("RCPT TO:<bob@remote.example>", "550")
	c.Cmd("RSET", "250")
	c.Cmd("AUTH PLAIN "+plain("alice", "wrong"), "535")
	writePasswd("alice", "second secret") // mtactl passwd while mtad runs
	c.Cmd("AUTH PLAIN "+plain("alice", "first secret"), "535")
	c.Cmd("AUTH PLAIN "+plain("alice", "second secret"), "235")
	c.Send("alice@localhost", []string{"bob@remote.example"}, []byte("Subject: authenticated\r\n\r\nhi\r\n"))
	if m := sink.wait(t, 1)[0]; strings.Join(m.To, ",") != "bob@remote.example" {
		t.Errorf("sink got %v", m.To)
	}
}
