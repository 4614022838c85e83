package senderauth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"
)

// benchMessage is a 4 KiB message signed twice (RSA-2048 and Ed25519,
// relaxed/relaxed), with the DNS records every check needs served in process.
func benchMessage(b *testing.B) ([]byte, Resolver) {
	b.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	content := []byte("From: Ann <ann@bench.test>\r\nTo: bob@example.net\r\nSubject: bench\r\n" +
		"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <b@bench.test>\r\n\r\n" +
		strings.Repeat("The quick brown fox jumps over the lazy dog again.\r\n", 78))
	for _, s := range []struct {
		sel    string
		signer crypto.Signer
	}{{"rsa", rsaKey}, {"ed", edKey}} {
		var out bytes.Buffer
		err := dkim.Sign(&out, bytes.NewReader(content), &dkim.SignOptions{Domain: "bench.test", Selector: s.sel, Signer: s.signer,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed})
		if err != nil {
			b.Fatal(err)
		}
		content = out.Bytes()
	}
	txt := func(name, text string) string {
		rr := &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 3600}}
		for ; len(text) > 255; text = text[255:] {
			rr.Txt = append(rr.Txt, text[:255])
		}
		rr.Txt = append(rr.Txt, text)
		return rr.String()
	}
	r, _ := zone(b,
		txt("rsa._domainkey.bench.test.", "v=DKIM1; k=rsa; p="+base64.StdEncoding.EncodeToString(der)),
		txt("ed._domainkey.bench.test.", "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(edPub)),
		txt("bench.test.", "v=spf1 ip4:192.0.2.0/24 -all"),
		txt("_dmarc.bench.test.", "v=DMARC1; p=reject"))
	return content, r
}

// BenchmarkAuthMessage is what sender authentication adds to one message from
// an SMTP client with spfmailfrom and dmarcverify: the SPF check at MAIL FROM,
// then at the end of DATA the verification of two signatures (RSA-2048,
// Ed25519), DMARC and the fields, with the resolver's cache warm, as under
// load. docs/performance.md quotes it.
func BenchmarkAuthMessage(b *testing.B) {
	content, r := benchMessage(b)
	p := &Policy{AuthservID: "mx.test", Resolver: r, SPFHeaders: 2,
		Channels: map[string]Channel{"tcp_local": {SPFMailFrom: true, DMARC: true}}}
	ctx := context.Background()
	check := func() Outcome {
		tx := p.Begin("tcp_local", clientIP, "mail.bench.test", "ann@bench.test")
		tx.Sender(ctx)
		return tx.Message(ctx, content)
	}
	if out := check(); out.Verdict != VerdictPass || len(out.Results.DKIM) != 2 || out.Results.DKIM[0].Result != DKIMPass || out.Results.DKIM[1].Result != DKIMPass {
		b.Fatalf("%+v", out.Results)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		check()
	}
}

// BenchmarkSPF is one SPF check with a warm cache (spfmailfrom alone).
func BenchmarkSPF(b *testing.B) {
	_, r := benchMessage(b)
	s := &SPFSettings{}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res := s.CheckSPF(ctx, r, clientIP, "mail.bench.test", "ann@bench.test", "mailfrom"); res.Result != SPFPass {
			b.Fatal(res)
		}
	}
}
