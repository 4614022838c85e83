package senderauth

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"
)

// SRS is the Sender Rewriting Scheme of mail we forward: the envelope sender
// of a copy that leaves the site is re-encoded under our domain with a keyed
// hash and a day stamp, so that the next hop's SPF check sees our domain, and
// a bounce to that address is decoded back to the original sender. The
// address forms are the libsrs2 ones (the product's documentation names the
// options but not the format):
//
//	SRS0=HHHH=TT=orig-domain=orig-local@srs-domain
//	SRS1=HHHH=first-hop==HHHH=TT=orig-domain=orig-local@srs-domain
//
// HHHH is the first four characters of the base64 HMAC over the rest (the
// address parts lower-cased, so that a relay changing case does not break
// it), TT the day number modulo 1024 in two base32 characters. SRS1 is what a
// forwarder makes of an address another forwarder already rewrote: it keeps
// the first forwarder's domain and opaque part instead of growing the address
// at every hop, and decodes to the SRS0 address at that first forwarder.
type SRS struct {
	// Domain is srs_domain: the domain of the addresses we make; mail to it
	// must reach us.
	Domain string
	// Secrets is srs_secrets: the first signs, every one is tried when
	// decoding, so a key is rotated by adding the new one first, waiting
	// MaxAge, and removing the old one.
	Secrets []string
	// MaxAge is srs_maxage: how long an address we made stays valid
	// (default 21 days).
	MaxAge time.Duration
	// Hash is srs_hash_algorithm: "sha256" (default) or "sha1".
	Hash string
	// Now is the clock, for tests; nil: time.Now.
	Now func() time.Time
}

// DefaultSRSMaxAge is srs_maxage when the configuration gives none: libsrs2's
// default, which the product's documentation does not contradict.
const DefaultSRSMaxAge = 21 * 24 * time.Hour

// Errors of SRS decoding; both refuse the address as an unknown user.
var (
	ErrSRSForged  = errors.New("SRS address with a bad hash")
	ErrSRSExpired = errors.New("SRS address too old")
)

const (
	srsHashLen    = 4
	srsStampBase  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	srsStampRange = 1024 // two base32 characters
)

func (s *SRS) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Forward is the sender a forwarded copy of mail from from gets. The null
// sender stays null: a bounce has no sender to protect.
func (s *SRS) Forward(from string) (string, error) {
	if from == "" {
		return "", nil
	}
	if len(s.Secrets) == 0 || s.Domain == "" {
		return "", errors.New("SRS: srs_domain and srs_secrets are not both set")
	}
	at := strings.LastIndexByte(from, '@')
	if at <= 0 || at == len(from)-1 {
		return "", fmt.Errorf("SRS: %q has no domain", from)
	}
	local, domain := from[:at], from[at+1:]
	if strings.EqualFold(domain, s.Domain) && isSRS(local) {
		return from, nil // ours already: a bounce to it still decodes
	}
	if tag := strings.ToUpper(prefix(local, 4)); (tag == "SRS0" || tag == "SRS1") && len(local) > 5 && isSep(local[4]) {
		return s.forwardSRS(local, domain), nil
	}
	stamp := s.stamp(s.now())
	h := s.sign(s.Secrets[0], stamp, domain, local)
	return "SRS0=" + h + "=" + stamp + "=" + domain + "=" + local + "@" + s.Domain, nil
}

// forwardSRS rewrites an address another forwarder made (SRS0 or SRS1) as
// SRS1 under our domain.
func (s *SRS) forwardSRS(local, domain string) string {
	firstHop, opaque := domain, local[4:] // opaque keeps its separator: "=HHHH=TT=..."
	if strings.EqualFold(local[:4], "SRS1") {
		// SRS1=HHHH=first-hop==opaque: keep the first hop and its opaque part.
		parts := strings.SplitN(local[5:], "=", 3)
		if len(parts) == 3 {
			firstHop, opaque = parts[1], parts[2]
		}
	}
	h := s.sign(s.Secrets[0], firstHop, opaque)
	return "SRS1=" + h + "=" + firstHop + "=" + opaque + "@" + s.Domain
}

// Reverse decodes an address at our SRS domain. ok is false when the address
// is not one (it is then routed as it is); err is ErrSRSForged or
// ErrSRSExpired for one that does not verify.
func (s *SRS) Reverse(addr string) (orig string, ok bool, err error) {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || s.Domain == "" || !strings.EqualFold(addr[at+1:], s.Domain) || !isSRS(addr[:at]) {
		return "", false, nil
	}
	local := addr[:at]
	if strings.EqualFold(local[:4], "SRS1") {
		parts := strings.SplitN(local[5:], "=", 3) // HHHH, first-hop, opaque
		if len(parts) != 3 || !s.verify(parts[0], parts[1], parts[2]) {
			return "", true, ErrSRSForged
		}
		return "SRS0" + parts[2] + "@" + parts[1], true, nil
	}
	parts := strings.SplitN(local[5:], "=", 4) // HHHH, TT, domain, local
	if len(parts) != 4 || parts[2] == "" || parts[3] == "" {
		return "", true, ErrSRSForged
	}
	if !s.verify(parts[0], parts[1], parts[2], parts[3]) {
		return "", true, ErrSRSForged
	}
	if !s.fresh(parts[1]) {
		return "", true, ErrSRSExpired
	}
	return parts[3] + "@" + parts[2], true, nil
}

func isSRS(local string) bool {
	tag := strings.ToUpper(prefix(local, 4))
	return (tag == "SRS0" || tag == "SRS1") && len(local) > 5 && local[4] == '='
}

// isSep: libsrs2 accepts "=", "+" and "-" after the SRS tag of an address
// another forwarder made.
func isSep(c byte) bool { return c == '=' || c == '+' || c == '-' }

func prefix(s string, n int) string {
	if len(s) < n {
		return s
	}
	return s[:n]
}

// stamp is the day number modulo 1024 in two base32 characters.
func (s *SRS) stamp(t time.Time) string {
	day := t.Unix() / 86400 % srsStampRange
	return string([]byte{srsStampBase[day>>5], srsStampBase[day&31]})
}

// fresh reports whether a stamp is at most MaxAge old (and not from the
// future, beyond one day of clock skew).
func (s *SRS) fresh(stamp string) bool {
	if len(stamp) != 2 {
		return false
	}
	hi := strings.IndexByte(srsStampBase, upper(stamp[0]))
	lo := strings.IndexByte(srsStampBase, upper(stamp[1]))
	if hi < 0 || lo < 0 {
		return false
	}
	today := s.now().Unix() / 86400 % srsStampRange
	age := (today - int64(hi<<5|lo) + srsStampRange) % srsStampRange
	maxAge := s.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultSRSMaxAge
	}
	return age <= int64(maxAge/(24*time.Hour)) || age == srsStampRange-1
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

func (s *SRS) sign(secret string, parts ...string) string {
	newHash := sha256.New
	if strings.EqualFold(s.Hash, "sha1") {
		newHash = func() hash.Hash { return sha1.New() }
	}
	m := hmac.New(newHash, []byte(secret))
	for _, p := range parts {
		m.Write([]byte(strings.ToLower(p)))
	}
	return base64.StdEncoding.EncodeToString(m.Sum(nil))[:srsHashLen]
}

// verify checks a hash against every secret; the comparison ignores case, as
// libsrs2's does, since relays may change the case of an address.
func (s *SRS) verify(h string, parts ...string) bool {
	for _, secret := range s.Secrets {
		want := s.sign(secret, parts...)
		if subtle.ConstantTimeCompare([]byte(strings.ToLower(want)), []byte(strings.ToLower(h))) == 1 {
			return true
		}
	}
	return false
}
