package compiler

import (
	"strings"

	"mtad.dev/mta/cnf"
)

// channels interprets the channel blocks: defaults/nodefaults accumulation, keyword
// grouping, host-name checks across the whole table.
func (b *builder) channels(f *cnf.IMTAFile) []ChannelConfig {
	var (
		defaults  []Keyword
		out       []ChannelConfig
		hosts     = map[string]cnf.Pos{} // lower-cased host name -> first claim
		names     = map[string]cnf.Pos{}
		noteGiven bool
		realSeen  bool
	)
	// The stray-blank-line note is given once, beside the first error it explains.
	note := func(blk *cnf.Block) {
		if noteGiven {
			return
		}
		if n := f.BlankLineNote(blk); n != nil {
			noteGiven = true
			b.errs = append(b.errs, n)
		}
	}
	claim := func(name string, pos cnf.Pos, blk *cnf.Block) {
		key := strings.ToLower(name)
		if first, dup := hosts[key]; dup {
			b.tableErrors = true
			b.errorf(pos, "duplicate host in channel table: %q (first at %s)", name, first)
			note(blk)
			return
		}
		hosts[key] = pos
	}
	for i := range f.Blocks {
		blk := &f.Blocks[i]
		switch strings.ToLower(blk.Name) {
		case "defaults":
			kws := splitKeywords(blk.Words, &b.errs, &b.warns)
			for j := range kws {
				kws[j].Default = true
			}
			// The product's documentation: several defaults lines accumulate, the
			// latest taking precedence; apply() folds in order, so appending gives
			// exactly that.
			defaults = append(defaults, kws...)
			continue
		case "nodefaults":
			defaults = nil
			continue
		}
		own := splitKeywords(blk.Words, &b.errs, &b.warns)
		c := newChannel(blk)
		c.apply(append(append([]Keyword(nil), defaults...), own...))
		b.errs = append(b.errs, c.checkLMTP()...)

		if first, dup := names[blk.Name]; dup {
			b.tableErrors = true
			b.errorf(blk.Pos, "duplicate channel name %q (first at %s)", blk.Name, first)
		} else {
			names[blk.Name] = blk.Pos
		}
		if blk.Name == "l" && realSeen {
			b.warnf(blk.Pos, "local channel \"l\" is not the first channel block (only defaults may precede it)")
		}
		realSeen = true

		// cnf reports a missing official host name and over-long names (product
		// texts); here they only keep the engine from running on a broken table.
		if len(blk.Hosts) == 0 || blk.Hosts[0].Name == "" {
			b.tableErrors = true
			note(blk)
			out = append(out, *c)
			continue
		}
		h0 := blk.Hosts[0]
		for _, h := range blk.Hosts {
			if len(h.Name) > cnf.MaxHostName || len(h.Alias) > cnf.MaxHostName {
				b.tableErrors = true
				note(blk)
			}
		}
		claim(h0.Name, h0.Pos, blk)
		for _, h := range blk.Hosts[1:] {
			claim(h.Name, h.Pos, blk)
		}
		out = append(out, *c)
	}
	b.tableWarnings(f, out, names, noteGiven, realSeen)
	inheritNotices(out)
	return out
}

// tableWarnings gives the warnings about the table as a whole, once its blocks
// are read: a blank-line note no error explained, an empty table, no local
// channel.
func (b *builder) tableWarnings(f *cnf.IMTAFile, out []ChannelConfig, names map[string]cnf.Pos, noteGiven, realSeen bool) {
	// A rule misread as a block does not always break the table (a lone rule gives
	// a block with a strange name): then the note stands alone, as a warning.
	if !noteGiven {
		for i := range f.Blocks {
			if n := f.BlankLineNote(&f.Blocks[i]); n != nil {
				b.warns = append(b.warns, n)
				break
			}
		}
	}
	if !realSeen {
		pos := f.RulesEnd
		if pos.File == "" {
			pos = cnf.Pos{File: "imta.cnf", Line: 1}
		}
		b.warnf(pos, "the channel table is empty: no channel blocks after the rewrite rules")
	} else if _, ok := names["l"]; !ok {
		b.warnf(out[0].Pos, "no local channel \"l\" in the channel table")
	}
}

// inheritNotices gives every channel notices for the classes it set none for, as
// the product's documentation says: l's, else 3 6 9 12. A class was set when its list is not
// empty: the notices keywords take at least one value, or fail the build.
func inheritNotices(out []ChannelConfig) {
	var lNotices [NumPriorities][]int
	for i := range out {
		if out[i].Name == "l" {
			lNotices = out[i].Notices
		}
	}
	for i := range out {
		for p := range NumPriorities {
			if len(out[i].Notices[p]) > 0 {
				continue
			}
			if len(lNotices[p]) > 0 {
				out[i].Notices[p] = append([]int(nil), lNotices[p]...)
			} else {
				out[i].Notices[p] = DefaultNotices()
			}
		}
	}
}

// checkChannelRefs checks what keywords name outside the block: pools in
// job_controller.cnf and other channels (saslswitchchannel ...).
func (b *builder) checkChannelRefs(img *Image) {
	for i := range img.Channels {
		c := &img.Channels[i]
		for _, k := range c.Keywords {
			if k.Unknown || len(k.Args) == 0 {
				continue
			}
			if spec, ok := keywordIndex[k.Name]; ok && spec.args == argChannel {
				if _, ok := img.Channel(k.Args[0]); !ok {
					b.errorf(k.Pos, "channel %q named by %s is not in the channel table", k.Args[0], k.Name)
				}
			}
		}
		if c.Pool != "" {
			if _, ok := img.Jobs.Pool(c.Pool); !ok {
				pos := c.Pos
				for _, k := range c.Keywords {
					if k.Name == "pool" || k.Name == "queue" {
						pos = k.Pos
					}
				}
				b.errorf(pos, "pool %q is not defined in job_controller.cnf", c.Pool)
			}
		}
	}
}

// checkRoutingHosts reports rules that route to a host no channel owns: such a rule
// can only ever bounce, which is what `$?text` is for.
func (b *builder) checkRoutingHosts(f *cnf.IMTAFile, channels []ChannelConfig) {
	known := map[string]bool{}
	for i := range channels {
		c := &channels[i]
		if c.Official != "" {
			known[strings.ToLower(c.Official)] = true
		}
		for _, h := range c.Hosts {
			known[strings.ToLower(h.Name)] = true
		}
	}
	for _, r := range f.Rules {
		host, ok := RoutingHost(r.Template)
		if !ok || known[strings.ToLower(host)] {
			continue
		}
		b.errorf(r.Pos, "routing host %q of rule %q belongs to no channel", host, r.Pattern)
	}
}

// RoutingHost extracts the literal routing host of a rewrite template: the text after
// the last top-level "@", up to the first control sequence. ok is false when there is
// nothing to check: no "@" (A%B form or a `$?text`-only rule) or a routing host built
// by a substitution ($D, ${...}, $]ldap[ ...).
func RoutingHost(template string) (host string, ok bool) {
	last := -1
	depth := 0
	for i := 0; i < len(template); i++ {
		c := template[i]
		switch {
		case c == '$' && i+1 < len(template):
			n := template[i+1]
			switch n {
			case '{', '(', '[':
				depth++
			case ']':
				depth++ // $]ldap-url[ closes with '['
			}
			i++
		case depth > 0 && (c == '}' || c == ')' || c == ']' || c == '['):
			depth--
		case depth == 0 && c == '@':
			last = i
		}
	}
	if last < 0 {
		return "", false
	}
	rest := template[last+1:]
	var sb strings.Builder
scan:
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if c != '$' {
			sb.WriteByte(c)
			continue
		}
		j := i + 1
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j >= len(rest) {
			break
		}
		digits := j > i+1
		switch l := rest[j]; {
		case strings.IndexByte("DHLUW&!*#{([]=\\^_$%@", l) >= 0,
			digits && strings.IndexByte("AXDHU", l) >= 0:
			return "", false // built by a substitution: only known at run time
		}
		// A control sequence: the host ends here.
		break scan
	}
	host = sb.String()
	if host == "" {
		return "", false
	}
	return host, true
}
