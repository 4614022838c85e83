package senderauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"blitiri.com.ar/go/spf"

	"mtad.dev/mta/status"
)

// SPF results (RFC 7208 §2.6), as Received-SPF: and Authentication-Results:
// write them.
const (
	SPFNone      = "none"
	SPFNeutral   = "neutral"
	SPFPass      = "pass"
	SPFFail      = "fail"
	SPFSoftFail  = "softfail"
	SPFTempError = "temperror"
	SPFPermError = "permerror"
)

// SPFSettings are the option.dat settings of SPF evaluation.
type SPFSettings struct {
	// MaxRecursion is SPF_MAX_RECURSION: how many include: and redirect=
	// records a check may follow (default 10). The library counts no depth, so
	// this counts every record fetched after the domain's own; the RFC's limit
	// of 10 DNS terms already bounds it at the defaults.
	MaxRecursion int
	// MaxDNSQueries is SPF_MAX_DNS_QUERIES: terms that query DNS (include, a,
	// mx, ptr, exists, redirect; exp= does not count, RFC 7208 §4.6.4),
	// default 10; more is permerror.
	MaxDNSQueries int
	// MaxVoidLookups is SPF_MAX_VOID_LOOKUPS (our addition, RFC 7208 §4.6.4):
	// lookups answering NXDOMAIN or no records, default 2; more is permerror.
	MaxVoidLookups int
	// MaxTime is SPF_MAX_TIME: the wall-clock bound of one evaluation
	// (default 45 s); past it the result is temperror.
	MaxTime time.Duration
	// Status is SPF_SMTP_STATUS_*: the reply class (2 accept, 4 defer, 5
	// refuse) of each outcome that is not always accepted, keyed by the
	// option's suffix ("FAIL", "FAIL_ALL", "SOFTFAIL", "SOFTFAIL_ALL",
	// "PERMERROR", "TEMPERROR"); a missing key takes DefaultSPFStatus.
	Status map[string]int
	// Local is the SPF_LOCAL mapping table: the record to use instead of the
	// domain's DNS record; nil or ok false: DNS.
	Local func(domain string) (record string, ok bool)
}

// DefaultSPFStatus are the reply classes of the SPF_SMTP_STATUS_* options
// the configuration does not set. The product's documentation gives no
// defaults; these follow RFC 7208 §8: fail refuses, softfail is accepted,
// permerror refuses, temperror defers.
var DefaultSPFStatus = map[string]int{
	"FAIL": 5, "FAIL_ALL": 5, "SOFTFAIL": 2, "SOFTFAIL_ALL": 2, "PERMERROR": 5, "TEMPERROR": 4,
}

// Defaults of the SPF limits.
const (
	DefaultSPFMaxRecursion   = 10
	DefaultSPFMaxDNSQueries  = 10
	DefaultSPFMaxVoidLookups = 2
	DefaultSPFMaxTime        = 45 * time.Second
)

// SPFResult is one SPF check.
type SPFResult struct {
	Identity string // "mailfrom" or "helo": which identity was checked (RFC 7208 §2.3, §2.4)
	Sender   string // the identity as an address: the MAIL FROM, or postmaster@<helo>
	Domain   string // the domain checked
	IP       netip.Addr
	Helo     string
	Result   string // SPFPass ...
	// Mechanism is the term that decided ("all", "ip4", "a", "mx", "include",
	// "ptr", "exists"), "" when none matched or the check failed.
	Mechanism string
	// Problem says what went wrong for a temperror or permerror, or why there
	// is no record; "" otherwise.
	Problem string
	// Local is set when the record came from SPF_LOCAL.
	Local bool
}

// byAll reports whether the result was produced by the terminal all
// mechanism (the "_ALL" options).
func (r SPFResult) byAll() bool { return r.Mechanism == "all" }

// statusKey is the SPF_SMTP_STATUS_ suffix that decides the result's reply;
// "" for the results that are always accepted (pass, neutral, none).
func (r SPFResult) statusKey() string {
	switch r.Result {
	case SPFFail, SPFSoftFail:
		k := strings.ToUpper(r.Result)
		if r.byAll() {
			k += "_ALL"
		}
		return k
	case SPFPermError, SPFTempError:
		return strings.ToUpper(r.Result)
	}
	return ""
}

// mechanisms names the term that decided from the library's matched errors.
var mechanisms = map[error]string{
	spf.ErrMatchedAll: "all", spf.ErrMatchedA: "a", spf.ErrMatchedIP: "ip",
	spf.ErrMatchedMX: "mx", spf.ErrMatchedPTR: "ptr", spf.ErrMatchedExists: "exists",
}

// CheckSPF evaluates check_host (RFC 7208 §4) for the client ip and one
// identity: the MAIL FROM address sender, or, when sender is "" (the null
// sender) or identity is "helo", postmaster@helo. The evaluation is bounded
// by MaxTime and asks r.
func (s *SPFSettings) CheckSPF(ctx context.Context, r Resolver, ip netip.Addr, helo, sender, identity string) SPFResult {
	if identity == "helo" || sender == "" {
		sender = "postmaster@" + helo
	}
	domain := sender[strings.LastIndexByte(sender, '@')+1:]
	res := SPFResult{Identity: identity, Sender: sender, Domain: strings.ToLower(domain), IP: ip.Unmap(), Helo: helo}
	if !plausibleDomain(domain) {
		// RFC 7208 §4.3: a domain that is not a valid FQDN is none, without DNS.
		res.Result, res.Problem = SPFNone, "not a domain name"
		return res
	}
	lr := &libResolver{r: r, maxRecords: orInt(s.MaxRecursion, DefaultSPFMaxRecursion)}
	if s.Local != nil {
		if rec, ok := s.Local(res.Domain); ok {
			lr.local = rec
		}
	}
	ctx, cancel := context.WithTimeout(ctx, orDur(s.MaxTime, DefaultSPFMaxTime))
	defer cancel()
	result, err := spf.CheckHostWithSender(net.IP(ip.Unmap().AsSlice()), helo, sender,
		spf.WithContext(ctx), spf.WithResolver(lr),
		spf.OverrideLookupLimit(uint(orInt(s.MaxDNSQueries, DefaultSPFMaxDNSQueries))),
		spf.OverrideVoidLookupLimit(uint(orInt(s.MaxVoidLookups, DefaultSPFMaxVoidLookups))))
	res.Result, res.Local = string(result), lr.localUsed
	if m, ok := mechanisms[err]; ok {
		res.Mechanism = m
		if m == "ip" {
			res.Mechanism = map[bool]string{true: "ip4", false: "ip6"}[res.IP.Is4()]
		}
	} else if err != nil && result != spf.Pass {
		res.Problem = err.Error()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			res.Result, res.Problem = SPFTempError, "SPF_MAX_TIME exceeded"
		}
	}
	return res
}

// plausibleDomain: RFC 7208 §4.3 wants a fully qualified domain name whose
// labels are 1 to 63 octets; anything else is none without asking DNS.
func plausibleDomain(d string) bool {
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
	}
	return true
}

// Reply is the refusal SPF_SMTP_STATUS_* asks for the result, nil when the
// result is accepted. The enhanced codes are RFC 7372's: X.7.23 for a fail
// or softfail, X.7.24 for an error in the record or its DNS.
func (s *SPFSettings) Reply(r SPFResult) *status.Status {
	key := r.statusKey()
	if key == "" {
		return nil
	}
	class, ok := s.Status[key]
	if !ok {
		class = DefaultSPFStatus[key]
	}
	if class != 4 && class != 5 {
		return nil
	}
	code, detail := 550, "23"
	if class == 4 {
		code = 451
	}
	var text string
	switch r.Result {
	case SPFFail, SPFSoftFail:
		text = fmt.Sprintf("SPF %s: %s is not allowed to send mail from %s", r.Result, r.IP, r.Domain)
	default:
		detail = "24"
		text = fmt.Sprintf("SPF %s for %s: %s", r.Result, r.Domain, r.Problem)
	}
	return status.New(code, fmt.Sprintf("%d.7.%s", class, detail), "%s", text)
}

func orInt(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func orDur(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}
