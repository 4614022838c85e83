package daemon

import (
	"context"
	"net/netip"
	"strings"

	"mtad.dev/mta/compiler"
	"mtad.dev/mta/dnsx"
	"mtad.dev/mta/intake"
	"mtad.dev/mta/mappings"
	"mtad.dev/mta/senderauth"
	"mtad.dev/mta/smtpserver"
)

// withAuth gives a policy's intake rules sender authentication, when some
// channel asks for it, with a resolver of the daemon's (its cache shared with
// the channels that use the same nameservers).
func (d *Daemon) withAuth(p *smtpserver.Policy, img *compiler.Image) *smtpserver.Policy {
	ap := AuthPolicy(img, nil)
	if ap == nil {
		return p
	}
	src, _ := img.Channel(defaultSource(img))
	var servers []string
	if src != nil {
		servers = src.Nameservers
	}
	c, ok := d.resolver(servers, img.Options.DNSTimeout).(*dnsx.Client)
	if !ok || c == nil {
		d.log.Warn("sender authentication has no DNS resolver: its checks give temperror")
		ap.Resolver = noResolver{}
	} else {
		ap.Resolver = c
	}
	p.Intake.Auth = authenticator{ap}
	return p
}

// AuthPolicy derives sender authentication from an image; nil when no channel
// checks anything. r is the resolver (mtactl's recorder); the daemon sets its
// own. The DNS questions go to the nameservers of the channel SMTP sessions
// start in: they ask the Internet's DNS, as that channel's mail comes from it.
func AuthPolicy(img *compiler.Image, r senderauth.Resolver) *senderauth.Policy {
	o := img.Options.Auth
	p := &senderauth.Policy{
		AuthservID: o.AuthservID,
		Channels:   map[string]senderauth.Channel{},
		SPF: senderauth.SPFSettings{MaxRecursion: o.SPFMaxRecursion, MaxDNSQueries: o.SPFMaxDNSQueries,
			MaxVoidLookups: o.SPFMaxVoidLookups, MaxTime: o.SPFMaxTime, Status: o.SPFStatus},
		SPFHeaders:        o.SPFHeaders,
		AccessSPF:         o.AccessSPF,
		DKIMMaxSignatures: o.DKIMMaxSignatures,
		DMARC: senderauth.DMARCSettings{HonorPct: o.DMARCHonorPct, RejectCode: o.DMARCRejectCode,
			QuarantineHold: o.DMARCQuarantineHold},
		Resolver: r,
	}
	if p.AuthservID == "" {
		p.AuthservID = newIntakeRules(img).Hostname
	}
	checks := false
	for i := range img.Channels {
		c := &img.Channels[i]
		ch := senderauth.Channel{SPFHelo: c.SPFHelo, SPFMailFrom: c.SPFMailFrom, SPFRcptTo: c.SPFRcptTo,
			DKIM: c.DKIMVerify, DMARC: c.DMARCVerify, TrustAuthResults: c.TrustAuthResults}
		if ch != (senderauth.Channel{TrustAuthResults: ch.TrustAuthResults}) {
			checks = true
		}
		p.Channels[c.Name] = ch
	}
	if !checks {
		return nil
	}
	if set := img.Mappings; set != nil {
		if set.Has("SPF_LOCAL") {
			p.SPF.Local = func(domain string) (string, bool) {
				res, ok := set.Map("SPF_LOCAL", domain, 0, &mappings.Env{})
				return res.Output, ok && res.Matched
			}
		}
		if set.Has("DMARC_OVERRIDE") {
			p.DMARC.Override = func(probe string) (string, bool) {
				res, ok := set.Map("DMARC_OVERRIDE", probe, 0, &mappings.Env{})
				return res.Src, ok && res.Matched && res.Flags.Has('Y')
			}
		}
	}
	return p
}

// newSRS is the SRS of an image; nil without SRS_DOMAIN and SRS_SECRETS (the
// compiler refuses the SRS keywords without them).
func newSRS(img *compiler.Image) intake.SRS {
	o := img.Options.Auth
	if o.SRSDomain == "" || len(o.SRSSecrets) == 0 {
		return nil
	}
	return &senderauth.SRS{Domain: strings.ToLower(o.SRSDomain), Secrets: o.SRSSecrets, MaxAge: o.SRSMaxAge, Hash: o.SRSHashAlgorithm}
}

// authenticator adapts a senderauth.Policy to intake.Authenticator.
type authenticator struct{ p *senderauth.Policy }

func (a authenticator) Begin(channel string, ip netip.Addr, helo, from string) intake.AuthChecks {
	tx := a.p.Begin(channel, ip, helo, from)
	if tx == nil {
		return nil
	}
	return authChecks{tx}
}

type authChecks struct{ *senderauth.Transaction }

func (c authChecks) Message(ctx context.Context, content []byte) intake.AuthOutcome {
	out := c.Transaction.Message(ctx, content)
	return intake.AuthOutcome{Header: out.Header, Content: out.Content, Refused: out.Refused, Held: out.Held, Verdict: out.Verdict}
}

// noResolver answers every question with a temporary failure: without DNS the
// checks give temperror, which defers rather than refuses.
type noResolver struct{}

var errNoDNS = &dnsx.Error{Err: "no DNS resolver", Temp: true}

func (noResolver) LookupTXT(context.Context, string) ([]string, error)      { return nil, errNoDNS }
func (noResolver) LookupMX(context.Context, string) ([]dnsx.MX, error)      { return nil, errNoDNS }
func (noResolver) LookupHost(context.Context, string) ([]netip.Addr, error) { return nil, errNoDNS }
func (noResolver) LookupAddr(context.Context, netip.Addr) ([]string, error) { return nil, errNoDNS }
