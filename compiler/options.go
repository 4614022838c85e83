package compiler

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"mtad.dev/mta/cnf"
)

// ParseInt reads an option integer: decimal, or "b%v" (v written in base b, e.g.
// "16%FF" = 255), as every MTA option file of the product allows.
func ParseInt(s string) (int, error) {
	s = strings.TrimSpace(s)
	if b, v, ok := strings.Cut(s, "%"); ok {
		base, err := strconv.Atoi(b)
		if err != nil || base < 2 || base > 36 {
			return 0, fmt.Errorf("%q: bad base in b%%v integer", s)
		}
		n, err := strconv.ParseInt(v, base, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not an integer in base %d", s, base)
		}
		return int(n), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	return int(n), nil
}

// optKind is the type of an option value.
type optKind uint8

const (
	optInt optKind = iota
	optString
	optBool    // 0/1 integer used as a switch
	optMinutes // a time: integer minutes (channel option timeouts) or a duration with a unit
	optSeconds // a time: integer seconds or a duration with a unit (DNS_TIMEOUT)
	optFloat
)

// maxOptionTime bounds every time option: a longer SMTP or DNS timeout is a
// unit mistake (minutes written where seconds were meant), not a wish.
const maxOptionTime = 24 * time.Hour

// ParseTime reads a time option. A bare integer counts in bare units (minutes for
// the product's channel option timeouts); a decimal number with a unit — ms, s, m or
// h, as in 1500ms, 30s, 2m, 1m30s — is that duration (our extension: the product
// takes whole minutes only). Zero is allowed (it means the option's default);
// negative values, other units, values from 0 to 1ms exclusive and values over 24h
// are errors.
func ParseTime(s string, bare time.Duration) (time.Duration, error) {
	s = strings.TrimSpace(s)
	unitName := "minutes"
	if bare == time.Second {
		unitName = "seconds"
	}
	if n, err := ParseInt(s); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("%d is negative", n)
		}
		if int64(n) > int64(maxOptionTime/bare) {
			return 0, fmt.Errorf("%d %s is more than %v", n, unitName, maxOptionTime)
		}
		return time.Duration(n) * bare, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither whole %s nor a time with a unit (1500ms, 30s, 2m, 1h)", s, unitName)
	}
	for _, u := range durationUnits(s) {
		if u != "ms" && u != "s" && u != "m" && u != "h" {
			return 0, fmt.Errorf("%q: unit %q not allowed here (ms, s, m or h)", s, u)
		}
	}
	switch {
	case d < 0:
		return 0, fmt.Errorf("%q is negative", s)
	case d > 0 && d < time.Millisecond:
		return 0, fmt.Errorf("%q is less than 1ms", s)
	case d > maxOptionTime:
		return 0, fmt.Errorf("%q is more than %v", s, maxOptionTime)
	}
	return d, nil
}

// durationUnits lists the unit words of a duration time.ParseDuration accepted.
func durationUnits(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '+' || r == '-' || (r >= '0' && r <= '9') })
}

// optionReader interprets one option file: it checks each NAME against a table of
// known options, converts the value, and reports unknown names (warning) and bad
// values (error) at the option's position.
type optionReader struct {
	file  string
	known map[string]optKind
	errs  *cnf.ErrorList
	warns *cnf.ErrorList
	raw   map[string]string
	ints  map[string]int
	strs  map[string]string
	durs  map[string]time.Duration
	flts  map[string]float64
	// noEffect are the file's keys that nothing acts on (optnoeffect.go); nil: none.
	noEffect map[string]optNoEffect
}

func newOptionReader(file string, known map[string]optKind, errs, warns *cnf.ErrorList) *optionReader {
	return &optionReader{file: file, known: known, errs: errs, warns: warns,
		raw: map[string]string{}, ints: map[string]int{}, strs: map[string]string{},
		durs: map[string]time.Duration{}, flts: map[string]float64{}}
}

func (r *optionReader) read(opts []cnf.Option) {
	for _, o := range opts {
		name := strings.ToUpper(strings.TrimSpace(o.Name))
		val := strings.TrimSpace(o.Value)
		r.raw[name] = val
		kind, ok := r.known[name]
		if !ok {
			*r.warns = append(*r.warns, &cnf.Error{Pos: o.Pos, Msg: fmt.Sprintf("unknown option %q in %s (ignored)", o.Name, r.file)})
			continue
		}
		if e, ok := r.noEffect[name]; ok && e.warns(val) {
			*r.warns = append(*r.warns, &cnf.Error{Pos: o.Pos, Msg: fmt.Sprintf("option %s is not implemented in this version; it has no effect (%s)", name, e.Reason)})
		}
		switch kind {
		case optString:
			r.strs[name] = val
		case optInt, optBool:
			n, err := ParseInt(val)
			if err != nil {
				*r.errs = append(*r.errs, &cnf.Error{Pos: o.Pos, Msg: fmt.Sprintf("bad value for option %s: %v", name, err)})
				continue
			}
			r.ints[name] = n
		case optMinutes, optSeconds:
			bare := time.Minute
			if kind == optSeconds {
				bare = time.Second
			}
			d, err := ParseTime(val, bare)
			if err != nil {
				*r.errs = append(*r.errs, &cnf.Error{Pos: o.Pos, Msg: fmt.Sprintf("bad value for option %s: %v", name, err)})
				continue
			}
			r.durs[name] = d
		case optFloat:
			f, err := strconv.ParseFloat(val, 64)
			if err != nil {
				*r.errs = append(*r.errs, &cnf.Error{Pos: o.Pos, Msg: fmt.Sprintf("bad value for option %s: %q is not a number", name, val)})
				continue
			}
			r.flts[name] = f
		}
	}
}

func (r *optionReader) int(name string, dst *int) {
	if v, ok := r.ints[name]; ok {
		*dst = v
	}
}

func (r *optionReader) bool(name string, dst *bool) {
	if v, ok := r.ints[name]; ok {
		*dst = v != 0
	}
}

func (r *optionReader) str(name string, dst *string) {
	if v, ok := r.strs[name]; ok {
		*dst = v
	}
}

func (r *optionReader) dur(name string, dst *time.Duration) {
	if v, ok := r.durs[name]; ok {
		*dst = v
	}
}

// Options is option.dat, typed. Raw keeps every NAME=value as given (names upper-cased).
// The product's documentation mentions 50 as the default of MAX_RECEIVED_LINES and
// MAX_INTERNAL_RECEIVED_LINES without confirming it; we use it. MAX_REWRITE_PASSES,
// METRICS_LISTEN and DNS_TIMEOUT are our extensions, not the product's.
type Options struct {
	LogMessageID             bool   // LOG_MESSAGE_ID
	LogFilename              bool   // LOG_FILENAME
	LogConnection            int    // LOG_CONNECTION bit mask
	LogFormat                int    // LOG_FORMAT, default 1
	LogFilter                bool   // LOG_FILTER
	LogUsername              bool   // LOG_USERNAME
	LogQueueTime             bool   // LOG_QUEUE_TIME
	LogReason                bool   // LOG_REASON
	MaxReceivedLines         int    // MAX_RECEIVED_LINES, default 50
	MaxLocalReceivedLines    int    // MAX_LOCAL_RECEIVED_LINES, default 10
	MaxInternalReceivedLines int    // MAX_INTERNAL_RECEIVED_LINES, default 50
	ReturnUnits              int    // RETURN_UNITS: 0 days, 1 hours
	ReturnAddress            string // RETURN_ADDRESS; default postmaster@<local host>
	ReturnPersonal           string // RETURN_PERSONAL
	ReturnEnvelope           int    // RETURN_ENVELOPE bits
	BlockSize                int    // BLOCK_SIZE, default 1024
	BlockLimit               int    // BLOCK_LIMIT (0 = none)
	LineLimit                int    // LINE_LIMIT (0 = none)
	AccessORCPT              int    // ACCESS_ORCPT bits
	AccessCounts             int    // ACCESS_COUNTS
	ErrorTextUnknownHost     string // ERROR_TEXT_UNKNOWN_HOST, default "unknown host or domain"
	MaxAliasLevels           int    // MAX_ALIAS_LEVELS, default 10
	SubaddressChar           string // SUBADDRESS_CHAR, default "+"
	MaxRewritePasses         int    // MAX_REWRITE_PASSES, default 20
	MissingRecipientPolicy   int    // MISSING_RECIPIENT_POLICY, default 1
	MetricsListen            string // METRICS_LISTEN: host:port of /metrics, "" = off
	// DNSTimeout (DNS_TIMEOUT) bounds one DNS query to one server; zero:
	// the resolver's default (resolv.conf's timeout, else 5 s).
	DNSTimeout        time.Duration
	MaxHeaderBlockUse float64
	// Auth is sender authentication's options (SPF_*, DKIM_*, DMARC_*, SRS_*,
	// AUTHSERV_ID, ACCESS_SPF).
	Auth AuthOptions
	// FilterDiscard and FilterJettison are FILTER_DISCARD and FILTER_JETTISON:
	// 2 parks what a filter's discard (jettison) drops on the filter_discard
	// channel, 1 (the default) deletes it at once. FILTER_JETTISON defaults to
	// FILTER_DISCARD's value.
	FilterDiscard  int
	FilterJettison int
	// SieveRedirectAddResent is SIEVE_REDIRECT_ADD_RESENT (default on): a Sieve
	// redirect without :resent or :noresent adds Resent- fields.
	SieveRedirectAddResent bool
	MMDebug                int
	DequeueDebug           int
	ReturnDebug            int
	Raw                    map[string]string
}

var optionTable = map[string]optKind{
	"LOG_MESSAGE_ID": optBool, "LOG_FILENAME": optBool, "LOG_CONNECTION": optInt,
	"LOG_FORMAT": optInt, "LOG_FILTER": optBool, "LOG_PROCESS": optBool,
	"LOG_USERNAME": optBool, "LOG_NOTARY": optBool, "LOG_ENVELOPE_ID": optBool,
	"LOG_PRIORITY": optBool, "LOG_SENSITIVITY": optBool, "LOG_INTERMEDIATE": optBool,
	"LOG_NODE": optBool, "LOG_QUEUE_TIME": optBool, "LOG_REASON": optBool,
	"LOG_DIAGNOSTICS": optBool, "LOG_MESSAGES_SYSLOG": optInt,
	"SEPARATE_CONNECTION_LOG": optBool,
	"MAX_RECEIVED_LINES":      optInt, "MAX_LOCAL_RECEIVED_LINES": optInt,
	"MAX_INTERNAL_RECEIVED_LINES": optInt, "MAX_MR_RECEIVED_LINES": optInt,
	"HELD_SNDOPR":  optBool,
	"RETURN_UNITS": optInt, "RETURN_ADDRESS": optString, "RETURN_PERSONAL": optString,
	"RETURN_ENVELOPE": optInt, "ALIAS_MAGIC": optInt, "ACCESS_ORCPT": optInt,
	"ACCESS_COUNTS": optInt, "SUBADDRESS_CHAR": optString, "BLOCK_SIZE": optInt,
	"BLOCK_LIMIT": optInt, "LINE_LIMIT": optInt, "ERROR_TEXT_UNKNOWN_HOST": optString,
	"MAX_ALIAS_LEVELS": optInt, "MAX_REWRITE_PASSES": optInt,
	"MISSING_RECIPIENT_POLICY": optInt, "METRICS_LISTEN": optString,
	"DNS_TIMEOUT":          optSeconds,
	"MAX_HEADER_BLOCK_USE": optFloat, "MAX_HEADER_LINE_USE": optFloat,
	"MM_DEBUG": optInt, "DEQUEUE_DEBUG": optInt, "RETURN_DEBUG": optInt,
	"POST_DEBUG": optInt, "OS_DEBUG": optInt, "CACHE_DEBUG": optInt,
	"FILTER_DEBUG": optInt, "LOG_DEBUG": optInt, "AP_DEBUG": optInt,
	"COMMENT_CHARS": optString, "DOMAIN_FAILURE": optString,
	// sender authentication (authoptions.go)
	"SPF_MAX_RECURSION": optInt, "SPF_MAX_DNS_QUERIES": optInt, "SPF_MAX_VOID_LOOKUPS": optInt,
	"SPF_MAX_TIME": optSeconds, "SPF_SMTP_STATUS_FAIL": optInt, "SPF_SMTP_STATUS_FAIL_ALL": optInt,
	"SPF_SMTP_STATUS_SOFTFAIL": optInt, "SPF_SMTP_STATUS_SOFTFAIL_ALL": optInt,
	"SPF_SMTP_STATUS_PERMERROR": optInt, "SPF_SMTP_STATUS_TEMPERROR": optInt,
	"SPF_HEADERS": optInt, "ACCESS_SPF": optBool, "AUTHSERV_ID": optString,
	"DKIM_MAX_SIGNATURES": optInt, "DMARC_HONOR_PCT": optBool, "DMARC_REJECT_CODE": optString,
	"DMARC_QUARANTINE_HOLD": optBool,
	"SRS_DOMAIN":            optString, "SRS_SECRETS": optString, "SRS_MAXAGE": optInt, "SRS_HASH_ALGORITHM": optString,
	"FILTER_DISCARD": optInt, "FILTER_JETTISON": optInt, "SIEVE_REDIRECT_ADD_RESENT": optBool,
}

// DefaultOptions are the values used when option.dat does not set them.
func DefaultOptions() Options {
	return Options{
		LogFormat:                1,
		MaxReceivedLines:         50,
		MaxLocalReceivedLines:    10,
		MaxInternalReceivedLines: 50,
		BlockSize:                1024,
		ErrorTextUnknownHost:     "unknown host or domain",
		MaxAliasLevels:           10,
		SubaddressChar:           "+",
		MaxRewritePasses:         20,
		MissingRecipientPolicy:   1,
		MaxHeaderBlockUse:        0.5,
		FilterDiscard:            1,
		FilterJettison:           1,
		SieveRedirectAddResent:   true,
		Raw:                      map[string]string{},
		Auth:                     defaultAuthOptions(),
	}
}

func readOptions(f *cnf.OptionFile, errs, warns *cnf.ErrorList) Options {
	o := DefaultOptions()
	if f == nil {
		return o
	}
	r := newOptionReader("option.dat", optionTable, errs, warns)
	r.noEffect = optionNoEffectFor(optionDat)
	r.read(f.Options)
	r.bool("LOG_MESSAGE_ID", &o.LogMessageID)
	r.bool("LOG_FILENAME", &o.LogFilename)
	r.int("LOG_CONNECTION", &o.LogConnection)
	r.int("LOG_FORMAT", &o.LogFormat)
	r.bool("LOG_FILTER", &o.LogFilter)
	r.bool("LOG_USERNAME", &o.LogUsername)
	r.bool("LOG_QUEUE_TIME", &o.LogQueueTime)
	r.bool("LOG_REASON", &o.LogReason)
	r.int("MAX_RECEIVED_LINES", &o.MaxReceivedLines)
	r.int("MAX_LOCAL_RECEIVED_LINES", &o.MaxLocalReceivedLines)
	r.int("MAX_INTERNAL_RECEIVED_LINES", &o.MaxInternalReceivedLines)
	r.int("RETURN_UNITS", &o.ReturnUnits)
	r.str("RETURN_ADDRESS", &o.ReturnAddress)
	r.str("RETURN_PERSONAL", &o.ReturnPersonal)
	r.int("RETURN_ENVELOPE", &o.ReturnEnvelope)
	r.int("BLOCK_SIZE", &o.BlockSize)
	r.int("BLOCK_LIMIT", &o.BlockLimit)
	r.int("LINE_LIMIT", &o.LineLimit)
	r.int("ACCESS_ORCPT", &o.AccessORCPT)
	r.int("ACCESS_COUNTS", &o.AccessCounts)
	r.str("ERROR_TEXT_UNKNOWN_HOST", &o.ErrorTextUnknownHost)
	r.int("MAX_ALIAS_LEVELS", &o.MaxAliasLevels)
	r.str("SUBADDRESS_CHAR", &o.SubaddressChar)
	r.int("MAX_REWRITE_PASSES", &o.MaxRewritePasses)
	r.int("MISSING_RECIPIENT_POLICY", &o.MissingRecipientPolicy)
	r.str("METRICS_LISTEN", &o.MetricsListen)
	r.dur("DNS_TIMEOUT", &o.DNSTimeout)
	if v, ok := r.flts["MAX_HEADER_BLOCK_USE"]; ok {
		o.MaxHeaderBlockUse = v
	}
	o.Auth = readAuthOptions(r, f, errs)
	r.int("FILTER_DISCARD", &o.FilterDiscard)
	o.FilterJettison = o.FilterDiscard
	r.int("FILTER_JETTISON", &o.FilterJettison)
	r.bool("SIEVE_REDIRECT_ADD_RESENT", &o.SieveRedirectAddResent)
	r.int("MM_DEBUG", &o.MMDebug)
	r.int("DEQUEUE_DEBUG", &o.DequeueDebug)
	r.int("RETURN_DEBUG", &o.ReturnDebug)
	o.Raw = r.raw
	pos := func(name string) cnf.Pos {
		for _, op := range f.Options {
			if strings.EqualFold(op.Name, name) {
				return op.Pos
			}
		}
		return cnf.Pos{File: "option.dat"}
	}
	if o.ReturnUnits != 0 && o.ReturnUnits != 1 {
		*errs = append(*errs, &cnf.Error{Pos: pos("RETURN_UNITS"), Msg: fmt.Sprintf("bad value for option RETURN_UNITS: %d (0 = days, 1 = hours)", o.ReturnUnits)})
	}
	if o.BlockSize <= 0 {
		*errs = append(*errs, &cnf.Error{Pos: pos("BLOCK_SIZE"), Msg: "bad value for option BLOCK_SIZE: must be positive"})
	}
	if len(o.SubaddressChar) > 1 {
		*errs = append(*errs, &cnf.Error{Pos: pos("SUBADDRESS_CHAR"), Msg: fmt.Sprintf("bad value for option SUBADDRESS_CHAR: %q is not one character", o.SubaddressChar)})
	}
	if o.MaxAliasLevels < 1 {
		*errs = append(*errs, &cnf.Error{Pos: pos("MAX_ALIAS_LEVELS"), Msg: "bad value for option MAX_ALIAS_LEVELS: must be at least 1"})
	}
	for name, v := range map[string]int{"FILTER_DISCARD": o.FilterDiscard, "FILTER_JETTISON": o.FilterJettison} {
		if v != 1 && v != 2 {
			*errs = append(*errs, &cnf.Error{Pos: pos(name), Msg: fmt.Sprintf("bad value for option %s: %d (1 = delete, 2 = park on the filter_discard channel)", name, v)})
		}
	}
	return o
}

// ChannelOptions is a <channel>_option file, typed. Times given in minutes in the file
// are durations here. The product's documentation gives no firm default for
// COMMAND_RECEIVE_TIME, COMMAND_TRANSMIT_TIME and STATUS_TRANSMIT_TIME (it suggests
// about 10 minutes, which we use) nor for MAX_CLIENT_THREADS (20 is our choice).
type ChannelOptions struct {
	AllowTransactionsPerSession    int // 0 = unlimited
	AllowRecipientsPerTransaction  int // default 128
	RejectRecipientsPerTransaction int
	AllowRejectionsBeforeDeferral  int // 0 = unlimited
	AllowETRNsPerSession           int // default 1
	AttemptTransactionsPerSession  int // 0 = unlimited
	BannerAddition                 string
	BannerHost                     string
	CommandReceiveTime             time.Duration // server: wait for a command; default 10 min
	CommandTransmitTime            time.Duration // default 10 min
	DataReceiveTime                time.Duration // server: wait for content; default 60 min (SIMS)
	StatusTransmitTime             time.Duration // default 10 min
	// The SMTP client's times: zero means unset, so that the stage falls back
	// to STATUS_RECEIVE_TIME or to its RFC 5321 §4.5.3.2 default (see
	// ClientTimeouts). CONNECT_TIME and the STATUS_..._RECEIVE_TIME keys of the
	// greeting, EHLO, DATA's 354, RSET and QUIT are our extensions: the product has
	// no key for those stages.
	DataTransmitTime          time.Duration // each write of content (data block)
	StatusReceiveTime         time.Duration // any reply without a key of its own
	StatusMailReceiveTime     time.Duration
	StatusRcptToReceiveTime   time.Duration
	StatusDataReceiveTime     time.Duration // the reply to the final "."
	ConnectTime               time.Duration // CONNECT_TIME: TCP connect, per address
	StatusGreetingReceiveTime time.Duration // STATUS_GREETING_RECEIVE_TIME: the 220 banner
	StatusEhloReceiveTime     time.Duration // STATUS_EHLO_RECEIVE_TIME: EHLO/HELO/LHLO
	StatusDataInitReceiveTime time.Duration // STATUS_DATA_INIT_RECEIVE_TIME: DATA's 354
	StatusRsetReceiveTime     time.Duration // STATUS_RSET_RECEIVE_TIME: RSET, reuse check
	StatusQuitReceiveTime     time.Duration // STATUS_QUIT_RECEIVE_TIME
	MaxBEntries               int           // default 10
	MaxClientThreads          int           // default 20
	PermanentErrorStrings552  []string
	// PipeCommand (PIPE_COMMAND, our extension) is the program a pipe channel runs,
	// split on blanks, without a shell (${sender} ${recipient} ${user} ${domain}
	// ${queueid} are substituted); PipeTimeout (PIPE_TIMEOUT, our extension) bounds one
	// run, in seconds (default 5 min).
	PipeCommand string
	PipeTimeout time.Duration
	// PipeMode (PIPE_MODE, our extension) is PipeModeRecipient (default) or
	// PipeModeMessage; PipeTemporaryExits and PipePermanentExits (PIPE_TEMPORARY_EXITS,
	// PIPE_PERMANENT_EXITS, our extensions) override the sysexits mapping of those
	// statuses.
	PipeMode           string
	PipeTemporaryExits []int
	PipePermanentExits []int

	// The SMTP server's slow-client and early-talker limits (our extensions; see
	// Image.ServerTimeouts). MinDataReceiveRate (MIN_DATA_RECEIVE_RATE, bytes per
	// second, default 500) is the least rate of the message of DATA;
	// MaxSessionTime (MAX_SESSION_TIME, default 60 min) bounds a session, plus
	// what its message bytes earn at that rate; BannerDelay (BANNER_DELAY, whole
	// seconds, default 1 s) holds the banner back to catch early talkers. Zero
	// turns each off.
	MinDataReceiveRate int
	MaxSessionTime     time.Duration
	BannerDelay        time.Duration

	Raw map[string]string
}

var channelOptionTable = map[string]optKind{
	"ALLOW_TRANSACTIONS_PER_SESSION": optInt, "ALLOW_RECIPIENTS_PER_TRANSACTION": optInt,
	"REJECT_RECIPIENTS_PER_TRANSACTION": optInt, "ALLOW_REJECTIONS_BEFORE_DEFERRAL": optInt,
	"ALLOW_ETRNS_PER_SESSION": optInt, "ATTEMPT_TRANSACTIONS_PER_SESSION": optInt,
	"BANNER_ADDITION": optString, "BANNER_HOST": optString,
	"COMMAND_RECEIVE_TIME": optMinutes, "COMMAND_TRANSMIT_TIME": optMinutes,
	"DATA_RECEIVE_TIME": optMinutes, "DATA_TRANSMIT_TIME": optMinutes,
	"STATUS_RECEIVE_TIME": optMinutes, "STATUS_TRANSMIT_TIME": optMinutes,
	"STATUS_MAIL_RECEIVE_TIME": optMinutes, "STATUS_RCPT_TO_RECEIVE_TIME": optMinutes,
	"STATUS_DATA_RECEIVE_TIME": optMinutes, "STATUS_DATA_RECV_PER_ADDR_TIME": optMinutes,
	"STATUS_DATA_RECV_PER_BLOCK_TIME": optMinutes,
	"CONNECT_TIME":                    optMinutes, "STATUS_GREETING_RECEIVE_TIME": optMinutes,
	"STATUS_EHLO_RECEIVE_TIME": optMinutes, "STATUS_DATA_INIT_RECEIVE_TIME": optMinutes,
	"STATUS_RSET_RECEIVE_TIME": optMinutes, "STATUS_QUIT_RECEIVE_TIME": optMinutes,
	"552_PERMANENT_ERROR_STRING": optString, "MAX_B_ENTRIES": optInt,
	"MAX_CLIENT_THREADS": optInt,
	"PIPE_COMMAND":       optString, "PIPE_TIMEOUT": optInt,
	"PIPE_MODE": optString, "PIPE_TEMPORARY_EXITS": optString, "PIPE_PERMANENT_EXITS": optString,
	// the SMTP server's slow-client and early-talker limits (our extensions)
	"MIN_DATA_RECEIVE_RATE": optInt, "MAX_SESSION_TIME": optMinutes, "BANNER_DELAY": optSeconds,
}

// DefaultChannelOptions are the values of a channel without an option file.
func DefaultChannelOptions() ChannelOptions {
	return ChannelOptions{
		AllowRecipientsPerTransaction: 128,
		AllowETRNsPerSession:          1,
		CommandReceiveTime:            10 * time.Minute,
		CommandTransmitTime:           10 * time.Minute,
		DataReceiveTime:               60 * time.Minute,
		StatusTransmitTime:            10 * time.Minute,
		MaxBEntries:                   10,
		MaxClientThreads:              20,
		MinDataReceiveRate:            DefaultMinDataReceiveRate,
		MaxSessionTime:                DefaultMaxSessionTime,
		BannerDelay:                   DefaultBannerDelay,
		Raw:                           map[string]string{},
	}
}

// Defaults of the SMTP server's slow-client and early-talker limits (our
// extensions), chosen never to hurt a legitimate client:
//   - 500 bytes per second is Postfix's smtpd_min_data_rate, below the slowest
//     links still in use (a GSM data call moves about 1200); a client that
//     averages less still has DATA_RECEIVE_TIME to spare before it is cut off.
//   - an hour of session is more than any client needs for its commands: time
//     spent sending messages at the minimum rate is added to it, our own SMTP
//     client drops a connection idle for 30 s, and Postfix's reuses one for at
//     most 5 minutes.
//   - one second of banner delay is many round trips, enough for a client that
//     does not wait for the banner to show itself, and far inside the 5 minutes
//     a client waits for it (RFC 5321 §4.5.3.2).
const (
	DefaultMinDataReceiveRate = 500
	DefaultMaxSessionTime     = 60 * time.Minute
	DefaultBannerDelay        = time.Second
)

// maxBannerDelay: a client gives up waiting for the banner after 5 minutes
// (RFC 5321 §4.5.3.2), so a longer delay would refuse everyone.
const maxBannerDelay = 5 * time.Minute

func readChannelOptions(name string, f *cnf.OptionFile, errs, warns *cnf.ErrorList) ChannelOptions {
	o := DefaultChannelOptions()
	if f == nil {
		return o
	}
	r := newOptionReader(name+"_option", channelOptionTable, errs, warns)
	r.noEffect = optionNoEffectFor(channelOption)
	r.read(f.Options)
	r.int("ALLOW_TRANSACTIONS_PER_SESSION", &o.AllowTransactionsPerSession)
	r.int("ALLOW_RECIPIENTS_PER_TRANSACTION", &o.AllowRecipientsPerTransaction)
	r.int("REJECT_RECIPIENTS_PER_TRANSACTION", &o.RejectRecipientsPerTransaction)
	r.int("ALLOW_REJECTIONS_BEFORE_DEFERRAL", &o.AllowRejectionsBeforeDeferral)
	r.int("ALLOW_ETRNS_PER_SESSION", &o.AllowETRNsPerSession)
	r.int("ATTEMPT_TRANSACTIONS_PER_SESSION", &o.AttemptTransactionsPerSession)
	r.str("BANNER_ADDITION", &o.BannerAddition)
	r.str("BANNER_HOST", &o.BannerHost)
	r.dur("COMMAND_RECEIVE_TIME", &o.CommandReceiveTime)
	r.dur("COMMAND_TRANSMIT_TIME", &o.CommandTransmitTime)
	r.dur("DATA_RECEIVE_TIME", &o.DataReceiveTime)
	r.dur("DATA_TRANSMIT_TIME", &o.DataTransmitTime)
	r.dur("STATUS_RECEIVE_TIME", &o.StatusReceiveTime)
	r.dur("STATUS_TRANSMIT_TIME", &o.StatusTransmitTime)
	r.dur("STATUS_MAIL_RECEIVE_TIME", &o.StatusMailReceiveTime)
	r.dur("STATUS_RCPT_TO_RECEIVE_TIME", &o.StatusRcptToReceiveTime)
	r.dur("STATUS_DATA_RECEIVE_TIME", &o.StatusDataReceiveTime)
	r.dur("CONNECT_TIME", &o.ConnectTime)
	r.dur("STATUS_GREETING_RECEIVE_TIME", &o.StatusGreetingReceiveTime)
	r.dur("STATUS_EHLO_RECEIVE_TIME", &o.StatusEhloReceiveTime)
	r.dur("STATUS_DATA_INIT_RECEIVE_TIME", &o.StatusDataInitReceiveTime)
	r.dur("STATUS_RSET_RECEIVE_TIME", &o.StatusRsetReceiveTime)
	r.dur("STATUS_QUIT_RECEIVE_TIME", &o.StatusQuitReceiveTime)
	r.int("MAX_B_ENTRIES", &o.MaxBEntries)
	r.int("MAX_CLIENT_THREADS", &o.MaxClientThreads)
	r.str("PIPE_COMMAND", &o.PipeCommand)
	if v, ok := r.ints["PIPE_TIMEOUT"]; ok && v > 0 {
		o.PipeTimeout = time.Duration(v) * time.Second
	}
	readPipeOptions(&o, r, f, errs) // pipeoptions.go
	r.int("MIN_DATA_RECEIVE_RATE", &o.MinDataReceiveRate)
	r.dur("MAX_SESSION_TIME", &o.MaxSessionTime)
	r.dur("BANNER_DELAY", &o.BannerDelay)
	if o.BannerDelay >= maxBannerDelay {
		*errs = append(*errs, &cnf.Error{Pos: optPos(f.Options, "BANNER_DELAY"),
			Msg: fmt.Sprintf("bad value for option BANNER_DELAY: %v is not under %v, the time a client waits for the banner", o.BannerDelay, maxBannerDelay)})
	}
	if v, ok := r.strs["552_PERMANENT_ERROR_STRING"]; ok && v != "" {
		o.PermanentErrorStrings552 = strings.Split(v, "|")
	}
	for _, op := range f.Options {
		n := strings.ToUpper(op.Name)
		if v, ok := r.ints[n]; ok && v < 0 {
			*errs = append(*errs, &cnf.Error{Pos: op.Pos, Msg: fmt.Sprintf("bad value for option %s: %d is negative", n, v)})
		}
	}
	o.Raw = r.raw
	return o
}

// foldChannelOptionLimits gives ALLOW_TRANSACTIONS_PER_SESSION and
// ALLOW_REJECTIONS_BEFORE_DEFERRAL their effect: they are the channel keywords
// transactionlimit and deferralrejectlimit under another name, so the SMTP server has
// one limit of each to enforce. When both are given the keyword wins (the product's
// documentation does not say): it sits in imta.cnf with the channel's other limits.
func foldChannelOptionLimits(img *Image) {
	for i := range img.Channels {
		c := &img.Channels[i]
		o, ok := img.ChannelOptions[strings.ToLower(c.Name)]
		if !ok {
			continue
		}
		if c.TransactionLimit == 0 {
			c.TransactionLimit = o.AllowTransactionsPerSession
		}
		if c.DeferralRejectLimit == 0 {
			c.DeferralRejectLimit = o.AllowRejectionsBeforeDeferral
		}
	}
}

// ClientTimeouts are the SMTP client's per-stage limits as the option file sets
// them; a zero field is unset and takes the client's default for the stage
// (channels.DefaultTimeouts: RFC 5321 §4.5.3.2).
type ClientTimeouts struct {
	Connect, Greeting, Ehlo, Mail, Rcpt, DataInit, DataBlock, DataEnd, Rset, Quit time.Duration
}

// ClientTimeouts resolves the client's stage times: a stage's own key first,
// then STATUS_RECEIVE_TIME for every reply wait (the product's "generic" status
// time), then unset. Connect and the data block have no generic fallback: they
// are not reply waits.
func (o ChannelOptions) ClientTimeouts() ClientTimeouts {
	reply := func(own time.Duration) time.Duration {
		if own > 0 {
			return own
		}
		return o.StatusReceiveTime
	}
	return ClientTimeouts{
		Connect:   o.ConnectTime,
		Greeting:  reply(o.StatusGreetingReceiveTime),
		Ehlo:      reply(o.StatusEhloReceiveTime),
		Mail:      reply(o.StatusMailReceiveTime),
		Rcpt:      reply(o.StatusRcptToReceiveTime),
		DataInit:  reply(o.StatusDataInitReceiveTime),
		DataBlock: o.DataTransmitTime,
		DataEnd:   reply(o.StatusDataReceiveTime),
		Rset:      reply(o.StatusRsetReceiveTime),
		Quit:      reply(o.StatusQuitReceiveTime),
	}
}
