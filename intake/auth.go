package intake

import (
	"context"

	"net/netip"
	"time"

	"mtad.dev/mta/engine"
	"mtad.dev/mta/status"
)

// Authenticator is sender authentication (SPF, DKIM, DMARC; package senderauth
// implements it, the daemon wires it). intake calls it at the moments a
// transaction from an SMTP client reaches, so that a refusal can still be the
// reply to the command: MAIL FROM (Begin), the first valid recipient
// (AddRecipient), the end of DATA (Accept, before any copy is queued).
type Authenticator interface {
	// Begin starts the checks of a transaction on a source channel; nil when
	// the channel checks nothing.
	Begin(channel string, ip netip.Addr, helo, from string) AuthChecks
}

// AuthChecks are the checks of one transaction.
type AuthChecks interface {
	// Sender runs the checks due at MAIL FROM; a status refuses the sender.
	Sender(ctx context.Context) *status.Status
	// Recipient runs the checks postponed to the first recipient found valid;
	// a status refuses the recipient (and every later one).
	Recipient(ctx context.Context) *status.Status
	// ProbeField is the field ACCESS_SPF appends to the FROM_ACCESS,
	// ORIG_SEND_ACCESS and ORIG_MAIL_ACCESS probes; ok false: none.
	ProbeField() (field string, ok bool)
	// Message checks the message at the end of DATA.
	Message(ctx context.Context, content []byte) AuthOutcome
}

// AuthOutcome is what the checks at the end of DATA make of a message.
type AuthOutcome struct {
	Header  string         // fields to add at the top: Authentication-Results: ...
	Content []byte         // the message without forged fields
	Refused *status.Status // refuse the whole message (a DMARC reject)
	Held    string         // hold it .HELD with this reason (a DMARC quarantine)
	// Verdict is the DMARC verdict ("dmarc-pass", "dmarc-quarantine" ...),
	// kept on the transaction (AuthVerdict) for the filters that will act on
	// it.
	Verdict string
}

// authTimeout bounds the checks of Begin and AddRecipient, which take no
// context: the SMTP session cannot cancel them, and SPF_MAX_TIME bounds each
// evaluation below this anyway.
const authTimeout = 2 * time.Minute

// beginAuth starts the checks of an SMTP transaction and runs those of MAIL
// FROM.
func (t *Transaction) beginAuth() *status.Status {
	o := t.origin
	if o.Kind != SMTP || o.Client == nil || t.rules.Auth == nil {
		return nil
	}
	t.auth = t.rules.Auth.Begin(o.Channel, o.Client.IP, o.Client.Helo, t.from)
	if t.auth == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()
	return t.auth.Sender(ctx)
}

// recipientAuth runs the checks postponed to a valid recipient (spfrcptto).
func (t *Transaction) recipientAuth() *status.Status {
	if t.auth == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()
	return t.auth.Recipient(ctx)
}

// withSPF appends ACCESS_SPF's field to a FROM_ACCESS, ORIG_SEND_ACCESS or
// ORIG_MAIL_ACCESS probe, before ACCESS_ORCPT's, which the product's
// documentation places last.
func (t *Transaction) withSPF(table, probe string) string {
	if t.auth == nil || (table != FromAccess && table != OrigSendAccess && table != OrigMailAccess) {
		return probe
	}
	if f, ok := t.auth.ProbeField(); ok {
		return probe + "|" + f
	}
	return probe
}

// AuthVerdict is the DMARC verdict of the accepted message, "" when DMARC was
// not evaluated: what the filters will match.
func (t *Transaction) AuthVerdict() string { return t.verdict }

// authenticate runs the checks of the end of DATA and applies them to m: our
// fields added at the top (counted in ReceivedLen, as ours), forged ones
// removed, a refusal logged J for every recipient and returned, a hold kept for
// heldReason.
func (t *Transaction) authenticate(ctx context.Context, m *Message) error {
	if t.auth == nil {
		return nil
	}
	out := t.auth.Message(ctx, m.Content)
	t.verdict = out.Verdict
	if out.Refused != nil {
		for _, e := range t.rcpts {
			t.in.LogRefused(t.origin, t.from, e.rcpt.Channel, e.rcpt.Addr, e.rcpt.ORCPT, int64(len(m.Content)-m.ReceivedLen), out.Refused)
		}
		return out.Refused
	}
	if out.Held != "" && t.held == "" {
		t.held = out.Held
	}
	content := out.Content
	if content == nil {
		content = m.Content
	}
	if out.Header != "" || len(content) != len(m.Content) {
		m.Content = append([]byte(out.Header), content...)
		m.ReceivedLen += len(out.Header)
	}
	return nil
}

// SRS is the Sender Rewriting Scheme (package senderauth implements it):
// Forward encodes the sender of a copy that leaves the site, Reverse decodes
// an address at our SRS domain (ok false: not one of ours; err: forged or
// expired).
type SRS interface {
	Forward(from string) (string, error)
	Reverse(addr string) (orig string, ok bool, err error)
}

// reverseSRS decodes a recipient at our SRS domain into the original sender
// it stands for: the bounce of a forwarded message goes home. intake does it,
// not the rewrite rules, since it needs the secrets and the clock; a forged or
// expired address is an unknown user (the documentation does not say; refusing
// it keeps our domain from being a relay for backscatter).
func (t *Transaction) reverseSRS(addr string) (string, *status.Status) {
	if t.rules.SRS == nil {
		return addr, nil
	}
	orig, ok, err := t.rules.SRS.Reverse(addr)
	switch {
	case !ok:
		return addr, nil
	case err != nil:
		return "", status.New(550, "5.1.1", "No such user %s", addr)
	}
	return orig, nil
}

// forwardSRS is the sender of a copy for a recipient on channel dst: rewritten
// with SRS when the source channel has sourcesrs, the destination
// destinationsrs, and the sender's own address routes to a channel with
// addresssrs (the product's three conditions: mail from outside, forwarded
// outside).
func (t *Transaction) forwardSRS(from, dst string) string {
	ch := t.rules.Channels
	if t.rules.SRS == nil || from == "" || !ch[t.origin.Channel].SourceSRS || !ch[dst].DestinationSRS {
		return from
	}
	if !ch[t.senderChannel(from)].AddressSRS {
		return from
	}
	enc, err := t.rules.SRS.Forward(from)
	if err != nil {
		t.in.logger().Warn("SRS rewriting failed; sender kept", "from", from, "err", err)
		return from
	}
	return enc
}

// senderChannel is the channel the envelope sender's address routes to, as the
// rewrite rules say for an envelope From.
func (t *Transaction) senderChannel(from string) string {
	if t.rules.Resolver == nil {
		return ""
	}
	if c, ok := t.senderChannels[from]; ok {
		return c
	}
	res := t.rules.Resolver.Rewrite(engine.Request{Address: from, Kind: engine.EnvelopeFrom, SourceChannel: t.origin.Channel})
	if t.senderChannels == nil {
		t.senderChannels = map[string]string{}
	}
	t.senderChannels[from] = res.Channel
	return res.Channel
}
