package engine

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"mtad.dev/mta/mappings"
)

// Defaults of the options the engine honours.
const (
	DefaultUnknownHostText  = "unknown host or domain"
	DefaultMaxAliasLevels   = 10
	DefaultSubaddressChar   = '+'
	DefaultMaxRewritePasses = 20
)

// Special patterns.
const (
	patAny     = "$*"
	patPercent = "$%"
	patBang    = "$!"
)

// rule is one compiled rewrite rule.
type rule struct {
	pattern string // as written
	src     string
	text    string // template as written, for traces and -show
	tmpl    template
}

// hostEntry is one name of the channel host table.
type hostEntry struct {
	ch     int
	proper string // proper name of a line 3+ host ("" for synonyms and line 2)
}

// RuleSet is the compiled, immutable rule engine: rules indexed by pattern, the
// channel table by host name, templates pre-parsed. Safe for concurrent use. It
// round-trips through encoding/gob via MarshalBinary/UnmarshalBinary and is ready to
// use after decoding.
type RuleSet struct {
	rules    []rule
	byKey    map[string]int32 // lower-cased pattern (tag included) -> first rule
	next     []int32          // next rule with the same pattern, -1 at the end
	channels []Channel
	byName   map[string]int       // channel name (lower-cased) -> index
	hosts    map[string]hostEntry // lower-cased host name -> channel
	local    int                  // index of the local channel, -1 if none
	opts     Options
	general  map[string]string // lower-cased key -> value as written
	genTmpl  map[string]genValue

	mappings *mappings.Set
	aliases  *mappings.Aliases
	env      *mappings.Env

	hasAny    bool // a $* rule exists (any tag)
	hasProper bool // some host line has a proper name

	pool   sync.Pool // *rewriteCall
	random atomic.Uint64
}

// genValue is a general-database value compiled as a template.
type genValue struct {
	tmpl template
	err  error
}

// Compile builds a RuleSet. Errors are *SourceError with the rule's file:line.
func Compile(cfg Config) (*RuleSet, []error) {
	rs := &RuleSet{opts: normaliseOptions(cfg.Options)}
	var errs []error
	rs.rules = make([]rule, 0, len(cfg.Rules))
	for _, r := range cfg.Rules {
		text := strings.TrimRight(r.Template, " \t\r\n")
		if r.Pattern == "" {
			errs = append(errs, &SourceError{Src: r.Src, Msg: "rewrite rule without a pattern"})
			continue
		}
		if strings.ContainsAny(r.Pattern, " \t") {
			errs = append(errs, &SourceError{Src: r.Src, Msg: fmt.Sprintf("whitespace in rewrite rule pattern %q", r.Pattern)})
			continue
		}
		if text == "" {
			errs = append(errs, &SourceError{Src: r.Src, Msg: fmt.Sprintf("rewrite rule %q has no template", r.Pattern)})
			continue
		}
		tp, err := parseTemplate(text, false)
		if err != nil {
			errs = append(errs, &SourceError{Src: r.Src, Msg: err.Error()})
			continue
		}
		rs.rules = append(rs.rules, rule{pattern: r.Pattern, src: r.Src, text: text, tmpl: tp})
	}
	rs.channels = append([]Channel(nil), cfg.Channels...)
	for i := range rs.channels {
		rs.channels[i].Hosts = append([]Host(nil), rs.channels[i].Hosts...)
	}
	rs.general = make(map[string]string, len(cfg.General))
	for k, v := range cfg.General {
		rs.general[strings.ToLower(k)] = v
	}
	errs = append(errs, rs.index()...)
	rs.Attach(cfg.Mappings, cfg.Aliases)
	if len(errs) > 0 {
		return rs, errs
	}
	return rs, nil
}

func normaliseOptions(o Options) Options {
	if o.UnknownHostText == "" {
		o.UnknownHostText = DefaultUnknownHostText
	}
	if o.MaxAliasLevels <= 0 {
		o.MaxAliasLevels = DefaultMaxAliasLevels
	}
	if o.SubaddressChar == 0 {
		o.SubaddressChar = DefaultSubaddressChar
	}
	if o.MaxRewritePasses <= 0 {
		o.MaxRewritePasses = DefaultMaxRewritePasses
	}
	return o
}

// index builds the lookup maps from rules, channels and the general database. It is
// shared by Compile and UnmarshalBinary. Channel-table problems are reported even
// though the compiler checks them first, so that a RuleSet is never ambiguous.
func (rs *RuleSet) index() []error {
	var errs []error
	rs.byKey = make(map[string]int32, len(rs.rules))
	rs.next = make([]int32, len(rs.rules))
	rs.hasAny = false
	// Backwards, so that each chain runs in file order.
	for i := len(rs.rules) - 1; i >= 0; i-- {
		k := strings.ToLower(rs.rules[i].pattern)
		rs.next[i] = -1
		if j, ok := rs.byKey[k]; ok {
			rs.next[i] = j
		}
		rs.byKey[k] = int32(i)
		if strings.HasSuffix(k, patAny) {
			rs.hasAny = true
		}
	}
	rs.byName = make(map[string]int, len(rs.channels))
	rs.hosts = make(map[string]hostEntry, len(rs.channels)*2)
	rs.local = -1
	rs.hasProper = false
	first := make(map[string]string)
	add := func(name, proper, src string, ch int) {
		if name == "" {
			return
		}
		k := strings.ToLower(name)
		if prev, dup := first[k]; dup {
			errs = append(errs, &SourceError{Src: src, Msg: fmt.Sprintf("duplicate host in channel table: %q (first at %s)", name, prev)})
			return
		}
		first[k] = src
		rs.hosts[k] = hostEntry{ch: ch, proper: proper}
		if proper != "" {
			rs.hasProper = true
		}
	}
	for i := range rs.channels {
		c := &rs.channels[i]
		rs.byName[strings.ToLower(c.Name)] = i
		if c.Local && rs.local < 0 {
			rs.local = i
		}
		add(c.Official, "", c.Src, i)
		for _, h := range c.Hosts {
			add(h.Name, h.Proper, c.Src, i)
		}
	}
	if rs.opts.LocalHost == "" && rs.local >= 0 {
		rs.opts.LocalHost = rs.channels[rs.local].Official
	}
	rs.genTmpl = make(map[string]genValue, len(rs.general))
	for k, v := range rs.general {
		tp, err := parseTemplate(v, true)
		rs.genTmpl[k] = genValue{tmpl: tp, err: err}
	}
	return errs
}

// Attach connects a decoded RuleSet to the mapping tables and aliases of the same
// image (they are serialised beside it, not inside it). Compile attaches those of
// its Config itself.
func (rs *RuleSet) Attach(m *mappings.Set, a *mappings.Aliases) {
	rs.mappings = m
	rs.aliases = a
	gen := rs.general
	rs.env = &mappings.Env{General: func(key string) (string, bool) {
		v, ok := gen[strings.ToLower(key)]
		return v, ok
	}}
}

// Channel returns a channel by name (case-insensitive).
func (rs *RuleSet) Channel(name string) (*Channel, bool) {
	i, ok := rs.byName[strings.ToLower(name)]
	if !ok {
		return nil, false
	}
	c := rs.channels[i]
	return &c, true
}

// Channels lists the channel table in configuration order.
func (rs *RuleSet) Channels() []Channel {
	return append([]Channel(nil), rs.channels...)
}

// NumRules is the number of rewrite rules.
func (rs *RuleSet) NumRules() int { return len(rs.rules) }

// Options returns the options in force, defaults filled in.
func (rs *RuleSet) Options() Options { return rs.opts }

// Rules lists the rules as compiled, in file order (for mtactl cnbuild -show).
func (rs *RuleSet) Rules() []RuleSource {
	out := make([]RuleSource, len(rs.rules))
	for i, r := range rs.rules {
		out[i] = RuleSource{Pattern: r.pattern, Template: r.text, Src: r.src}
	}
	return out
}

// ChannelForHost returns the channel owning a host name (official or additional),
// compared case-insensitively.
func (rs *RuleSet) ChannelForHost(host string) (*Channel, bool) {
	e, ok := rs.hosts[strings.ToLower(host)]
	if !ok {
		return nil, false
	}
	c := rs.channels[e.ch]
	return &c, true
}

// reprocessingChannels are the internal channels $1M/$1N ask about. The product's
// documentation gives no list for $1M/$1N; these are its internal reprocessing
// channels.
func isReprocessing(name string) bool {
	switch strings.ToLower(name) {
	case "reprocess", "process", "conversion", "defragment":
		return true
	}
	return false
}
