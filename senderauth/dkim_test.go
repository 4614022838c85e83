package senderauth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

// RFC 8463 Appendix A: the message signed twice by football.example.com,
// with Ed25519 (selector brisbane) and RSA (selector test), and the two key
// records, as the RFC prints them.
const (
	rfc8463Signed = `DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;
 d=football.example.com; i=@football.example.com;
 q=dns/txt; s=brisbane; t=1528637909; h=from : to :
 subject : date : message-id : from : subject : date;
 bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;
 b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus
 Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;
 d=football.example.com; i=@football.example.com;
 q=dns/txt; s=test; t=1528637909; h=from : to : subject :
 date : message-id : from : subject : date;
 bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;
 b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3
 DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz
 dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=
From: Joe SixPack <joe@football.example.com>
To: Suzie Q <suzie@shopping.example.net>
Subject: Is dinner ready?
Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)
Message-ID: <20030712040037.46341.5F8J@football.example.com>

Hi.

We lost the game.  Are you hungry yet?

Joe.
`
	rfc8463Brisbane = `brisbane._domainkey.football.example.com. 300 IN TXT "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="`
	rfc8463Test     = `test._domainkey.football.example.com. 300 IN TXT "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB"`
	// rfc8463Seed is the Ed25519 private key of the example (RFC 8032's test 1).
	rfc8463Seed = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="
)

func TestDKIMRFC8463(t *testing.T) {
	r, _ := zone(t, rfc8463Brisbane, rfc8463Test)
	got := VerifyDKIM(testCtx(t), r, crlf(rfc8463Signed), 0)
	if len(got) != 2 {
		t.Fatalf("got %d results, want 2: %+v", len(got), got)
	}
	for i, sel := range []string{"brisbane", "test"} {
		g := got[i]
		if g.Result != DKIMPass || g.Domain != "football.example.com" || g.Selector != sel || g.Identifier != "@football.example.com" {
			t.Errorf("signature %d: %+v, want pass by football.example.com, s=%s", i, g, sel)
		}
	}
	if got[0].B != "/gCrinpc" {
		t.Errorf("header.b %q, want the first 8 characters of b=", got[0].B)
	}
	// One changed body byte breaks both.
	tampered := strings.Replace(rfc8463Signed, "hungry", "Hungry", 1)
	for _, g := range VerifyDKIM(testCtx(t), r, crlf(tampered), 0) {
		if g.Result != DKIMFail {
			t.Errorf("tampered body: %s (%s), want fail", g.Result, g.Problem)
		}
	}
}

// The RFC 8463 key pair is the one the appendix gives: the seed's public key
// is the brisbane record's p=.
func TestRFC8463KeyPair(t *testing.T) {
	seed, _ := base64.StdEncoding.DecodeString(rfc8463Seed)
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	if got := base64.StdEncoding.EncodeToString(pub); !strings.Contains(rfc8463Brisbane, got) {
		t.Errorf("public key %s is not the record's", got)
	}
}

// RFC 6376 §3.4.5's example, restated: its header and body, what relaxed and
// simple canonicalisation make of them as the RFC prints it, and a signature
// we make over exactly those canonical forms with the RFC 8463 key. The
// verifier passes it only if it canonicalises as the RFC says.
func TestDKIMCanonicalisationRFC6376(t *testing.T) {
	const header = "A: X\r\nB : Y\t\r\n\tZ  \r\n"
	const body = " C \r\nD \t E\r\n\r\n\r\n"
	cases := []struct {
		canon                string
		wantHeader, wantBody string
	}{
		{"relaxed/relaxed", "a:X\r\nb:Y Z\r\n", " C\r\nD E\r\n"},
		{"simple/simple", "A: X\r\nB : Y\t\r\n\tZ  \r\n", " C \r\nD \t E\r\n"},
	}
	seed, _ := base64.StdEncoding.DecodeString(rfc8463Seed)
	key := ed25519.NewKeyFromSeed(seed)
	for _, c := range cases {
		t.Run(c.canon, func(t *testing.T) {
			bh := sha256.Sum256([]byte(c.wantBody))
			sig := "v=1; a=ed25519-sha256; c=" + c.canon + "; d=football.example.com; s=brisbane; h=A:B:From; bh=" +
				base64.StdEncoding.EncodeToString(bh[:]) + "; b="
			signed := c.wantHeader + canonSigField(c.canon, sig)
			// From: is absent from the message but listed, as §5.4 allows; a
			// missing field adds nothing to the hash.
			h := sha256.Sum256([]byte(signed))
			b, err := key.Sign(nil, h[:], crypto.Hash(0))
			if err != nil {
				t.Fatal(err)
			}
			msg := "DKIM-Signature: " + sig + base64.StdEncoding.EncodeToString(b) + "\r\n" + header + "\r\n" + body
			r, _ := zone(t, rfc8463Brisbane)
			got := VerifyDKIM(testCtx(t), r, []byte(msg), 0)
			if len(got) != 1 || got[0].Result != DKIMPass {
				t.Fatalf("got %+v, want pass", got)
			}
		})
	}
}

// canonSigField is the DKIM-Signature field as the header hash includes it:
// with b= empty and no line end; relaxed lower-cases the name.
func canonSigField(canon, value string) string {
	if strings.HasPrefix(canon, "relaxed") {
		return "dkim-signature:" + value
	}
	return "DKIM-Signature: " + value
}

// RFC 8301: rsa-sha1 never passes; a revoked key (empty p=) and a missing key
// are permanent errors; a key lookup that times out is temporary.
func TestDKIMErrors(t *testing.T) {
	sig := func(a, s string) string {
		return "DKIM-Signature: v=1; a=" + a + "; d=example.test; s=" + s + "; h=From; bh=AAAA; b=AAAA\r\nFrom: a@example.test\r\n\r\nbody\r\n"
	}
	r, srv := zone(t,
		`revoked._domainkey.example.test. 300 IN TXT "v=DKIM1; p="`,
		`old._domainkey.example.test. 300 IN TXT "v=DKIM1; k=rsa; `+rfc8463Test[strings.Index(rfc8463Test, "p="):])
	srv.Drop("slow._domainkey.example.test", "TXT")
	for _, c := range []struct{ a, s, want string }{
		{"rsa-sha1", "old", DKIMPermError},
		{"rsa-sha256", "revoked", DKIMPermError},
		{"rsa-sha256", "missing", DKIMPermError},
		{"rsa-sha256", "slow", DKIMTempError},
	} {
		got := VerifyDKIM(testCtx(t), r, []byte(sig(c.a, c.s)), 0)
		if len(got) != 1 || got[0].Result != c.want {
			t.Errorf("a=%s s=%s: %+v, want %s", c.a, c.s, got, c.want)
		}
	}
}

// At most max signatures are verified; the rest are not reported.
func TestDKIMMaxSignatures(t *testing.T) {
	r, _ := zone(t, rfc8463Brisbane, rfc8463Test)
	if got := VerifyDKIM(testCtx(t), r, crlf(rfc8463Signed), 1); len(got) != 1 || got[0].Result != DKIMPass {
		t.Errorf("max 1: %+v", got)
	}
}
