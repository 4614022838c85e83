package compiler

import (
	"net/netip"
	"strings"
	"time"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/engine"
	"mtad.dev/mta/jobctl"
	"mtad.dev/mta/smtpserver"
)

// The configuration each subsystem runs with, computed from the image: the one
// place where keywords and options turn into a subsystem's settings. Every value
// returned here is comparable (no slices, maps, pointers or functions), so mtad
// tells a changed setting from an unchanged one on reload with ==, and a field
// added to a settings type takes part in that comparison by itself.
//
// TestKeywordEffects counts a ChannelConfig field as acted on when code outside
// the compiler reads it, or when this file reads it into a subsystem's setting
// that the subsystem reads.

// Hostname is the name the MTA gives itself: the local channel's official host,
// else "localhost".
func (img *Image) Hostname() string {
	if l := img.LocalChannel(); l != nil && l.Official != "" {
		return l.Official
	}
	return "localhost"
}

// SMTPClient is the settings of channel c's SMTP or LMTP client program.
func (img *Image) SMTPClient(c *ChannelConfig) channels.SMTPSettings {
	opts := img.ChannelOptionsFor(c.Name)
	ct := opts.ClientTimeouts()
	s := channels.SMTPSettings{
		Daemon:     c.DaemonHost(),
		LastResort: c.LastResort,
		Port:       c.Port,
		HeloName:   img.Hostname(),
		MX:         clientMX(c.MX),
		LMTP:       c.LMTP,
		// Unset stages stay zero and take the client's RFC 5321 defaults.
		Timeouts: channels.Timeouts{
			Connect: ct.Connect, Greeting: ct.Greeting, Ehlo: ct.Ehlo, Mail: ct.Mail, Rcpt: ct.Rcpt,
			DataInit: ct.DataInit, DataBlock: ct.DataBlock, DataEnd: ct.DataEnd, Rset: ct.Rset, Quit: ct.Quit,
		},
		MaxMessagesPerConn: opts.AttemptTransactionsPerSession,
		TLS:                clientTLS(c.TLSClient),
		SevenBit:           c.EightBit == SevenBit,
		EightStrict:        c.EightBit == EightStrict,
		Nameservers:        strings.Join(c.Nameservers, " "),
		DNSTimeout:         img.Options.DNSTimeout,
		NoDNS:              c.MX == NoDNS,
		Channel:            c.Name,
		LogConnection:      img.Options.LogConnection,
		MasterDebug:        c.MasterDebug,
	}
	if sock := c.LMTPSocket(); sock != "" {
		s.Daemon, s.Network = sock, "unix"
	} else if a, err := netip.ParseAddr(c.InterfaceAddress); err == nil {
		// splitKeywords refused anything but an address; a Unix socket has no
		// local address (checkLMTP refuses interfaceaddress there).
		s.LocalAddr = a
	}
	return s
}

// DaemonHost is the host an SMTP client connects to instead of the envelope host:
// the daemon argument, or the official host name when the argument is not a FQDN
// (the product's `daemon router` convention). "" when no daemon keyword.
func (c *ChannelConfig) DaemonHost() string {
	if c.Daemon == "" {
		return ""
	}
	if c.LMTPSocket() != "" {
		return c.Daemon
	}
	if strings.ContainsAny(c.Daemon, ".:") {
		return c.Daemon
	}
	return c.Official
}

// LMTPSocket is the Unix socket path of an lmtp channel whose daemon argument is
// an absolute path; "" when it delivers over TCP (or is not an lmtp channel).
func (c *ChannelConfig) LMTPSocket() string {
	if c.LMTP && strings.HasPrefix(c.Daemon, "/") {
		return c.Daemon
	}
	return ""
}

// clientMX maps the channel's host-choice keyword onto the SMTP client's. nodns
// looks nothing up, MX records included: the client then gets no resolver
// (SMTPSettings.NoDNS), and only literals reach a host.
func clientMX(m MXMode) channels.MXMode {
	switch m {
	case RandomMX:
		return channels.MXRandom
	case NoMX, NoDNS:
		return channels.MXNone
	case MX:
		return channels.MXNonRandom
	}
	return channels.MXDefault
}

// clientTLS maps the channel's client TLS keywords: notls (the product's
// default), maytls/maytlsclient (opportunistic STARTTLS), musttls/musttlsclient
// (never plaintext).
func clientTLS(m TLSMode) channels.TLSPolicy {
	switch m {
	case TLSMay:
		return channels.TLSMay
	case TLSMust:
		return channels.TLSMust
	}
	return channels.TLSNone
}

// Pipe is the settings of channel c's pipe program; ok is false when the
// channel's option file sets no PIPE_COMMAND (it is then no pipe channel).
func (img *Image) Pipe(c *ChannelConfig) (s channels.PipeSettings, ok bool) {
	opts := img.ChannelOptionsFor(c.Name)
	if opts.PipeCommand == "" {
		return channels.PipeSettings{}, false
	}
	return channels.PipeSettings{
		Command:        opts.PipeCommand,
		PerMessage:     opts.PipeMode == PipeModeMessage,
		TemporaryExits: channels.ExitStatusesOf(opts.PipeTemporaryExits...),
		PermanentExits: channels.ExitStatusesOf(opts.PipePermanentExits...),
		Timeout:        opts.PipeTimeout,
	}, true
}

// ServerPolicy is what the SMTP server needs of channel c, as a source and as a
// destination of the messages it accepts.
func (c *ChannelConfig) ServerPolicy() smtpserver.ChannelPolicy {
	return smtpserver.ChannelPolicy{
		Name:                       c.Name,
		SwitchChannel:              c.Switch == Switch,
		AllowSwitchChannel:         c.Switch == AllowSwitch,
		NoSwitchChannel:            c.Switch == NoSwitch,
		SASLSwitchChannel:          c.SASLSwitchChannel,
		BlockLimit:                 int64(c.MessageBlockLimit),
		SourceBlockLimit:           int64(c.SourceBlockLimit),
		RecipientLimit:             c.RecipientLimit,
		LineLimit:                  c.LineLimit,
		RequireTLS:                 c.TLSServer == TLSMust,
		TLSSwitchChannel:           c.TLSSwitchChannel,
		TransactionLimit:           c.TransactionLimit,
		RecipientCutoff:            c.RecipientCutoff,
		DisconnectTransactionLimit: c.DisconnectTransactionLimit,
		DisconnectRecipientLimit:   c.DisconnectRecipientLimit,
		DisconnectRejectLimit:      c.DisconnectRejectLimit,
		DeferralRejectLimit:        c.DeferralRejectLimit,
		DisconnectBadCommandLimit:  c.DisconnectBadCommandLimit,
		SASL:                       serverSASL(c.SASLServer),
		DisconnectBadAuthLimit:     c.DisconnectBadAuthLimit,
		SlaveDebug:                 c.SlaveDebug,
	}
}

// serverSASL maps nosaslserver/maysaslserver/mustsaslserver.
func serverSASL(m SASLMode) smtpserver.SASLMode {
	switch m {
	case SASLMay:
		return smtpserver.SASLMay
	case SASLMust:
		return smtpserver.SASLMust
	}
	return smtpserver.SASLNone
}

// JobChannel is the job controller's scheduling settings of channel c: its
// keywords, then the [CHANNEL=] section of job_controller.cnf that applies to it
// (a job_limit there lowers maxjobs, a thread_depth replaces threaddepth, its
// delivery windows apply).
func (img *Image) JobChannel(c *ChannelConfig) jobctl.Channel {
	jc := jobctl.Channel{
		MaxJobs:      c.MaxJobs,
		Pool:         c.Pool,
		ThreadDepth:  c.ThreadDepth,
		Notices:      jobctl.NoticesOf(c.Notices[Normal]...),
		AddrsPerFile: c.AddrsPerFile,
	}
	for p := range NumPriorities {
		jc.Backoff[jobClass(p)] = jobctl.BackoffOf(c.Backoff[p]...)
	}
	s, ok := img.Jobs.ChannelSection(c.Name)
	if !ok {
		return jc
	}
	if s.JobLimit > 0 && (jc.MaxJobs == 0 || s.JobLimit < jc.MaxJobs) {
		jc.MaxJobs = s.JobLimit
	}
	if s.ThreadDepth > 0 {
		jc.ThreadDepth = s.ThreadDepth
	}
	for p := range NumPriorities {
		if w := s.Windows[p]; w.Set {
			// Both sides count minutes after midnight with the same wrap and
			// whole-day rules: the window was validated, nothing to re-parse.
			jc.Windows[jobClass(p)] = jobctl.Window{Start: w.Start, End: w.End}
		}
	}
	return jc
}

// jobClass maps the compiler's priority index onto the job controller's class.
func jobClass(p Priority) jobctl.Class {
	switch p {
	case Urgent:
		return jobctl.Urgent
	case Nonurgent:
		return jobctl.NonUrgent
	}
	return jobctl.Normal
}

// engineChannel is what the rule engine needs of the channel; Check hands it to
// engine.Compile.
func (c *ChannelConfig) engineChannel() engine.Channel {
	return engine.Channel{
		Name:             c.Name,
		Official:         c.Official,
		Alias:            c.Alias,
		Hosts:            append([]engine.Host(nil), c.Hosts...),
		Src:              c.Pos.String(),
		Local:            c.Local(),
		RouteLocal:       c.RouteLocal,
		Rules:            c.Rules,
		BangOverPercent:  c.BangOverPercent,
		ViaAliasRequired: c.ViaAliasRequired,
		ExpandLimit:      max(c.ExpandLimit, 0),
		ExpandLimitSet:   c.ExpandLimit >= 0,
		ExpandChannel:    c.ExpandChannel,
	}
}

// The SMTP server's settings from the channel option files. The product's
// documentation says the server reads the option file of the channel a
// connection arrives on only, never that of a channel it is switched to. mtad
// also applies the limits of the channel a session is switched to (our decision,
// documented in docs/configuration.md), key by key: a key that channel's file
// does not set keeps the arrival channel's value. What cannot follow a switch
// (the banner's text and our host name) stays the arrival channel's, and
// cnbuild warns about it where it would be ignored (serveroptions.go).

// DefaultSMTPSource is the channel SMTP connections arrive on: tcp_local when
// it exists (the product's convention), else the first channel with the smtp
// keyword. Its option file is the SMTP service's.
func (img *Image) DefaultSMTPSource() string {
	if _, ok := img.Channel("tcp_local"); ok {
		return "tcp_local"
	}
	for _, c := range img.Channels {
		if c.SMTP {
			return c.Name
		}
	}
	return "tcp_local"
}

// ServerChannelPolicy is what the SMTP server needs of channel c: its keywords
// (ServerPolicy), and the limits of its option file for sessions it is the
// source channel of.
func (img *Image) ServerChannelPolicy(c *ChannelConfig) smtpserver.ChannelPolicy {
	p := c.ServerPolicy()
	p.Timeouts = img.ServerTimeouts(c.Name)
	p.MaxRecipients = serverSetting(img, c.Name, "ALLOW_RECIPIENTS_PER_TRANSACTION",
		func(o ChannelOptions) int { return o.AllowRecipientsPerTransaction })
	return p
}

// ServerTimeouts are the SMTP server's time limits for a session whose source
// channel is channel.
func (img *Image) ServerTimeouts(channel string) smtpserver.Timeouts {
	t := smtpserver.Timeouts{
		Command:     serverSetting(img, channel, "COMMAND_RECEIVE_TIME", func(o ChannelOptions) time.Duration { return o.CommandReceiveTime }),
		DataBlock:   serverSetting(img, channel, "DATA_RECEIVE_TIME", func(o ChannelOptions) time.Duration { return o.DataReceiveTime }),
		MinDataRate: int64(serverSetting(img, channel, "MIN_DATA_RECEIVE_RATE", func(o ChannelOptions) int { return o.MinDataReceiveRate })),
		Session:     serverSetting(img, channel, "MAX_SESSION_TIME", func(o ChannelOptions) time.Duration { return o.MaxSessionTime }),
	}
	// The banner delay is not inherited. A client that switchchannel moved to
	// another channel at admission is one the rewrite rules recognised by its
	// address: an internal client, greeted at once unless that channel's own
	// option file sets BANNER_DELAY.
	own := img.ChannelOptionsFor(channel)
	if _, set := own.Raw["BANNER_DELAY"]; set || strings.EqualFold(channel, img.DefaultSMTPSource()) {
		t.BannerDelay = own.BannerDelay
	}
	return t
}

// serverSetting is one server key's value for sessions whose source channel is
// channel: that channel's option file's when it sets the key (or when it is the
// arrival channel), else the arrival channel's.
func serverSetting[T any](img *Image, channel, key string, get func(ChannelOptions) T) T {
	arrival := img.DefaultSMTPSource()
	own := img.ChannelOptionsFor(channel)
	if _, set := own.Raw[key]; set || strings.EqualFold(channel, arrival) {
		return get(own)
	}
	return get(img.ChannelOptionsFor(arrival))
}
