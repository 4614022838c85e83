package compiler

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"mtad.dev/mta/cnf"
	"mtad.dev/mta/engine"
)

// Priority indexes the per-class arrays (Backoff, Notices, block limits).
type Priority int

const (
	Urgent Priority = iota
	Normal
	Nonurgent
	NumPriorities
)

func (p Priority) String() string {
	switch p {
	case Urgent:
		return "urgent"
	case Normal:
		return "normal"
	case Nonurgent:
		return "nonurgent"
	}
	return "priority(" + strconv.Itoa(int(p)) + ")"
}

// MXMode is how an SMTP channel chooses the host it connects to, as the product's
// keywords of that name set it.
type MXMode uint8

const (
	DefaultMX MXMode = iota // defaultmx (default): MX when the network supports it
	MX                      // mx = nonrandommx: MX, equal preferences in order
	RandomMX                // randommx
	NoMX                    // nomx: address records only
	NoDNS                   // nodns: no DNS at all; a literal daemon or literals only (the documentation is silent; we chose this)
)

func (m MXMode) String() string {
	return [...]string{"defaultmx", "mx", "randommx", "nomx", "nodns"}[m]
}

// Role says which programs exist for a channel (master = deliver, slave = receive).
type Role uint8

const (
	Bidirectional Role = iota
	MasterOnly
	SlaveOnly
)

func (r Role) String() string { return [...]string{"bidirectional", "master", "slave"}[r] }

// SwitchMode is switchchannel / allowswitchchannel / noswitchchannel.
type SwitchMode uint8

const (
	AllowSwitch SwitchMode = iota // allowswitchchannel (default): may be switched to
	Switch                        // switchchannel: the server's channel switches by client IP
	NoSwitch                      // noswitchchannel
)

func (s SwitchMode) String() string {
	return [...]string{"allowswitchchannel", "switchchannel", "noswitchchannel"}[s]
}

// TLSMode and SASLMode: no (default), may, must.
type TLSMode uint8

const (
	TLSNo TLSMode = iota
	TLSMay
	TLSMust
)

func (m TLSMode) String() string { return [...]string{"no", "may", "must"}[m] }

type SASLMode uint8

const (
	SASLNo SASLMode = iota
	SASLMay
	SASLMust
)

func (m SASLMode) String() string { return [...]string{"no", "may", "must"}[m] }

// Copies is multiple / single_sys / single.
type Copies uint8

const (
	Multiple Copies = iota
	SingleSys
	Single
)

func (c Copies) String() string { return [...]string{"multiple", "single_sys", "single"}[c] }

// EightBit is sevenbit / eightbit / eightnegotiate / eightstrict.
type EightBit uint8

const (
	EightNegotiate EightBit = iota
	SevenBit
	EightBitOK
	EightStrict
)

func (e EightBit) String() string {
	return [...]string{"eightnegotiate", "sevenbit", "eightbit", "eightstrict"}[e]
}

// ChannelConfig is one channel of the table, its keywords interpreted: only what
// some part of mtad acts on (subsystems.go hands it to them), so a field here is a
// promise that its keywords work. Limits are 0 for "none" unless a field says
// otherwise.
type ChannelConfig struct {
	Name     string
	Official string        // line 2, first token
	Alias    string        // line 2, second token (local host alias)
	Hosts    []engine.Host // lines 3+
	Pos      cnf.Pos       // the channel-name line
	Keywords []Keyword     // effective keywords: defaults first, then the block's own
	GroupIDs []string      // unknown words, which the product takes as group ids

	SMTP             bool
	LMTP             bool // lmtp (not the product's): RFC 2033 to Daemon over TCP, or a Unix socket (LMTPSocket); excludes smtp
	MX               MXMode
	Nameservers      []string
	Daemon           string // daemon HOST; a non-FQDN argument means the official host (see DaemonHost)
	LastResort       string
	Port             int    // 25 unless port N
	InterfaceAddress string // interfaceaddress IP: the local address of outbound connections

	// Copies (multiple, single_sys, single) changes nothing here (one queue entry
	// per message); it is kept for `cnbuild -show`'s readers and the tests.
	Copies       Copies
	AddrsPerFile int // 0 = unlimited; 99 on SMTP channels when not given
	MaxJobs      int // 0 = not given (the pool's job_limit rules)
	ThreadDepth  int // default 10
	Pool         string

	Role              Role
	Switch            SwitchMode
	SASLSwitchChannel string
	TLSSwitchChannel  string

	TLSClient              TLSMode
	TLSServer              TLSMode
	SASLServer             SASLMode
	DisconnectBadAuthLimit int // default 3

	ViaAliasRequired bool
	Rules            bool // default true; norules clears
	RouteLocal       bool
	BangOverPercent  bool

	EightBit EightBit

	MessageBlockLimit          int // blocklimit N
	SourceBlockLimit           int
	LineLimit                  int
	RecipientLimit             int
	RecipientCutoff            int
	ExpandLimit                int // -1 = never expand offline (default)
	ExpandChannel              string
	HoldLimit                  int
	TransactionLimit           int
	DeferralRejectLimit        int
	DisconnectRecipientLimit   int
	DisconnectRejectLimit      int
	DisconnectTransactionLimit int
	DisconnectBadCommandLimit  int

	MasterDebug bool
	SlaveDebug  bool

	// Sender authentication of the sessions the channel is the source of
	// (spfhelo, spfmailfrom, spfrcptto, dkimverify, dmarcverify,
	// trustauthresults), and SRS (sourcesrs, destinationsrs, addresssrs).
	SPFHelo, SPFMailFrom, SPFRcptTo       bool
	DKIMVerify, DMARCVerify               bool
	TrustAuthResults                      bool
	SourceSRS, DestinationSRS, AddressSRS bool
	// Sieve filters (package filter), "" for none: the sourcefilter and
	// destinationfilter (channelfilter) URLs, the filter URL-pattern of users'
	// own filters, and the fileinto template.
	SourceFilter      string
	DestinationFilter string
	UserFilter        string
	FileInto          string

	Backoff [NumPriorities][]time.Duration // retry intervals; the last repeats
	// Notices are message ages (days, or hours with RETURN_UNITS=1). A class the
	// channel (or its defaults) gave none for inherits l's, else 3 6 9 12.
	Notices [NumPriorities][]int
}

// The product's documented default retry schedules, minutes.
var defaultBackoffMinutes = [NumPriorities][]int{
	Urgent:    {30, 60, 60, 120, 120, 120, 240},
	Normal:    {60, 120, 120, 240, 240, 240, 480},
	Nonurgent: {120, 240, 240, 480, 480, 480, 960},
}

// DefaultNotices is used when neither the channel nor l gives notices.
var defaultNotices = []int{3, 6, 9, 12}

// DefaultBackoff returns the built-in schedule for a class.
func DefaultBackoff(p Priority) []time.Duration {
	var out []time.Duration
	for _, m := range defaultBackoffMinutes[p] {
		out = append(out, time.Duration(m)*time.Minute)
	}
	return out
}

// DefaultNotices returns the built-in notices (3 6 9 12).
func DefaultNotices() []int { return append([]int(nil), defaultNotices...) }

// RetryAfter is the wait after the n-th failure (n from 1) for a class: the last
// interval repeats forever.
func (c *ChannelConfig) RetryAfter(p Priority, n int) time.Duration {
	b := c.Backoff[p]
	if len(b) == 0 {
		b = DefaultBackoff(p)
	}
	if n < 1 {
		n = 1
	}
	if n > len(b) {
		n = len(b)
	}
	return b[n-1]
}

// checkLMTP reports the keyword combinations an lmtp channel cannot honour, each at
// the position of the keyword that makes it wrong. LMTP has no MX step (RFC 2033
// §5: it is for a local store), so the destination must be configured.
func (c *ChannelConfig) checkLMTP() cnf.ErrorList {
	var lmtpPos, daemonPos, portPos, ifacePos cnf.Pos
	ownSMTP, ownLMTP := false, false
	for _, k := range c.Keywords {
		switch {
		case k.Unknown:
		case k.Name == "lmtp":
			lmtpPos, ownLMTP = k.Pos, ownLMTP || !k.Default
		case k.Name == "daemon":
			daemonPos = k.Pos
		case k.Name == "port":
			portPos = k.Pos
		case k.Name == "interfaceaddress":
			ifacePos = k.Pos
		case strings.HasPrefix(k.Name, "smtp") && !k.Default:
			ownSMTP = true
		}
	}
	var errs cnf.ErrorList
	add := func(pos cnf.Pos, format string, args ...any) {
		errs = append(errs, &cnf.Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
	}
	if !c.LMTP {
		if c.SMTP && strings.HasPrefix(c.Daemon, "/") {
			add(daemonPos, "channel %s: daemon %q is a Unix socket path, which only an lmtp channel can use", c.Name, c.Daemon)
		}
		return errs
	}
	if ownSMTP && ownLMTP {
		add(lmtpPos, "channel %s: smtp and lmtp exclude each other (one delivery protocol per channel)", c.Name)
	}
	if c.Local() {
		add(lmtpPos, "channel l: lmtp is not supported on the local channel; route the domain to an lmtp channel of its own")
	}
	if c.Daemon == "" {
		add(lmtpPos, "channel %s: lmtp needs \"daemon HOST\" (TCP, with \"port N\") or \"daemon /path/to/socket\" (Unix socket)", c.Name)
		return errs
	}
	switch {
	case c.LMTPSocket() != "":
		if portPos.Line != 0 {
			add(portPos, "channel %s: port has no meaning with a Unix socket (daemon %s)", c.Name, c.Daemon)
		}
		if ifacePos.Line != 0 {
			add(ifacePos, "channel %s: interfaceaddress has no meaning with a Unix socket (daemon %s)", c.Name, c.Daemon)
		}
	case portPos.Line == 0:
		// RFC 2033 §5 gives LMTP no port and forbids 25, our SMTP default.
		add(daemonPos, "channel %s: lmtp over TCP needs \"port N\" (LMTP has no standard port)", c.Name)
	case c.Port == 25:
		add(portPos, "channel %s: lmtp must not use port 25 (RFC 2033 §5)", c.Name)
	}
	return errs
}

// Local reports whether this is the local channel.
func (c *ChannelConfig) Local() bool { return c.Name == "l" }

// newChannel is a channel with every default the product documents, before
// keywords apply.
func newChannel(b *cnf.Block) *ChannelConfig {
	c := &ChannelConfig{
		Name:                   b.Name,
		Pos:                    b.Pos,
		Port:                   25,
		ThreadDepth:            10,
		DisconnectBadAuthLimit: 3,
		Rules:                  true,
		ExpandLimit:            -1,
		Copies:                 Multiple,
	}
	if len(b.Hosts) > 0 {
		c.Official = b.Hosts[0].Name
		c.Alias = b.Hosts[0].Alias
		for _, h := range b.Hosts[1:] {
			c.Hosts = append(c.Hosts, engine.Host{Name: h.Name, Proper: h.Alias})
		}
	}
	return c
}

// apply folds keywords into the channel in order, so that the later of two
// contradictory keywords wins (the documentation is silent; the usual rule of
// configuration files). Each keyword's setter is
// its entry of the keyword table. Arguments were validated by splitKeywords; a
// bad one is skipped here.
func (c *ChannelConfig) apply(kws []Keyword) {
	addrsPerFileSet := false
	for _, k := range kws {
		c.Keywords = append(c.Keywords, k)
		if k.Unknown {
			c.GroupIDs = append(c.GroupIDs, k.Name)
			continue
		}
		if spec, ok := keywordIndex[k.Name]; ok && spec.set != nil {
			spec.set(c, k)
		}
		addrsPerFileSet = addrsPerFileSet || k.Name == "addrsperfile"
	}
	// The product's documentation: addrsperfile is unlimited, but 99 on SMTP
	// channels.
	if !addrsPerFileSet && c.SMTP {
		c.AddrsPerFile = 99
	}
	for p := range NumPriorities {
		if len(c.Backoff[p]) == 0 {
			c.Backoff[p] = DefaultBackoff(p)
		}
	}
}

func periods(args []string) []time.Duration {
	var out []time.Duration
	for _, a := range args {
		if d, err := ParsePeriod(a); err == nil {
			out = append(out, d)
		}
	}
	return out
}

func ints(args []string) []int {
	var out []int
	for _, a := range args {
		if n, err := strconv.Atoi(a); err == nil {
			out = append(out, n)
		}
	}
	return out
}
