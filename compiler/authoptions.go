package compiler

import (
	"fmt"
	"strings"
	"time"

	"mtad.dev/mta/cnf"
)

// AuthOptions are option.dat's sender authentication settings. The SPF_* and
// SRS_* names are the product's (its documentation gives no defaults but
// SPF_MAX_*'s; ours are RFC 7208's and libsrs2's); SPF_MAX_VOID_LOOKUPS,
// SPF_HEADERS, ACCESS_SPF, AUTHSERV_ID, DKIM_* and DMARC_* are ours.
type AuthOptions struct {
	SPFMaxRecursion   int           // SPF_MAX_RECURSION, default 10
	SPFMaxDNSQueries  int           // SPF_MAX_DNS_QUERIES, default 10
	SPFMaxVoidLookups int           // SPF_MAX_VOID_LOOKUPS, default 2
	SPFMaxTime        time.Duration // SPF_MAX_TIME, seconds, default 45
	// SPFStatus is SPF_SMTP_STATUS_<key>: 2, 4 or 5, by key ("FAIL",
	// "FAIL_ALL" ...); a key the file does not set is absent.
	SPFStatus map[string]int
	// SPFHeaders is SPF_HEADERS: 1 Received-SPF:, 2 SPF in
	// Authentication-Results: (default), 3 both, 0 neither.
	SPFHeaders int
	AccessSPF  bool   // ACCESS_SPF: access probes carry the SPF results
	AuthservID string // AUTHSERV_ID; "" is our host name
	// DKIMMaxSignatures is DKIM_MAX_SIGNATURES, default 10.
	DKIMMaxSignatures int
	DMARCHonorPct     bool   // DMARC_HONOR_PCT, default 1
	DMARCRejectCode   string // DMARC_REJECT_CODE, default 5.7.1
	// DMARCQuarantineHold is DMARC_QUARANTINE_HOLD, default 1: quarantine
	// holds the message .HELD.
	DMARCQuarantineHold bool
	SRSDomain           string        // SRS_DOMAIN
	SRSSecrets          []string      // SRS_SECRETS, comma-separated, the first signs
	SRSMaxAge           time.Duration // SRS_MAXAGE, days, default 21
	SRSHashAlgorithm    string        // SRS_HASH_ALGORITHM: sha256 (default) or sha1
	// Src is where each of these options is set ("option.dat:12"), by name:
	// `mtactl test -auth` names the line that set a policy.
	Src map[string]string
}

func defaultAuthOptions() AuthOptions {
	return AuthOptions{
		SPFMaxRecursion: 10, SPFMaxDNSQueries: 10, SPFMaxVoidLookups: 2, SPFMaxTime: 45 * time.Second,
		SPFStatus: map[string]int{}, SPFHeaders: 2, DKIMMaxSignatures: 10, DMARCHonorPct: true,
		DMARCRejectCode: "5.7.1", DMARCQuarantineHold: true, SRSMaxAge: 21 * 24 * time.Hour,
		SRSHashAlgorithm: "sha256", Src: map[string]string{},
	}
}

// readAuthOptions takes the sender authentication options out of option.dat
// and checks their values.
func readAuthOptions(r *optionReader, f *cnf.OptionFile, errs *cnf.ErrorList) AuthOptions {
	o := defaultAuthOptions()
	r.int("SPF_MAX_RECURSION", &o.SPFMaxRecursion)
	r.int("SPF_MAX_DNS_QUERIES", &o.SPFMaxDNSQueries)
	r.int("SPF_MAX_VOID_LOOKUPS", &o.SPFMaxVoidLookups)
	r.dur("SPF_MAX_TIME", &o.SPFMaxTime)
	r.int("SPF_HEADERS", &o.SPFHeaders)
	r.bool("ACCESS_SPF", &o.AccessSPF)
	r.str("AUTHSERV_ID", &o.AuthservID)
	r.int("DKIM_MAX_SIGNATURES", &o.DKIMMaxSignatures)
	r.bool("DMARC_HONOR_PCT", &o.DMARCHonorPct)
	r.str("DMARC_REJECT_CODE", &o.DMARCRejectCode)
	r.bool("DMARC_QUARANTINE_HOLD", &o.DMARCQuarantineHold)
	r.str("SRS_DOMAIN", &o.SRSDomain)
	r.str("SRS_HASH_ALGORITHM", &o.SRSHashAlgorithm)
	if v, ok := r.strs["SRS_SECRETS"]; ok {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				o.SRSSecrets = append(o.SRSSecrets, s)
			}
		}
	}
	if v, ok := r.ints["SRS_MAXAGE"]; ok {
		o.SRSMaxAge = time.Duration(v) * 24 * time.Hour
	}
	bad := func(name, format string, args ...any) {
		*errs = append(*errs, &cnf.Error{Pos: optPos(f.Options, name), Msg: "bad value for option " + name + ": " + fmt.Sprintf(format, args...)})
	}
	for _, name := range []string{"SPF_SMTP_STATUS_FAIL", "SPF_SMTP_STATUS_FAIL_ALL", "SPF_SMTP_STATUS_SOFTFAIL",
		"SPF_SMTP_STATUS_SOFTFAIL_ALL", "SPF_SMTP_STATUS_PERMERROR", "SPF_SMTP_STATUS_TEMPERROR"} {
		key := strings.TrimPrefix(name, "SPF_SMTP_STATUS_")
		if v, ok := r.ints[name]; ok {
			if v != 2 && v != 4 && v != 5 {
				bad(name, "%d (2 accept, 4 defer, 5 refuse)", v)
			}
			o.SPFStatus[key] = v
		}
	}
	for name, v := range map[string]int{"SPF_MAX_RECURSION": o.SPFMaxRecursion, "SPF_MAX_DNS_QUERIES": o.SPFMaxDNSQueries,
		"SPF_MAX_VOID_LOOKUPS": o.SPFMaxVoidLookups, "DKIM_MAX_SIGNATURES": o.DKIMMaxSignatures, "SRS_MAXAGE": int(o.SRSMaxAge / (24 * time.Hour))} {
		if v < 1 {
			bad(name, "%d is not positive", v)
		}
	}
	if o.SPFHeaders < 0 || o.SPFHeaders > 3 {
		bad("SPF_HEADERS", "%d (1 Received-SPF:, 2 Authentication-Results:, 3 both)", o.SPFHeaders)
	}
	if c := o.DMARCRejectCode; len(c) < 5 || (c[0] != '4' && c[0] != '5') || strings.Count(c, ".") != 2 {
		bad("DMARC_REJECT_CODE", "%q is not an enhanced status code 4.x.y or 5.x.y", c)
	}
	if a := strings.ToLower(o.SRSHashAlgorithm); a != "sha256" && a != "sha1" {
		bad("SRS_HASH_ALGORITHM", "%q (sha256 or sha1)", o.SRSHashAlgorithm)
	}
	for _, op := range f.Options {
		if name := strings.ToUpper(strings.TrimSpace(op.Name)); isAuthOption(name) {
			o.Src[name] = op.Pos.String()
		}
	}
	return o
}

func isAuthOption(name string) bool {
	for _, p := range []string{"SPF_", "DKIM_", "DMARC_", "SRS_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return name == "ACCESS_SPF" || name == "AUTHSERV_ID"
}

// checkSRS: the SRS keywords need SRS_DOMAIN and SRS_SECRETS, without which
// nothing could be encoded or decoded; cnbuild says so at the first channel
// asking for SRS.
func checkSRS(img *Image, errs *cnf.ErrorList) {
	if img.Options.Auth.SRSDomain != "" && len(img.Options.Auth.SRSSecrets) > 0 {
		return
	}
	for i := range img.Channels {
		c := &img.Channels[i]
		if c.SourceSRS || c.DestinationSRS || c.AddressSRS {
			*errs = append(*errs, &cnf.Error{Pos: c.Pos, Msg: "channel " + c.Name + " asks for SRS (sourcesrs, destinationsrs or addresssrs) but option.dat sets no SRS_DOMAIN and SRS_SECRETS"})
			return
		}
	}
}
