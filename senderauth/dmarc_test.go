package senderauth

import (
	"os"
	"strings"
	"testing"
)

// dmarcZone is a world of domains with DMARC records and SPF records:
// reject.test rejects (sp=quarantine, np=reject), quar.test quarantines half
// its mail, none.test only watches, strict.test wants strict alignment.
func dmarcZone(t *testing.T) Resolver {
	r, _ := zone(t,
		`_dmarc.reject.test. 300 IN TXT "v=DMARC1; p=reject; sp=quarantine; np=reject"`,
		`reject.test. 300 IN TXT "v=spf1 ip4:198.51.100.1 -all"`,
		`mail.reject.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"`,
		`exists.reject.test. 300 IN A 198.51.100.7`,
		`_dmarc.quar.test. 300 IN TXT "v=DMARC1; p=quarantine; pct=50"`,
		`_dmarc.none.test. 300 IN TXT "v=DMARC1; p=none; rua=mailto:r@none.test"`,
		`_dmarc.strict.test. 300 IN TXT "v=DMARC1; p=reject; aspf=s"`,
		`mail.strict.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"`,
		`_dmarc.badp.test. 300 IN TXT "v=DMARC1; p=bogus; rua=mailto:r@badp.test"`,
		`_dmarc.two.test. 300 IN TXT "v=DMARC1; p=reject"`,
		`_dmarc.two.test. 300 IN TXT "v=DMARC1; p=none"`)
	return r
}

func TestDMARCEvaluate(t *testing.T) {
	r := dmarcZone(t)
	spfPass := func(d string) *SPFResult { return &SPFResult{Result: SPFPass, Domain: d} }
	for _, c := range []struct {
		name, domain   string
		in             DMARCInput
		result, policy string
		policyDomain   string
	}{
		{"forged", "reject.test", DMARCInput{SPF: &SPFResult{Result: SPFFail, Domain: "reject.test"}}, DMARCFail, PolicyReject, "reject.test"},
		{"relaxed SPF alignment", "reject.test", DMARCInput{SPF: spfPass("mail.reject.test")}, DMARCPass, PolicyReject, "reject.test"},
		{"unaligned SPF pass", "reject.test", DMARCInput{SPF: spfPass("other.test")}, DMARCFail, PolicyReject, "reject.test"},
		{"aligned DKIM", "reject.test", DMARCInput{DKIM: []DKIMResult{{Domain: "reject.test", Result: DKIMPass}}}, DMARCPass, PolicyReject, "reject.test"},
		{"failing DKIM", "reject.test", DMARCInput{DKIM: []DKIMResult{{Domain: "reject.test", Result: DKIMFail}}}, DMARCFail, PolicyReject, "reject.test"},
		{"temporary DKIM", "reject.test", DMARCInput{DKIM: []DKIMResult{{Domain: "reject.test", Result: DKIMTempError}}}, DMARCTempError, PolicyReject, "reject.test"},
		{"subdomain sp=", "exists.reject.test", DMARCInput{}, DMARCFail, PolicyQuarantine, "reject.test"},
		{"non-existent subdomain np=", "nx.reject.test", DMARCInput{}, DMARCFail, PolicyReject, "reject.test"},
		{"strict SPF alignment", "strict.test", DMARCInput{SPF: spfPass("mail.strict.test")}, DMARCFail, PolicyReject, "strict.test"},
		{"p=none", "none.test", DMARCInput{}, DMARCFail, PolicyNone, "none.test"},
		{"bad p= with rua", "badp.test", DMARCInput{}, DMARCFail, PolicyNone, "badp.test"},
		{"two records", "two.test", DMARCInput{}, DMARCNone, "", ""},
		{"no record", "plain.test", DMARCInput{}, DMARCNone, "", ""},
	} {
		got := EvaluateDMARC(testCtx(t), r, c.domain, c.in)
		if got.Result != c.result || got.Policy != c.policy || got.PolicyDomain != c.policyDomain {
			t.Errorf("%s: %s policy %q at %q (%s); want %s policy %q at %q", c.name, got.Result, got.Policy, got.PolicyDomain, got.Reason, c.result, c.policy, c.policyDomain)
		}
	}
}

func TestOrgDomain(t *testing.T) {
	for in, want := range map[string]string{
		"mail.example.com": "example.com", "a.b.example.co.uk": "example.co.uk", "Example.COM.": "example.com", "co.uk": "co.uk",
	} {
		if got := OrgDomain(in); got != want {
			t.Errorf("OrgDomain(%q) = %q, want %q", in, got, want)
		}
	}
}

// Several From: domains are each evaluated and the strictest wins, so a
// second From: cannot launder a forged first one.
func TestAuthorDomains(t *testing.T) {
	msg := crlf("From: Bank <alerts@Reject.test>\nFrom: friend@plain.test, \"x\" <y@reject.test>\nSubject: s\n\nbody\n")
	if got := strings.Join(AuthorDomains(msg), " "); got != "reject.test plain.test" {
		t.Errorf("author domains %q", got)
	}
	if got := AuthorDomains(crlf("From: broken <a@bad.test\n\nb\n")); len(got) != 1 || got[0] != "bad.test" {
		t.Errorf("malformed From: %v", got)
	}
}

// The message-level checks: a forged From: of a p=reject domain is refused,
// p=quarantine holds (or, sampled out by pct=, passes as quarantine's weaker
// none), DMARC_OVERRIDE accepts a trusted forwarder's mail, and the verdict is
// handed on.
func TestMessageDMARC(t *testing.T) {
	r := dmarcZone(t)
	policy := func(sample int, override bool) *Policy {
		p := &Policy{AuthservID: "mx.example.org", Resolver: r, SPFHeaders: 2,
			Channels: map[string]Channel{"tcp_local": {SPFMailFrom: true, DMARC: true}},
			DMARC:    DMARCSettings{HonorPct: true, QuarantineHold: true, Sample: func() int { return sample }}}
		if override {
			p.DMARC.Override = func(probe string) (string, bool) { return "mappings:12", probe == "reject.test|tcp_local|none|" }
		}
		return p
	}
	msg := func(from string) []byte { return crlf("From: " + from + "\nSubject: hi\n\nbody\n") }
	for _, c := range []struct {
		name, from string
		sample     int
		override   bool
		verdict    string
		refused    bool
		held       bool
	}{
		{"reject", "ceo@reject.test", 0, false, VerdictReject, true, false},
		{"override", "ceo@reject.test", 0, true, VerdictNone, false, false},
		{"quarantine sampled", "a@quar.test", 10, false, VerdictQuarantine, false, true},
		{"quarantine not sampled", "a@quar.test", 70, false, VerdictNone, false, false},
		{"no policy", "a@plain.test", 0, false, VerdictNone, false, false},
	} {
		tx := policy(c.sample, c.override).Begin("tcp_local", clientIP, "h.test", "bounce@elsewhere.test")
		tx.Sender(testCtx(t))
		out := tx.Message(testCtx(t), msg(c.from))
		if out.Verdict != c.verdict || (out.Refused != nil) != c.refused || (out.Held != "") != c.held {
			t.Errorf("%s: verdict %s refused %v held %q; want %s %v %v", c.name, out.Verdict, out.Refused, out.Held, c.verdict, c.refused, c.held)
		}
		if c.refused && (out.Refused.Code != 550 || out.Refused.Enhanced != "5.7.1") {
			t.Errorf("%s: %v, want 550 5.7.1", c.name, out.Refused)
		}
	}
}

// The Authentication-Results: field of a checked message, golden: one field,
// our authserv-id, one entry per check on its own line; a forged field
// claiming our id is removed and another ADMD's kept.
func TestAuthResultsGolden(t *testing.T) {
	r, _ := zone(t, rfc8463Brisbane, rfc8463Test,
		`football.example.com. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"`,
		`_dmarc.football.example.com. 300 IN TXT "v=DMARC1; p=reject"`)
	p := &Policy{AuthservID: "mx.example.org", Resolver: r, SPFHeaders: 3,
		Channels: map[string]Channel{"tcp_local": {SPFHelo: true, SPFMailFrom: true, DMARC: true}}}
	tx := p.Begin("tcp_local", clientIP, "mail.football.example.com", "joe@football.example.com")
	if st := tx.Sender(testCtx(t)); st != nil {
		t.Fatal(st)
	}
	content := append(crlf("Authentication-Results: MX.example.org; dkim=pass header.d=bank.test\n"+
		"Authentication-Results: other.example; spf=pass smtp.mailfrom=x@y\n"), crlf(rfc8463Signed)...)
	out := tx.Message(testCtx(t), content)
	got := out.Header + string(out.Content[:strings.Index(string(out.Content), "DKIM-Signature")])
	want, err := os.ReadFile("testdata/authres.golden")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		os.WriteFile("testdata/authres.golden", []byte(got), 0o644)
		return
	}
	if err != nil || got != string(want) {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
