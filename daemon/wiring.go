package daemon

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
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
	"mtad.dev/mta/filter"
	"mtad.dev/mta/jobctl"
	"mtad.dev/mta/reroute"
	"mtad.dev/mta/smtpserver"
)

// hostname is the name the MTA gives itself: the local channel's official host.
func hostname(img *compiler.Image) string { return img.Hostname() }

// defaultSource is the channel SMTP connections arrive on (compiler's
// DefaultSMTPSource): tcp_local when it exists, else the first SMTP channel.
func defaultSource(img *compiler.Image) string { return img.DefaultSMTPSource() }

// bannerDelayExempt are the clients greeted without the banner delay: loopback,
// where local programs and the benchmarks connect from and nobody talks first.
func bannerDelayExempt() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// newPolicy derives the SMTP service's immutable policy from an image. The
// service's own limits are those of the channel connections arrive on; each
// channel carries the limits its option file gives sessions it is the source
// channel of (compiler's ServerChannelPolicy).
func newPolicy(img *compiler.Image) *smtpserver.Policy {
	src := defaultSource(img)
	opts := img.ChannelOptionsFor(src)
	p := &smtpserver.Policy{
		Intake:            newIntakeRules(img),
		Channels:          make(map[string]smtpserver.ChannelPolicy, len(img.Channels)),
		DefaultSource:     src,
		BannerAddition:    opts.BannerAddition,
		MaxRecipients:     opts.AllowRecipientsPerTransaction,
		BlockSize:         int64(img.Options.BlockSize),
		LineLimit:         img.Options.LineLimit,
		LogConnection:     img.Options.LogConnection,
		Timeouts:          img.ServerTimeouts(src),
		BannerDelayExempt: bannerDelayExempt(),
	}
	if img.Options.BlockLimit > 0 {
		p.MaxMessageBytes = int64(img.Options.BlockLimit) * int64(img.Options.BlockSize)
	}
	for i := range img.Channels {
		c := &img.Channels[i]
		p.Channels[c.Name] = img.ServerChannelPolicy(c)
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
		cfg.Channels[c.Name] = img.JobChannel(c)
	}
	return cfg
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
		spec, ok := d.programFor(img, c)
		if !ok {
			continue
		}
		seen[c.Name] = true
		if e, ok := d.progs[c.Name]; ok && e.spec == spec {
			out[c.Name] = e.prog
			continue
		}
		if e, ok := d.progs[c.Name]; ok {
			closeProgram(e.prog)
		}
		p := d.buildProgram(c.Name, spec)
		d.progs[c.Name] = programEntry{spec: spec, prog: p}
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
	spec programSpec
	prog channels.Program
}

func closeProgram(p channels.Program) {
	if c, ok := p.(interface{ Close() error }); ok {
		c.Close()
	}
}

// programKind is which delivery program a channel runs.
type programKind uint8

const (
	maildirProgram programKind = iota + 1
	pipeProgram
	bitbucketProgram
	reprocessProgram
	smtpProgram
)

// programSpec is everything the configuration decides about a channel's delivery
// program: which program, and its settings as the compiler computed them. It is
// comparable, and a program is rebuilt on reload exactly when its spec is no
// longer == to the one it was built from; a setting added to a subsystem's
// settings type is compared without anyone listing it here.
type programSpec struct {
	kind     programKind
	hostname string // maildir: the host name of Delivered-To and unique names
	hold     bool   // reprocess: the hold channel, which keeps mail .HELD
	smtp     channels.SMTPSettings
	pipe     channels.PipeSettings
	// maildir (filter.go): users' filters (the filter URL-pattern), with the
	// settings they run with, and folders by subaddress (a fileinto template).
	userFilter       string
	filters          filter.Settings
	folderFromDetail bool
}

// programFor chooses the delivery program of a channel by the product's conventions:
// the local channel delivers to Maildirs, a channel with PIPE_COMMAND runs it, SMTP
// channels run the SMTP client, bitbucket discards, reprocess/process and hold hand
// mail back to the queue (reprocess.go). Other channels have no master program
// here (ok false): their mail stays queued and `qm` shows it.
func (d *Daemon) programFor(img *compiler.Image, c *compiler.ChannelConfig) (spec programSpec, ok bool) {
	if c.Local() {
		return maildirSpec(img, c), true
	}
	if ps, ok := img.Pipe(c); ok {
		return programSpec{kind: pipeProgram, pipe: ps}, true
	}
	switch {
	case strings.HasPrefix(c.Name, "bitbucket"):
		return programSpec{kind: bitbucketProgram}, true
	case !c.SMTP && (reroute.IsReprocessChannel(c.Name) || reroute.IsHoldChannel(c.Name)):
		return programSpec{kind: reprocessProgram, hold: reroute.IsHoldChannel(c.Name)}, true
	case c.SMTP || c.LMTP:
		// smtp, or lmtp (compiler.ChannelConfig.LMTP): the same client, in LMTP mode
		// to the daemon host over TCP or to a Unix socket, one result per recipient.
		return programSpec{kind: smtpProgram, smtp: img.SMTPClient(c)}, true
	}
	return programSpec{}, false
}

// buildProgram makes channel name's program from its spec, with what the daemon
// gives every program: the queue, the logs, the DNS resolvers, `qm run`'s flag.
func (d *Daemon) buildProgram(name string, spec programSpec) channels.Program {
	switch spec.kind {
	case maildirProgram:
		return d.newMaildir(spec)
	case pipeProgram:
		return channels.NewPipe(spec.pipe.Options())
	case bitbucketProgram:
		return channels.Bitbucket{}
	case reprocessProgram:
		return reroute.New(name, spec.hold, d.intakeRules, d.intake, d.log.With("component", "reprocess", "channel", name))
	}
	s := spec.smtp
	proto := "smtp"
	if s.LMTP {
		proto = "lmtp"
	}
	so := channels.SMTPOptions{
		SMTPSettings: s,
		Logger:       d.log.With("component", proto+"-client", "channel", name),
		MailLog:      d.mlog,
		DebugDir:     filepath.Join(d.opts.DataDir, "log"),
		DebugNow:     d.runDebug(name).active,
	}
	// nodns: no resolver at all, so that only literals reach a host.
	if s.Network != "unix" && !s.NoDNS {
		so.Resolver = d.resolver(strings.Fields(s.Nameservers), s.DNSTimeout)
	}
	return channels.NewSMTP(so)
}

// resolver returns a DNS client for a nameserver list (the system's when empty)
// and a per-query timeout (option.dat DNS_TIMEOUT; zero: the resolver's default),
// shared between channels with the same settings so that one cache serves them.
func (d *Daemon) resolver(servers []string, timeout time.Duration) dnsx.Resolver {
	if len(d.opts.DNSServers) > 0 {
		servers = d.opts.DNSServers
	}
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
