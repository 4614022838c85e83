package smtpserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

func testTLSConfig(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mx.test"},
		DNSNames:     []string{"mx.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// upgrade turns a raw client into a TLS one after the server's 220.
func (r *rawClient) upgrade() {
	r.t.Helper()
	r.StartTLS(&tls.Config{InsecureSkipVerify: true})
}

func TestStartTLS(t *testing.T) {
	e := startServer(t, func(_ *Policy, c *Config) { c.TLS = testTLSConfig(t) })
	c := dialRaw(t, e.addr)
	c.expect("220")
	if ehlo := c.cmd("EHLO client.test", "250"); !strings.Contains(ehlo, "\n250-STARTTLS\n") || !strings.HasSuffix(ehlo, "\n250 SIZE 52428800") {
		t.Errorf("EHLO before TLS:\n%s", ehlo)
	}
	c.cmd("STARTTLS extra", "501 5.5.4")
	// A command pipelined after STARTTLS travels in clear text: it must be dropped,
	// never run inside the TLS session (RFC 3207 §4.2, command injection).
	c.send("STARTTLS\r\nRSET\r\n")
	c.expect("220 2.0.0 Ready to start TLS")
	c.upgrade()
	c.cmd("MAIL FROM:<a@example.org>", "503 5.5.1 Error: send HELO/EHLO first")
	if ehlo := c.cmd("EHLO client.test", "250"); strings.Contains(ehlo, "STARTTLS") {
		t.Errorf("STARTTLS offered inside TLS:\n%s", ehlo)
	}
	c.cmd("STARTTLS", "503 5.5.1")
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.cmd("DATA", "354")
	c.send("Subject: tls\r\n\r\nx\r\n.\r\n")
	c.expect("250 2.0.0 Ok: queued")
	c.cmd("QUIT", "221")
	_, content := e.q.get(0)
	if !strings.Contains(string(content), " with ESMTPS id ") {
		t.Errorf("Received: %q", content)
	}
	if log := e.mailLog(t); !strings.Contains(log, " tcp_local tcp_local EES 1 a@example.org ") {
		t.Errorf("mail.log:\n%s", log)
	}
}

func TestStartTLSNotConfigured(t *testing.T) {
	e := startServer(t)
	c := dialRaw(t, e.addr)
	c.hello()
	c.cmd("STARTTLS", "502 5.5.1")
	c.cmd("NOOP", "250")
}

// TestStartTLSForgetsTransaction: STARTTLS forgets the transaction in progress
// with everything else (RFC 3207 §4.2): after it, RCPT needs a new MAIL and DATA
// is refused before any 354.
func TestStartTLSForgetsTransaction(t *testing.T) {
	e := startServer(t, func(_ *Policy, c *Config) { c.TLS = testTLSConfig(t) })
	c := dialRaw(t, e.addr)
	c.hello()
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.cmd("STARTTLS", "220")
	c.upgrade()
	c.cmd("DATA", "503 5.5.1 Error: need RCPT command")
	c.cmd("RCPT TO:<b@example.net>", "503 5.5.1 Error: need MAIL command")
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<a@example.org>", "250")
}
