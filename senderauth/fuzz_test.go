package senderauth

import (
	"strings"
	"testing"
)

// FuzzDKIMSignature feeds arbitrary DKIM-Signature field bodies, over the RFC
// 8463 message, to the verifier with the RFC's keys served by an in-process
// DNS server: it must never panic, must give one result per field, and must
// never pass a signature unless it is the RFC's own (same d=, b= and bh=).
func FuzzDKIMSignature(f *testing.F) {
	signed := string(crlf(rfc8463Signed))
	first := signed[len("DKIM-Signature:"):strings.Index(signed, "DKIM-Signature: v=1; a=rsa")]
	body := signed[strings.Index(signed, "From: Joe"):]
	f.Add(first)
	f.Add(" v=1; a=rsa-sha256; d=football.example.com; s=test; h=from; bh=; b=\r\n")
	f.Add(" v=1; a=ed25519-sha256; c=relaxed/relaxed; d=football.example.com; s=brisbane; l=0; h=from:from:from; bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; b=AA==\r\n")
	f.Add(" v=1; a=rsa-sha1; q=dns/txt; x=1; t=2; i=@example.com; d=football.example.com; s=brisbane; h=; bh=; b=\r\n")
	r, _ := zone(f, rfc8463Brisbane, rfc8463Test)
	f.Fuzz(func(t *testing.T, value string) {
		if strings.ContainsAny(strings.TrimRight(value, "\r\n"), "\r\n") && !strings.Contains(value, "\r\n ") {
			return // a line end must continue the field, or the field ends there
		}
		if !strings.HasSuffix(value, "\r\n") {
			value += "\r\n"
		}
		got := VerifyDKIM(testCtx(t), r, []byte("DKIM-Signature:"+value+body), 0)
		for _, g := range got {
			if g.Result == DKIMPass && value != first {
				if norm(value) != norm(first) {
					t.Errorf("a signature that is not the RFC's passed: %q", value)
				}
			}
		}
	})
}

func norm(s string) string { return strings.Join(strings.Fields(s), "") }

// FuzzDMARCRecord feeds arbitrary record texts to the DMARC record reading:
// no panic, and a record that reads has a policy the evaluation knows, its
// np= too when present.
func FuzzDMARCRecord(f *testing.F) {
	for _, s := range []string{"v=DMARC1; p=reject", "v=DMARC1; p=bogus; rua=mailto:a@b", "v=DMARC1;p=none;sp=quarantine;np=reject;pct=50;adkim=s;aspf=r",
		"v=DMARC1; p=reject; pct=101", "v=DMARC1; fo=0:1:d:s; ri=0", "v=DMARC1; ;;; p = quarantine ; rua = , ,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		rec, err := parseDMARC(text)
		if err != nil {
			return
		}
		switch rec.Policy {
		case PolicyNone, PolicyQuarantine, PolicyReject:
		default:
			t.Errorf("%q read with policy %q", text, rec.Policy)
		}
		if rec.Percent != nil && (*rec.Percent < 0 || *rec.Percent > 100) {
			t.Errorf("%q read with pct %d", text, *rec.Percent)
		}
		_ = dmarcTag(text, "np")
		_ = withPolicyNone(text)
	})
}
