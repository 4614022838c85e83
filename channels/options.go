package channels

// The settings of the delivery programs, apart from the programs themselves: what
// the configuration decides for an SMTP/LMTP client channel and for a pipe channel.

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"mtad.dev/mta/dnsx"
	"mtad.dev/mta/maillog"
)

// MXMode is how the SMTP channel chooses hosts for a domain (channel keywords).
type MXMode int

const (
	// MXDefault is defaultmx: MX lookup, equal preferences in received order.
	MXDefault MXMode = iota
	// MXNonRandom is mx / nonrandommx: the same as MXDefault.
	MXNonRandom
	// MXRandom is randommx: equal preferences shuffled.
	MXRandom
	// MXNone is nomx: no MX lookup, connect to the domain's own addresses.
	MXNone
)

// Timeouts are the SMTP client's per-stage limits. Each bounds inactivity: the
// wait for one reply, or (DataBlock) one write of content, so a slow but live
// server is never cut off and a stalled one costs one timeout. Zero fields take
// DefaultTimeouts' values. The channel option file sets them (compiler
// ChannelOptions.ClientTimeouts; docs/configuration.md lists the keys).
type Timeouts struct {
	Connect   time.Duration // TCP connect, per address
	Greeting  time.Duration // the 220 banner
	Ehlo      time.Duration // EHLO/HELO reply
	Mail      time.Duration // MAIL FROM reply
	Rcpt      time.Duration // each RCPT TO reply
	DataInit  time.Duration // DATA's 354
	DataBlock time.Duration // each write of content
	DataEnd   time.Duration // the reply to the final "."
	Rset      time.Duration // RSET reply, including the liveness check of a cached connection
	Quit      time.Duration // QUIT reply before closing
}

// DefaultTimeouts are RFC 5321 §4.5.3.2's values. Connect (not in the RFC) is
// our choice [inf]: 30 s, long enough for a slow SYN-ACK, short enough that a
// dead first MX does not hold the message for minutes before the second is
// tried. Rset is 30 s [inf]: a cached connection that does not answer quickly is
// dropped and replaced, never waited on.
func DefaultTimeouts() Timeouts {
	return Timeouts{
		Connect:   30 * time.Second,
		Greeting:  5 * time.Minute,
		Ehlo:      5 * time.Minute,
		Mail:      5 * time.Minute,
		Rcpt:      5 * time.Minute,
		DataInit:  2 * time.Minute,
		DataBlock: 3 * time.Minute,
		DataEnd:   10 * time.Minute,
		Rset:      30 * time.Second,
		Quit:      10 * time.Second,
	}
}

func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts()
	for _, p := range []struct{ v, def *time.Duration }{
		{&t.Connect, &d.Connect}, {&t.Greeting, &d.Greeting}, {&t.Ehlo, &d.Ehlo},
		{&t.Mail, &d.Mail}, {&t.Rcpt, &d.Rcpt}, {&t.DataInit, &d.DataInit},
		{&t.DataBlock, &d.DataBlock}, {&t.DataEnd, &d.DataEnd}, {&t.Rset, &d.Rset},
		{&t.Quit, &d.Quit},
	} {
		if *p.v <= 0 {
			*p.v = *p.def
		}
	}
	return t
}

// SMTPOptions configures an SMTP (or LMTP) client channel.
type SMTPOptions struct {
	// Daemon is the smart host ("host" or "[ip]"): when set every message goes
	// there, whatever the recipients' domains. A host name is resolved to its
	// addresses, not its MX (imta.cnf daemon keyword).
	Daemon string
	// Port is the destination port; default 25.
	Port int
	// HeloName is our name in EHLO/HELO; default "localhost".
	HeloName string
	// Resolver resolves MX and addresses. It may be nil when Daemon is an IP
	// literal or every domain is one.
	Resolver dnsx.Resolver
	// MX selects how domains map to hosts (defaultmx, randommx, nomx ...).
	MX MXMode
	// LastResort is tried after every other host failed (lastresort keyword).
	LastResort string
	// Timeouts per stage; zero fields take the defaults.
	Timeouts Timeouts
	// MaxConnsPerHost bounds connections (in use and idle) to one host; default 10.
	MaxConnsPerHost int
	// MaxIdlePerHost bounds cached idle connections per host; default
	// MaxConnsPerHost. Negative: no connection cache.
	MaxIdlePerHost int
	// MaxMessagesPerConn is how many transactions one connection carries before
	// it is closed (transactionlimit); default 100.
	MaxMessagesPerConn int
	// IdleTimeout is how long an idle connection stays cached; default 30 s [inf]
	// (well under the 5 min a server waits for our next command).
	IdleTimeout time.Duration
	// LocalAddr is the local address to connect from (interfaceaddress).
	LocalAddr netip.Addr
	// Dial replaces the TCP dialer (tests, proxies). It receives "tcp" and "ip:port".
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// SevenBit converts 8-bit content to quoted-printable/base64 even when the server
	// offers 8BITMIME (the sevenbit keyword); without 8BITMIME it is always done.
	SevenBit bool
	// EightStrict returns (5.6.3) a message that cannot be made 7-bit for a server
	// without 8BITMIME, instead of sending it as it is (eightstrict keyword).
	EightStrict bool
	// LMTP speaks LMTP (RFC 2033): LHLO, and one reply per accepted recipient
	// after the final dot.
	LMTP bool
	// Network is "tcp" (default) or "unix"; with "unix", Daemon is the socket path.
	Network string
	// TLS is the STARTTLS policy (maytlsclient, the zero value; notlsclient;
	// musttlsclient). See TLSPolicy.
	TLS TLSPolicy
	// TLSConfig is the base client configuration (RootCAs, certificates,
	// MinVersion — raised to TLS 1.2 if lower); ServerName is set per host.
	// May be nil: system roots.
	TLSConfig *tls.Config
	// TLSVerify checks the server's certificate chain and host name under
	// TLSMay too (a failure then means plaintext, as for any failed
	// handshake). Off by default: opportunistic TLS cannot insist (RFC 7435).
	// TLSMust always verifies unless TLSConfig.InsecureSkipVerify is set.
	TLSVerify bool
	Logger    *slog.Logger

	// Channel is the channel's name, for connection records and transcript names.
	Channel string
	// MailLog receives the outbound connection records (O, C, Y) when
	// LogConnection has bit 2 (LOG_CONNECTION); nil: none.
	MailLog       *maillog.Logger
	LogConnection int
	// MasterDebug (master_debug) writes every connection's dialogue to
	// DebugDir/<Channel>_master.log-<connection id> (see smtplog.go). The options
	// are fixed per program: a reload that changes them builds a new program.
	MasterDebug bool
	DebugDir    string
	// DebugNow, when it returns true, writes transcripts of connections opened now
	// even without MasterDebug: `mtactl qm run` shows the delivery dialogue this way.
	DebugNow func() bool
}

// PipeOptions configures the pipe channel: a site program run once per
// recipient (or once per message) with the message on its standard input.
type PipeOptions struct {
	// Command is the program and its arguments, run without a shell. In each
	// argument ${sender}, ${recipient}, ${user} (local part), ${domain} and
	// ${queueid} are replaced; a shell never sees them, so no quoting issue.
	// With PerMessage, an argument that is exactly ${recipients} becomes one
	// argument per recipient, and the per-recipient names are not replaced.
	Command []string
	// PerMessage runs the program once for all the recipients of a message
	// (PIPE_MODE=message); its one status applies to every recipient.
	PerMessage bool
	// TemporaryExits and PermanentExits override the sysexits mapping for the
	// statuses they list (PIPE_TEMPORARY_EXITS, PIPE_PERMANENT_EXITS): the
	// first are deferred, the second returned. A status in both is temporary.
	TemporaryExits []int
	PermanentExits []int
	// Timeout bounds one run (default 5 min [inf]); past it the whole process
	// group is killed and the recipient deferred.
	Timeout time.Duration
	// Dir is the working directory; Env is added to a minimal environment.
	Dir string
	Env []string
}
