package intake

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"mtad.dev/mta/status"
)

// fakeAuth scripts sender authentication: what each moment answers, and what
// it was asked.
type fakeAuth struct {
	sender, recipient *status.Status
	field             string
	outcome           AuthOutcome
	calls             []string
}

func (f *fakeAuth) Begin(channel string, ip netip.Addr, helo, from string) AuthChecks {
	f.calls = append(f.calls, "begin "+channel+" "+ip.String()+" "+helo+" "+from)
	return f
}
func (f *fakeAuth) Sender(context.Context) *status.Status {
	f.calls = append(f.calls, "sender")
	return f.sender
}
func (f *fakeAuth) Recipient(context.Context) *status.Status {
	f.calls = append(f.calls, "recipient")
	return f.recipient
}
func (f *fakeAuth) ProbeField() (string, bool) { return f.field, f.field != "" }
func (f *fakeAuth) Message(_ context.Context, content []byte) AuthOutcome {
	f.calls = append(f.calls, "message")
	out := f.outcome
	if out.Content == nil {
		out.Content = content
	}
	return out
}

var authOrigin = Origin{Kind: SMTP, Channel: "tcp_local", Client: &SMTPClient{Port: "TCP|127.0.0.1|25|192.0.2.7|4000", Helo: "client.test", IP: netip.MustParseAddr("192.0.2.7")},
	Description: "client.test ([192.0.2.7])", EnqueueCode: "EE"}

// An SPF refusal at MAIL FROM ends the transaction before FROM_ACCESS, logged
// J; local submission is never checked.
func TestAuthRefusesSender(t *testing.T) {
	h := newHarness(t)
	fa := &fakeAuth{sender: status.New(550, "5.7.23", "SPF fail")}
	h.rules.Auth = fa
	if tx, st := h.in.Begin(h.rules, authOrigin, "s@bank.test"); tx != nil || st == nil || st.Enhanced != "5.7.23" {
		t.Fatalf("Begin: %v, %v; want the SPF refusal", tx, st)
	}
	if len(h.tab.probes) != 0 {
		t.Errorf("FROM_ACCESS asked after the refusal: %v", h.tab.probes)
	}
	if want := []string{"begin tcp_local 192.0.2.7 client.test s@bank.test", "sender"}; !slices.Equal(fa.calls, want) {
		t.Errorf("calls %v, want %v", fa.calls, want)
	}
	if recs := h.records(t); len(recs) != 1 || !strings.Contains(recs[0], "5.7.23") {
		t.Errorf("records %v", recs)
	}
	h2 := newHarness(t)
	fa2 := &fakeAuth{sender: status.New(550, "5.7.23", "SPF fail")}
	h2.rules.Auth = fa2
	if _, st := h2.in.Begin(h2.rules, Origin{Kind: Local, Channel: "l"}, "s@bank.test"); st != nil || len(fa2.calls) != 0 {
		t.Errorf("local submission: %v, calls %v", st, fa2.calls)
	}
}

// ACCESS_SPF's field goes on FROM_ACCESS, ORIG_SEND_ACCESS and
// ORIG_MAIL_ACCESS, before ACCESS_ORCPT's; the postponed check runs at the
// first valid recipient only.
func TestAuthProbeAndRecipient(t *testing.T) {
	h := newHarness(t)
	h.rules.AccessORCPT = 1
	fa := &fakeAuth{field: "pass/softfail-all"}
	h.rules.Auth = fa
	tx, st := h.in.Begin(h.rules, authOrigin, "s@remote.test")
	if st != nil {
		t.Fatal(st)
	}
	if out := tx.AddRecipient(Recipient{Addr: "nobody@local.test"}); out.Refused == nil {
		t.Fatal("unknown user accepted")
	}
	if slices.Contains(fa.calls, "recipient") {
		t.Error("the postponed check ran for an unknown user")
	}
	fa.recipient = status.New(550, "5.7.23", "SPF fail")
	if out := tx.AddRecipient(Recipient{Addr: "x@local.test"}); out.Refused == nil || out.Refused.Enhanced != "5.7.23" {
		t.Fatalf("valid recipient: %+v, want the SPF refusal", out)
	}
	fa.recipient = nil
	tx.AddRecipient(Recipient{Addr: "y@local.test"})
	want := []string{
		"FROM_ACCESS TCP|127.0.0.1|25|192.0.2.7|4000|SMTP/client.test|MAIL|tcp_local|s@remote.test||pass/softfail-all",
		"ORIG_SEND_ACCESS tcp_local|s@remote.test|l|y@local.test|pass/softfail-all|rfc822;y@local.test",
		"ORIG_MAIL_ACCESS TCP|127.0.0.1|25|192.0.2.7|4000|SMTP/client.test|MAIL|tcp_local|s@remote.test|l|y@local.test|pass/softfail-all|rfc822;y@local.test",
		"SEND_ACCESS tcp_local|s@remote.test|l|y@local.test|rfc822;y@local.test",
	}
	if !slices.Equal(h.tab.probes[:4], want) {
		t.Errorf("probes\n%s\nwant\n%s", strings.Join(h.tab.probes, "\n"), strings.Join(want, "\n"))
	}
}

// At the end of DATA: our fields go on top (counted as ours in the J size),
// a refusal refuses every recipient and queues nothing, a quarantine holds,
// and the verdict stays on the transaction.
func TestAuthMessage(t *testing.T) {
	content := []byte("Received: ours\r\nFrom: a@b\r\n\r\nbody\r\n")
	for _, c := range []struct {
		name    string
		out     AuthOutcome
		refused bool
		held    string
	}{
		{"pass", AuthOutcome{Header: "Authentication-Results: mx.test; dmarc=pass\r\n", Verdict: "dmarc-pass"}, false, ""},
		{"reject", AuthOutcome{Refused: status.New(550, "5.7.1", "DMARC policy of b rejects this message"), Verdict: "dmarc-reject"}, true, ""},
		{"quarantine", AuthOutcome{Held: "dmarc: quarantined", Verdict: "dmarc-quarantine"}, false, "dmarc: quarantined"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			h.rules.Auth = &fakeAuth{outcome: c.out}
			tx, _ := h.in.Begin(h.rules, authOrigin, "s@remote.test")
			tx.AddRecipient(Recipient{Addr: "x@local.test"})
			tx.AddRecipient(Recipient{Addr: "y@remote.test"})
			res, err := tx.Accept(context.Background(), Message{Content: content, ReceivedLen: len("Received: ours\r\n")})
			if tx.AuthVerdict() != c.out.Verdict {
				t.Errorf("verdict %q", tx.AuthVerdict())
			}
			if c.refused {
				var st *status.Status
				if !errors.As(err, &st) || st.Enhanced != "5.7.1" || len(h.q.envs) != 0 {
					t.Fatalf("err %v, queued %d", err, len(h.q.envs))
				}
				if recs := h.records(t); len(recs) != 2 || !strings.Contains(recs[0], "DMARC") {
					t.Errorf("J records %v", recs)
				}
				return
			}
			if err != nil || res.Held != c.held {
				t.Fatalf("err %v, held %q", err, res.Held)
			}
		})
	}
}

// fakeSRS encodes as "srs+<from>@srs.test" and decodes it back; a "srs+bad"
// address is forged.
type fakeSRS struct{}

func (fakeSRS) Forward(from string) (string, error) {
	return "srs+" + strings.Replace(from, "@", "=", 1) + "@srs.test", nil
}
func (fakeSRS) Reverse(addr string) (string, bool, error) {
	local, ok := strings.CutSuffix(addr, "@srs.test")
	if !ok || !strings.HasPrefix(local, "srs+") {
		return "", false, nil
	}
	if strings.HasPrefix(local, "srs+bad") {
		return "", true, errors.New("forged")
	}
	return strings.Replace(strings.TrimPrefix(local, "srs+"), "=", "@", 1), true, nil
}

// A copy's sender is rewritten when the source channel has sourcesrs, the
// destination destinationsrs and the sender's own channel addresssrs; a bounce
// to our SRS address goes to the original sender; a forged one is refused.
func TestSRSCopies(t *testing.T) {
	h := newHarness(t)
	h.rules.SRS = fakeSRS{}
	h.rules.Channels["tcp_local"] = Channel{SourceSRS: true, DestinationSRS: true, AddressSRS: true}
	tx, _ := h.in.Begin(h.rules, smtpOrigin, "joe@remote.test")
	tx.AddRecipient(Recipient{Addr: "x@local.test"})  // stays on the site
	tx.AddRecipient(Recipient{Addr: "y@remote.test"}) // leaves it
	res, err := tx.Accept(context.Background(), Message{Content: []byte("Subject: s\r\n\r\nb\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	var froms []string
	for _, c := range res.Copies {
		froms = append(froms, c.Envelope.From+" "+c.Envelope.Rcpts[0].Addr)
	}
	if want := []string{"joe@remote.test x@local.test", "srs+joe=remote.test@srs.test y@remote.test"}; !slices.Equal(froms, want) {
		t.Errorf("copies %v, want %v", froms, want)
	}
	// A sender at our own site is not rewritten: addresssrs is tcp_local's.
	tx, _ = h.in.Begin(h.rules, smtpOrigin, "ann@local.test")
	tx.AddRecipient(Recipient{Addr: "y@remote.test"})
	if res, _ := tx.Accept(context.Background(), Message{Content: []byte("\r\nb\r\n")}); res.Copies[0].Envelope.From != "ann@local.test" {
		t.Errorf("local sender rewritten: %s", res.Copies[0].Envelope.From)
	}
	tx, _ = h.in.Begin(h.rules, smtpOrigin, "")
	if out := tx.AddRecipient(Recipient{Addr: "srs+joe=local.test@srs.test"}); out.Refused != nil || out.Routed[0].Addr != "joe@local.test" {
		t.Errorf("bounce: %+v", out)
	}
	if out := tx.AddRecipient(Recipient{Addr: "srs+bad=local.test@srs.test"}); out.Refused == nil || out.Refused.Enhanced != "5.1.1" {
		t.Errorf("forged: %+v", out)
	}
}
