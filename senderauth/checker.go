package senderauth

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"

	"mtad.dev/mta/status"
)

// Channel is what one source channel's keywords ask of the SMTP sessions it
// is the source channel of.
type Channel struct {
	SPFHelo     bool // spfhelo: check the EHLO/HELO name
	SPFMailFrom bool // spfmailfrom: check the MAIL FROM domain at MAIL
	SPFRcptTo   bool // spfrcptto: check it at the first valid RCPT instead
	DKIM        bool // dkimverify: verify DKIM signatures at the end of DATA
	DMARC       bool // dmarcverify: evaluate DMARC (and so DKIM) at the end of DATA
	// TrustAuthResults is trustauthresults: Authentication-Results: fields
	// bearing our authserv-id are kept (a trusted relay inside our ADMD wrote
	// them) instead of removed as forgeries.
	TrustAuthResults bool
}

// checks reports whether the channel checks anything.
func (c Channel) checks() bool {
	return c.SPFHelo || c.SPFMailFrom || c.SPFRcptTo || c.DKIM || c.DMARC
}

// Policy is sender authentication as one compiled configuration sets it. It is
// immutable once built and safe for concurrent use.
type Policy struct {
	// AuthservID is AUTHSERV_ID: the name our Authentication-Results: fields
	// bear (default: our host name).
	AuthservID string
	Channels   map[string]Channel // by source channel name
	SPF        SPFSettings
	// SPFHeaders is SPF_HEADERS: bit value 1 adds a Received-SPF: field per
	// check, 2 puts the SPF results in Authentication-Results: (default 2).
	SPFHeaders int
	// AccessSPF is ACCESS_SPF: the access tables FROM_ACCESS,
	// ORIG_SEND_ACCESS and ORIG_MAIL_ACCESS see the SPF results (ProbeField).
	AccessSPF bool
	// DKIMMaxSignatures is DKIM_MAX_SIGNATURES; 0: DefaultDKIMMaxSignatures.
	DKIMMaxSignatures int
	DMARC             DMARCSettings
	Resolver          Resolver
}

// DMARCSettings are the local side of DMARC: what the receiver does with a
// policy.
type DMARCSettings struct {
	// HonorPct is DMARC_HONOR_PCT (default on): a message pct= leaves out of
	// the sample gets the next weaker disposition (RFC 7489 §6.6.4).
	HonorPct bool
	// RejectCode is DMARC_REJECT_CODE, the enhanced code of a refusal
	// (default 5.7.1).
	RejectCode string
	// QuarantineHold is DMARC_QUARANTINE_HOLD (default on): quarantine holds
	// the message .HELD for the postmaster; off, it is accepted with its
	// verdict (for a filter to file it, once filters can read verdicts).
	QuarantineHold bool
	// Override is the DMARC_OVERRIDE mapping table, probed with
	// author-domain|src-channel|arc-result|arc-sealer: ok (an entry with $Y)
	// accepts a failing message anyway, for trusted forwarders and lists; src
	// is the entry's file:line. nil: no table.
	Override func(probe string) (src string, ok bool)
	// Sample draws a number in [0, 100) for pct=; nil: math/rand.
	Sample func() int
}

// Verdicts of DMARC, the names filters will match.
const (
	VerdictPass       = "dmarc-pass"
	VerdictNone       = "dmarc-none"
	VerdictQuarantine = "dmarc-quarantine"
	VerdictReject     = "dmarc-reject"
)

// Transaction is the checks of one SMTP transaction.
type Transaction struct {
	p       *Policy
	ch      Channel
	channel string
	ip      netip.Addr
	helo    string
	from    string

	heloSPF, mailSPF *SPFResult
	refused          *status.Status // the SPF refusal given once, given again
}

// Begin starts the checks of a transaction on a source channel; nil when the
// channel checks nothing (its messages are then left as they are).
func (p *Policy) Begin(channel string, ip netip.Addr, helo, from string) *Transaction {
	if p == nil || !p.Channels[channel].checks() {
		return nil
	}
	ch := p.Channels[channel]
	return &Transaction{p: p, ch: ch, channel: channel, ip: ip.Unmap(), helo: helo, from: from}
}

// Sender runs the checks due at MAIL FROM: spfhelo, and spfmailfrom. The
// product's documentation does not say whether spfhelo refuses at EHLO; we
// check at MAIL FROM, where the HELO name and the sender are both known, so
// that one command carries every SPF refusal.
func (t *Transaction) Sender(ctx context.Context) *status.Status {
	if t.ch.SPFHelo && t.heloSPF == nil {
		r := t.p.SPF.CheckSPF(ctx, t.p.Resolver, t.ip, t.helo, "", "helo")
		t.heloSPF = &r
		t.refused = t.p.SPF.Reply(r)
	}
	if t.refused == nil && t.ch.SPFMailFrom && !t.ch.SPFRcptTo {
		t.checkMailFrom(ctx)
	}
	return t.refused
}

// Recipient runs the check spfrcptto postpones to the first recipient found
// valid, so that mail for unknown users costs no DNS; later recipients get
// the same answer.
func (t *Transaction) Recipient(ctx context.Context) *status.Status {
	if t.refused == nil && t.ch.SPFRcptTo && t.mailSPF == nil {
		t.checkMailFrom(ctx)
	}
	return t.refused
}

func (t *Transaction) checkMailFrom(ctx context.Context) {
	r := t.p.SPF.CheckSPF(ctx, t.p.Resolver, t.ip, t.helo, t.from, "mailfrom")
	t.mailSPF = &r
	t.refused = t.p.SPF.Reply(r)
}

// ProbeField is what ACCESS_SPF appends to the FROM_ACCESS, ORIG_SEND_ACCESS
// and ORIG_MAIL_ACCESS probes: "helo-result/mailfrom-result", each "" when
// not checked (yet), a fail or softfail the all mechanism gave suffixed
// "-all". ok is false without ACCESS_SPF.
func (t *Transaction) ProbeField() (string, bool) {
	if t == nil || !t.p.AccessSPF {
		return "", false
	}
	token := func(r *SPFResult) string {
		switch {
		case r == nil:
			return ""
		case r.byAll() && (r.Result == SPFFail || r.Result == SPFSoftFail):
			return r.Result + "-all"
		}
		return r.Result
	}
	return token(t.heloSPF) + "/" + token(t.mailSPF), true
}

// Outcome is what the checks at the end of DATA make of a message.
type Outcome struct {
	// Header is the fields to add at the top of the message: our
	// Authentication-Results: and any Received-SPF: fields.
	Header string
	// Content is the message without forged Authentication-Results: fields
	// (the same slice when there were none).
	Content []byte
	// Refused refuses the message (a DMARC reject); Held holds it .HELD with
	// this reason (a DMARC quarantine).
	Refused *status.Status
	Held    string
	// Verdict is the DMARC verdict (VerdictPass ...), "" when DMARC was not
	// evaluated.
	Verdict string
	Results Results
}

// Message runs the checks of the end of DATA: DKIM, DMARC (with an SPF check
// of the MAIL FROM for it when none was made), and builds the fields. The
// checks together are bounded by SPF_MAX_TIME.
func (t *Transaction) Message(ctx context.Context, content []byte) Outcome {
	ctx, cancel := context.WithTimeout(ctx, orDur(t.p.SPF.MaxTime, DefaultSPFMaxTime))
	defer cancel()
	out := Outcome{Content: content}
	if !t.ch.TrustAuthResults {
		out.Content = StripForged(content, t.p.AuthservID)
	}
	if t.ch.DMARC && t.mailSPF == nil {
		r := t.p.SPF.CheckSPF(ctx, t.p.Resolver, t.ip, t.helo, t.from, "mailfrom")
		t.mailSPF = &r // for DMARC and the header only: SPF_SMTP_STATUS_* is not asked
	}
	res := &out.Results
	for _, r := range []*SPFResult{t.heloSPF, t.mailSPF} {
		if r != nil {
			res.SPF = append(res.SPF, *r)
		}
	}
	if t.ch.DKIM || t.ch.DMARC {
		res.DKIMChecked = true
		res.DKIM = VerifyDKIM(ctx, t.p.Resolver, out.Content, t.p.DKIMMaxSignatures)
	}
	if t.ch.DMARC {
		t.dmarc(ctx, &out)
	}
	out.Header = t.fields(*res)
	return out
}

// dmarc evaluates every author domain and acts on the strictest outcome.
func (t *Transaction) dmarc(ctx context.Context, out *Outcome) {
	res := &out.Results
	domains := AuthorDomains(out.Content)
	if len(domains) == 0 {
		res.DMARC = []DMARCResult{{Result: DMARCPermError, Disposition: PolicyNone, Reason: "no From: domain"}}
		out.Verdict = VerdictNone
		return
	}
	worst := -1
	for _, d := range domains {
		r := EvaluateDMARC(ctx, t.p.Resolver, d, DMARCInput{SPF: t.mailSPF, DKIM: res.DKIM})
		t.localPolicy(&r)
		res.DMARC = append(res.DMARC, r)
		if worst < 0 || severity(r.Disposition) > severity(res.DMARC[worst].Disposition) {
			worst = len(res.DMARC) - 1
		}
	}
	w := res.DMARC[worst]
	switch {
	case w.Disposition == PolicyReject:
		out.Verdict = VerdictReject
		code := orStr(t.p.DMARC.RejectCode, "5.7.1")
		reply := 550
		if code[0] == '4' {
			reply = 451
		}
		out.Refused = status.New(reply, code, "DMARC policy of %s rejects this message", w.PolicyDomain)
	case w.Disposition == PolicyQuarantine:
		out.Verdict = VerdictQuarantine
		if t.p.DMARC.QuarantineHold {
			out.Held = "dmarc: quarantined by the policy of " + w.PolicyDomain
		}
	case allPass(res.DMARC):
		out.Verdict = VerdictPass
	default:
		out.Verdict = VerdictNone
	}
}

// localPolicy applies pct= sampling and the DMARC_OVERRIDE table to a fail.
func (t *Transaction) localPolicy(r *DMARCResult) {
	if r.Result != DMARCFail || r.Disposition == PolicyNone {
		return
	}
	if o := t.p.DMARC.Override; o != nil {
		if src, ok := o(r.Domain + "|" + t.channel + "|none|"); ok {
			r.Disposition, r.Reason = PolicyNone, "local override ("+src+")"
			return
		}
	}
	pct := 100
	if n, err := strconv.Atoi(dmarcTag(r.Record, "pct")); err == nil && n >= 0 && n <= 100 {
		pct = n // the record parsed, so pct= is absent or in range
	}
	if !t.p.DMARC.HonorPct || pct >= 100 {
		return
	}
	sample := t.p.DMARC.Sample
	if sample == nil {
		sample = func() int { return rand.IntN(100) }
	}
	if sample() >= pct {
		r.Reason = "not sampled (pct=" + strings.TrimSpace(dmarcTag(r.Record, "pct")) + ")"
		if r.Disposition == PolicyReject {
			r.Disposition = PolicyQuarantine
		} else {
			r.Disposition = PolicyNone
		}
	}
}

func severity(disposition string) int {
	switch disposition {
	case PolicyReject:
		return 2
	case PolicyQuarantine:
		return 1
	}
	return 0
}

func allPass(rs []DMARCResult) bool {
	for _, r := range rs {
		if r.Result != DMARCPass {
			return false
		}
	}
	return len(rs) > 0
}

func orStr(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// fields are the header fields the results make: Received-SPF: per SPF
// check (SPF_HEADERS bit value 1), then Authentication-Results:, whose SPF
// entries SPF_HEADERS bit value 2 asks for.
func (t *Transaction) fields(r Results) string {
	var b strings.Builder
	if t.p.SPFHeaders&1 != 0 {
		for _, s := range r.SPF {
			b.WriteString(ReceivedSPF(s, t.p.AuthservID))
		}
	}
	if t.p.SPFHeaders&2 == 0 {
		r.SPF = nil
	}
	b.WriteString(AuthResults(t.p.AuthservID, r))
	return b.String()
}
