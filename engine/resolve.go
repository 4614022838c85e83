package engine

import (
	"strconv"
	"strings"

	"mtad.dev/mta/status"
)

// DefaultExpandChannel is where a deferred alias expansion goes when the source
// channel has expandlimit but no expandchannel.
const DefaultExpandChannel = "reprocess"

// ownerPrefix names an alias's owner: when alias NAME expands and "owner-NAME"
// exists, the copies for NAME's members carry owner-NAME as envelope sender.
const ownerPrefix = "owner-"

// Resolve rewrites an envelope recipient, routes it and expands aliases when it lands
// on the local channel (each expansion rewritten again, nested to MaxAliasLevels).
//
// How it works: the address is rewritten; on the local channel its mailbox is
// looked up in the alias table (the product's documentation gives no lookup order; we
// try "mailbox@host" first so hosted domains can have their own aliases, then
// "mailbox", then the mailbox without its subaddress). Each target is resolved again
// with the alias chain attached, so nested aliases, loops (a -> b -> a, 5.4.6) and
// self-references ("list: list, x" keeps list as a mailbox) are decided on the chain.
// Any target that fails makes the whole resolution fail with that target's error (the
// product's documentation allows bad members to be dropped silently; we do not,
// because a partly delivered list without a bounce for the rest loses mail unnoticed).
// With Request.CheckExpansions the expansion goes on after a failure and lists them
// all (the first is still Err).
//
// Owners. The product's documentation describes no owner convention; we follow
// sendmail's: if "owner-NAME" is an alias, every recipient produced by NAME's
// expansion gets Sender "owner-NAME@HOST" (HOST: the domain NAME was addressed
// at, else the local host; a hosted "owner-NAME@domain" alias is used as is).
// A nested list with its own owner overrides its parent's.
//
// expandlimit. The product's documentation only says that above the limit the
// message is expanded offline, never on l or reprocess; the rest is our reading. It
// is honoured on the source channel (Request.SourceChannel), never when the source is
// the local channel or an internal reprocessing channel (that is where the offline
// expansion runs). The count is the number of distinct final recipients of the one
// address's whole nested expansion; "expandlimit 0" defers every alias. The expansion
// is still computed in full so that its errors are reported in the SMTP dialogue.
func (rs *RuleSet) Resolve(req Request) Resolution {
	r := &resolver{rs: rs, req: req, seen: make(map[string]bool)}
	rw := rs.Rewrite(req)
	r.trace(rw.Trace)
	res := Resolution{Rewrite: rw}
	if rw.Err != nil {
		res.Err, res.Trace = rw.Err, r.steps
		return res
	}
	err := r.expand(rw, nil, "", 0)
	if err == nil && len(r.failures) > 0 {
		err = r.failures[0].Err
	}
	res.Failures = r.failures
	if err != nil {
		res.Err = err
		if req.Trace {
			r.steps = append(r.steps, TraceStep{Depth: 0, Text: "rejected: " + err.Error()})
		}
		res.Trace = r.steps
		return res
	}
	res.Recipients = r.out
	if r.expanded {
		if lim, ch, ok := rs.expandLimit(req.SourceChannel); ok && len(r.out) > lim {
			res.Deferred, res.ExpandChannel = true, ch
			r.step(0, "", "expandlimit "+strconv.Itoa(lim)+" of source channel exceeded by "+
				strconv.Itoa(len(r.out))+" recipients: expansion deferred to channel "+ch)
		}
	}
	res.Trace = r.steps
	return res
}

// expandLimit returns the expandlimit in force for a source channel and the
// channel deferred expansions go to.
func (rs *RuleSet) expandLimit(source string) (int, string, bool) {
	if source == "" || isReprocessing(source) {
		return 0, "", false
	}
	c, ok := rs.Channel(source)
	if !ok || c.Local || !c.ExpandLimitSet || c.ExpandLimit < 0 {
		return 0, "", false
	}
	ch := c.ExpandChannel
	if ch == "" {
		ch = DefaultExpandChannel
	}
	return c.ExpandLimit, ch, true
}

type resolver struct {
	rs   *RuleSet
	req  Request
	out  []Recipient
	seen map[string]bool // final recipients already listed (address|channel)
	// produced counts final recipients including duplicates, to tell an alias
	// that expanded to nothing from one whose members were already listed.
	produced int
	expanded bool // the address was an alias (for expandlimit)
	steps    []TraceStep
	failures []ExpansionFailure          // CheckExpansions only
	recorded map[*status.Status]struct{} // failures already listed by an inner level
}

func (r *resolver) trace(steps []TraceStep) {
	if r.req.Trace {
		r.steps = append(r.steps, steps...)
	}
}

func (r *resolver) step(depth int, src, text string) {
	if r.req.Trace {
		r.steps = append(r.steps, TraceStep{Depth: depth, Src: src, Text: text})
	}
}

// fail handles a failing alias target. It returns true when the resolution
// must stop (the normal mode); with CheckExpansions it records the failure,
// once, and lets the expansion go on.
func (r *resolver) fail(alias, target, src string, err *status.Status) bool {
	if !r.req.CheckExpansions {
		return true
	}
	if _, done := r.recorded[err]; done {
		return false
	}
	if r.recorded == nil {
		r.recorded = make(map[*status.Status]struct{})
	}
	r.recorded[err] = struct{}{}
	r.failures = append(r.failures, ExpansionFailure{Alias: alias, Target: target, Src: src, Err: err})
	r.step(1, src, "check_expansions: alias "+strconv.Quote(alias)+" target "+strconv.Quote(target)+": "+err.Error())
	return false
}

// aliasKeyOf names an alias chain entry; names are case-insensitive.
func aliasKeyOf(name string) string { return strings.ToLower(name) }

// noAddress is the error of an alias whose expansion produced no recipient, e.g.
// a list file that is empty or holds only comments.
func noAddress(name string) *status.Status {
	return &status.Status{Code: 550, Enhanced: "5.1.1", Text: "unknown or illegal user: alias " + name + " expands to no address"}
}

// expand handles one rewritten address: a final recipient, or an alias to expand.
// via is the alias chain that produced it, outermost first; sender is the owner
// address of the innermost owned alias on that chain ("" if none).
func (r *resolver) expand(rw Result, via []string, sender string, depth int) *status.Status {
	rs := r.rs
	ch, _ := rs.Channel(rw.Channel)
	if ch == nil || !ch.Local {
		r.add(rw, via, sender)
		return nil
	}
	mbox := unquoteLocal(rw.Mailbox)
	name, targets, src, found := r.lookup(mbox, rw.Host)
	if found {
		key := aliasKeyOf(name)
		if n := len(via); n > 0 && aliasKeyOf(via[n-1]) == key {
			// "list: list, x": the list's own name is a mailbox, not a recursion.
			r.step(1, src, "alias "+strconv.Quote(name)+" names itself: kept as a mailbox")
			found = false
		} else {
			for _, v := range via {
				if aliasKeyOf(v) == key {
					return &status.Status{Code: 550, Enhanced: "5.4.6", Text: "alias loop: " + strings.Join(via, " -> ") + " -> " + name}
				}
			}
		}
	}
	if found {
		if depth >= rs.opts.MaxAliasLevels {
			return &status.Status{Code: 550, Enhanced: "5.4.6", Text: "alias loop: more than " + strconv.Itoa(rs.opts.MaxAliasLevels) + " alias levels at " + name}
		}
		if depth == 0 {
			r.expanded = true
		}
		r.step(1, src, "alias "+strconv.Quote(name)+" -> "+strings.Join(targets, ", "))
		if len(targets) == 0 {
			return noAddress(name)
		}
		if owner, ok := r.owner(name, rw.Host); ok {
			sender = owner
			r.step(1, src, "alias "+strconv.Quote(name)+" has owner "+owner+": envelope sender of its copies")
		}
		chain := append(append(make([]string, 0, len(via)+1), via...), name)
		before, failedBefore := r.produced, len(r.failures)
		for _, t := range targets {
			t = strings.TrimSpace(t)
			if t == "" {
				continue
			}
			sub := r.req
			sub.Address, sub.Kind, sub.DestChannel = t, EnvelopeTo, ""
			trw := rs.Rewrite(sub)
			r.trace(trw.Trace)
			if trw.Err != nil {
				e := *trw.Err
				e.Text = e.Text + " (alias " + name + " target " + t + ")"
				if r.fail(name, t, src, &e) {
					return &e
				}
				continue
			}
			if err := r.expand(trw, chain, sender, depth+1); err != nil {
				if r.fail(name, t, src, err) {
					return err
				}
			}
		}
		if len(r.failures) > failedBefore {
			return r.failures[failedBefore].Err
		}
		if r.produced == before {
			return noAddress(name)
		}
		return nil
	}
	if strings.EqualFold(mbox, "postmaster") {
		r.add(rw, via, sender)
		return nil
	}
	if !safeMailbox(mbox) {
		return &status.Status{Code: 550, Enhanced: "5.1.1", Text: "unknown or illegal user: " + strconv.Quote(mbox)}
	}
	if ch.ViaAliasRequired && len(via) == 0 {
		return &status.Status{Code: 550, Enhanced: "5.1.1", Text: "unknown or illegal user: " + rw.Address}
	}
	r.add(rw, via, sender)
	return nil
}

// owner returns the envelope sender for an alias's copies when "owner-NAME"
// exists. name is the alias as found (lower case, "mailbox" or "mailbox@host").
func (r *resolver) owner(name, host string) (string, bool) {
	a := r.rs.aliases
	if a == nil {
		return "", false
	}
	oname := ownerPrefix + name
	if _, _, ok := a.Lookup(oname); !ok {
		return "", false
	}
	if strings.Contains(oname, "@") {
		return oname, true
	}
	if host == "" {
		host = r.rs.opts.LocalHost
	}
	if host == "" {
		return oname, true
	}
	return oname + "@" + host, true
}

// lookup finds the alias for a local mailbox.
func (r *resolver) lookup(mbox, host string) (name string, targets []string, src string, ok bool) {
	a := r.rs.aliases
	if a == nil {
		return "", nil, "", false
	}
	try := func(n string) bool {
		targets, src, ok = a.Lookup(n)
		if ok {
			name = strings.ToLower(n) // alias names are case-insensitive; report one spelling
		}
		return ok
	}
	if host != "" && try(mbox+"@"+host) {
		return
	}
	if try(mbox) {
		return
	}
	if base, sub := splitSub(mbox, r.rs.opts.SubaddressChar); sub != "" && try(base) {
		return
	}
	return "", nil, "", false
}

func splitSub(u string, c byte) (string, string) {
	if i := strings.IndexByte(u, c); i > 0 {
		return u[:i], u[i:]
	}
	return u, ""
}

// safeMailbox reports whether a mailbox name can be used as a directory name (the
// product's documentation has no such rule; a name like ".." would otherwise escape
// the mailbox directory). A name with routing characters (@ % !) is refused too: it
// can only come from a quoted local part ("user%remote"@here) and would become a relay
// the moment anything downstream (a forward, the reprocess channel) parsed it
// unquoted.
func safeMailbox(m string) bool {
	return m != "" && m[0] != '.' && !strings.ContainsAny(m, "/\x00@%!")
}

func (r *resolver) add(rw Result, via []string, sender string) {
	r.produced++
	k := strings.ToLower(rw.Address) + "|" + rw.Channel
	if r.seen[k] {
		r.step(1, rw.Rule, "duplicate recipient "+rw.Address+" dropped")
		return
	}
	r.seen[k] = true
	r.step(1, rw.Rule, "recipient "+rw.Address+" channel "+rw.Channel)
	r.out = append(r.out, Recipient{
		Address: rw.Address,
		Channel: rw.Channel,
		Mailbox: rw.Mailbox,
		Host:    rw.Host,
		Via:     append([]string(nil), via...),
		Rule:    rw.Rule,
		Sender:  sender,
	})
}
