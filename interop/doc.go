// Package interop is the interoperability suite of the MTA: black-box tests that run
// the real mtad binary against independently written mail software, the way an
// administrator checks a new MTA before it goes into service. Postfix sends to mtad
// and receives from it, Dovecot stores mtad's mail over LMTP, swaks and openssl
// s_client speak STARTTLS and AUTH to it, and a raw socket talks before the greeting.
//
// It has no code of its own: everything is in its tests. Each test builds mtad and
// mtactl (go build, once per run), writes a configuration for mtad and for each peer
// under its own temporary directory, and starts every program itself on loopback
// ports: never a system service, never a file under /etc. A test whose program is
// not installed, or that needs root and does not have it, skips with a one-line
// reason, so that `go test ./...` passes on a machine with only Go. Every wait is
// bounded, and every process a test started is stopped in t.Cleanup, also when the
// test fails.
//
// It owns interop/ only and must not be imported by anything. What it checks is what
// an administrator sees: SMTP replies, mail.log, Maildirs (mtad's and the peers'),
// delivery status notifications and the peers' own logs.
package interop
