// Package reliability is the black-box reliability suite of the MTA: it proves that
// mail acknowledged with 250 survives any crash, and that faults of the network, the
// disk and hostile clients end the right way. It has no code of its own: everything
// is in its tests, which build and run the real mtad and mtactl binaries, or start
// daemon.Start in-process, against fake remote SMTP servers on 127.0.0.1:0.
//
// It owns reliability/ only and must not be imported by anything. It may import any
// package of the module (it is the top of the dependency order) but never reaches
// into another package's files: what it checks is what an operator sees (SMTP
// replies, mail.log, Maildirs, mtactl output, what a remote server receives).
//
// # How it works
//
// Every test has a small size, run by `go test ./reliability/` (and so by
// `go test ./...`, well under a minute on two cores), and a large size selected by
// the build tag soak (`make soak`, `go test -tags soak -timeout 60m ./reliability/`);
// the sizes are the constants of size_short_test.go and size_soak_test.go. Tests
// that need the binaries build them once per run (go build, so the build cache
// makes later runs cheap). Crashes are real: SIGKILL of a child process, never a
// simulated one, because the property under test is what the kernel keeps of a
// process that had no chance to clean up.
//
// A SIGKILL leaves the page cache whole, so it cannot show a missing fsync. The
// power-loss tests (powerloss_test.go) run mtad with its data directory on
// internal/lazyfs, a FUSE filesystem that, told to cut the power, forgets every
// write and every directory change not fsync'd; each cycle is a SIGKILL, then a
// power cut, then a restart on what survived. They need root and /dev/fuse and
// skip with a one-line reason elsewhere. TestPowerLossFailsWithoutFsync builds
// mtad with the build tag fsyncfault (a test-only hook that can leave out the
// queue segment's fsync) to show that the power-loss run then finds losses.
package reliability
