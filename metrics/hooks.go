package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Hooks are the metrics that can only be counted where the work happens, inside
// smtpserver (sessions, messages, rejections, Enqueue's wait, rewrite time), queue
// (commit batch size, through queue.Options.CommitObserver) and dnsx (cache
// lookups). Each of those takes an optional *Hooks in its configuration and calls
// the methods below, which do nothing on a nil *Hooks or a nil field: an unwired
// hook costs a nil check. The daemon creates one Hooks and passes it to Registry,
// so a scrape shows them next to the Collector's metrics.
type Hooks struct {
	// mtad_smtp_sessions_open: SMTP connections admitted and not yet closed.
	SMTPSessionsOpen prometheus.Gauge
	// mtad_smtp_messages_total{result}: transactions ended by the final reply to DATA.
	// label result: "accepted" (250), "rejected" (5xx), "deferred" (4xx).
	SMTPMessages *prometheus.CounterVec
	// mtad_smtp_rejections_total{class}: refusals of a command or connection.
	// label class: "connection_limit", "port_access", "access" (the *_ACCESS
	// mappings), "relay", "unknown_recipient", "size", "recipient_limit", "loop",
	// "protocol" (syntax or sequence), "too_slow" (below the minimum data rate or
	// over the session time limit), "early_talker" (input before the greeting),
	// "temporary" (any 4xx not listed), "other".
	SMTPRejections *prometheus.CounterVec
	// mtad_queue_commit_duration_seconds: from Enqueue's call to the group commit's
	// fsync returning, as the DATA reply waits for it.
	QueueCommitDuration prometheus.Histogram
	// mtad_queue_commit_batch_messages: messages made durable by one group commit.
	QueueCommitBatch prometheus.Histogram
	// mtad_engine_rewrite_duration_seconds: one address through rewriting and
	// routing (engine Resolve), alias expansion included.
	EngineRewriteDuration prometheus.Histogram
	// mtad_dns_cache_lookups_total{result}: resolver cache lookups.
	// label result: "hit", "miss".
	DNSCacheLookups *prometheus.CounterVec
	// mtad_dependency_up{kind,name}: 1 while a service mtad depends on answers,
	// 0 once it does not; set by the client of that service (DependencyUp).
	// label kind: "filter" (a content filter: milter, spamd, clamd),
	// "redis" (shared throttles); label name: the service as configured.
	Dependencies *prometheus.GaugeVec
}

// NewHooks creates the hook metrics, unregistered.
func NewHooks() *Hooks {
	return &Hooks{
		SMTPSessionsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mtad_smtp_sessions_open",
			Help: "SMTP connections admitted and not yet closed.",
		}),
		SMTPMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mtad_smtp_messages_total",
			Help: "SMTP transactions by the final reply to DATA.",
		}, []string{"result"}),
		SMTPRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mtad_smtp_rejections_total",
			Help: "SMTP commands or connections refused, by class.",
		}, []string{"class"}),
		QueueCommitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "mtad_queue_commit_duration_seconds",
			Help: "Time from Enqueue to the message being durable (group commit fsync).",
			// group commit windows are milliseconds; a slow disk shows in the upper buckets
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		QueueCommitBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mtad_queue_commit_batch_messages",
			Help:    "Messages made durable by one group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		EngineRewriteDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mtad_engine_rewrite_duration_seconds",
			Help:    "Time to rewrite and route one address.",
			Buckets: prometheus.ExponentialBuckets(0.000005, 4, 10),
		}),
		DNSCacheLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mtad_dns_cache_lookups_total",
			Help: "DNS resolver cache lookups, by result.",
		}, []string{"result"}),
		Dependencies: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mtad_dependency_up",
			Help: "1 while a service mtad depends on (a content filter, Redis) answers, 0 when it does not.",
		}, []string{"kind", "name"}),
	}
}

// Collectors lists the hook metrics, for registering.
func (h *Hooks) Collectors() []prometheus.Collector {
	return []prometheus.Collector{h.SMTPSessionsOpen, h.SMTPMessages, h.SMTPRejections,
		h.QueueCommitDuration, h.QueueCommitBatch, h.EngineRewriteDuration, h.DNSCacheLookups, h.Dependencies}
}

// SessionOpened counts an admitted SMTP connection; SessionClosed its end.
func (h *Hooks) SessionOpened() {
	if h != nil && h.SMTPSessionsOpen != nil {
		h.SMTPSessionsOpen.Inc()
	}
}

// SessionClosed is SessionOpened's counterpart.
func (h *Hooks) SessionClosed() {
	if h != nil && h.SMTPSessionsOpen != nil {
		h.SMTPSessionsOpen.Dec()
	}
}

// Message counts a transaction ended by the reply to DATA with code.
func (h *Hooks) Message(code int) {
	if h == nil || h.SMTPMessages == nil {
		return
	}
	result := "accepted"
	switch {
	case code >= 500:
		result = "rejected"
	case code >= 400:
		result = "deferred"
	}
	h.SMTPMessages.WithLabelValues(result).Inc()
}

// Rejection counts one refusal; class is one of SMTPRejections' label values.
func (h *Hooks) Rejection(class string) {
	if h != nil && h.SMTPRejections != nil {
		h.SMTPRejections.WithLabelValues(class).Inc()
	}
}

// CommitWait observes how long one Enqueue waited for durability.
func (h *Hooks) CommitWait(d time.Duration) {
	if h != nil && h.QueueCommitDuration != nil {
		h.QueueCommitDuration.Observe(d.Seconds())
	}
}

// CommitBatch observes the messages made durable by one group commit.
func (h *Hooks) CommitBatch(messages int) {
	if h != nil && h.QueueCommitBatch != nil {
		h.QueueCommitBatch.Observe(float64(messages))
	}
}

// Rewrite observes one address's rewriting and routing time.
func (h *Hooks) Rewrite(d time.Duration) {
	if h != nil && h.EngineRewriteDuration != nil {
		h.EngineRewriteDuration.Observe(d.Seconds())
	}
}

// DNSLookup counts one resolver cache lookup.
func (h *Hooks) DNSLookup(hit bool) {
	if h == nil || h.DNSCacheLookups == nil {
		return
	}
	if hit {
		h.DNSCacheLookups.WithLabelValues("hit").Inc()
	} else {
		h.DNSCacheLookups.WithLabelValues("miss").Inc()
	}
}

// DependencyUp records whether the service name of kind ("filter", "redis")
// answered its last request: the client of each such service calls it after
// every attempt (an alert fires when it stays 0).
func (h *Hooks) DependencyUp(kind, name string, up bool) {
	if h != nil && h.Dependencies != nil {
		h.Dependencies.WithLabelValues(kind, name).Set(b2f(up))
	}
}
