package daemon

import (
	"testing"
	"testing/fstest"

	"mtad.dev/mta/compiler"
	"mtad.dev/mta/smtpserver"
)

// TestNewPolicyChannelLimits: the session-limit keywords (transactionlimit,
// recipientcutoff, deferralrejectlimit, the disconnect...limit ones), tlsswitchchannel,
// musttlsserver and LINE_LIMIT reach the SMTP server's policy.
func TestNewPolicyChannelLimits(t *testing.T) {
	const imta = `.             $U%$H@tcp-daemon

l linelimit 40
mail.example.com

tcp_local smtp mx transactionlimit 5 recipientcutoff 50 deferralrejectlimit 7 \
 disconnecttransactionlimit 9 disconnectrecipientlimit 100 disconnectrejectlimit 20 \
 disconnectbadcommandlimit 4 tlsswitchchannel tcp_tls
tcp-daemon

tcp_tls smtp mx musttlsserver
tcp_tls-daemon
`
	r, err := compiler.CheckFS(fstest.MapFS{
		"imta.cnf":   {Data: []byte(imta)},
		"option.dat": {Data: []byte("LINE_LIMIT=1000\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Errors) > 0 || len(r.Warnings) > 0 {
		t.Fatalf("errors %v warnings %v", r.Errors, r.Warnings)
	}
	p := newPolicy(r.Image)
	if p.LineLimit != 1000 {
		t.Errorf("Policy.LineLimit = %d, want 1000", p.LineLimit)
	}
	tests := []struct {
		channel string
		want    smtpserver.ChannelPolicy
	}{
		{"l", smtpserver.ChannelPolicy{LineLimit: 40}},
		{"tcp_local", smtpserver.ChannelPolicy{TransactionLimit: 5, RecipientCutoff: 50, DeferralRejectLimit: 7,
			DisconnectTransactionLimit: 9, DisconnectRecipientLimit: 100, DisconnectRejectLimit: 20,
			DisconnectBadCommandLimit: 4, TLSSwitchChannel: "tcp_tls"}},
		{"tcp_tls", smtpserver.ChannelPolicy{RequireTLS: true}},
	}
	for _, tc := range tests {
		got := p.Channels[tc.channel]
		w := tc.want
		if got.LineLimit != w.LineLimit || got.TransactionLimit != w.TransactionLimit ||
			got.RecipientCutoff != w.RecipientCutoff || got.DeferralRejectLimit != w.DeferralRejectLimit ||
			got.DisconnectTransactionLimit != w.DisconnectTransactionLimit ||
			got.DisconnectRecipientLimit != w.DisconnectRecipientLimit ||
			got.DisconnectRejectLimit != w.DisconnectRejectLimit ||
			got.DisconnectBadCommandLimit != w.DisconnectBadCommandLimit ||
			got.TLSSwitchChannel != w.TLSSwitchChannel || got.RequireTLS != w.RequireTLS {
			t.Errorf("channel %s: policy %+v, want the limits of %+v", tc.channel, got, w)
		}
	}
}
