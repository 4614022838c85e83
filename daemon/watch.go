package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"mtad.dev/mta/compiler"
	"mtad.dev/mta/examples"
	"mtad.dev/mta/jobctl"
	"mtad.dev/mta/metrics"
	"mtad.dev/mta/queue"
)

// Hot reload and the metrics endpoint.
//
// How it works: the watcher follows the configuration DIRECTORY, not the file:
// cnbuild writes compiled.image by renaming a temporary file over it, which replaces
// the inode a file watch would be attached to. Events for other names (the text files,
// cnbuild's temporary file) are ignored: the product's rule is that edits are inert
// until cnbuild, so a text edit neither reloads nor logs. Events for compiled.image
// are debounced (ReloadDebounce, 200 ms) so that one cnbuild, or a copy written in
// several chunks, gives one reload; that reload reads compiled.image alone (never the
// text files) and goes through the same path as SIGHUP and mtactl reload.

// DefaultReloadDebounce is how long the watcher waits after the last change.
const DefaultReloadDebounce = 200 * time.Millisecond

// imageOrigin says where an image came from.
type imageOrigin string

const (
	originImage    imageOrigin = "compiled.image"
	originText     imageOrigin = "text files"
	originEmbedded imageOrigin = "embedded"
)

// Reload results, as counted and shown by metrics (mtad_config_reloads_total).
const (
	reloadOK        = "ok"
	reloadFailed    = "failed"
	reloadUnchanged = "unchanged"
)

// ImageInfo describes the configuration in force and the last reload, for metrics
// and `mtactl version`.
type ImageInfo struct {
	Header   compiler.Header
	Source   string    // "compiled.image", "text files" or "embedded"
	Path     string    // the configuration directory; "" when embedded
	LoadedAt time.Time // when this image went into force

	LastReload        time.Time // zero: no reload since start
	LastReloadResult  string    // "ok", "failed", "unchanged"; "" when none
	LastReloadError   string    // why the last reload was refused
	LastReloadTrigger string    // "request" (SIGHUP, mtactl reload) or "watch"
	ReloadsOK         uint64
	ReloadsFailed     uint64
	ReloadsUnchanged  uint64 // requests that found the image in force
}

// hotState is the daemon's reload bookkeeping and metrics endpoint.
type hotState struct {
	limits atomic.Pointer[jobLimits] // the job controller's limits in force, for metrics

	hooksOnce sync.Once
	hooks     *metrics.Hooks // see metricsHooks

	// The watcher's progress, so that a caller can tell "nothing happened" from
	// "not looked at yet": the last file it was told about (once dealt with) and
	// whether a reload is waiting for its debounce.
	watchLast     atomic.Pointer[string]
	reloadPending atomic.Bool

	mu          sync.Mutex // guards the fields below
	info        ImageInfo
	registry    prometheus.Gatherer
	metrics     *metrics.Server
	metricsAddr string // METRICS_LISTEN of the endpoint running ("" none)
}

// jobLimits are the limits handed to the job controller, kept for metrics (the
// controller's snapshot has the usage, not the limits).
type jobLimits struct {
	maxJobs     map[string]int
	pools       map[string]int
	firstNotice map[string]time.Duration
}

func limitsOf(cfg jobctl.Config) *jobLimits {
	l := &jobLimits{maxJobs: make(map[string]int, len(cfg.Channels)), pools: cfg.Pools,
		firstNotice: make(map[string]time.Duration, len(cfg.Channels))}
	for name, ch := range cfg.Channels {
		l.firstNotice[name] = ch.FirstNotice(cfg.NoticeUnit)
		l.maxJobs[name] = ch.MaxJobs
		if ch.MaxJobs <= 0 {
			l.maxJobs[name] = jobctl.DefaultMaxJobs
		}
	}
	return l
}

// metricsHooks is the daemon's one set of hook metrics, created on first use:
// Start hands it to the SMTP server, the queue (commitObserver) and every DNS
// client before startWatch registers it, and the same value must reach all of
// them, whichever asks first. Hook metrics live as long as the daemon: reloads do
// not reset counters.
func (d *Daemon) metricsHooks() *metrics.Hooks {
	d.hot.hooksOnce.Do(func() { d.hot.hooks = metrics.NewHooks() })
	return d.hot.hooks
}

// commitObserver is queue.Options.CommitObserver: the group commit's batch size.
// (The commit's latency is measured by the SMTP server around Enqueue, which is
// the wait a client has; see metrics.Hooks.QueueCommitDuration.)
func (d *Daemon) commitObserver() func(queue.CommitStats) {
	h := d.metricsHooks()
	return func(st queue.CommitStats) {
		if st.Messages > 0 {
			h.CommitBatch(st.Messages)
		}
	}
}

// ImageInfo returns the image in force and the last reload's time and result.
func (d *Daemon) ImageInfo() ImageInfo {
	d.hot.mu.Lock()
	defer d.hot.mu.Unlock()
	return d.hot.info
}

// startWatch records the image Start loaded, starts the metrics endpoint
// (METRICS_LISTEN) and, with a configuration directory, the watcher that reloads
// when compiled.image changes. Their errors are reported but stop nothing: mtad
// serves mail without metrics or without automatic reload (SIGHUP still works).
func (d *Daemon) startWatch(ctx context.Context) error {
	img := d.image.Load()
	d.hot.mu.Lock()
	d.hot.info = ImageInfo{Header: img.Header, Source: string(d.startOrigin(img)), Path: d.opts.ConfigDir, LoadedAt: time.Now()}
	d.hot.mu.Unlock()
	// Unchanged channels keep their programs: this builds nothing new.
	d.hot.limits.Store(limitsOf(d.jobConfig(img)))

	var errs []error
	reg, err := metrics.Registry(d.metricsStats, d.metricsHooks())
	if err != nil {
		errs = append(errs, err)
	} else {
		d.hot.mu.Lock()
		d.hot.registry = reg
		d.hot.mu.Unlock()
		if _, err := d.prepareMetrics(img); err != nil {
			errs = append(errs, fmt.Errorf("%w; no metrics endpoint", err))
		}
	}
	context.AfterFunc(ctx, func() {
		d.hot.mu.Lock()
		s := d.hot.metrics
		d.hot.metrics, d.hot.metricsAddr = nil, ""
		d.hot.mu.Unlock()
		if s != nil {
			d.closeMetrics(s)
		}
	})

	if d.opts.ConfigDir != "" {
		if err := d.startWatcher(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// startOrigin tells where Start's image came from (loadImage does not say).
func (d *Daemon) startOrigin(img *compiler.Image) imageOrigin {
	if d.opts.ConfigDir == "" {
		return originEmbedded
	}
	if h, err := compiler.ReadHeader(compiler.ImagePath(d.opts.ConfigDir)); err == nil &&
		h.SourceHash == img.Header.SourceHash && h.BuildTime.Equal(img.Header.BuildTime) {
		return originImage
	}
	return originText
}

// loadCurrent is what Reload loads: like Start, compiled.image when there is one,
// else the text files, else the embedded configuration.
func (d *Daemon) loadCurrent() (*compiler.Image, imageOrigin, error) {
	if d.opts.ConfigDir == "" {
		r, err := compiler.CheckFS(examples.Default)
		if err != nil {
			return nil, originEmbedded, fmt.Errorf("embedded configuration: %w", err)
		}
		if len(r.Errors) > 0 {
			return nil, originEmbedded, fmt.Errorf("embedded configuration: %w", r.Errors)
		}
		return r.Image, originEmbedded, nil
	}
	img, fromImage, err := compiler.LoadOrBuild(d.opts.ConfigDir)
	if !fromImage {
		return img, originText, err
	}
	return img, originImage, err
}

// loadImageFile is what the watcher loads: compiled.image and nothing else.
func (d *Daemon) loadImageFile() (*compiler.Image, imageOrigin, error) {
	img, err := compiler.Load(compiler.ImagePath(d.opts.ConfigDir))
	return img, originImage, err
}

// validate refuses an image the daemon could not run with. Load already verified
// the file (magic, version, checksum); this checks what a sound file can still get
// wrong for this daemon.
func (d *Daemon) validate(img *compiler.Image) error {
	if d.runCtx != nil && d.runCtx.Err() != nil {
		return errors.New("the daemon is shutting down")
	}
	var problems []string
	if img.Rules == nil {
		problems = append(problems, "no rewrite rules")
	}
	if len(img.Channels) == 0 {
		problems = append(problems, "empty channel table")
	}
	if len(img.Jobs.Pools) > 0 {
		for i := range img.Channels {
			c := &img.Channels[i]
			if _, ok := img.Jobs.Pool(c.Pool); c.Pool != "" && !ok {
				problems = append(problems, fmt.Sprintf("channel %s names pool %s, which job_controller.cnf does not define", c.Name, c.Pool))
			}
		}
	}
	if _, err := listenAddrs(img, d.opts.Listen); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return fmt.Errorf("inconsistent image: %s; run mtactl cnbuild", strings.Join(problems, "; "))
	}
	if a := img.Options.MetricsListen; a != "" {
		if err := metrics.CheckListen(a, d.opts.MetricsAllowRemote); err != nil {
			return fmt.Errorf("option.dat: %w", err)
		}
	}
	return nil
}

// unchanged reports whether img is the image in force. A compiled image is the same
// when its SourceHash and BuildTime are; an image built just now from text (no
// compiled.image, or the embedded configuration) has a BuildTime of now, so its
// SourceHash alone decides. The product's documentation has no such rule; we skip an
// unchanged image because re-applying it would be harmless but would log a reload
// that changed nothing.
func (d *Daemon) unchanged(img *compiler.Image, origin imageOrigin) bool {
	cur := d.image.Load()
	if cur == nil || cur.Header.SourceHash != img.Header.SourceHash {
		return false
	}
	return origin != originImage || cur.Header.BuildTime.Equal(img.Header.BuildTime)
}

// recordReload counts a reload and, when img is set, records it as the one in force.
func (d *Daemon) recordReload(trigger, result string, err error, img *compiler.Image, origin imageOrigin) {
	d.hot.mu.Lock()
	defer d.hot.mu.Unlock()
	i := &d.hot.info
	i.LastReload, i.LastReloadResult, i.LastReloadTrigger, i.LastReloadError = time.Now(), result, trigger, ""
	switch result {
	case reloadOK:
		i.ReloadsOK++
	case reloadUnchanged:
		i.ReloadsUnchanged++
	case reloadFailed:
		i.ReloadsFailed++
		i.LastReloadError = err.Error()
	}
	if img != nil {
		i.Header, i.Source, i.LoadedAt = img.Header, string(origin), i.LastReload
	}
}

// startWatcher watches the configuration directory.
func (d *Daemon) startWatcher(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", d.opts.ConfigDir, err)
	}
	if err := w.Add(d.opts.ConfigDir); err != nil {
		w.Close()
		return fmt.Errorf("watch %s: %w", d.opts.ConfigDir, err)
	}
	go d.watchLoop(ctx, w)
	return nil
}

// watchSettled reports whether the watcher has dealt with the event for path and
// no reload waits for its debounce.
func (d *Daemon) watchSettled(path string) bool {
	last := d.hot.watchLast.Load()
	return last != nil && *last == path && !d.hot.reloadPending.Load()
}

func (d *Daemon) watchLoop(ctx context.Context, w *fsnotify.Watcher) {
	defer w.Close()
	debounce := d.opts.ReloadDebounce
	if debounce <= 0 {
		debounce = DefaultReloadDebounce
	}
	// Go 1.23+ timers: Reset needs no draining and a stopped timer never fires late.
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if filepath.Base(ev.Name) == compiler.ImageName {
				switch {
				case ev.Has(fsnotify.Create) || ev.Has(fsnotify.Write):
					d.hot.reloadPending.Store(true)
					timer.Reset(debounce)
				case ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename):
					d.log.Warn("compiled.image was removed; the configuration in force stays until a new image is built",
						"config", d.opts.ConfigDir)
				}
			}
			d.hot.watchLast.Store(&ev.Name)
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			d.log.Warn("configuration watcher", "config", d.opts.ConfigDir, "err", err)
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// events were lost: look at the image; an unchanged one is a no-op
				d.hot.reloadPending.Store(true)
				timer.Reset(debounce)
			}
		case <-timer.C:
			if ctx.Err() != nil {
				return
			}
			_ = d.reload("watch", d.loadImageFile) // logs its own outcome
			d.hot.reloadPending.Store(false)
		}
	}
}

// prepareMetrics starts the endpoint img asks for when it differs from the one
// running, and returns the one it replaces (for the caller to close once the reload
// is committed). The same address keeps the running endpoint.
func (d *Daemon) prepareMetrics(img *compiler.Image) (old *metrics.Server, err error) {
	want := img.Options.MetricsListen
	d.hot.mu.Lock()
	cur, curAddr, reg := d.hot.metrics, d.hot.metricsAddr, d.hot.registry
	d.hot.mu.Unlock()
	if want == curAddr || reg == nil {
		return nil, nil
	}
	var s *metrics.Server
	if want != "" {
		s, err = metrics.Listen(want, d.opts.MetricsAllowRemote, reg, d.log.With("component", "metrics"))
		if err != nil {
			return nil, fmt.Errorf("option.dat METRICS_LISTEN: %w", err)
		}
		d.log.Info("metrics endpoint listening", "addr", s.Addr().String())
	}
	d.hot.mu.Lock()
	d.hot.metrics, d.hot.metricsAddr = s, want
	d.hot.mu.Unlock()
	return cur, nil
}

func (d *Daemon) closeMetrics(s *metrics.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		d.log.Warn("metrics endpoint", "err", err)
	}
}

// MetricsAddr is the metrics endpoint's bound address ("" when there is none).
func (d *Daemon) MetricsAddr() string {
	d.hot.mu.Lock()
	defer d.hot.mu.Unlock()
	if d.hot.metrics == nil {
		return ""
	}
	return d.hot.metrics.Addr().String()
}

// metricsStats reads the daemon's state for one scrape.
func (d *Daemon) metricsStats() metrics.Stats {
	snap := d.jc.Snapshot()
	lim := d.hot.limits.Load()
	st := metrics.Stats{Now: snap.Time}
	poolJobs := map[string]int{}
	for _, ci := range snap.Channels {
		cs := metrics.ChannelStats{
			Name: ci.Name, Ready: ci.Ready, Delayed: ci.Delayed, Active: ci.Active,
			Recipients: ci.Recipients, Oldest: ci.Oldest, Jobs: ci.Jobs, IdleJobs: ci.IdleJobs,
			Stopped: ci.Stopped, Delivered: ci.Counters.Delivered, Requeued: ci.Counters.Requeued,
			Returned: ci.Counters.Returned, Held: ci.Counters.Held, MaxJobs: jobctl.DefaultMaxJobs,
		}
		if lim != nil {
			if m, ok := lim.maxJobs[ci.Name]; ok {
				cs.MaxJobs = m
			}
			cs.FirstNotice = lim.firstNotice[ci.Name]
		}
		cs.Destinations = topDestinations(ci.Hosts, metricsDestinations)
		poolJobs[ci.Pool] += ci.Jobs
		st.Channels = append(st.Channels, cs)
	}
	if lim != nil {
		names := make([]string, 0, len(lim.pools))
		for name := range lim.pools {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			st.Pools = append(st.Pools, metrics.PoolStats{Name: name, Jobs: poolJobs[name], JobLimit: lim.pools[name]})
		}
	}
	st.Quarantined = len(d.queue.Quarantined())
	info := d.ImageInfo()
	st.Config = metrics.ConfigStats{
		ImageBuildTime: info.Header.BuildTime, ReloadsOK: info.ReloadsOK, ReloadsFailed: info.ReloadsFailed,
		ReloadsUnchanged: info.ReloadsUnchanged, LastReload: info.LastReload,
		LastReloadOK: info.LastReloadResult != reloadFailed,
	}
	return st
}

// metricsDestinations is how many destinations per channel the metrics
// export: the busiest, so that a stuck destination shows while the number of
// series stays bounded whatever the number of destinations.
const metricsDestinations = 10

// topDestinations are the n hosts with the most queue entries, most first
// (ties by name).
func topDestinations(hosts []jobctl.HostInfo, n int) []metrics.DestinationStats {
	hs := slices.Clone(hosts)
	slices.SortFunc(hs, func(a, b jobctl.HostInfo) int {
		if a.Queued != b.Queued {
			return b.Queued - a.Queued
		}
		return strings.Compare(a.Host, b.Host)
	})
	var out []metrics.DestinationStats
	for _, h := range hs {
		if len(out) == n || h.Queued == 0 {
			break
		}
		out = append(out, metrics.DestinationStats{Host: h.Host, Messages: h.Queued, Oldest: h.Oldest})
	}
	return out
}
