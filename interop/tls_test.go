package interop

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/internal/smtptest"
)

// selfSignedPEM returns a fresh self-signed certificate for mtad.test and
// 127.0.0.1 and its key, PEM-encoded, as dispatcher.cnf's TLS_CERTIFICATE and
// TLS_KEY files want them.
func selfSignedPEM(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "mtad.test"},
		DNSNames:     []string{"mtad.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

// startAuthMtad starts mtad offering STARTTLS with a certificate of the test's, and
// AUTH inside TLS on tcp_local (saslswitchchannel tcp_auth), with the user alice.
func startAuthMtad(t *testing.T) *mtad {
	t.Helper()
	cert, key := selfSignedPEM(t)
	m := startMtad(t, map[string]string{
		"imta.cnf": `! interop: STARTTLS and AUTH for outside clients
mtad.test       $U%$D@mtad.test

l
mtad.test

tcp_local smtp nomx single_sys identnonenumeric maytlsserver maysaslserver saslswitchchannel tcp_auth
tcp-daemon

tcp_auth smtp nomx single_sys mustsaslserver noswitchchannel
tcp_auth-daemon
`,
		"dispatcher.cnf": "[SERVICE=SMTP]\nPORT=2525\nINTERFACE_ADDRESS=127.0.0.1\nTLS_CERTIFICATE=cert.pem\nTLS_KEY=key.pem\n",
		"option.dat":     "LOG_CONNECTION=3\nLOG_MESSAGE_ID=1\n",
		"cert.pem":       cert,
		"key.pem":        key,
	})
	m.setPassword(t, "alice", "interop secret")
	return m
}

// checkAuthenticatedDelivery checks what an authenticated TLS submission leaves:
// the message in bob's Maildir byte-exact under our trace fields, with our
// Received: saying ESMTPSA and naming the client's EHLO, and the mail.log records
// of the AUTH (U) and of the message (E with the S and A modifiers, from tcp_auth).
func checkAuthenticatedDelivery(t *testing.T, m *mtad, helo, subject string, content []byte) {
	t.Helper()
	stored := withSubject(t, waitMaildir(t, m.mailbox("bob"), 1), subject)
	fields := traceFields(t, stored, content)
	rcvd := fieldsNamed(fields, "Received")
	want := "Received: from " + helo + " ([127.0.0.1]) by mtad.test (mtad) with ESMTPSA id "
	if len(rcvd) != 1 || !strings.HasPrefix(rcvd[0], want) {
		t.Errorf("Received: %q, want one starting %q", rcvd, want)
	}
	m.waitLog(t, "U record of alice", func(l string) bool {
		return containsAll(l, " tcp_local UES 0 alice ", " AUTH PLAIN ", " 235 2.7.0 ")
	})
	m.waitLog(t, "E record of "+subject, func(l string) bool {
		return containsAll(l, " tcp_auth l EESA ", " alice@mtad.test ", "<"+subject+"@interop.test>")
	})
}

// TestSwaksStartTLSAuth: swaks, the administrator's SMTP test tool, submits a
// message over STARTTLS with AUTH PLAIN. mtad offers AUTH only inside TLS,
// accepts alice's password (set with mtactl passwd), and delivers.
func TestSwaksStartTLSAuth(t *testing.T) {
	t.Parallel()
	swaks := requireProgram(t, "swaks", "swaks")
	m := startAuthMtad(t)
	content := message("alice@mtad.test", "bob@mtad.test", "by-swaks", "",
		"Sent by swaks over STARTTLS after AUTH PLAIN.\r\n.A dot line.\r\nLast line.\r\n")
	// swaks reads the DATA from a file, turns LF into CRLF, stuffs dots and adds
	// the final CRLF.CRLF: the file holds the content without its last CRLF.
	data := filepath.Join(t.TempDir(), "data")
	writeFile(t, data, strings.TrimSuffix(string(content), "\r\n"))
	out, err := run(t, time.Minute, "", swaks, "--server", "127.0.0.1", "--port", fmt.Sprint(portOf(t, m.addr)),
		"--ehlo", "swaks.test", "--tls", "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "interop secret",
		"--from", "alice@mtad.test", "--to", "bob@mtad.test", "--data", "@"+data, "--timeout", "20")
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	for _, want := range []string{"<-  220 ", "-> STARTTLS", "TLS started", "~> AUTH PLAIN", "<~  235 ", "<~  250 "} {
		if !strings.Contains(out, want) {
			t.Errorf("swaks transcript has no %q:\n%s", want, out)
		}
	}
	checkAuthenticatedDelivery(t, m, "swaks.test", "by-swaks", content)
}

// TestOpenSSLStartTLSAuth: the same submission typed through openssl s_client
// -starttls smtp, the way an administrator checks a server's certificate and
// then talks to it by hand: EHLO again inside TLS, AUTH PLAIN, one message.
func TestOpenSSLStartTLSAuth(t *testing.T) {
	t.Parallel()
	openssl := requireProgram(t, "openssl", "openssl")
	m := startAuthMtad(t)
	s := startSClient(t, openssl, m.addr)

	ehlo := s.cmd(t, "EHLO openssl.test", "250")
	if !strings.Contains(ehlo, "AUTH PLAIN LOGIN") {
		t.Fatalf("AUTH not offered inside TLS:\n%s", ehlo)
	}
	s.cmd(t, "AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00alice\x00interop secret")), "235")
	s.cmd(t, "MAIL FROM:<alice@mtad.test>", "250")
	s.cmd(t, "RCPT TO:<bob@mtad.test>", "250")
	s.cmd(t, "DATA", "354")
	content := message("alice@mtad.test", "bob@mtad.test", "by-openssl", "",
		"Typed through openssl s_client.\r\n.A dot line.\r\n")
	s.write(t, string(smtptest.Stuff(content)))
	s.expect(t, "250")
	s.cmd(t, "QUIT", "221")
	checkAuthenticatedDelivery(t, m, "openssl.test", "by-openssl", content)
}

// sclient is an openssl s_client process talked to through its standard input
// and output: it did the STARTTLS exchange itself, and carries what we write over
// TLS and prints what the server answers.
type sclient struct {
	stdin io.WriteCloser
	lines chan string
	proc  *child
}

// startSClient runs openssl s_client -starttls smtp against addr. -quiet keeps
// the certificate details out of the output (and the letters Q and R, which would
// otherwise be commands, as text: "RCPT" begins with R).
func startSClient(t *testing.T, openssl, addr string) *sclient {
	t.Helper()
	cmd := exec.Command(openssl, "s_client", "-connect", addr, "-starttls", "smtp", "-name", "openssl.test", "-quiet")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &sclient{stdin: stdin, lines: make(chan string, 64)}
	s.proc = startChild(t, "openssl s_client", cmd)
	go func() {
		defer close(s.lines)
		r := bufio.NewReader(stdout)
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				s.lines <- line
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { stdin.Close() })
	return s
}

func (s *sclient) write(t *testing.T, text string) {
	t.Helper()
	if _, err := io.WriteString(s.stdin, text); err != nil {
		t.Fatalf("write to s_client: %v\n%s", err, s.proc.out)
	}
}

// expect reads one whole reply and requires it to start with code.
func (s *sclient) expect(t *testing.T, code string) string {
	t.Helper()
	var reply strings.Builder
	deadline := time.After(deliverWithin)
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				t.Fatalf("s_client ended before the reply (so far %q):\n%s", reply.String(), s.proc.out)
			}
			reply.WriteString(line)
			if len(line) >= 4 && line[3] == '-' {
				continue
			}
			if !strings.HasPrefix(reply.String(), code) {
				t.Fatalf("want %s, got %q", code, reply.String())
			}
			return reply.String()
		case <-deadline:
			t.Fatalf("no reply in %v (so far %q):\n%s", deliverWithin, reply.String(), s.proc.out)
		}
	}
}

// cmd sends one command line and requires its reply to start with code.
func (s *sclient) cmd(t *testing.T, line, code string) string {
	t.Helper()
	s.write(t, line+"\r\n")
	return s.expect(t, code)
}
