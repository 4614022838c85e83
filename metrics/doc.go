// Package metrics is mtad's Prometheus endpoint: the /metrics HTTP server on the
// address of option.dat METRICS_LISTEN, a collector that reads the daemon's state at
// scrape time, and the hook metrics (Hooks) that smtpserver, the queue's commit
// observer and dnsx feed as work happens.
//
// It owns the metric names, their help texts and label values, and the endpoint's
// address policy (loopback only unless explicitly allowed). It must not import any
// package of this module: the daemon converts its state into Stats, and smtpserver
// and dnsx import this package for Hooks without an import cycle (queue
// -> metrics -> jobctl -> queue would be one). It must not add work to any hot path
// beyond the Hooks' single counter or histogram update: everything in Stats is read
// when Prometheus scrapes, never on a message's way.
//
// Names follow mtad_<subsystem>_<what>_<unit>; each label's allowed values are listed
// in a comment beside the metric. The registry is the daemon's own (never the
// process-wide default), so two daemons in one test process do not collide.
//
// How it works: Collector is a prometheus.Collector whose Collect
// calls the Source once per scrape and turns the one consistent Stats value into
// constant metrics; nothing is cached between scrapes, so a reload, a stopped
// channel or a new channel shows at the next scrape without any bookkeeping here.
package metrics
