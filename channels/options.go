package channels

// The settings of the delivery programs, apart from the programs themselves: what
// the configuration decides for an SMTP/LMTP client channel and for a pipe channel.

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/netip"
	"strings"
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

// DefaultTimeouts are RFC 5321 §4.5.3.2's values. Connect is in neither the RFC
// nor the product's documentation, so we chose 30 s: long enough for a slow
// SYN-ACK, short enough that a dead first MX does not hold the message for
// minutes before the second is tried. Rset is our choice too, 30 s: a cached
// connection that does not answer quickly is dropped and replaced, never waited
// on.
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

// SMTPSettings is what the configuration decides for an SMTP (or LMTP) client
// channel. It holds no functions, slices, maps or pointers, so two values compare
// with ==: mtad builds a new client on reload exactly when its channel's settings
// are no longer == to those the running client was built with, and a field added
// here takes part in that comparison without anyone having to remember it.
type SMTPSettings struct {
	// Daemon is the smart host ("host" or "[ip]"): when set every message goes
	// there, whatever the recipients' domains. A host name is resolved to its
	// addresses, not its MX (imta.cnf daemon keyword).
	Daemon string
	// Port is the destination port; default 25.
	Port int
	// HeloName is our name in EHLO/HELO; default "localhost".
	HeloName string
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
	// it is closed (ATTEMPT_TRANSACTIONS_PER_SESSION); default 100.
	MaxMessagesPerConn int
	// IdleTimeout is how long an idle connection stays cached; default 30 s, our
	// choice: well under the 5 min a server waits for our next command.
	IdleTimeout time.Duration
	// LocalAddr is the local address every TCP connection of the channel is made
	// from (interfaceaddress); the zero Addr lets the system choose.
	LocalAddr netip.Addr
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
	// TLSVerify checks the server's certificate chain and host name under
	// TLSMay too (a failure then means plaintext, as for any failed
	// handshake). Off by default: opportunistic TLS cannot insist (RFC 7435).
	// TLSMust always verifies unless TLSConfig.InsecureSkipVerify is set.
	TLSVerify bool

	// Nameservers, DNSTimeout and NoDNS describe the resolver the caller gives
	// the client (SMTPOptions.Resolver); the client itself only uses that
	// resolver. Nameservers are the nameservers keyword's addresses separated by
	// blanks ("" for the system's resolver); DNSTimeout bounds one query to one
	// server (option.dat DNS_TIMEOUT; zero: the resolver's default). NoDNS is the
	// nodns keyword: the client gets no resolver at all, so it reaches IP
	// literals and a literal Daemon only, and any name is a temporary failure.
	Nameservers string
	DNSTimeout  time.Duration
	NoDNS       bool

	// Channel is the channel's name, for connection records and transcript names.
	Channel string
	// LogConnection is option.dat LOG_CONNECTION: with bit 2 the client writes
	// the outbound connection records (O, C, Y) to SMTPOptions.MailLog.
	LogConnection int
	// MasterDebug (master_debug) writes every connection's dialogue to
	// SMTPOptions.DebugDir/<Channel>_master.log-<connection id> (see smtplog.go).
	MasterDebug bool
}

// SMTPOptions configures an SMTP (or LMTP) client channel: its settings, and the
// things it runs with that are not configuration (the resolver, the logs, a
// dialer for tests). The settings' fields are promoted: opts.Daemon is
// opts.SMTPSettings.Daemon.
type SMTPOptions struct {
	SMTPSettings
	// Resolver resolves MX and addresses. It may be nil when Daemon is an IP
	// literal or every domain is one.
	Resolver dnsx.Resolver
	// Dial replaces the TCP dialer (tests, proxies). It receives "tcp" and "ip:port".
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// TLSConfig is the base client configuration (RootCAs, certificates,
	// MinVersion — raised to TLS 1.2 if lower); ServerName is set per host.
	// May be nil: system roots.
	TLSConfig *tls.Config
	Logger    *slog.Logger
	// MailLog receives the outbound connection records (O, C, Y) when
	// LogConnection has bit 2; nil: none.
	MailLog *maillog.Logger
	// DebugDir is where master_debug transcripts go.
	DebugDir string
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
	// Timeout bounds one run (default 5 min, our choice); past it the whole
	// process group is killed and the recipient deferred.
	Timeout time.Duration
	// Dir is the working directory; Env is added to a minimal environment.
	Dir string
	Env []string
}

// PipeSettings is what the configuration decides for a pipe channel, in a form
// that compares with == (see SMTPSettings): the pipe program takes it through
// Options. The program's own PipeOptions keep the argument and status lists as
// slices, which its tests and code use; this is their comparable twin.
type PipeSettings struct {
	// Command is PIPE_COMMAND: the program and its arguments separated by blanks,
	// without quoting (no shell ever reads it).
	Command string
	// PerMessage is PIPE_MODE=message (see PipeOptions).
	PerMessage bool
	// TemporaryExits and PermanentExits are PIPE_TEMPORARY_EXITS and
	// PIPE_PERMANENT_EXITS (see PipeOptions).
	TemporaryExits ExitStatuses
	PermanentExits ExitStatuses
	// Timeout is PIPE_TIMEOUT; zero takes the program's default.
	Timeout time.Duration
}

// Options is the pipe program's configuration for these settings.
func (s PipeSettings) Options() PipeOptions {
	return PipeOptions{
		Command:        strings.Fields(s.Command),
		PerMessage:     s.PerMessage,
		TemporaryExits: s.TemporaryExits.List(),
		PermanentExits: s.PermanentExits.List(),
		Timeout:        s.Timeout,
	}
}

// ExitStatuses is a set of process exit statuses 0..255, one bit each: a fixed
// array, so that the settings holding it compare with ==.
type ExitStatuses [4]uint64

// ExitStatusesOf is the set of the given statuses; values outside 0..255 are
// left out (no process exits with them).
func ExitStatusesOf(codes ...int) ExitStatuses {
	var s ExitStatuses
	for _, c := range codes {
		if c >= 0 && c < 256 {
			s[c/64] |= 1 << (c % 64)
		}
	}
	return s
}

// Has reports whether code is in the set.
func (s ExitStatuses) Has(code int) bool {
	return code >= 0 && code < 256 && s[code/64]&(1<<(code%64)) != 0
}

// List is the set's statuses in increasing order; nil for the empty set.
func (s ExitStatuses) List() []int {
	var out []int
	for c := range 256 {
		if s.Has(c) {
			out = append(out, c)
		}
	}
	return out
}
