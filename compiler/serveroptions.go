package compiler

import (
	"strings"

	"mtad.dev/mta/cnf"
)

// The SMTP server's keys of a channel option file take effect while a session
// has that channel as its source channel (subsystems.go, Image.ServerTimeouts).
// A channel no session can have as its source, or that becomes one too late for
// a key, would ignore the key silently; cnbuild warns at the key's line instead.

// sourceRole is how an SMTP session can come to have a channel as its source
// channel; the roles are ordered, each allowing what the ones before it allow.
type sourceRole uint8

const (
	notSource      sourceRole = iota // never
	laterSource                      // only after STARTTLS or AUTH (tlsswitchchannel, saslswitchchannel)
	admittedSource                   // at admission, by switchchannel
	arrivalSource                    // the channel connections arrive on
)

// serverOptionKeys are the server's keys of a channel option file, with the
// least role a channel needs for each to take effect there.
var serverOptionKeys = map[string]sourceRole{
	// the service's banner and name, the same for every client
	"BANNER_HOST":     arrivalSource,
	"BANNER_ADDITION": arrivalSource,
	// decided when the banner is due, after switchchannel
	"BANNER_DELAY": admittedSource,
	// limits of the session's source channel of the moment
	"COMMAND_RECEIVE_TIME":             laterSource,
	"DATA_RECEIVE_TIME":                laterSource,
	"MIN_DATA_RECEIVE_RATE":            laterSource,
	"MAX_SESSION_TIME":                 laterSource,
	"ALLOW_RECIPIENTS_PER_TRANSACTION": laterSource,
	"ALLOW_TRANSACTIONS_PER_SESSION":   laterSource,
	"ALLOW_REJECTIONS_BEFORE_DEFERRAL": laterSource,
}

// smtpSourceRoles gives each channel (by lower-case name) the best role it can
// have, following the SMTP server's switching rules: switchchannel on the
// arrival channel moves a connection to any channel that allows being switched
// to; tlsswitchchannel and saslswitchchannel move a session from a channel it can
// be in, unless that channel says noswitchchannel.
func (img *Image) smtpSourceRoles() map[string]sourceRole {
	roles := map[string]sourceRole{}
	arrival, ok := img.Channel(img.DefaultSMTPSource())
	if !ok {
		return roles
	}
	roles[strings.ToLower(arrival.Name)] = arrivalSource
	if arrival.Switch == Switch {
		for _, c := range img.Channels {
			if name := strings.ToLower(c.Name); c.Switch == AllowSwitch && roles[name] == notSource {
				roles[name] = admittedSource
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for _, c := range img.Channels {
			if roles[strings.ToLower(c.Name)] == notSource || c.Switch == NoSwitch {
				continue
			}
			for _, to := range []string{c.TLSSwitchChannel, c.SASLSwitchChannel} {
				target, ok := img.Channel(to)
				if name := strings.ToLower(to); to != "" && ok && roles[name] == notSource {
					roles[strings.ToLower(target.Name)] = laterSource
					changed = true
				}
			}
		}
	}
	return roles
}

// checkServerOptions warns at each server key of a channel option file that
// cannot take effect there. Files of channels not in the table have had their
// warning already.
func (b *builder) checkServerOptions(img *Image, files map[string]*cnf.OptionFile) {
	roles := img.smtpSourceRoles()
	arrival := img.DefaultSMTPSource()
	for name, f := range files {
		c, ok := img.Channel(name)
		if !ok || f == nil {
			continue
		}
		role := roles[strings.ToLower(c.Name)]
		for _, o := range f.Options {
			key := strings.ToUpper(strings.TrimSpace(o.Name))
			need, ok := serverOptionKeys[key]
			switch {
			case !ok || role >= need:
			case role == notSource:
				b.warnf(o.Pos, "option %s has no effect: no SMTP session has %s as its source channel (connections arrive on %s; %s is no switchchannel, tlsswitchchannel or saslswitchchannel target)",
					key, c.Name, arrival, c.Name)
			case need == arrivalSource:
				b.warnf(o.Pos, "option %s has no effect in %s: the banner and the server's host name are those of %s, the channel SMTP connections arrive on",
					key, c.Name, arrival)
			default:
				b.warnf(o.Pos, "option %s has no effect in %s: it becomes a session's source channel only after STARTTLS or AUTH, when the banner has been sent",
					key, c.Name)
			}
		}
	}
}
