package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeTestCert writes a self-signed certificate for localhost into dir.
func writeTestCert(t *testing.T, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}

func TestSTARTTLSWhenCertificateConfigured(t *testing.T) {
	dir := t.TempDir()
	writeTestCert(t, dir)
	writeConfig(t, dir, map[string]string{
		"imta.cnf": "[127.]  $U%[127.$L]@localhost\n\nl\nlocalhost\n\ntcp_local smtp\ntcp-daemon\n",
		"dispatcher.cnf": "[SERVICE=SMTP]\nPORT=2525\nINTERFACE_ADDRESS=127.0.0.1\n" +
			"TLS_CERTIFICATE=cert.pem\nTLS_KEY=key.pem\n",
	})
	d, data := startDaemon(t, dir)
	c := dial(t, d.Addr().String())
	ehlo := c.Cmd("EHLO client.test", "250")
	if !strings.Contains(ehlo, "STARTTLS") {
		t.Fatalf("EHLO does not offer STARTTLS:\n%s", ehlo)
	}
	c.Cmd("STARTTLS", "220")
	c.StartTLS(&tls.Config{ServerName: "localhost", InsecureSkipVerify: true})
	c.Cmd("EHLO client.test", "250")
	c.Send("a@localhost", []string{"tlsuser@localhost"}, []byte("Subject: over TLS\r\n\r\nsecret\r\n"))
	got := waitMaildir(t, data, "tlsuser", 1)[0]
	if !strings.Contains(string(got), "ESMTPS") {
		t.Errorf("Received: does not say ESMTPS:\n%s", got)
	}
}

func TestNoSTARTTLSWithoutCertificate(t *testing.T) {
	d, _ := startDaemon(t, "")
	c := dial(t, d.Addr().String())
	if ehlo := c.Cmd("EHLO client.test", "250"); strings.Contains(ehlo, "STARTTLS") {
		t.Errorf("STARTTLS offered without a certificate:\n%s", ehlo)
	}
	var _ net.Conn = c.Conn()
}

// A renewed certificate (same configuration, new files) is presented after a reload,
// without a restart.
func TestCertificateRenewedByReload(t *testing.T) {
	dir := t.TempDir()
	writeTestCert(t, dir)
	writeConfig(t, dir, map[string]string{
		"imta.cnf": "[127.]  $U%[127.$L]@localhost\n\nl\nlocalhost\n\ntcp_local smtp\ntcp-daemon\n",
		"dispatcher.cnf": "[SERVICE=SMTP]\nPORT=2525\nINTERFACE_ADDRESS=127.0.0.1\n" +
			"TLS_CERTIFICATE=cert.pem\nTLS_KEY=key.pem\n",
	})
	d, _ := startDaemon(t, dir)
	serial := func() string {
		c := dial(t, d.Addr().String())
		c.Cmd("EHLO client.test", "250")
		c.Cmd("STARTTLS", "220")
		tc := c.StartTLS(&tls.Config{InsecureSkipVerify: true})
		defer tc.Close()
		return string(tc.ConnectionState().PeerCertificates[0].Raw)
	}
	first := serial()
	writeTestCert(t, dir) // a new key and certificate in the same files
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if serial() == first {
		t.Error("the old certificate is still presented after the reload")
	}
}

// A certificate added to dispatcher.cnf turns STARTTLS on at the next reload, and
// removing it turns STARTTLS off, without a restart; a session already in TLS
// keeps its connection.
func TestSTARTTLSAddedAndRemovedByReload(t *testing.T) {
	dir := t.TempDir()
	writeTestCert(t, dir)
	imta := "[127.]  $U%[127.$L]@localhost\n\nl\nlocalhost\n\ntcp_local smtp\ntcp-daemon\n"
	plain := "[SERVICE=SMTP]\nPORT=2525\nINTERFACE_ADDRESS=127.0.0.1\n"
	withCert := plain + "TLS_CERTIFICATE=cert.pem\nTLS_KEY=key.pem\n"
	writeConfig(t, dir, map[string]string{"imta.cnf": imta, "dispatcher.cnf": plain})
	d, data := startDaemon(t, dir)
	offered := func() bool {
		c := dial(t, d.Addr().String())
		defer c.Conn().Close()
		return strings.Contains(c.Cmd("EHLO client.test", "250"), "STARTTLS")
	}
	if offered() {
		t.Fatal("STARTTLS offered before a certificate is configured")
	}
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	c.Cmd("STARTTLS", "502")

	writeConfig(t, dir, map[string]string{"imta.cnf": imta, "dispatcher.cnf": withCert})
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if !offered() {
		t.Fatal("STARTTLS not offered after a certificate was added and the configuration reloaded")
	}
	inTLS := dial(t, d.Addr().String())
	inTLS.Cmd("EHLO client.test", "250")
	inTLS.Cmd("STARTTLS", "220")
	inTLS.StartTLS(&tls.Config{ServerName: "localhost", InsecureSkipVerify: true})
	inTLS.Cmd("EHLO client.test", "250")

	writeConfig(t, dir, map[string]string{"imta.cnf": imta, "dispatcher.cnf": plain})
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if offered() {
		t.Error("STARTTLS still offered after the certificate was removed and the configuration reloaded")
	}
	// the session that negotiated TLS before the removal goes on
	inTLS.Send("a@localhost", []string{"tlsuser@localhost"}, []byte("Subject: still TLS\r\n\r\nsecret\r\n"))
	if got := waitMaildir(t, data, "tlsuser", 1)[0]; !strings.Contains(string(got), "ESMTPS") {
		t.Errorf("Received: does not say ESMTPS:\n%s", got)
	}
}
