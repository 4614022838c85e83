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
// It owns these files and nothing else; each must build with zero errors and zero
// warnings (examples_test.go checks it).
package examples
