// Package examples holds complete configuration directories and embeds one of them,
// default/, as the configuration that mtad and mtactl use when given no -config:
//
//   - default/: one host "localhost"; local delivery for localhost and [127.0.0.1];
//     every other domain over SMTP; loopback clients may relay, others get
//     550 5.7.1 Relaying denied; SMTP on 127.0.0.1:2525.
//   - site/: a small site (example.com) with every channel type of the product:
//     l, tcp_local, tcp_intranet, tcp_auth, a per-destination tcp_siroe in its own
//     pool, bitbucket, access tables, aliases with a list file. Tests use it.
//   - bench-relay/: relays everything to 127.0.0.1:2526, for the benchmark harness.
//
// and two directories that are not configurations:
//
//   - systemd/: mtad.service (Type=notify, hardened) and a logrotate file; the
//     unit is checked and run in its sandbox by cmd/mtad/systemd_test.go.
//   - monitoring/: Prometheus alert rules with their promtool unit tests
//     (monitoring_test.go runs them) and a Grafana dashboard whose metric names
//     daemon/monitoring_test.go checks against a real scrape.
//
// It owns these files and nothing else; each configuration must build with zero
// errors and zero warnings (examples_test.go checks it).
package examples
