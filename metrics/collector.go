package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats is the daemon's state as one scrape sees it. The daemon fills it from the
// job controller's snapshot, the image in force and the queue's quarantine list.
type Stats struct {
	// Now is the snapshot's time; ages are measured from it.
	Now         time.Time
	Channels    []ChannelStats
	Pools       []PoolStats
	Quarantined int // messages queue recovery set aside as damaged
	Config      ConfigStats
}

// ChannelStats is one channel of the job controller. Counts of messages are queue
// entries (one message's recipients for one host), as `qm` counts them.
type ChannelStats struct {
	Name       string
	Ready      int       // eligible for delivery now
	Delayed    int       // waiting for a retry time or a delivery window
	Active     int       // being delivered or returned
	Recipients int       // recipients in all entries
	Oldest     time.Time // arrival of the oldest queued message; zero when empty
	Jobs       int       // delivery jobs running, idle ones included
	IdleJobs   int       // jobs waiting for work (they hold a pool slot)
	MaxJobs    int       // the channel's job limit (maxjobs / job_controller.cnf)
	Stopped    bool      // qm stop channel
	// Totals per recipient since the daemon started.
	Delivered, Requeued, Returned int64
	Held                          int64 // held messages seen
	// FirstNotice is the age at which a message queued to the channel gets its
	// first notice (notices keyword); zero: not exported.
	FirstNotice time.Duration
	// Destinations are the destination hosts with the most queue entries
	// (the daemon exports a few per channel, to bound the series).
	Destinations []DestinationStats
}

// DestinationStats is one destination host of a channel.
type DestinationStats struct {
	Host     string
	Messages int       // queue entries for the host
	Oldest   time.Time // arrival of its oldest message
}

// PoolStats is one job controller pool.
type PoolStats struct {
	Name     string
	Jobs     int // jobs of the pool's channels, idle ones included
	JobLimit int // JOB_LIMIT
}

// ConfigStats describes the image in force and the reloads since start.
type ConfigStats struct {
	ImageBuildTime   time.Time
	ReloadsOK        uint64
	ReloadsFailed    uint64
	ReloadsUnchanged uint64    // reload requests that found the image in force
	LastReload       time.Time // zero: never reloaded
	LastReloadOK     bool
}

// Source returns the state for one scrape. It is called once per scrape, from the
// HTTP handler's goroutine.
type Source func() Stats

var (
	// label channel: a channel name of imta.cnf's channel table.
	// label state: "ready", "delayed", "active".
	descQueueMessages = prometheus.NewDesc("mtad_queue_messages",
		"Queue entries (one message's recipients for one host) per channel and state, as qm counts messages.",
		[]string{"channel", "state"}, nil)
	// label channel: a channel name.
	descQueueRecipients = prometheus.NewDesc("mtad_queue_recipients",
		"Recipients queued per channel, in any state.", []string{"channel"}, nil)
	// label channel: a channel name.
	descQueueOldest = prometheus.NewDesc("mtad_queue_oldest_message_age_seconds",
		"Age of the oldest message queued to the channel; 0 when the channel's queue is empty.",
		[]string{"channel"}, nil)
	// label channel: a channel name; label destination: a destination host.
	descDestMessages = prometheus.NewDesc("mtad_queue_destination_messages",
		"Queue entries for a destination host of the channel; only the destinations with the most entries are exported.",
		[]string{"channel", "destination"}, nil)
	// label channel: a channel name; label destination: a destination host.
	descDestOldest = prometheus.NewDesc("mtad_queue_destination_oldest_message_age_seconds",
		"Age of the oldest message queued for a destination host of the channel (the destinations of mtad_queue_destination_messages).",
		[]string{"channel", "destination"}, nil)
	descQueueQuarantined = prometheus.NewDesc("mtad_queue_quarantined_messages",
		"Messages queue recovery set aside as damaged (qm lists them).", nil, nil)

	// label channel: a channel name.
	descJobs = prometheus.NewDesc("mtad_jobctl_jobs",
		"Delivery jobs running for the channel, idle ones included.", []string{"channel"}, nil)
	// label channel: a channel name.
	descIdleJobs = prometheus.NewDesc("mtad_jobctl_idle_jobs",
		"Delivery jobs of the channel waiting for work.", []string{"channel"}, nil)
	// label channel: a channel name.
	descMaxJobs = prometheus.NewDesc("mtad_jobctl_max_jobs",
		"The channel's job limit (maxjobs, job_controller.cnf JOB_LIMIT of its [CHANNEL=] section).",
		[]string{"channel"}, nil)
	// label channel: a channel name.
	descStopped = prometheus.NewDesc("mtad_jobctl_channel_stopped",
		"1 when the channel is stopped (qm stop), else 0.", []string{"channel"}, nil)
	// label pool: a [POOL=] name of job_controller.cnf.
	descPoolJobs = prometheus.NewDesc("mtad_jobctl_pool_jobs",
		"Jobs running in the pool, idle ones included.", []string{"pool"}, nil)
	// label pool: a [POOL=] name.
	descPoolLimit = prometheus.NewDesc("mtad_jobctl_pool_job_limit",
		"The pool's JOB_LIMIT.", []string{"pool"}, nil)
	// label channel: a channel name.
	// label outcome: "delivered", "requeued", "returned".
	descRecipients = prometheus.NewDesc("mtad_jobctl_recipients_total",
		"Recipients processed by the channel's jobs since start, by outcome.",
		[]string{"channel", "outcome"}, nil)
	// label channel: a channel name.
	descFirstNotice = prometheus.NewDesc("mtad_jobctl_first_notice_age_seconds",
		"Age at which a message queued to the channel gets its first notice (the notices keyword): an oldest message older than this has warned its sender.",
		[]string{"channel"}, nil)
	// label channel: a channel name.
	descHeld = prometheus.NewDesc("mtad_jobctl_held_messages_total",
		"Held messages the job controller has seen for the channel since start.",
		[]string{"channel"}, nil)

	// label result: "ok" (a new image is in force), "failed" (refused; the previous
	// image stays), "unchanged" (the image found is the one in force).
	descReloads = prometheus.NewDesc("mtad_config_reloads_total",
		"Configuration reloads since start, by result.", []string{"result"}, nil)
	descBuildTime = prometheus.NewDesc("mtad_config_image_build_timestamp_seconds",
		"Build time of the compiled configuration in force (Unix time).", nil, nil)
	descLastReload = prometheus.NewDesc("mtad_config_last_reload_timestamp_seconds",
		"Time of the last reload attempt (Unix time); 0 when none.", nil, nil)
	descLastReloadOK = prometheus.NewDesc("mtad_config_last_reload_success",
		"1 when the last reload attempt succeeded or found nothing to do (or there was none), 0 when it was refused.",
		nil, nil)
)

// Collector turns a Source into Prometheus metrics at scrape time.
type Collector struct {
	src Source
}

// NewCollector returns a collector reading src at every scrape.
func NewCollector(src Source) *Collector { return &Collector{src: src} }

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descQueueMessages, descQueueRecipients, descQueueOldest, descQueueQuarantined,
		descJobs, descIdleJobs, descMaxJobs, descStopped, descPoolJobs, descPoolLimit,
		descRecipients, descHeld, descReloads, descBuildTime, descLastReload, descLastReloadOK,
		descDestMessages, descDestOldest, descFirstNotice,
	} {
		ch <- d
	}
}

// Collect reads the source once and sends the metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src()
	if s.Now.IsZero() {
		s.Now = time.Now()
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	for _, cs := range s.Channels {
		gauge(descQueueMessages, float64(cs.Ready), cs.Name, "ready")
		gauge(descQueueMessages, float64(cs.Delayed), cs.Name, "delayed")
		gauge(descQueueMessages, float64(cs.Active), cs.Name, "active")
		gauge(descQueueRecipients, float64(cs.Recipients), cs.Name)
		gauge(descQueueOldest, ageAt(s.Now, cs.Oldest), cs.Name)
		for _, ds := range cs.Destinations {
			gauge(descDestMessages, float64(ds.Messages), cs.Name, ds.Host)
			gauge(descDestOldest, ageAt(s.Now, ds.Oldest), cs.Name, ds.Host)
		}
		if cs.FirstNotice > 0 {
			gauge(descFirstNotice, cs.FirstNotice.Seconds(), cs.Name)
		}
		gauge(descJobs, float64(cs.Jobs), cs.Name)
		gauge(descIdleJobs, float64(cs.IdleJobs), cs.Name)
		gauge(descMaxJobs, float64(cs.MaxJobs), cs.Name)
		gauge(descStopped, b2f(cs.Stopped), cs.Name)
		counter(descRecipients, float64(cs.Delivered), cs.Name, "delivered")
		counter(descRecipients, float64(cs.Requeued), cs.Name, "requeued")
		counter(descRecipients, float64(cs.Returned), cs.Name, "returned")
		counter(descHeld, float64(cs.Held), cs.Name)
	}
	for _, p := range s.Pools {
		gauge(descPoolJobs, float64(p.Jobs), p.Name)
		gauge(descPoolLimit, float64(p.JobLimit), p.Name)
	}
	gauge(descQueueQuarantined, float64(s.Quarantined))
	counter(descReloads, float64(s.Config.ReloadsOK), "ok")
	counter(descReloads, float64(s.Config.ReloadsFailed), "failed")
	counter(descReloads, float64(s.Config.ReloadsUnchanged), "unchanged")
	gauge(descBuildTime, unix(s.Config.ImageBuildTime))
	gauge(descLastReload, unix(s.Config.LastReload))
	gauge(descLastReloadOK, b2f(s.Config.LastReload.IsZero() || s.Config.LastReloadOK))
}

// ageAt is how old something that arrived at t is at now, in seconds; 0 for
// none. A clock step can put an arrival in the future: an age is never negative.
func ageAt(now, t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return max(0, now.Sub(t).Seconds())
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unix(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
