package channels

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	smtp "github.com/emersion/go-smtp"

	"mtad.dev/mta/dnsx"
)

// testPKI is a throw-away CA and a server certificate it signed.
type testPKI struct {
	roots  *x509.CertPool // holds the CA
	server tls.Certificate
}

// newPKI makes a CA and a server certificate for names (IP addresses become
// IP SANs, the rest DNS SANs).
func newPKI(t testing.TB, names ...string) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mtad test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return testPKI{roots: roots, server: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

func (p testPKI) serverConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
}

// tlsSink is a go-smtp sink offering STARTTLS with cfg; every DATA records
// whether it arrived over TLS.
func tlsSink(t *testing.T, cfg *tls.Config) (*sink, int, *[]bool) {
	var mu sync.Mutex
	var overTLS []bool
	be := &sink{dataErr: func(c *smtp.Conn, _ []byte) error {
		_, ok := c.TLSConnectionState()
		mu.Lock()
		overTLS = append(overTLS, ok)
		mu.Unlock()
		return nil
	}}
	port := startSink(t, be, func(s *smtp.Server) {
		s.TLSConfig = cfg
		s.ErrorLog = log.New(io.Discard, "", 0) // failed handshakes are the point here
	})
	return be, port, &overTLS
}

// connsOf counts the connections be saw (go-smtp starts a new session on the
// same connection after STARTTLS).
func connsOf(be *sink) int32 {
	be.mu.Lock()
	defer be.mu.Unlock()
	seen := map[*smtp.Conn]bool{}
	for _, c := range be.conns {
		seen[c] = true
	}
	return int32(len(seen))
}

// TestSMTPTLSPolicies runs each policy against servers with and without a
// usable STARTTLS and checks where the message went and how.
func TestSMTPTLSPolicies(t *testing.T) {
	pki := newPKI(t, "127.0.0.1", "mx.test")
	other := newPKI(t, "127.0.0.1") // a CA the client does not trust
	broken := &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return nil, errors.New("no certificate today")
	}}
	tests := []struct {
		name   string
		server *tls.Config // nil: no STARTTLS offered
		opts   func(*SMTPOptions)
		// want: "tls" delivered over TLS, "plain" delivered in plaintext,
		// "temp" temporary failure with nothing sent.
		want     string
		sessions int32  // connections the server saw
		reply    string // substring of Result.Reply (or the error text for temp)
	}{
		{"may, trusted", pki.serverConfig(), nil, "tls", 1, "(TLS1.3)"},
		{"may, untrusted, not verified", other.serverConfig(), nil, "tls", 1, "(TLS1.3)"},
		{"may, TLS 1.2 server", &tls.Config{Certificates: []tls.Certificate{pki.server}, MaxVersion: tls.VersionTLS12}, nil, "tls", 1, "(TLS1.2)"},
		{"may, no STARTTLS", nil, nil, "plain", 1, "smtp;250"},
		{"may, broken handshake", broken, nil, "plain", 2, "(no TLS: TLS handshake: "},
		{"may, verified, untrusted", other.serverConfig(), func(o *SMTPOptions) { o.TLSVerify = true }, "plain", 2, "certificate signed by unknown authority"},
		{"may, verified, trusted", pki.serverConfig(), func(o *SMTPOptions) {
			o.TLSVerify, o.TLSConfig = true, &tls.Config{RootCAs: pki.roots}
		}, "tls", 1, "(TLS1.3)"},
		{"none, offered", pki.serverConfig(), func(o *SMTPOptions) { o.TLS = TLSNone }, "plain", 1, "smtp;250"},
		{"must, trusted", pki.serverConfig(), func(o *SMTPOptions) {
			o.TLS, o.TLSConfig = TLSMust, &tls.Config{RootCAs: pki.roots}
		}, "tls", 1, "(TLS1.3)"},
		{"must, untrusted", other.serverConfig(), func(o *SMTPOptions) {
			o.TLS, o.TLSConfig = TLSMust, &tls.Config{RootCAs: pki.roots}
		}, "temp", 1, "TLS required but TLS with [127.0.0.1] failed"},
		{"must, untrusted, verification off", other.serverConfig(), func(o *SMTPOptions) {
			o.TLS, o.TLSConfig = TLSMust, &tls.Config{RootCAs: pki.roots, InsecureSkipVerify: true}
		}, "tls", 1, "(TLS1.3)"},
		{"must, no STARTTLS", nil, func(o *SMTPOptions) { o.TLS = TLSMust }, "temp", 1, "TLS required but not offered by [127.0.0.1]"},
		{"must, broken handshake", broken, func(o *SMTPOptions) { o.TLS = TLSMust }, "temp", 1, "handshake"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be, port, overTLS := tlsSink(t, tt.server)
			c := newClient(t, port, tt.opts)
			content := crlfContent()
			res := c.Deliver(testCtx(t), msgOf(content, "s@example.org", "a@example.com", "b@example.com"))
			if n := connsOf(be); n != tt.sessions {
				t.Errorf("server saw %d connections, want %d", n, tt.sessions)
			}
			if tt.want == "temp" {
				for i, r := range res {
					if r.Err == nil || !r.Err.Temporary() || r.Err.Enhanced != "4.7.5" {
						t.Fatalf("rcpt %d: %v, want temporary 4.7.5", i, r.Err)
					}
					if !strings.Contains(r.Err.Text, tt.reply) {
						t.Errorf("rcpt %d: %q does not mention %q", i, r.Err.Text, tt.reply)
					}
				}
				if n := be.mails.Load(); n != 0 {
					t.Fatalf("server saw %d MAIL commands without TLS", n)
				}
				return
			}
			wantDelivered(t, res, 2)
			for i, r := range res {
				if !strings.Contains(r.Reply, tt.reply) {
					t.Errorf("rcpt %d: reply %q does not mention %q", i, r.Reply, tt.reply)
				}
				if tt.want == "plain" && strings.Contains(r.Reply, "(TLS") {
					t.Errorf("rcpt %d: plaintext delivery claims TLS: %q", i, r.Reply)
				}
			}
			got := be.received()
			if len(got) != 1 || !bytes.Equal(got[0].data, content) {
				t.Fatalf("content not byte-exact (%d messages)", len(got))
			}
			if want := tt.want == "tls"; len(*overTLS) != 1 || (*overTLS)[0] != want {
				t.Fatalf("server saw DATA over TLS %v, want [%v]", *overTLS, want)
			}
		})
	}
}

// The certificate must name the host we meant to reach: the MX or smart host
// name, not merely be signed by a trusted CA.
func TestSMTPTLSHostName(t *testing.T) {
	pki := newPKI(t, "mx.test")
	for _, tt := range []struct {
		daemon string
		ok     bool
	}{
		{"mx.test", true},
		{"MX.Test", true},
		{"other.test", false},
		{"[127.0.0.1]", false}, // the certificate has no IP SAN
	} {
		t.Run(tt.daemon, func(t *testing.T) {
			be, port, _ := tlsSink(t, pki.serverConfig())
			c := newClient(t, port, func(o *SMTPOptions) {
				o.Daemon, o.TLS, o.TLSConfig = tt.daemon, TLSMust, &tls.Config{RootCAs: pki.roots}
				o.Resolver = &fakeResolver{hosts: map[string][]netip.Addr{
					"mx.test": {netip.MustParseAddr("127.0.0.1")}, "other.test": {netip.MustParseAddr("127.0.0.1")},
				}}
			})
			res := c.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@example.org", "a@example.com"))
			if tt.ok {
				wantDelivered(t, res, 1)
				return
			}
			if st := res[0].Err; st == nil || !st.Temporary() || !strings.Contains(st.Text, "certificate") {
				t.Fatalf("got %v, want temporary certificate failure", st)
			}
			if be.mails.Load() != 0 {
				t.Fatal("MAIL sent after a failed verification")
			}
		})
	}
}

// A cached connection stays TLS: the second message goes on the same session,
// over TLS, and says so.
func TestSMTPTLSReuse(t *testing.T) {
	pki := newPKI(t, "127.0.0.1")
	be, port, overTLS := tlsSink(t, pki.serverConfig())
	c := newClient(t, port, func(o *SMTPOptions) { o.TLS, o.TLSConfig = TLSMust, &tls.Config{RootCAs: pki.roots} })
	for i := range 3 {
		res := c.Deliver(testCtx(t), msgOf([]byte("m\r\n"), "s@example.org", "a@example.com"))
		wantDelivered(t, res, 1)
		if !strings.HasSuffix(res[0].Reply, "(TLS1.3)") {
			t.Errorf("message %d: reply %q", i, res[0].Reply)
		}
	}
	if n := connsOf(be); n != 1 {
		t.Errorf("%d connections, want 1 (cached connection)", n)
	}
	if len(*overTLS) != 3 || !(*overTLS)[0] || !(*overTLS)[1] || !(*overTLS)[2] {
		t.Errorf("over TLS: %v", *overTLS)
	}
}

// plainServer is a scripted ESMTP server offering STARTTLS that never does
// TLS: it answers STARTTLS with reply (and, for "220", then the extra bytes).
// It fails the test if it sees MAIL when mailOK is false.
func plainServer(t *testing.T, starttlsReply string, mailOK bool) (port int, mails *atomic.Int32) {
	mails = &atomic.Int32{}
	port = scripted(t, func(c net.Conn, r *bufio.Reader) {
		io.WriteString(c, "220 plain.test ESMTP\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			cmd := strings.ToUpper(strings.TrimSpace(line))
			switch {
			case strings.HasPrefix(cmd, "EHLO"):
				io.WriteString(c, "250-plain.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
			case cmd == "STARTTLS":
				io.WriteString(c, starttlsReply)
				if strings.HasPrefix(starttlsReply, "220") {
					// Never a handshake: the client must give up.
					io.Copy(io.Discard, r)
					return
				}
			case strings.HasPrefix(cmd, "MAIL"):
				mails.Add(1)
				if !mailOK {
					t.Errorf("server saw %q in plaintext", line)
					return
				}
				io.WriteString(c, "250 ok\r\n")
			case strings.HasPrefix(cmd, "DATA"):
				io.WriteString(c, "354 go\r\n")
				for {
					l, err := r.ReadString('\n')
					if err != nil || l == ".\r\n" {
						break
					}
				}
				io.WriteString(c, "250 2.0.0 queued\r\n")
			case cmd == "QUIT":
				io.WriteString(c, "221 bye\r\n")
				return
			default:
				io.WriteString(c, "250 ok\r\n")
			}
		}
	})
	return port, mails
}

func TestSMTPTLSScripted(t *testing.T) {
	tests := []struct {
		name    string
		reply   string // to STARTTLS
		policy  TLSPolicy
		ehlo    time.Duration
		wantErr string // "" delivered
		wantTag string
	}{
		// RFC 3207 §4: after a refusal the session goes on in plaintext under may.
		{"may, 454", "454 4.7.0 TLS not available\r\n", TLSMay, 0, "", "(no TLS: STARTTLS refused: 454 4.7.0 TLS not available)"},
		{"must, 454", "454 4.7.0 TLS not available\r\n", TLSMust, 0, "TLS required but STARTTLS refused by [127.0.0.1]: 454 4.7.0", ""},
		// Bytes pipelined behind the 220 are a plaintext injection.
		{"must, injection", "220 go ahead\r\n250 injected\r\n", TLSMust, 0, "after the 220 to STARTTLS", ""},
		// A server that never answers the ClientHello: the EHLO timeout bounds it.
		{"must, handshake timeout", "220 go ahead\r\n", TLSMust, 200 * time.Millisecond, "timeout", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port, mails := plainServer(t, tt.reply, tt.wantErr == "")
			c := newClient(t, port, func(o *SMTPOptions) {
				o.TLS = tt.policy
				if tt.ehlo > 0 {
					o.Timeouts.Ehlo = tt.ehlo
				}
			})
			start := time.Now()
			res := c.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@example.org", "a@example.com"))
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
			if tt.wantErr == "" {
				wantDelivered(t, res, 1)
				if !strings.HasSuffix(res[0].Reply, tt.wantTag) {
					t.Errorf("reply %q, want suffix %q", res[0].Reply, tt.wantTag)
				}
				return
			}
			st := res[0].Err
			if st == nil || !st.Temporary() || st.Enhanced != "4.7.5" || !strings.Contains(st.Text, tt.wantErr) {
				t.Fatalf("got %v, want temporary 4.7.5 mentioning %q", st, tt.wantErr)
			}
			if mails.Load() != 0 {
				t.Fatal("MAIL sent in plaintext")
			}
		})
	}
}

// Under musttls a host without TLS is skipped for the next MX, which has it.
func TestSMTPTLSMustNextMX(t *testing.T) {
	pki := newPKI(t, "mx2.test")
	plainPort, _ := plainServer(t, "454 4.7.0 no\r\n", false)
	be, tlsPort, overTLS := tlsSink(t, pki.serverConfig())
	var mu sync.Mutex
	var dialed []string
	c := newClient(t, 0, func(o *SMTPOptions) {
		o.Daemon, o.Port = "", 25
		o.TLS, o.TLSConfig = TLSMust, &tls.Config{RootCAs: pki.roots}
		o.Resolver = &fakeResolver{
			mx: map[string][]dnsx.MX{"example.com": {{Host: "mx1.test", Pref: 10}, {Host: "mx2.test", Pref: 20}}},
			hosts: map[string][]netip.Addr{
				"mx1.test": {netip.MustParseAddr("192.0.2.1")}, "mx2.test": {netip.MustParseAddr("192.0.2.2")},
			},
		}
		o.Dial = dialMap(map[string]int{"192.0.2.1": plainPort, "192.0.2.2": tlsPort}, &dialed, &mu)
	})
	res := c.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@example.org", "a@example.com"))
	wantDelivered(t, res, 1)
	if len(*overTLS) != 1 || !(*overTLS)[0] || connsOf(be) != 1 {
		t.Fatalf("over TLS %v, sessions %d", *overTLS, connsOf(be))
	}
	if !strings.HasPrefix(res[0].Remote, "mx2.test ") {
		t.Errorf("remote %q", res[0].Remote)
	}
}

// tlsRecorder is recorder (smtpproto_test.go) with STARTTLS: it logs both
// sides of the dialogue, before and inside TLS, for the golden transcript.
func tlsRecorder(t *testing.T, cfg *tls.Config) (int, func() string) {
	var mu sync.Mutex
	var log strings.Builder
	logf := func(s string) { mu.Lock(); log.WriteString(s); mu.Unlock() }
	port := scripted(t, func(raw net.Conn, r *bufio.Reader) {
		var c net.Conn = raw
		secure := false
		w := func(s string) {
			for _, l := range strings.SplitAfter(s, "\r\n") {
				if l != "" {
					logf("S: " + strings.TrimSuffix(l, "\r\n") + "\n")
				}
			}
			io.WriteString(c, s)
		}
		w("220 rec.test ESMTP\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			ahead, _ := r.Peek(r.Buffered())
			note := ""
			if n := bytes.Count(ahead, []byte("\n")); n > 0 {
				note = " [+" + string(rune('0'+n)) + " pipelined]"
			}
			logf("C: " + strings.TrimSuffix(line, "\r\n") + note + "\n")
			cmd := strings.ToUpper(strings.TrimSpace(line))
			switch {
			case strings.HasPrefix(cmd, "EHLO") && !secure:
				w("250-rec.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 STARTTLS\r\n")
			case strings.HasPrefix(cmd, "EHLO"):
				w("250-rec.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
			case cmd == "STARTTLS":
				w("220 2.0.0 ready\r\n")
				tc := tls.Server(raw, cfg)
				if err := tc.Handshake(); err != nil {
					logf("handshake failed: " + err.Error() + "\n")
					return
				}
				logf("-- TLS established\n")
				c, r, secure = tc, bufio.NewReader(tc), true
			case strings.HasPrefix(cmd, "DATA"):
				w("354 go ahead\r\n")
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					logf("D: " + strings.TrimSuffix(l, "\r\n") + "\n")
					if l == ".\r\n" {
						break
					}
				}
				w("250 2.0.0 queued\r\n")
			case cmd == "QUIT":
				w("221 2.0.0 bye\r\n")
				return
			default:
				w("250 2.0.0 ok\r\n")
			}
		}
	})
	return port, func() string { mu.Lock(); defer mu.Unlock(); return log.String() }
}

// TestSMTPTranscriptSTARTTLS pins the STARTTLS dialogue: nothing pipelined
// before the handshake, EHLO again inside TLS, then the pipelined transaction;
// the second message reuses the TLS session.
func TestSMTPTranscriptSTARTTLS(t *testing.T) {
	pki := newPKI(t, "127.0.0.1")
	port, transcript := tlsRecorder(t, pki.serverConfig())
	c := newClient(t, port, func(o *SMTPOptions) { o.TLS, o.TLSConfig = TLSMust, &tls.Config{RootCAs: pki.roots} })
	var res []Result
	res = append(res, c.Deliver(testCtx(t), msgOf([]byte("Subject: one\r\n\r\n.dot\r\n"), "s@example.org", "a@example.com"))...)
	res = append(res, c.Deliver(testCtx(t), msgOf([]byte("two\r\n"), "s@example.org", "b@example.com"))...)
	c.Close()
	var got strings.Builder
	got.WriteString(transcript())
	got.WriteString("--- results\n")
	for _, r := range res {
		st := "delivered"
		if r.Err != nil {
			st = r.Err.Error()
		}
		got.WriteString(st + " | " + r.Reply + "\n")
	}
	golden(t, filepath.Join("testdata", "transcript-starttls.golden"), got.String())
}
