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

// MXMode is how an SMTP channel chooses the host it connects to (channels.md §3.2).
type MXMode uint8

const (
	DefaultMX MXMode = iota // defaultmx (default): MX when the network supports it
	MX                      // mx = nonrandommx: MX, equal preferences in order
	RandomMX                // randommx
	NoMX                    // nomx: address records only
	NoDNS                   // nodns [inf]: no DNS at all; daemon or literals only
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

// LineEnding is what an SMTP server channel accepts as end of line.
// [conflict] channels.md §3.1: plain `smtp` is taken as CRLF or bare LF (lenient).
type LineEnding uint8

const (
	CRLFOrLF  LineEnding = iota // smtp (default), smtp_lf
	CRLFOnly                    // smtp_crlf
	CROrCRLF                    // smtp_cr
	AnyEnding                   // smtp_crorlf
)

// Post is the sendpost / warnpost family.
type Post uint8

const (
	PostDefault Post = iota // copy failures unless the return path is empty (copysendpost)
	PostAlways              // sendpost / warnpost
	PostCopy                // copysendpost / copywarnpost
	PostError               // errsendpost / errwarnpost
	PostNever               // nosendpost / nowarnpost
)

// Immediate is immurgent / immnormal / immnonurgent: the classes delivered at once.
type Immediate uint8

const (
	ImmNormal Immediate = iota // urgent + normal (default)
	ImmUrgent
	ImmNonurgent // all
)

// Ident is the identnone... family (the reverse-DNS / IDENT behaviour of a server).
type Ident string

// ChannelConfig is one channel of the table, its keywords interpreted. Limits are
// 0 for "none" unless a field says otherwise.
type ChannelConfig struct {
	Name     string
	Official string        // line 2, first token
	Alias    string        // line 2, second token (local host alias)
	Hosts    []engine.Host // lines 3+
	Pos      cnf.Pos       // the channel-name line
	Keywords []Keyword     // effective keywords: defaults first, then the block's own
	GroupIDs []string      // unknown words (channels.md §1.2)

	SMTP             bool
	LMTP             bool // [ours] lmtp: RFC 2033 to Daemon over TCP, or a Unix socket (LMTPSocket); excludes smtp
	LineEnding       LineEnding
	EHLO             bool // noehlo clears
	MX               MXMode
	Nameservers      []string
	Daemon           string // daemon HOST; a non-FQDN argument means the official host (see DaemonHost)
	LastResort       string
	Port             int // 25 unless port N
	InterfaceAddress string
	ConnectCanonical bool

	Copies       Copies
	AddrsPerFile int // 0 = unlimited; 99 on SMTP channels when not given
	AddrsPerJob  int
	FilesPerJob  int
	MaxJobs      int // 0 = not given (the pool's job_limit rules)
	ThreadDepth  int // default 10
	Pool         string
	Subdirs      int // default 20; 0 with nosubdirs

	Immediate  Immediate
	Periodic   bool
	BlockLimit [NumPriorities]int // urgentblocklimit ... (0 = none)
	Deferred   bool

	Role              Role
	Switch            SwitchMode
	SASLSwitchChannel string
	TLSSwitchChannel  string
	UserSwitchChannel bool
	Ident             Ident // default identnonenumeric
	ForwardCheck      string

	TLSClient              TLSMode
	TLSServer              TLSMode
	SASLServer             SASLMode
	DisconnectBadAuthLimit int // default 3

	RemoteHost             bool
	DefaultHost            []string
	Inner                  bool
	MissingRecipientPolicy int // -1 = not given (option MISSING_RECIPIENT_POLICY applies)
	AddReturnPath          bool
	ViaAliasRequired       bool
	Rules                  bool // default true; norules clears
	RouteLocal             bool
	BangOverPercent        bool
	MaxProcChars           int
	MaxHeaderAddrs         int
	MaxHeaderChars         int
	AuthRewrite            int

	EightBit EightBit

	MessageBlockLimit          int // blocklimit N
	SourceBlockLimit           int
	LineLimit                  int
	MaxBlocks                  int
	MaxLines                   int
	AlternateChannel           string
	AlternateBlockLimit        int
	AlternateLineLimit         int
	AlternateRecipientLimit    int
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

	MailFromDNSVerify bool
	LoopCheck         bool
	SourceFilter      string
	DestinationFilter string
	FileInto          string
	Defragment        bool
	Logging           bool // default true [inf]: our shipped configs log everything
	LogHeader         int
	MasterDebug       bool
	SlaveDebug        bool
	SendPost          Post
	WarnPost          Post
	ReturnAddress     string
	ReturnPersonal    string

	Backoff [NumPriorities][]time.Duration // retry intervals; the last repeats
	Notices [NumPriorities][]int           // message ages (days, or hours with RETURN_UNITS=1)
	// NoticesSet says the channel (or its defaults) gave notices for that class; the
	// others were inherited from l or the built-in 3 6 9 12.
	NoticesSet [NumPriorities]bool
}

// Default retry schedules of channels.md §4.1, minutes.
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

// DaemonHost is the host an SMTP client connects to instead of the envelope host:
// the daemon argument, or the official host name when the argument is not a FQDN
// (the `daemon router` convention of channels.md §3.2). "" when no daemon keyword.
func (c *ChannelConfig) DaemonHost() string {
	if c.Daemon == "" {
		return ""
	}
	if c.LMTPSocket() != "" {
		return c.Daemon
	}
	for i := 0; i < len(c.Daemon); i++ {
		if c.Daemon[i] == '.' || c.Daemon[i] == ':' {
			return c.Daemon
		}
	}
	return c.Official
}

// LMTPSocket is the Unix socket path of an lmtp channel whose daemon argument is
// an absolute path; "" when it delivers over TCP (or is not an lmtp channel).
func (c *ChannelConfig) LMTPSocket() string {
	if c.LMTP && strings.HasPrefix(c.Daemon, "/") {
		return c.Daemon
	}
	return ""
}

// checkLMTP reports the keyword combinations an lmtp channel cannot honour, each at
// the position of the keyword that makes it wrong. LMTP has no MX step (RFC 2033
// §5: it is for a local store), so the destination must be configured.
func (c *ChannelConfig) checkLMTP() cnf.ErrorList {
	var lmtpPos, daemonPos, portPos cnf.Pos
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

// newChannel is a channel with every default of channels.md §3 before keywords apply.
func newChannel(b *cnf.Block) *ChannelConfig {
	c := &ChannelConfig{
		Name:                   b.Name,
		Pos:                    b.Pos,
		EHLO:                   true,
		Port:                   25,
		ThreadDepth:            10,
		Subdirs:                20,
		Ident:                  "identnonenumeric",
		ForwardCheck:           "forwardchecknone",
		DisconnectBadAuthLimit: 3,
		MissingRecipientPolicy: -1,
		Rules:                  true,
		ExpandLimit:            -1,
		Logging:                true,
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
// contradictory keywords wins ([inf] channels.md §1.2). Arguments were validated by
// splitKeywords; a bad one is skipped here.
func (c *ChannelConfig) apply(kws []Keyword) {
	addrsPerFileSet := false
	for _, k := range kws {
		c.Keywords = append(c.Keywords, k)
		if k.Unknown {
			c.GroupIDs = append(c.GroupIDs, k.Name)
			continue
		}
		arg := ""
		if len(k.Args) > 0 {
			arg = k.Args[0]
		}
		n, nerr := strconv.Atoi(arg)
		num := func(dst *int) {
			if nerr == nil {
				*dst = n
			}
		}
		switch k.Name {
		case "smtp", "smtp_lf":
			c.SMTP, c.LMTP, c.LineEnding = true, false, CRLFOrLF
		case "smtp_crlf":
			c.SMTP, c.LMTP, c.LineEnding = true, false, CRLFOnly
		case "smtp_cr":
			c.SMTP, c.LMTP, c.LineEnding = true, false, CROrCRLF
		case "smtp_crorlf":
			c.SMTP, c.LMTP, c.LineEnding = true, false, AnyEnding
		case "nosmtp":
			c.SMTP = false
		case "lmtp":
			c.LMTP, c.SMTP = true, false
		case "ehlo", "checkehlo":
			c.EHLO = true
		case "noehlo":
			c.EHLO = false
		case "defaultmx":
			c.MX = DefaultMX
		case "mx", "nonrandommx":
			c.MX = MX
		case "randommx":
			c.MX = RandomMX
		case "nomx":
			c.MX = NoMX
		case "nodns":
			c.MX = NoDNS
		case "nameservers":
			c.Nameservers = append([]string(nil), k.Args...)
		case "defaultnameservers":
			c.Nameservers = nil
		case "daemon":
			c.Daemon = arg
		case "lastresort":
			c.LastResort = arg
		case "port":
			num(&c.Port)
		case "interfaceaddress":
			c.InterfaceAddress = arg
		case "connectalias":
			c.ConnectCanonical = false
		case "connectcanonical":
			c.ConnectCanonical = true
		case "multiple":
			c.Copies = Multiple
		case "single_sys":
			c.Copies = SingleSys
		case "single":
			c.Copies = Single
		case "addrsperfile":
			num(&c.AddrsPerFile)
			addrsPerFileSet = true
		case "addrsperjob":
			num(&c.AddrsPerJob)
		case "filesperjob":
			num(&c.FilesPerJob)
		case "maxjobs":
			num(&c.MaxJobs)
		case "threaddepth":
			num(&c.ThreadDepth)
		case "pool", "queue":
			c.Pool = arg
		case "subdirs":
			num(&c.Subdirs)
		case "nosubdirs":
			c.Subdirs = 0
		case "immediate":
			c.Periodic = false
		case "periodic":
			c.Periodic = true
		case "immurgent":
			c.Immediate = ImmUrgent
		case "immnormal":
			c.Immediate = ImmNormal
		case "immnonurgent":
			c.Immediate = ImmNonurgent
		case "urgentblocklimit":
			num(&c.BlockLimit[Urgent])
		case "normalblocklimit":
			num(&c.BlockLimit[Normal])
		case "nonurgentblocklimit":
			num(&c.BlockLimit[Nonurgent])
		case "deferred":
			c.Deferred = true
		case "nodeferred":
			c.Deferred = false
		case "switchchannel":
			c.Switch = Switch
		case "allowswitchchannel":
			c.Switch = AllowSwitch
		case "noswitchchannel":
			c.Switch = NoSwitch
		case "saslswitchchannel":
			c.SASLSwitchChannel = arg
		case "nosaslswitchchannel":
			c.SASLSwitchChannel = ""
		case "tlsswitchchannel":
			c.TLSSwitchChannel = arg
		case "userswitchchannel":
			c.UserSwitchChannel = true
		case "identnone", "identnonesymbolic", "identnonenumeric", "identnonelimited",
			"identtcp", "identtcpsymbolic", "identtcpnumeric", "identtcplimited":
			c.Ident = Ident(k.Name)
		case "forwardchecknone", "forwardchecktag", "forwardcheckdelete":
			c.ForwardCheck = k.Name
		case "notls":
			c.TLSClient, c.TLSServer = TLSNo, TLSNo
		case "notlsclient":
			c.TLSClient = TLSNo
		case "notlsserver":
			c.TLSServer = TLSNo
		case "maytls":
			c.TLSClient, c.TLSServer = TLSMay, TLSMay
		case "maytlsclient":
			c.TLSClient = TLSMay
		case "maytlsserver":
			c.TLSServer = TLSMay
		case "musttls":
			c.TLSClient, c.TLSServer = TLSMust, TLSMust
		case "musttlsclient":
			c.TLSClient = TLSMust
		case "musttlsserver":
			c.TLSServer = TLSMust
		case "nosasl", "nosaslserver":
			c.SASLServer = SASLNo
		case "maysaslserver":
			c.SASLServer = SASLMay
		case "mustsaslserver":
			c.SASLServer = SASLMust
		case "disconnectbadauthlimit":
			num(&c.DisconnectBadAuthLimit)
		case "remotehost":
			c.RemoteHost = true
		case "noremotehost":
			c.RemoteHost = false
		case "defaulthost":
			c.DefaultHost = append([]string(nil), k.Args...)
		case "nodefaulthost":
			c.DefaultHost = nil
		case "inner":
			c.Inner = true
		case "noinner":
			c.Inner = false
		case "missingrecipientpolicy":
			num(&c.MissingRecipientPolicy)
		case "addreturnpath":
			c.AddReturnPath = true
		case "noaddreturnpath":
			c.AddReturnPath = false
		case "viaaliasrequired":
			c.ViaAliasRequired = true
		case "viaaliasoptional":
			c.ViaAliasRequired = false
		case "rules":
			c.Rules = true
		case "norules":
			c.Rules = false
		case "routelocal":
			c.RouteLocal = true
		case "bangoverpercent":
			c.BangOverPercent = true
		case "nobangoverpercent":
			c.BangOverPercent = false
		case "maxprocchars":
			num(&c.MaxProcChars)
		case "maxheaderaddrs":
			num(&c.MaxHeaderAddrs)
		case "maxheaderchars":
			num(&c.MaxHeaderChars)
		case "authrewrite":
			c.AuthRewrite = 1
			num(&c.AuthRewrite)
		case "sevenbit":
			c.EightBit = SevenBit
		case "eightbit":
			c.EightBit = EightBitOK
		case "eightnegotiate":
			c.EightBit = EightNegotiate
		case "eightstrict":
			c.EightBit = EightStrict
		case "blocklimit":
			num(&c.MessageBlockLimit)
		case "noblocklimit":
			c.MessageBlockLimit = 0
		case "sourceblocklimit":
			num(&c.SourceBlockLimit)
		case "linelimit":
			num(&c.LineLimit)
		case "nolinelimit":
			c.LineLimit = 0
		case "maxblocks":
			num(&c.MaxBlocks)
		case "maxlines":
			num(&c.MaxLines)
		case "alternatechannel":
			c.AlternateChannel = arg
		case "alternateblocklimit":
			num(&c.AlternateBlockLimit)
		case "alternatelinelimit":
			num(&c.AlternateLineLimit)
		case "alternaterecipientlimit":
			num(&c.AlternateRecipientLimit)
		case "recipientlimit":
			num(&c.RecipientLimit)
		case "recipientcutoff":
			num(&c.RecipientCutoff)
		case "expandlimit":
			num(&c.ExpandLimit)
		case "expandchannel":
			c.ExpandChannel = arg
		case "holdlimit":
			num(&c.HoldLimit)
		case "transactionlimit":
			num(&c.TransactionLimit)
		case "deferralrejectlimit":
			num(&c.DeferralRejectLimit)
		case "disconnectrecipientlimit":
			num(&c.DisconnectRecipientLimit)
		case "disconnectrejectlimit":
			num(&c.DisconnectRejectLimit)
		case "disconnecttransactionlimit":
			num(&c.DisconnectTransactionLimit)
		case "disconnectbadcommandlimit":
			num(&c.DisconnectBadCommandLimit)
		case "mailfromdnsverify":
			c.MailFromDNSVerify = true
		case "nomailfromdnsverify":
			c.MailFromDNSVerify = false
		case "loopcheck":
			c.LoopCheck = true
		case "noloopcheck":
			c.LoopCheck = false
		case "sourcefilter":
			c.SourceFilter = arg
		case "destinationfilter", "channelfilter":
			c.DestinationFilter = arg
		case "fileinto":
			c.FileInto = arg
		case "defragment":
			c.Defragment = true
		case "nodefragment":
			c.Defragment = false
		case "logging":
			c.Logging = true
		case "nologging":
			c.Logging = false
		case "logheader":
			num(&c.LogHeader)
		case "master_debug":
			c.MasterDebug = true
		case "nomaster_debug":
			c.MasterDebug = false
		case "slave_debug":
			c.SlaveDebug = true
		case "noslave_debug":
			c.SlaveDebug = false
		case "sendpost":
			c.SendPost = PostAlways
		case "copysendpost":
			c.SendPost = PostCopy
		case "errsendpost":
			c.SendPost = PostError
		case "nosendpost":
			c.SendPost = PostNever
		case "warnpost":
			c.WarnPost = PostAlways
		case "copywarnpost":
			c.WarnPost = PostCopy
		case "errwarnpost":
			c.WarnPost = PostError
		case "nowarnpost":
			c.WarnPost = PostNever
		case "returnaddress":
			c.ReturnAddress = arg
		case "returnpersonal":
			c.ReturnPersonal = arg
		case "master":
			c.Role = MasterOnly
		case "slave":
			c.Role = SlaveOnly
		case "bidirectional":
			c.Role = Bidirectional
		case "backoff":
			d := periods(k.Args)
			for p := range NumPriorities {
				c.Backoff[p] = d
			}
		case "urgentbackoff":
			c.Backoff[Urgent] = periods(k.Args)
		case "normalbackoff":
			c.Backoff[Normal] = periods(k.Args)
		case "nonurgentbackoff":
			c.Backoff[Nonurgent] = periods(k.Args)
		case "notices":
			v := ints(k.Args)
			for p := range NumPriorities {
				c.Notices[p], c.NoticesSet[p] = v, true
			}
		case "urgentnotices":
			c.Notices[Urgent], c.NoticesSet[Urgent] = ints(k.Args), true
		case "normalnotices":
			c.Notices[Normal], c.NoticesSet[Normal] = ints(k.Args), true
		case "nonurgentnotices":
			c.Notices[Nonurgent], c.NoticesSet[Nonurgent] = ints(k.Args), true
		}
	}
	// channels.md §3.3: addrsperfile is unlimited, but 99 on SMTP channels.
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

// engineChannel is what the rule engine needs of the channel.
func (c *ChannelConfig) engineChannel() engine.Channel {
	return engine.Channel{
		Name:             c.Name,
		Official:         c.Official,
		Alias:            c.Alias,
		Hosts:            append([]engine.Host(nil), c.Hosts...),
		Src:              c.Pos.String(),
		Local:            c.Local(),
		RouteLocal:       c.RouteLocal,
		Rules:            c.Rules,
		BangOverPercent:  c.BangOverPercent,
		ViaAliasRequired: c.ViaAliasRequired,
		ExpandLimit:      max(c.ExpandLimit, 0),
		ExpandLimitSet:   c.ExpandLimit >= 0,
		ExpandChannel:    c.ExpandChannel,
	}
}
