package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"mtad.dev/mta/compiler"
	"mtad.dev/mta/daemon"
	"mtad.dev/mta/senderauth"
)

// testAuthOpts are the flags of `mtactl test -auth`.
type testAuthOpts struct {
	message, ip, helo, from, channel, nameserver string
	noimage                                      bool
}

// cmdTestAuth is `mtactl test -auth -message FILE -ip IP -helo NAME -from
// ADDR`: it evaluates SPF (HELO and MAIL FROM), DKIM and DMARC on a message
// offline, as the source channel's session would, and prints every DNS
// question and answer it used, each check's result with the configuration
// line that set its policy, and the Authentication-Results: field mtad would
// add. Every check runs, enabled on the channel or not, and says which.
func cmdTestAuth(a *app, args []string) int {
	var o testAuthOpts
	fs := flag.NewFlagSet("test -auth", flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	fs.Bool("auth", true, "evaluate sender authentication")
	fs.StringVar(&o.message, "message", "", "the message `FILE` (RFC 5322; - for standard input)")
	fs.StringVar(&o.ip, "ip", "", "the SMTP client's `IP`")
	fs.StringVar(&o.helo, "helo", "", "the client's EHLO `NAME`")
	fs.StringVar(&o.from, "from", "", "the MAIL FROM `ADDR` (empty: the null sender)")
	fs.StringVar(&o.channel, "source_channel", "", "the source `CHANNEL` (default: the channel SMTP sessions start in)")
	fs.StringVar(&o.nameserver, "nameserver", "", "ask this `IP[:PORT]` instead of resolv.conf's servers")
	fs.BoolVar(&o.noimage, "noimage", false, "use the text files, not DIR/"+compiler.ImageName)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ip, err := netip.ParseAddr(o.ip)
	if o.message == "" || o.helo == "" || err != nil {
		fmt.Fprintln(a.stderr, "usage: mtactl test -auth -message FILE -ip IP -helo NAME [-from ADDR] [-source_channel CH] [-nameserver IP:PORT]")
		return 2
	}
	content, err := readAuthMessage(a, o.message)
	if err != nil {
		fmt.Fprintf(a.stderr, "mtactl: %v\n", err)
		return 1
	}
	img, ok := a.image(o.noimage)
	if !ok {
		return 1
	}
	if o.channel == "" {
		o.channel = img.DefaultSMTPSource()
	}
	rec, code := a.recorder(o.nameserver)
	if rec == nil {
		return code
	}
	p := daemon.AuthPolicy(img, rec)
	if p == nil {
		p = &senderauth.Policy{Channels: map[string]senderauth.Channel{}}
		p.AuthservID = img.Options.Auth.AuthservID
	}
	configured := p.Channels[o.channel]
	// Every check runs; what the channel enables decides what acts.
	p.Resolver = rec
	p.Channels = map[string]senderauth.Channel{o.channel: {SPFHelo: true, SPFMailFrom: true, DKIM: true, DMARC: true,
		TrustAuthResults: configured.TrustAuthResults}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tx := p.Begin(o.channel, ip, o.helo, o.from)
	tx.Sender(ctx)
	out := tx.Message(ctx, crlfContent(content))
	printAuthReport(a.stdout, img, o.channel, configured, p, rec.Queries(), out)
	return 0
}

func readAuthMessage(a *app, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(a.stdin)
	}
	return os.ReadFile(path)
}

// crlfContent gives a message read from a file the CRLF line ends it has on
// the wire, where DKIM signs it.
func crlfContent(b []byte) []byte {
	if strings.Contains(string(b), "\r\n") {
		return b
	}
	return []byte(strings.ReplaceAll(string(b), "\n", "\r\n"))
}

// printAuthReport writes the DNS log, each check with the lines that set its
// policy, the outcome, and the field.
func printAuthReport(w io.Writer, img *compiler.Image, channel string, on senderauth.Channel, p *senderauth.Policy, qs []senderauth.Query, out senderauth.Outcome) {
	fmt.Fprintf(w, "DNS (%d):\n", len(qs))
	for _, q := range qs {
		fmt.Fprintf(w, "  %s\n", q)
	}
	kw := keywordLines(img, channel)
	opt := func(name, def string) string {
		if src, ok := img.Options.Auth.Src[name]; ok {
			return name + " at " + src
		}
		return name + " " + def + " (default)"
	}
	for _, r := range out.Results.SPF {
		key := map[bool]string{true: "spfhelo", false: "spfmailfrom"}[r.Identity == "helo"]
		if r.Identity != "helo" && on.SPFRcptTo {
			key = "spfrcptto"
		}
		fmt.Fprintf(w, "SPF %s %s: %s%s\n", r.Identity, r.Sender, r.Result, detail(r.Mechanism, r.Problem))
		fmt.Fprintf(w, "  policy: %s; %s\n", enabled(kw, key), spfAction(p, r, opt))
	}
	if len(out.Results.DKIM) == 0 {
		fmt.Fprintf(w, "DKIM: none (no signature)\n  policy: %s\n", enabled(kw, "dkimverify"))
	}
	for _, d := range out.Results.DKIM {
		fmt.Fprintf(w, "DKIM d=%s s=%s a=%s: %s%s\n", d.Domain, d.Selector, d.Algorithm, d.Result, detail("", d.Problem))
		fmt.Fprintf(w, "  policy: %s; %s\n", enabled(kw, "dkimverify"), opt("DKIM_MAX_SIGNATURES", "10"))
	}
	for _, d := range out.Results.DMARC {
		fmt.Fprintf(w, "DMARC %s: %s", d.Domain, d.Result)
		if d.PolicyDomain != "" {
			fmt.Fprintf(w, " (record at _dmarc.%s: %q; policy %s, disposition %s)", d.PolicyDomain, d.Record, d.Policy, d.Disposition)
		}
		fmt.Fprintf(w, "%s\n  policy: %s; %s, %s, %s\n", detail("", d.Reason), enabled(kw, "dmarcverify"),
			opt("DMARC_REJECT_CODE", "5.7.1"), opt("DMARC_QUARANTINE_HOLD", "1"), opt("DMARC_HONOR_PCT", "1"))
	}
	fmt.Fprintln(w, "ARC: not evaluated (ARC verification is not implemented in this version)")
	fmt.Fprintf(w, "outcome: %s\n", authOutcome(on, p, out))
	if out.Verdict != "" {
		fmt.Fprintf(w, "verdict: %s\n", out.Verdict)
	}
	fmt.Fprint(w, strings.ReplaceAll(out.Header, "\r\n", "\n"))
}

func detail(mech, problem string) string {
	switch {
	case problem != "":
		return " (" + problem + ")"
	case mech != "":
		return " (mechanism " + mech + ")"
	}
	return ""
}

// keywordLines maps each keyword of a channel to where it is written.
func keywordLines(img *compiler.Image, channel string) map[string]string {
	out := map[string]string{}
	if c, ok := img.Channel(channel); ok {
		for _, k := range c.Keywords {
			out[k.Name] = k.Pos.String()
		}
	}
	return out
}

// enabled says whether the channel's keyword turns a check on, and where.
func enabled(kw map[string]string, key string) string {
	if src, ok := kw[key]; ok {
		return key + " at " + src
	}
	return "not enabled (no " + key + " on the channel): shown, not acted on"
}

// spfAction is what SPF_SMTP_STATUS_* makes of a result.
func spfAction(p *senderauth.Policy, r senderauth.SPFResult, opt func(name, def string) string) string {
	st := p.SPF.Reply(r)
	key := ""
	switch r.Result {
	case senderauth.SPFFail, senderauth.SPFSoftFail:
		key = "SPF_SMTP_STATUS_" + strings.ToUpper(r.Result)
		if r.Mechanism == "all" {
			key += "_ALL"
		}
	case senderauth.SPFPermError, senderauth.SPFTempError:
		key = "SPF_SMTP_STATUS_" + strings.ToUpper(r.Result)
	default:
		return "always accepted"
	}
	def := fmt.Sprint(senderauth.DefaultSPFStatus[strings.TrimPrefix(key, "SPF_SMTP_STATUS_")])
	if st == nil {
		return opt(key, def) + ": accepted"
	}
	return opt(key, def) + ": " + st.Error()
}

// isAuthTest reports whether `mtactl test` was asked for -auth, which has
// flags of its own.
func isAuthTest(args []string) bool {
	for _, a := range args {
		if a == "-auth" || a == "--auth" {
			return true
		}
	}
	return false
}

// authOutcome is what the channel's session would do: an enabled SPF check's
// refusal comes first (at MAIL FROM, or at the first valid RCPT TO with
// spfrcptto), then DMARC's at the end of DATA.
func authOutcome(on senderauth.Channel, p *senderauth.Policy, out senderauth.Outcome) string {
	for _, r := range out.Results.SPF {
		helo := r.Identity == "helo"
		if !(helo && on.SPFHelo || !helo && (on.SPFMailFrom || on.SPFRcptTo)) {
			continue
		}
		if st := p.SPF.Reply(r); st != nil {
			at := "MAIL FROM"
			if !helo && on.SPFRcptTo {
				at = "the first valid RCPT TO"
			}
			return "refused at " + at + ": " + st.Error()
		}
	}
	switch {
	case !on.DMARC:
		return "accepted (DMARC is not enabled on the channel)"
	case out.Refused != nil:
		return "refused at the end of DATA: " + out.Refused.Error()
	case out.Held != "":
		return "held .HELD (" + out.Held + ")"
	}
	return "accepted"
}
