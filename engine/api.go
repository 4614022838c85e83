package engine

// This file is the contract other packages code against (compiler, smtpserver,
// mtactl, mtad). Keep the exported names and signatures; add, don't change.

import (
	"mtad.dev/mta/mappings"
	"mtad.dev/mta/status"
)

// Channel is what the engine knows of one channel of the channel table.
type Channel struct {
	Name     string
	Official string // official host name (block line 2, first token)
	Alias    string // local host alias (block line 2, second token), may be empty
	Hosts    []Host // lines 3+
	Src      string // "imta.cnf:12", the channel-name line

	Local            bool // the local channel ("l")
	RouteLocal       bool // routelocal keyword
	Rules            bool // rules (default) vs norules: honour $C/$Q for this channel
	BangOverPercent  bool // bangoverpercent keyword (on the channel doing the rewriting)
	ViaAliasRequired bool // viaaliasrequired: local recipients must come from an alias

	// ExpandLimit is the expandlimit keyword, honoured on the source channel (see
	// Resolution.Deferred); it applies only when ExpandLimitSet (the zero Channel
	// has no limit, while "expandlimit 0" means "always expand offline").
	ExpandLimit    int
	ExpandLimitSet bool
	// ExpandChannel is expandchannel: where a deferred expansion is queued; ""
	// means DefaultExpandChannel.
	ExpandChannel string
}

// Host is an additional host name of a channel, with its optional proper name.
type Host struct {
	Name   string
	Proper string
}

// RuleSource is one rewrite rule as written; Src is "file:line".
type RuleSource struct {
	Pattern  string
	Template string
	Src      string
}

// Options are the MTA options the engine honours (option.dat).
type Options struct {
	UnknownHostText  string // ERROR_TEXT_UNKNOWN_HOST; default "unknown host or domain"
	MaxAliasLevels   int    // MAX_ALIAS_LEVELS; default 10
	SubaddressChar   byte   // default '+'
	MaxRewritePasses int    // guard against A%B loops; default 20
	LocalHost        string // the local channel's official host name, for "postmaster" etc.
}

// Config is everything Compile needs. The compiler has already validated the channel
// table (unique host names etc.); Compile validates rules and templates.
type Config struct {
	Rules    []RuleSource
	Channels []Channel
	Mappings *mappings.Set     // ${table,arg}; may be nil
	General  map[string]string // general database for $(key); keys lower-cased
	Aliases  *mappings.Aliases // may be nil
	Options  Options
}

// SourceError is a compile error at a configuration position ("file:line").
type SourceError struct {
	Src string
	Msg string
}

func (e *SourceError) Error() string { return e.Src + ": " + e.Msg }

// Kind says which address of a message is being rewritten; it drives $E $B $F $R
// and whether $C/$Q apply (they are ignored for the envelope To address).
type Kind uint8

const (
	EnvelopeTo Kind = iota
	EnvelopeFrom
	HeaderTo   // To, Cc, Bcc, Resent-To: header, forward-pointing
	HeaderFrom // From, Sender, Resent-From: header, backward-pointing
)

// Request is one address to rewrite, with its context.
type Request struct {
	Address       string
	Kind          Kind
	SourceChannel string // the channel doing the rewriting ($M/$N); "" means the local channel
	DestChannel   string // destination channel, for $C/$Q on addresses other than envelope To
	Trace         bool   // record every probe and candidate in Result.Trace
	// CheckExpansions makes Resolve go on after a failing alias target and list
	// every failure in Resolution.Failures (test -rewrite -check_expansions).
	CheckExpansions bool
}

// Result is the outcome of rewriting one address.
type Result struct {
	Address  string         // the rewritten address as it will be queued (route included, "@a:u@b")
	Channel  string         // destination channel name; "" when Err is set
	Official string         // the routing host that selected the channel
	Mailbox  string         // local part of the rewritten address (test -rewrite "mbox =")
	Host     string         // domain of the rewritten address
	Rule     string         // "file:line" of the deciding rule; "" when the channel table decided
	Err      *status.Status // the address is rejected: $?text or unknown host (5.1.2 default)
	Trace    []TraceStep    // when Request.Trace
}

// TraceStep is one line of the -debug trace. Src names the rule's file:line when a
// rule is involved: our trace cites the configuration, no peer's does.
type TraceStep struct {
	Depth int    // nesting: 0 address, 1 spec, 2 candidate
	Src   string // "imta.cnf:12" or ""
	Text  string // what happened, e.g. `probe "*.siroe.com": rule imta.cnf:5 failed: $Nverify (source channel is verify)`
}

// Recipient is one final recipient after alias expansion.
type Recipient struct {
	Address string   // rewritten address
	Channel string   // destination channel
	Mailbox string   // local part (for the local channel)
	Host    string   // domain
	Via     []string // alias chain that produced it, outermost first; empty if none
	Rule    string   // "file:line" of the deciding rule
	// Sender is the envelope sender for this copy when an alias on its chain has an
	// owner ("owner-NAME"): the owner address of the innermost such alias, so
	// that bounces for list members go to the list owner, not to the poster. ""
	// means keep the message's own envelope sender.
	Sender string
}

// Resolution is an envelope recipient rewritten, routed and, on the local channel,
// alias-expanded.
type Resolution struct {
	Rewrite    Result         // the original address's own rewrite
	Recipients []Recipient    // what will be queued; empty when Err is set
	Err        *status.Status // rejected (unroutable, unknown user 5.1.1, alias loop ...)
	Trace      []TraceStep

	// Deferred is set when the address is an alias whose expansion gave more
	// recipients than the source channel's expandlimit: the server should queue
	// Rewrite.Address (the unexpanded alias) to ExpandChannel, whose reprocessing
	// expands it offline, instead of the Recipients (which are still listed, so a
	// caller that does not defer delivers correctly, only online).
	Deferred      bool
	ExpandChannel string // the channel for a Deferred expansion ("reprocess" by default)
	// Failures lists every failing alias target when Request.CheckExpansions is
	// set (mtactl test -rewrite -check_expansions); Err is then the first of them.
	Failures []ExpansionFailure
}

// ExpansionFailure is one alias target that could not be resolved.
type ExpansionFailure struct {
	Alias  string         // the alias whose target failed
	Target string         // the target as written
	Src    string         // "aliases:N" of the alias
	Err    *status.Status // why
}
