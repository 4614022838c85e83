package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"mtad.dev/mta/dnsx"
	"mtad.dev/mta/senderauth"
)

// cmdSpfquery is the product's spfquery utility: it tests a domain's SPF
// policy in DNS, not the MTA's configuration. Its options and defaults are the
// product's (ip 127.0.0.1, sender postmaster@DOMAIN, helo DOMAIN, -e exits 1
// when the result differs); -nameserver is ours, to ask a chosen server.
func cmdSpfquery(a *app, args []string) int {
	fs := flag.NewFlagSet("spfquery", flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	var ip, sender, helo, expect, ns string
	var verbose, version bool
	for _, f := range []struct {
		p           *string
		short, long string
		def, usage  string
	}{
		{&ip, "i", "ip-address", "127.0.0.1", "the client `IP` to check"},
		{&sender, "s", "sender", "", "the envelope `SENDER` whose local part the record's macros see (default postmaster)"},
		{&helo, "h", "helo-domain", "", "the HELO `NAME` (default DOMAIN)"},
		{&expect, "e", "expect", "", "exit 1 unless the result is `RESULT`"},
		{&ns, "nameserver", "nameserver", "", "ask this `IP[:PORT]` instead of resolv.conf's servers"},
	} {
		fs.StringVar(f.p, f.short, f.def, f.usage)
		if f.long != f.short {
			fs.StringVar(f.p, f.long, f.def, f.usage)
		}
	}
	for _, name := range []string{"v", "verbose"} {
		fs.BoolVar(&verbose, name, false, "print every DNS question and answer")
	}
	fs.BoolVar(&version, "V", false, "print the version")
	fs.BoolVar(&version, "version", false, "print the version")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if version {
		fmt.Fprintln(a.stdout, "spfquery (mtad) blitiri.com.ar/go/spf")
		return 0
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(a.stderr, "usage: mtactl spfquery [-i IP] [-s SENDER] [-h HELO] [-e RESULT] [-v] DOMAIN")
		return 2
	}
	domain := fs.Arg(0)
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		fmt.Fprintf(a.stderr, "mtactl spfquery: -i %q is not an IP address\n", ip)
		return 2
	}
	local := "postmaster" // the local part %{l} sees; the domain checked is DOMAIN
	if at := strings.LastIndexByte(sender, '@'); at > 0 {
		local = sender[:at]
	}
	if helo == "" {
		helo = domain
	}
	rec, code := a.recorder(ns)
	if rec == nil {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := &senderauth.SPFSettings{}
	res := s.CheckSPF(ctx, rec, addr, helo, local+"@"+domain, "mailfrom")
	if verbose {
		for _, q := range rec.Queries() {
			fmt.Fprintln(a.stdout, "dns:", q)
		}
	}
	fmt.Fprint(a.stdout, strings.ReplaceAll(senderauth.ReceivedSPF(res, "mtactl"), "\r\n", "\n"))
	if expect != "" && !strings.EqualFold(expect, res.Result) {
		return 1
	}
	return 0
}

// recorder is a DNS client (resolv.conf's servers, or ns) that notes every
// question and answer; nil and an exit status when it cannot be built.
func (a *app) recorder(ns string) (*senderauth.Recorder, int) {
	cfg := dnsx.Config{}
	if ns != "" {
		cfg.Servers = []string{ns}
	}
	c, err := dnsx.New(cfg)
	if err != nil {
		fmt.Fprintf(a.stderr, "mtactl: %v\n", err)
		return nil, 1
	}
	return &senderauth.Recorder{R: c}, 0
}
