package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"mtad.dev/mta/auth"
	"mtad.dev/mta/compiler"
	"mtad.dev/mta/dnsx"
	"mtad.dev/mta/examples"
	"mtad.dev/mta/filter"
	"mtad.dev/mta/intake"
	"mtad.dev/mta/jobctl"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/metrics"
	"mtad.dev/mta/queue"
	"mtad.dev/mta/smtpserver"
)

// Options say where the daemon finds its configuration and data.
type Options struct {
	// ConfigDir holds compiled.image (or the text files); "" means the configuration
	// embedded in the binary.
	ConfigDir string
	// DataDir holds the queue, mail.log, the hold list and the Maildirs.
	DataDir string
	// Listen overrides the SMTP service's address ("127.0.0.1:0" in tests).
	Listen string
	// ReadyFile, when set, receives the bound SMTP address once the daemon accepts mail.
	ReadyFile string
	Logger    *slog.Logger
	// NoticeUnit overrides the unit of the channels' notices ages (a day, or an hour
	// with RETURN_UNITS=1). Zero keeps the configuration's; tests use seconds.
	NoticeUnit time.Duration
	// MetricsAllowRemote lets option.dat METRICS_LISTEN name a non-loopback address
	// (the endpoint has no authentication: only for a network where that is safe).
	MetricsAllowRemote bool
	// ReloadDebounce is how long the watcher waits after the last change of
	// compiled.image before reloading; 0 means 200 ms.
	ReloadDebounce time.Duration
	// DNSServers, when set, are the nameservers ("ip:port") of every
	// resolver mtad builds, whatever the channels' nameservers say: tests
	// point them at an in-process DNS server.
	DNSServers []string
	// NotifySocket is the service manager's notification socket
	// ($NOTIFY_SOCKET; "@name" is abstract); "" sends nothing (notify.go).
	NotifySocket string
	// WatchdogInterval is the service manager's watchdog ($WATCHDOG_USEC): mtad
	// pings at half of it. Zero: no watchdog.
	WatchdogInterval time.Duration
}

// Daemon is a running mtad.
type Daemon struct {
	opts Options
	log  *slog.Logger

	image  atomic.Pointer[compiler.Image]
	policy atomic.Pointer[smtpserver.Policy]

	mlog   *maillog.Logger
	queue  *queue.Queue
	intake *intake.Intake // local submission, the reprocess and hold channels, notices
	jc     *jobctl.Controller
	smtp   *smtpserver.Server

	reloadMu sync.Mutex // one reload at a time
	hot      hotState   // reload bookkeeping and the metrics endpoint (watch.go)

	// listeners are the SMTP listeners in force, in dispatcher.cnf's order. Reload
	// replaces the slice (never edits it in place) under lnMu.
	lnMu      sync.Mutex
	listeners []*smtpListener
	runCtx    context.Context // parent of every listener's context

	progMu   sync.Mutex // guards progs
	progs    map[string]programEntry
	cert     atomic.Pointer[tls.Certificate] // the SMTP service's certificate; replaced by reload
	runMu    sync.Mutex                      // guards runFlags
	runFlags map[string]*runDebugFlag
	dnsMu    sync.Mutex // guards dns
	dns      map[string]dnsx.Resolver

	filters   *filter.Cache         // compiled Sieve scripts, kept across reloads
	vacations *filter.VacationStore // users' vacation answers (DATA/vacation)

	ctl    controlState // the control socket's state (control.go)
	cancel context.CancelFunc
	done   chan struct{} // closed when the job controller has stopped
	errs   chan error

	// dropDone is closed when the maildrop pickup has stopped (maildrop.go).
	dropDone chan struct{}
	sd       *notifier // the service manager's socket; nil: none (notify.go)
}

// Start loads the configuration, recovers the queue and begins serving. The queue is
// recovered before the listener opens, so no client is told 250 by a daemon that has
// not yet seen what an earlier run left.
func Start(ctx context.Context, opts Options) (*Daemon, error) {
	if opts.DataDir == "" {
		opts.DataDir = "mta-data"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	d := &Daemon{opts: opts, log: opts.Logger, done: make(chan struct{}), errs: make(chan error, 8),
		sd: newNotifier(opts.NotifySocket)}

	img, err := d.loadImage()
	if err != nil {
		return nil, err
	}
	if err := makeDataDir(opts.DataDir); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	d.image.Store(img)
	d.policy.Store(d.withAuth(newPolicy(img), img))

	d.mlog, err = maillog.Open(filepath.Join(opts.DataDir, "mail.log"), maillog.Options{LogMessageID: img.Options.LogMessageID})
	if err != nil {
		return nil, err
	}
	d.filters = filter.NewCache(d.log.With("component", "filter"), 0)
	d.vacations = filter.NewVacationStore(filepath.Join(opts.DataDir, "vacation"))
	d.policy.Store(d.policyFor(img)) // now with the filters, which log to mail.log
	// The job controller exists before the queue opens so that OnCommit always has
	// somewhere to go; it reads nothing from the queue until Run.
	var jcPtr atomic.Pointer[jobctl.Controller]
	d.queue, err = queue.Open(filepath.Join(opts.DataDir, "queue"), queue.Options{
		Logger:         d.log.With("component", "queue"),
		CommitObserver: d.commitObserver(),
		OnCommit: func(envs []*queue.Envelope) {
			if jc := jcPtr.Load(); jc != nil {
				jc.Add(envs)
			}
		},
	})
	if err != nil {
		d.mlog.Close()
		return nil, fmt.Errorf("open queue: %w", err)
	}
	d.intake = &intake.Intake{Queue: d.queue, MailLog: d.mlog, Log: d.log.With("component", "intake"), Metrics: d.metricsHooks()}
	d.jc = jobctl.New(d.jobConfig(img))
	jcPtr.Store(d.jc)

	cert, err := loadCert(img, opts.ConfigDir)
	if err != nil {
		d.closeStores()
		return nil, err
	}
	tlsCfg := d.tlsConfig(cert)
	d.smtp = smtpserver.New(smtpserver.Config{
		TLS:         tlsCfg,
		TLSOffered:  d.tlsOffered,
		Auth:        &passwords{path: filepath.Join(opts.DataDir, auth.DefaultFileName), log: d.log},
		AuthLimiter: auth.NewLimiter(auth.LimiterConfig{}),
		Policy:      d.policy.Load,
		Queue:       d.queue,
		Log:         d.mlog,
		MaxConns:    smtpMaxConns(img),
		PerIPExempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		Logger:      d.log.With("component", "smtp"),
		Metrics:     d.metricsHooks(),
		DebugDir:    filepath.Join(opts.DataDir, "log"),
	})

	addrs, err := listenAddrs(img, opts.Listen)
	if err != nil {
		d.closeStores()
		return nil, err
	}
	d.listeners, err = openListeners(addrs, nil)
	if err != nil {
		d.closeStores()
		return nil, err
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel = cancel
	d.runCtx = runCtx
	go d.tuneGC(runCtx, func() (int, bool) {
		t := d.jc.Totals()
		return t.Total.Queued.Messages, t.Complete
	})
	go func() {
		defer close(d.done)
		if err := d.jc.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			d.errs <- fmt.Errorf("job controller: %w", err)
		}
	}()
	for _, l := range d.listeners {
		d.serveListener(l)
	}
	d.startServices(runCtx)
	d.log.Info("mtad started", "smtp", d.Addr().String(), "data", opts.DataDir,
		"config", configName(opts.ConfigDir), "image_built", img.Header.BuildTime.Format(time.RFC3339),
		"image_hash", fmt.Sprintf("%x", img.Header.SourceHash[:8]))
	return d, nil
}

// startServices starts what surrounds the mail path once the queue is
// recovered and the listeners serve: the control socket, the configuration
// watcher (and metrics), the maildrop pickup; then it says the daemon is ready,
// to the ready file and to the service manager. A part that cannot start is
// logged; mail is served without it.
func (d *Daemon) startServices(runCtx context.Context) {
	if err := d.startControl(runCtx); err != nil {
		d.log.Error("control socket", "err", err)
	}
	if err := d.startWatch(runCtx); err != nil {
		d.log.Error("configuration watcher", "err", err)
	}
	var err error
	if d.dropDone, err = d.startMaildrop(runCtx); err != nil {
		d.log.Error("maildrop: local submission without the control socket is off", "err", err)
	}
	if d.opts.ReadyFile != "" {
		if err := writeFileAtomic(d.opts.ReadyFile, []byte(d.Addr().String()+"\n")); err != nil {
			d.log.Error("ready file", "err", err)
		}
	}
	d.notify("READY=1", d.statusLine())
	if d.sd != nil {
		go d.notifyLoop(runCtx, d.opts.WatchdogInterval)
	}
}

func configName(dir string) string {
	if dir == "" {
		return "(embedded default)"
	}
	return dir
}

// Addr is the first SMTP listener's address.
func (d *Daemon) Addr() net.Addr {
	d.lnMu.Lock()
	defer d.lnMu.Unlock()
	if len(d.listeners) == 0 {
		return nil
	}
	return d.listeners[0].Addr()
}

// Addrs are the SMTP listeners' addresses, in dispatcher.cnf's order.
func (d *Daemon) Addrs() []net.Addr {
	d.lnMu.Lock()
	defer d.lnMu.Unlock()
	out := make([]net.Addr, len(d.listeners))
	for i, l := range d.listeners {
		out[i] = l.Addr()
	}
	return out
}

// smtpListener is one SMTP listener and the means to stop serving it alone.
type smtpListener struct {
	net.Listener
	addr string // as configured (dispatcher.cnf or -listen), the key reloads compare
	stop context.CancelFunc
}

// openListeners opens addrs in order, reusing the listener of an address that keep
// already has. On any failure it closes what it opened itself and reports the error,
// so the caller's set is untouched.
func openListeners(addrs []string, keep []*smtpListener) ([]*smtpListener, error) {
	have := make(map[string]*smtpListener, len(keep))
	for _, l := range keep {
		have[l.addr] = l
	}
	var out, opened []*smtpListener
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			continue
		}
		seen[a] = true
		if l, ok := have[a]; ok {
			out = append(out, l)
			continue
		}
		nl, err := smtpListenConfig.Listen(context.Background(), "tcp", a)
		if err != nil {
			for _, l := range opened {
				l.Close()
			}
			return nil, fmt.Errorf("listen %s: %w", a, err)
		}
		l := &smtpListener{Listener: nl, addr: a}
		opened = append(opened, l)
		out = append(out, l)
	}
	return out, nil
}

// smtpListenConfig turns TCP keep-alive off on accepted SMTP connections: the
// session's own command and data timeouts already end a dead peer's session, and
// Go's default (keep-alive on, with idle, interval and count) costs four
// setsockopt(2) calls per connection, a tenth of a message's syscalls when every
// message has its own connection. Postfix's smtpd does not set it either.
var smtpListenConfig = net.ListenConfig{KeepAlive: -1}

// serveListener serves one listener under its own context, so that a reload can stop
// it without touching the others or the sessions it accepted.
func (d *Daemon) serveListener(l *smtpListener) {
	if l.stop != nil {
		return // already served
	}
	ctx, stop := context.WithCancel(d.runCtx)
	l.stop = stop
	go func() {
		if err := d.smtp.Serve(ctx, l.Listener); err != nil && ctx.Err() == nil {
			d.errs <- fmt.Errorf("smtp %s: %w", l.Addr(), err)
		}
	}()
}

// Image is the image in force.
func (d *Daemon) Image() *compiler.Image { return d.image.Load() }

// Queue is the daemon's queue (for tools and tests in-process).
func (d *Daemon) Queue() *queue.Queue { return d.queue }

// Jobs is the daemon's job controller.
func (d *Daemon) Jobs() *jobctl.Controller { return d.jc }

// Errors reports fatal errors of the running parts.
func (d *Daemon) Errors() <-chan error { return d.errs }

func (d *Daemon) loadImage() (*compiler.Image, error) {
	if d.opts.ConfigDir == "" {
		r, err := compiler.CheckFS(examples.Default)
		if err != nil {
			return nil, fmt.Errorf("embedded configuration: %w", err)
		}
		if len(r.Errors) > 0 {
			return nil, fmt.Errorf("embedded configuration: %w", r.Errors)
		}
		return r.Image, nil
	}
	img, fromImage, err := compiler.LoadOrBuild(d.opts.ConfigDir)
	if err != nil {
		return nil, err
	}
	if !fromImage {
		d.log.Warn("no compiled.image; using the text configuration (run mtactl cnbuild)", "config", d.opts.ConfigDir)
	}
	return img, nil
}

// Reload loads the configuration again (SIGHUP, mtactl reload): compiled.image when
// there is one, else the text files, else the embedded configuration. The new image
// is validated and its listeners opened beside the running ones; only then is it
// swapped in. SMTP transactions in progress keep the policy they started with; new
// ones get the new one. On any error nothing changes and the error is returned (and
// logged); an image equal to the one in force is a no-op.
func (d *Daemon) Reload() error {
	return d.reload("request", d.loadCurrent)
}

// reload is Reload with the trigger's name and loader. The steps, in order: load and
// validate off to the side; compare with the image in force; open new listeners and a
// moved metrics endpoint (failure: close them, keep everything); store the policy
// and the image (one pointer store each: new connections and transactions see them at
// once); hand the job controller its new pools and limits (no job killed); stop
// listeners that are no longer configured (their sessions go on) and the old
// metrics endpoint.
func (d *Daemon) reload(trigger string, load func() (*compiler.Image, imageOrigin, error)) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	d.notifyReloading()
	defer func() { d.notify("READY=1", d.statusLine()) }() // the old configuration or the new: serving
	began := time.Now()
	img, origin, err := load()
	if err == nil {
		err = d.validate(img)
	}
	var cert *tls.Certificate
	if err == nil {
		cert, err = loadCert(img, d.opts.ConfigDir)
	}
	if err != nil {
		d.recordReload(trigger, reloadFailed, err, nil, "")
		d.log.Error("reload refused; the previous configuration stays in force", "trigger", trigger, "err", err)
		return err
	}
	if d.unchanged(img, origin) {
		d.swapCert(cert) // a renewed certificate file is not part of the image
		d.recordReload(trigger, reloadUnchanged, nil, nil, "")
		d.log.Info("reload: the configuration in force is already this one", "trigger", trigger,
			"image_built", img.Header.BuildTime.Format(time.RFC3339), "image_hash", shortHash(img))
		return nil
	}

	d.lnMu.Lock()
	old := d.listeners
	d.lnMu.Unlock()
	var next []*smtpListener
	addrs, err := listenAddrs(img, d.opts.Listen)
	if err == nil {
		next, err = openListeners(addrs, old)
	}
	var oldMetrics *metrics.Server
	if err == nil {
		oldMetrics, err = d.prepareMetrics(img)
		if err != nil {
			closeNew(next, old)
		}
	}
	if err != nil {
		d.recordReload(trigger, reloadFailed, err, nil, "")
		d.log.Error("reload refused; the previous configuration stays in force", "trigger", trigger, "err", err)
		return err
	}

	d.swapCert(cert)
	d.policy.Store(d.policyFor(img))
	d.image.Store(img)
	d.smtp.SetMaxConns(smtpMaxConns(img)) // new connections; sessions over a lowered cap finish
	cfg := d.jobConfig(img)
	d.jc.SetConfig(cfg)
	d.hot.limits.Store(limitsOf(cfg))

	d.lnMu.Lock()
	d.listeners = next
	d.lnMu.Unlock()
	var opened, closed []string
	for _, l := range next {
		if l.stop == nil {
			d.serveListener(l)
			opened = append(opened, l.Addr().String())
		}
	}
	for _, l := range old {
		if !slices.Contains(next, l) {
			closed = append(closed, l.Addr().String())
			l.stop() // closes the listener; sessions it accepted go on
		}
	}
	if oldMetrics != nil {
		d.closeMetrics(oldMetrics)
	}
	d.recordReload(trigger, reloadOK, nil, img, origin)
	d.log.Info("configuration reloaded", "trigger", trigger, "source", string(origin),
		"image_built", img.Header.BuildTime.Format(time.RFC3339), "image_hash", shortHash(img),
		"listeners_opened", opened, "listeners_closed", closed, "took", time.Since(began).Round(time.Microsecond))
	return nil
}

// swapCert puts a reloaded certificate in force for the sessions and handshakes
// that follow: a renewed one is presented, an added one turns STARTTLS on, a
// removed one turns it off (sessions already in TLS keep their connection).
func (d *Daemon) swapCert(cert *tls.Certificate) {
	switch old := d.cert.Swap(cert); {
	case old == nil && cert != nil:
		d.log.Info("a TLS certificate is now configured: STARTTLS offered")
	case old != nil && cert == nil:
		d.log.Info("the TLS certificate was removed from the configuration: STARTTLS no longer offered")
	}
}

// closeNew closes the listeners of next that are not in old (a refused reload).
func closeNew(next, old []*smtpListener) {
	for _, l := range next {
		if !slices.Contains(old, l) {
			l.Close()
		}
	}
}

func shortHash(img *compiler.Image) string { return fmt.Sprintf("%x", img.Header.SourceHash[:8]) }

// ReopenLog reopens mail.log (logrotate).
func (d *Daemon) ReopenLog() error { return d.mlog.Reopen() }

// Shutdown stops accepting, lets sessions and deliveries finish within ctx, flushes
// and closes the stores.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.notify("STOPPING=1", "STATUS=stopping: finishing sessions and deliveries")
	defer d.sd.close()
	var errs []error
	if err := d.smtp.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("smtp shutdown: %w", err))
	}
	d.cancel()
	d.waitControl(ctx)
	if d.dropDone != nil {
		select {
		case <-d.dropDone:
		case <-ctx.Done():
		}
	}
	select {
	case <-d.done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("job controller did not stop in time: %w", ctx.Err()))
	}
	errs = append(errs, d.closeStores())
	return errors.Join(errs...)
}

func (d *Daemon) closeStores() error {
	var errs []error
	// Delivery programs first: their cached connections say goodbye (QUIT, and a C
	// record in mail.log) while mail.log is still open.
	d.progMu.Lock()
	for name, e := range d.progs {
		closeProgram(e.prog)
		delete(d.progs, name)
	}
	d.progMu.Unlock()
	if d.queue != nil {
		if err := d.queue.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close queue: %w", err))
		}
	}
	if d.mlog != nil {
		if err := d.mlog.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func smtpMaxConns(img *compiler.Image) int {
	if s, ok := img.Dispatcher.Service("SMTP"); ok {
		return s.MaxConnections()
	}
	return 0
}

// listenAddrs gives the SMTP service's addresses: -listen, else dispatcher.cnf's
// [SERVICE=SMTP] INTERFACE_ADDRESS and PORT(s), else 127.0.0.1:2525.
func listenAddrs(img *compiler.Image, override string) ([]string, error) {
	if override != "" {
		return []string{override}, nil
	}
	s, ok := img.Dispatcher.Service("SMTP")
	if !ok || len(s.Port) == 0 {
		return []string{"127.0.0.1:2525"}, nil
	}
	host := s.InterfaceAddress
	var out []string
	for _, p := range s.Port {
		out = append(out, net.JoinHostPort(host, strconv.Itoa(p)))
	}
	return out, nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
