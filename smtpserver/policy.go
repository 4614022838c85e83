package smtpserver

import (
	"bytes"
	"net/netip"
	"time"

	"mtad.dev/mta/intake"
	"mtad.dev/mta/status"
)

// Defaults applied when a Policy or Config field is zero.
const (
	// DefaultMaxMessageBytes bounds a message when neither the policy nor the channel
	// sets a limit: the whole message is held in memory before Enqueue, so "no limit"
	// would let a client grow our memory at will.
	DefaultMaxMessageBytes = 50 << 20
	// DefaultMaxRecipients is ALLOW_RECIPIENTS_PER_TRANSACTION's 6.x default.
	DefaultMaxRecipients = 128
	// DefaultMaxErrors is how many protocol errors (bad or out-of-sequence commands)
	// a session may make before 421 and close. The product's documentation gives
	// disconnectbadcommandlimit no default; we use 10, the default of its
	// MAX_B_ENTRIES option, which counts bad commands too.
	DefaultMaxErrors = 10
	// DefaultMaxConns is MAX_PROCS*MAX_CONNS of the sample dispatcher.cnf (5*20).
	DefaultMaxConns = 100
	// DefaultMaxConnsPerIP caps one client address. The product's dispatcher has no
	// such option; we cap anyway so that one client cannot take every connection,
	// at 20, one worker's MAX_CONNS in the sample dispatcher.cnf.
	DefaultMaxConnsPerIP = 20
	// DefaultBlockSize is BLOCK_SIZE.
	DefaultBlockSize = 1024

	// MaxCommandLine is RFC 5321 §4.5.3.1.4: 512 octets including CRLF.
	MaxCommandLine = 512
)

// Timeouts are the server-side SMTP time limits of a session. The first four
// bound one wait each and default to RFC 5321 §4.5.3.2's values; the others
// bound a whole phase or the session (deadlines.go) and are off when zero.
type Timeouts struct {
	Greeting  time.Duration // until the first command; default 5 min
	Command   time.Duration // waiting for each further command; default 5 min (COMMAND_RECEIVE_TIME)
	DataBlock time.Duration // between two reads inside DATA; default 3 min (DATA_RECEIVE_TIME)
	// DataTermination bounds our own work after the final dot (Enqueue): RFC 5321
	// §4.5.3.2.6 is how long the client waits for that reply. Default 10 min.
	DataTermination time.Duration

	// MinDataRate, in bytes per second, is the least rate at which a client must
	// send the message of DATA: the DATA phase may last DataBlock plus the time
	// its bytes take at this rate, so a client that keeps up the rate is never cut
	// off and one that dribbles is, with 421 4.4.2. 0: no minimum.
	MinDataRate int64
	// Session bounds the whole connection from its accept, plus the time the
	// message bytes it sent are worth at MinDataRate; over it the session gets
	// 421 4.4.2 at its next read. 0: no bound.
	Session time.Duration
	// BannerDelay holds the 220 banner back this long; a client that sends
	// anything meanwhile is refused with 554 and closed (an early talker: a
	// legitimate client waits for the banner). Clients in
	// Policy.BannerDelayExempt are greeted at once. 0: no delay.
	BannerDelay time.Duration
}

func (t Timeouts) greeting() time.Duration { return orDur(t.Greeting, 5*time.Minute) }
func (t Timeouts) command() time.Duration  { return orDur(t.Command, 5*time.Minute) }
func (t Timeouts) dataBlock() time.Duration {
	return orDur(t.DataBlock, 3*time.Minute)
}
func (t Timeouts) dataTermination() time.Duration {
	return orDur(t.DataTermination, 10*time.Minute)
}

func orDur(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Policy is everything the server decides with, built by mtad from the compiled image.
// It is immutable once handed out: connections and transactions hold on to the
// snapshot they started with.
type Policy struct {
	// Intake holds what accepting a message decides with: rewriting, the access
	// tables, the loop and hold limits, our host name (in the banner, EHLO and
	// Received:). The SMTP server also uses its resolver for the switchchannel
	// probe and its tables for PORT_ACCESS.
	Intake        *intake.Rules
	Channels      map[string]ChannelPolicy // by channel name
	DefaultSource string                   // the channel an SMTP connection starts in ("tcp_local")

	// BannerAddition is appended to the 220 banner (BANNER_ADDITION).
	BannerAddition string

	MaxMessageBytes int64 // the message as the client sends it (SIZE); 0: DefaultMaxMessageBytes
	MaxRecipients   int   // RCPT commands accepted per transaction; 0: DefaultMaxRecipients
	MaxErrors       int   // protocol errors before 421; 0: DefaultMaxErrors
	BlockSize       int64 // BLOCK_SIZE for blocklimit; 0: DefaultBlockSize
	Timeouts        Timeouts

	// LineLimit is option.dat LINE_LIMIT: the most lines a message may have, as it
	// would be enqueued (our Received: included, like the block limits); 0 none.
	LineLimit int

	// LogConnection is option.dat LOG_CONNECTION: LogConnSource puts the client's
	// "helo ([ip])" on E and J records, LogConnRecords writes the O, C and X
	// connection records (maillog.ConnRecord). Taken per connection (O/C/X) and per
	// transaction (E/J), so a reload changes it without a restart.
	LogConnection int

	// BannerDelayExempt lists the client networks greeted without the banner
	// delay. mtad exempts loopback: local programs never talk first, and the
	// benchmarks connect over loopback.
	BannerDelayExempt []netip.Prefix
}

// ChannelPolicy is what the SMTP server needs of one channel's keywords.
type ChannelPolicy struct {
	Name               string
	SwitchChannel      bool   // switchchannel: the source channel follows the client IP
	AllowSwitchChannel bool   // allowswitchchannel: may be switched to
	NoSwitchChannel    bool   // noswitchchannel: no switching to or from
	SASLSwitchChannel  string // saslswitchchannel CH: the source channel after a successful AUTH
	BlockLimit         int64  // blocklimit: largest message enqueued to this channel, in blocks; 0 none
	SourceBlockLimit   int64  // sourceblocklimit: largest message accepted from it, in blocks; 0 none
	RecipientLimit     int    // recipientlimit / ALLOW_RECIPIENTS_PER_TRANSACTION of the source; 0 none
	LineLimit          int    // linelimit: most lines of a message enqueued to this channel (as blocklimit); 0 none

	// RequireTLS is musttlsserver (or musttls): MAIL is refused, 530 5.7.0, until
	// STARTTLS succeeded (RFC 3207 §4). Checked against the
	// source channel of the time, so a tlsswitchchannel target need not say it.
	RequireTLS bool
	// TLSSwitchChannel is tlsswitchchannel CH: the source channel after a
	// successful STARTTLS (as saslswitchchannel is after AUTH).
	TLSSwitchChannel string

	// Limits the channel's keywords set on a session it is the source of; 0 means
	// none.
	//
	// TransactionLimit is transactionlimit: transactions (accepted MAIL commands)
	// per connection; a MAIL beyond it gets 452 4.5.3 and the connection stays.
	TransactionLimit int
	// RecipientCutoff is recipientcutoff: a transaction that presented more RCPT
	// commands than this (accepted or not) is refused for every recipient at
	// DATA, 550 5.5.3.
	RecipientCutoff int
	// The disconnect* limits are checked when MAIL or RSET arrives and end the
	// connection with 421 4.7.0: DisconnectTransactionLimit when the MAIL would
	// start transaction N+1, DisconnectRecipientLimit when more than N RCPT
	// commands were presented on the connection, DisconnectRejectLimit when more
	// than N of them were refused.
	DisconnectTransactionLimit int
	DisconnectRecipientLimit   int
	DisconnectRejectLimit      int
	// DeferralRejectLimit is deferralrejectlimit: once N RCPT commands of the
	// connection were refused, every further RCPT gets 452 4.5.3.
	DeferralRejectLimit int
	// DisconnectBadCommandLimit is disconnectbadcommandlimit: the N-th bad or
	// out-of-sequence command gets 421 and the connection is closed, as N failed
	// AUTHs do with disconnectbadauthlimit; 0: Policy.MaxErrors.
	DisconnectBadCommandLimit int

	// SASL is the channel's SMTP AUTH keyword as a source channel:
	// nosasl/nosaslserver (the zero value), maysaslserver, mustsaslserver.
	SASL SASLMode
	// DisconnectBadAuthLimit is disconnectbadauthlimit: failed AUTHs on one
	// connection before 421 and close; 0: auth.DefaultDisconnectBadAuthLimit (3).
	DisconnectBadAuthLimit int
	// AllowPlainAuthLoopback offers AUTH without TLS to clients connecting from a
	// loopback address (a local submission agent or webmail on the same host).
	// It is not a keyword of the product, which leaves plaintext AUTH to
	// per-mechanism settings, and no configuration sets it yet. mtad offers AUTH
	// only inside TLS (RFC 4954 §4 and §14: PLAIN and LOGIN send the password in
	// the clear), and a client elsewhere gets 538 5.7.11.
	AllowPlainAuthLoopback bool
	// SlaveDebug is slave_debug: every session whose source channel is this one
	// (as decided at connection time, after switchchannel) writes its dialogue to
	// Config.DebugDir/<channel>_slave.log-<session id>.
	SlaveDebug bool

	// Timeouts, when any field is set, are the time limits of a session while
	// this channel is its source channel (from admission after switchchannel, or
	// from a later tlsswitchchannel or saslswitchchannel on), in place of
	// Policy.Timeouts: whole, so a zero field means that limit's package default,
	// not Policy's. BannerDelay is the channel's at admission.
	Timeouts Timeouts
	// MaxRecipients replaces Policy.MaxRecipients while this channel is the
	// session's source channel; 0: Policy's.
	MaxRecipients int
}

// LOG_CONNECTION bits, as the product's documentation numbers them.
const (
	LogConnSource  = 1 // connection source info in E (and J) records
	LogConnRecords = 2 // separate O/C/X connection records
)

// SASLMode is a channel's server-side SASL keyword.
type SASLMode int

const (
	SASLNone SASLMode = iota // nosaslserver (default): AUTH is neither offered nor accepted
	SASLMay                  // maysaslserver: AUTH offered, not required
	SASLMust                 // mustsaslserver: MAIL refused until AUTH succeeded
)

// Authenticator checks a user's password; *auth.Store satisfies it. Verify is
// called from the connection's goroutine and may take time (bcrypt).
type Authenticator interface {
	Verify(user, password string) bool
}

// Enqueuer is the queue as the server sees it. Enqueue must make the message durable
// before returning nil; the 250 is sent only then. Errors are replied with
// status.From (452 4.3.1 for a full disk).
type Enqueuer = intake.Enqueuer

// rules is the rewrite engine of the policy, nil when routing is unavailable.
func (p *Policy) rules() intake.Resolver {
	if p.Intake == nil {
		return nil
	}
	return p.Intake.Resolver
}

// tables are the access tables of the policy, nil when there are none.
func (p *Policy) tables() intake.AccessTables {
	if p.Intake == nil {
		return nil
	}
	return p.Intake.Access
}

// hostname is our name in the banner, EHLO and Received:.
func (p *Policy) hostname() string {
	if p.Intake != nil && p.Intake.Hostname != "" {
		return p.Intake.Hostname
	}
	return "localhost"
}

func (p *Policy) blockSize() int64 {
	if p.BlockSize > 0 {
		return p.BlockSize
	}
	return DefaultBlockSize
}

// maxMessageBytes is the size limit for a message from source channel src.
func (p *Policy) maxMessageBytes(src string) int64 {
	max := p.MaxMessageBytes
	if max <= 0 {
		max = DefaultMaxMessageBytes
	}
	if cp, ok := p.Channels[src]; ok && cp.SourceBlockLimit > 0 {
		if b := cp.SourceBlockLimit * p.blockSize(); b < max {
			max = b
		}
	}
	return max
}

func (p *Policy) maxRecipients(src string) int {
	cp, ok := p.Channels[src]
	max := p.MaxRecipients
	if ok && cp.MaxRecipients > 0 {
		max = cp.MaxRecipients
	}
	if max <= 0 {
		max = DefaultMaxRecipients
	}
	if ok && cp.RecipientLimit > 0 && cp.RecipientLimit < max {
		max = cp.RecipientLimit
	}
	return max
}

// timeouts are the time limits of a session whose source channel is src: the
// channel's own when it has any, else the policy's.
func (p *Policy) timeouts(src string) Timeouts {
	if cp, ok := p.Channels[src]; ok && cp.Timeouts != (Timeouts{}) {
		return cp.Timeouts
	}
	return p.Timeouts
}

// bannerDelayExempt tells whether a client at ip is greeted without the banner
// delay.
func (p *Policy) bannerDelayExempt(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, n := range p.BannerDelayExempt {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// maxErrors is the protocol-error limit of a session whose source channel is src:
// the channel's disconnectbadcommandlimit, else MaxErrors, else DefaultMaxErrors.
func (p *Policy) maxErrors(src string) int {
	if cp, ok := p.Channels[src]; ok && cp.DisconnectBadCommandLimit > 0 {
		return cp.DisconnectBadCommandLimit
	}
	if p.MaxErrors > 0 {
		return p.MaxErrors
	}
	return DefaultMaxErrors
}

// lineLimitStatus is the refusal of a message (as it would be enqueued) that has
// more lines than LINE_LIMIT or than the linelimit of a destination channel, nil
// when it fits. Lines are only counted when some limit applies.
func (p *Policy) lineLimitStatus(tx *intake.Transaction, content []byte) *status.Status {
	lines := -1
	count := func() int {
		if lines < 0 {
			lines = bytes.Count(content, []byte{'\n'})
			if len(content) > 0 && content[len(content)-1] != '\n' {
				lines++
			}
		}
		return lines
	}
	if p.LineLimit > 0 && count() > p.LineLimit {
		return status.New(552, "5.3.4", "Message exceeds fixed maximum number of lines (%d)", p.LineLimit)
	}
	for i := range tx.Len() {
		rc := tx.Recipient(i)
		// As with blocklimit, one destination over its limit refuses the message
		// for all recipients: DATA has only one reply to give.
		if cp, ok := p.Channels[rc.Channel]; ok && cp.LineLimit > 0 && count() > cp.LineLimit {
			return status.New(552, "5.3.4", "Message exceeds maximum number of lines for channel %s (%d)", rc.Channel, cp.LineLimit)
		}
	}
	return nil
}
