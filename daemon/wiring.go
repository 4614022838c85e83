package daemon

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mtad.dev/mta/auth"
	"mtad.dev/mta/channels"
	"mtad.dev/mta/compiler"
	"mtad.dev/mta/dnsx"
	"mtad.dev/mta/jobctl"
	"mtad.dev/mta/reroute"
	"mtad.dev/mta/smtpserver"
)

// hostname is the name the MTA gives itself: the local channel's official host.
func hostname(img *compiler.Image) string {
	if l := img.LocalChannel(); l != nil && l.Official != "" {
		return l.Official
	}
	return "localhost"
}

// defaultSource is the channel SMTP connections start in: tcp_local when it exists
// (the product's convention), else the first SMTP channel.
func defaultSource(img *compiler.Image) string {
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

// newPolicy derives the SMTP service's immutable policy from an image.
func newPolicy(img *compiler.Image) *smtpserver.Policy {
	src := defaultSource(img)
	opts := img.ChannelOptionsFor(src)
	p := &smtpserver.Policy{
		Intake:         newIntakeRules(img),
		Channels:       make(map[string]smtpserver.ChannelPolicy, len(img.Channels)),
		DefaultSource:  src,
		BannerAddition: opts.BannerAddition,
		MaxRecipients:  opts.AllowRecipientsPerTransaction,
		BlockSize:      int64(img.Options.BlockSize),
		LineLimit:      img.Options.LineLimit,
		LogConnection:  img.Options.LogConnection,
		Timeouts: smtpserver.Timeouts{
			Command:   opts.CommandReceiveTime,
			DataBlock: opts.DataReceiveTime,
		},
	}
	if img.Options.BlockLimit > 0 {
		p.MaxMessageBytes = int64(img.Options.BlockLimit) * int64(img.Options.BlockSize)
	}
	for i := range img.Channels {
		c := &img.Channels[i]
		p.Channels[c.Name] = smtpserver.ChannelPolicy{
			Name:                   c.Name,
			SwitchChannel:          c.Switch == compiler.Switch,
			AllowSwitchChannel:     c.Switch == compiler.AllowSwitch,
			NoSwitchChannel:        c.Switch == compiler.NoSwitch,
			SASLSwitchChannel:      c.SASLSwitchChannel,
			BlockLimit:             int64(c.MessageBlockLimit),
			SourceBlockLimit:       int64(c.SourceBlockLimit),
			RecipientLimit:         c.RecipientLimit,
			SASL:                   saslMode(c.SASLServer),
			DisconnectBadAuthLimit: c.DisconnectBadAuthLimit,
			SlaveDebug:             c.SlaveDebug,

			LineLimit:                  c.LineLimit,
			TLSSwitchChannel:           c.TLSSwitchChannel,
			RequireTLS:                 c.TLSServer == compiler.TLSMust,
			TransactionLimit:           c.TransactionLimit,
			RecipientCutoff:            c.RecipientCutoff,
			DisconnectTransactionLimit: c.DisconnectTransactionLimit,
			DisconnectRecipientLimit:   c.DisconnectRecipientLimit,
			DisconnectRejectLimit:      c.DisconnectRejectLimit,
			DeferralRejectLimit:        c.DeferralRejectLimit,
			DisconnectBadCommandLimit:  c.DisconnectBadCommandLimit,
		}
	}
	return p
}

// jobConfig derives the job controller's settings, and the delivery programs, from
// an image.
func (d *Daemon) jobConfig(img *compiler.Image) jobctl.Config {
	cfg := jobctl.Config{
		Queue:      d.queue,
		Programs:   d.programs(img),
		Channels:   make(map[string]jobctl.Channel, len(img.Channels)),
		Pools:      make(map[string]int, len(img.Jobs.Pools)),
		MailLog:    d.mlog,
		Logger:     d.log.With("component", "jobctl"),
		HoldList:   filepath.Join(d.opts.DataDir, "holdlist"),
		Submit:     d.submitNotice,
		Hostname:   hostname(img),
		Postmaster: img.Options.ReturnAddress,
		NoticeUnit: 24 * time.Hour,
	}
	if img.Options.ReturnUnits == 1 {
		cfg.NoticeUnit = time.Hour
	}
	if d.opts.NoticeUnit > 0 {
		cfg.NoticeUnit = d.opts.NoticeUnit
	}
	if cfg.Postmaster == "" {
		cfg.Postmaster = "postmaster@" + hostname(img)
	}
	for i, p := range img.Jobs.Pools {
		if i == 0 {
			cfg.DefaultPool = p.Name
		}
		cfg.Pools[p.Name] = p.JobLimit
	}
	for i := range img.Channels {
		c := &img.Channels[i]
		jc := jobctl.Channel{
			MaxJobs:      c.MaxJobs,
			Pool:         c.Pool,
			ThreadDepth:  c.ThreadDepth,
			Notices:      c.Notices[compiler.Normal],
			AddrsPerFile: c.AddrsPerFile,
		}
		for p := compiler.Priority(0); p < compiler.NumPriorities; p++ {
			jc.Backoff[classOf(p)] = c.Backoff[p]
		}
		if s, ok := img.Jobs.ChannelSection(c.Name); ok {
			if s.JobLimit > 0 && (jc.MaxJobs == 0 || s.JobLimit < jc.MaxJobs) {
				jc.MaxJobs = s.JobLimit
			}
			if s.ThreadDepth > 0 {
				jc.ThreadDepth = s.ThreadDepth
			}
			for p := compiler.Priority(0); p < compiler.NumPriorities; p++ {
				if w := s.Windows[p]; w.Set {
					// Both sides count minutes after midnight with the same wrap and
					// whole-day rules: the compiler validated it, nothing to re-parse.
					jc.Windows[classOf(p)] = &jobctl.Window{Start: w.Start, End: w.End}
				}
			}
		}
		cfg.Channels[c.Name] = jc
	}
	return cfg
}

// classOf maps the compiler's priority index onto the job controller's class.
func classOf(p compiler.Priority) jobctl.Class {
	switch p {
	case compiler.Urgent:
		return jobctl.Urgent
	case compiler.Nonurgent:
		return jobctl.NonUrgent
	}
	return jobctl.Normal
}

// programs builds one delivery program per channel that has a master side. Channels
// whose settings did not change keep their program (and its connection cache) across
// reloads.
func (d *Daemon) programs(img *compiler.Image) map[string]channels.Program {
	d.progMu.Lock()
	defer d.progMu.Unlock()
	if d.progs == nil {
		d.progs = map[string]programEntry{}
	}
	out := make(map[string]channels.Program, len(img.Channels))
	seen := map[string]bool{}
	for i := range img.Channels {
		c := &img.Channels[i]
		if c.Role == compiler.SlaveOnly {
			continue
		}
		key, build := d.programFor(img, c)
		if build == nil {
			continue
		}
		seen[c.Name] = true
		if e, ok := d.progs[c.Name]; ok && e.key == key {
			out[c.Name] = e.prog
			continue
		}
		if e, ok := d.progs[c.Name]; ok {
			closeProgram(e.prog)
		}
		p := build()
		d.progs[c.Name] = programEntry{key: key, prog: p}
		out[c.Name] = p
	}
	for name, e := range d.progs {
		if !seen[name] {
			closeProgram(e.prog)
			delete(d.progs, name)
		}
	}
	return out
}

type programEntry struct {
	key  string
	prog channels.Program
}

func closeProgram(p channels.Program) {
	if c, ok := p.(interface{ Close() error }); ok {
		c.Close()
	}
}

// programFor chooses the delivery program of a channel by the product's conventions:
// the local channel delivers to Maildirs, SMTP channels run the SMTP client,
// bitbucket discards, reprocess/process and hold hand mail back to the queue
// (reprocess.go). Other channels have no master program here: their mail stays
// queued and `qm` shows it.
func (d *Daemon) programFor(img *compiler.Image, c *compiler.ChannelConfig) (string, func() channels.Program) {
	host := hostname(img)
	switch {
	case c.Local():
		root := filepath.Join(d.opts.DataDir, "mailboxes")
		return "maildir|" + root + "|" + host, func() channels.Program { return channels.NewMaildir(root, host) }
	case img.ChannelOptionsFor(c.Name).PipeCommand != "":
		opts := img.ChannelOptionsFor(c.Name)
		po := channels.PipeOptions{Command: strings.Fields(opts.PipeCommand), Timeout: opts.PipeTimeout,
			PerMessage: opts.PipeMode == compiler.PipeModeMessage, TemporaryExits: opts.PipeTemporaryExits, PermanentExits: opts.PipePermanentExits}
		return fmt.Sprintf("pipe|%q|%v|%t|%v|%v", po.Command, po.Timeout, po.PerMessage, po.TemporaryExits, po.PermanentExits),
			func() channels.Program { return channels.NewPipe(po) }
	case strings.HasPrefix(c.Name, "bitbucket"):
		return "bitbucket", func() channels.Program { return channels.Bitbucket{} }
	case !c.SMTP && (reroute.IsReprocessChannel(c.Name) || reroute.IsHoldChannel(c.Name)):
		name, hold := c.Name, reroute.IsHoldChannel(c.Name)
		return fmt.Sprintf("reprocess|%t", hold), func() channels.Program {
			return reroute.New(name, hold, d.intakeRules, d.intake, d.log.With("component", "reprocess", "channel", name))
		}
	case c.SMTP || c.LMTP:
		// smtp, or lmtp (compiler.ChannelConfig.LMTP): the same client, in LMTP mode
		// to the daemon host over TCP or to a Unix socket, one result per recipient.
		opts := img.ChannelOptionsFor(c.Name)
		ct := opts.ClientTimeouts()
		proto := "smtp"
		if c.LMTP {
			proto = "lmtp"
		}
		so := channels.SMTPOptions{
			Daemon:     c.DaemonHost(),
			LastResort: c.LastResort,
			Port:       c.Port,
			HeloName:   host,
			MX:         mxMode(c.MX),
			LMTP:       c.LMTP,
			// Unset stages stay zero and take the client's RFC 5321 defaults.
			Timeouts: channels.Timeouts{
				Connect: ct.Connect, Greeting: ct.Greeting, Ehlo: ct.Ehlo, Mail: ct.Mail, Rcpt: ct.Rcpt,
				DataInit: ct.DataInit, DataBlock: ct.DataBlock, DataEnd: ct.DataEnd, Rset: ct.Rset, Quit: ct.Quit,
			},
			MaxMessagesPerConn: opts.AttemptTransactionsPerSession,
			TLS:                tlsPolicy(c.TLSClient),
			SevenBit:           c.EightBit == compiler.SevenBit,
			EightStrict:        c.EightBit == compiler.EightStrict,
			Logger:             d.log.With("component", proto+"-client", "channel", c.Name),
			Channel:            c.Name,
			MailLog:            d.mlog,
			LogConnection:      img.Options.LogConnection,
			MasterDebug:        c.MasterDebug,
			DebugDir:           filepath.Join(d.opts.DataDir, "log"),
			DebugNow:           d.runDebug(c.Name).active,
		}
		if sock := c.LMTPSocket(); c.LMTP && sock != "" {
			so.Daemon, so.Network = sock, "unix"
		}
		dnsTimeout := img.Options.DNSTimeout
		key := fmt.Sprintf("%s|%s|%s|%s|%d|%s|%d|%+v|%d|%t|%t|%s|%s|%v|%d|%t", proto, so.Network, so.Daemon, so.LastResort, so.Port,
			so.HeloName, so.MX, so.Timeouts, so.MaxMessagesPerConn, so.SevenBit, so.EightStrict, so.TLS,
			strings.Join(c.Nameservers, ","), dnsTimeout, so.LogConnection, so.MasterDebug)
		return key, func() channels.Program {
			if so.Network != "unix" {
				so.Resolver = d.resolver(c.Nameservers, dnsTimeout)
			}
			return channels.NewSMTP(so)
		}
	}
	return "", nil
}

// tlsPolicy maps the channel's client TLS keywords: notls (the product's default),
// maytls/maytlsclient (opportunistic STARTTLS), musttls/musttlsclient (never plaintext).
func tlsPolicy(m compiler.TLSMode) channels.TLSPolicy {
	switch m {
	case compiler.TLSMay:
		return channels.TLSMay
	case compiler.TLSMust:
		return channels.TLSMust
	}
	return channels.TLSNone
}

func mxMode(m compiler.MXMode) channels.MXMode {
	switch m {
	case compiler.RandomMX:
		return channels.MXRandom
	case compiler.NoMX:
		return channels.MXNone
	case compiler.MX:
		return channels.MXNonRandom
	}
	return channels.MXDefault
}

// resolver returns a DNS client for a nameserver list (the system's when empty)
// and a per-query timeout (option.dat DNS_TIMEOUT; zero: the resolver's default),
// shared between channels with the same settings so that one cache serves them.
func (d *Daemon) resolver(servers []string, timeout time.Duration) dnsx.Resolver {
	key := strings.Join(servers, ",") + "|" + timeout.String()
	d.dnsMu.Lock()
	defer d.dnsMu.Unlock()
	if r, ok := d.dns[key]; ok {
		return r
	}
	r, err := dnsx.New(dnsx.Config{Servers: servers, Timeout: timeout, Logger: d.log.With("component", "dns"), Metrics: d.metricsHooks()})
	if err != nil {
		// No usable resolver (no resolv.conf): smart-host channels still work; MX
		// routing then fails temporarily, which keeps mail queued rather than lost.
		d.log.Warn("DNS resolver unavailable", "servers", servers, "err", err)
		return nil
	}
	if d.dns == nil {
		d.dns = map[string]dnsx.Resolver{}
	}
	d.dns[key] = r
	return r
}

// loadCert loads the SMTP service's certificate (dispatcher.cnf TLS_CERTIFICATE and
// TLS_KEY, relative to the configuration directory); nil when none is configured.
func loadCert(img *compiler.Image, configDir string) (*tls.Certificate, error) {
	s, ok := img.Dispatcher.Service("SMTP")
	if !ok || s.TLSCertificate == "" {
		return nil, nil
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) || configDir == "" {
			return p
		}
		return filepath.Join(configDir, p)
	}
	cert, err := tls.LoadX509KeyPair(abs(s.TLSCertificate), abs(s.TLSKey))
	if err != nil {
		return nil, fmt.Errorf("SMTP TLS certificate (%s): %w", s.Src, err)
	}
	return &cert, nil
}

// tlsConfig is the SMTP service's TLS configuration. The certificate is read
// from d.cert at every handshake and STARTTLS is offered while d.cert holds one
// (tlsOffered), so that a reload can renew, add or remove the certificate in place.
func (d *Daemon) tlsConfig(cert *tls.Certificate) *tls.Config {
	d.cert.Store(cert)
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := d.cert.Load(); c != nil {
				return c, nil
			}
			// removed by a reload between our 220 and the client's hello
			return nil, errors.New("no TLS certificate configured")
		},
	}
}

// tlsOffered tells the SMTP server whether to offer STARTTLS now.
func (d *Daemon) tlsOffered() bool { return d.cert.Load() != nil }

// saslMode maps nosaslserver/maysaslserver/mustsaslserver.
func saslMode(m compiler.SASLMode) smtpserver.SASLMode {
	switch m {
	case compiler.SASLMay:
		return smtpserver.SASLMay
	case compiler.SASLMust:
		return smtpserver.SASLMust
	}
	return smtpserver.SASLNone
}

// passwords is the SMTP AUTH password file (DATA/passwd), re-read when its
// modification time changes, so that `mtactl passwd` takes effect without a restart.
// The stat per attempt is negligible beside the bcrypt comparison it precedes.
type passwords struct {
	path string
	log  *slog.Logger

	mu    sync.Mutex // guards store, mtime
	store *auth.Store
	mtime time.Time
}

func (p *passwords) Verify(user, password string) bool {
	return p.current().Verify(user, password)
}

func (p *passwords) current() *auth.Store {
	p.mu.Lock()
	defer p.mu.Unlock()
	var mt time.Time
	if fi, err := os.Stat(p.path); err == nil {
		mt = fi.ModTime()
	}
	if p.store == nil || !mt.Equal(p.mtime) {
		s, err := auth.Load(p.path)
		if err != nil {
			// A broken file keeps the previous store rather than locking everyone out.
			p.log.Error("password file unreadable; keeping the previous one", "path", p.path, "err", err)
			if p.store == nil {
				p.store, _ = auth.Parse(strings.NewReader(""), p.path)
			}
			return p.store
		}
		p.store, p.mtime = s, mt
	}
	return p.store
}

// runDebugFlag counts the `qm run` commands watching a channel: while any does, the
// channel's SMTP client writes transcripts that the command streams to the terminal.
type runDebugFlag struct{ n atomic.Int32 }

func (f *runDebugFlag) active() bool { return f.n.Load() > 0 }

// runDebug returns the channel's flag, created on first use; it survives reloads.
func (d *Daemon) runDebug(channel string) *runDebugFlag {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	if d.runFlags == nil {
		d.runFlags = map[string]*runDebugFlag{}
	}
	f := d.runFlags[channel]
	if f == nil {
		f = &runDebugFlag{}
		d.runFlags[channel] = f
	}
	return f
}
