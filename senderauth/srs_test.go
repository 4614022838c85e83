package senderauth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func testSRS(day time.Time) *SRS {
	return &SRS{Domain: "srs.example.org", Secrets: []string{"new-secret", "old-secret"}, MaxAge: 21 * 24 * time.Hour,
		Now: func() time.Time { return day }}
}

// A forwarded sender encodes under our domain and decodes back, whatever a
// relay does to its case; the null sender stays null.
func TestSRSRoundTrip(t *testing.T) {
	day := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s := testSRS(day)
	enc, err := s.Forward("Joe=Smith@Origin.Example")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "SRS0=") || !strings.HasSuffix(enc, "=Origin.Example=Joe=Smith@srs.example.org") {
		t.Fatalf("encoded %q", enc)
	}
	for _, addr := range []string{enc, strings.ToLower(enc), strings.ToUpper(enc[:len(enc)-len("@srs.example.org")]) + "@SRS.example.org"} {
		orig, ok, err := s.Reverse(addr)
		if !ok || err != nil || !strings.EqualFold(orig, "Joe=Smith@Origin.Example") {
			t.Errorf("Reverse(%q) = %q, %v, %v", addr, orig, ok, err)
		}
	}
	if null, err := s.Forward(""); null != "" || err != nil {
		t.Errorf("null sender became %q, %v", null, err)
	}
	if _, ok, _ := s.Reverse("postmaster@srs.example.org"); ok {
		t.Error("a plain address at our SRS domain counted as SRS")
	}
	if _, ok, _ := s.Reverse("SRS0=xxxx=AA=a.test=b@elsewhere.test"); ok {
		t.Error("an SRS address at another domain counted as ours")
	}
}

// A changed hash, a changed address or an unknown key is a forgery; an
// address older than srs_maxage is expired; a key rotated out still decodes
// while it is in the list.
func TestSRSForgedAndExpired(t *testing.T) {
	day := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s := testSRS(day)
	enc, _ := s.Forward("joe@origin.example")
	forged := []string{
		"SRS0=ZZZZ" + enc[9:],
		strings.Replace(enc, "joe@", "eve@", 1),
		strings.Replace(enc, "origin.example", "bank.example", 1),
		"SRS0=abcd=AA@srs.example.org",
	}
	for _, f := range forged {
		if _, ok, err := s.Reverse(f); !ok || !errors.Is(err, ErrSRSForged) {
			t.Errorf("Reverse(%q): %v, %v; want forged", f, ok, err)
		}
	}
	later := testSRS(day.Add(22 * 24 * time.Hour))
	if _, _, err := later.Reverse(enc); !errors.Is(err, ErrSRSExpired) {
		t.Errorf("22 days later: %v, want expired", err)
	}
	rotated := testSRS(day.Add(24 * time.Hour))
	rotated.Secrets = []string{"newest", "new-secret"}
	if orig, _, err := rotated.Reverse(enc); err != nil || orig != "joe@origin.example" {
		t.Errorf("after rotation: %q, %v", orig, err)
	}
	rotated.Secrets = []string{"newest"}
	if _, _, err := rotated.Reverse(enc); !errors.Is(err, ErrSRSForged) {
		t.Errorf("key removed: %v, want forged", err)
	}
}

// A second forwarder rewrites an SRS0 address as SRS1, keeping the first
// hop; its bounce decodes to the first forwarder's SRS0 address, which that
// forwarder decodes to the original sender. A third forwarder does not grow
// the address.
func TestSRSChain(t *testing.T) {
	day := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	first := testSRS(day)
	second := &SRS{Domain: "fwd2.example.net", Secrets: []string{"k2"}, Now: first.Now}
	third := &SRS{Domain: "fwd3.example.com", Secrets: []string{"k3"}, Now: first.Now}
	srs0, _ := first.Forward("joe@origin.example")
	srs1, _ := second.Forward(srs0)
	if !strings.HasPrefix(srs1, "SRS1=") || !strings.Contains(srs1, "=srs.example.org==") {
		t.Fatalf("second hop: %q", srs1)
	}
	srs1b, _ := third.Forward(srs1)
	if len(srs1b) > len(srs1)+len("fwd3.example.com")-len("fwd2.example.net")+1 {
		t.Errorf("third hop grew the address: %q from %q", srs1b, srs1)
	}
	back, _, err := third.Reverse(srs1b)
	if err != nil || back != srs0 {
		t.Fatalf("third hop decodes to %q, %v; want %q", back, err, srs0)
	}
	orig, _, err := first.Reverse(back)
	if err != nil || orig != "joe@origin.example" {
		t.Errorf("first hop decodes to %q, %v", orig, err)
	}
}
