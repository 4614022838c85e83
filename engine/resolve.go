package engine

import (
	"strconv"
	"strings"

	"mtad.dev/mta/status"
)

// Resolve rewrites an envelope recipient, routes it and expands aliases when it lands
// on the local channel (each expansion rewritten again, nested to MaxAliasLevels).
//
// How it works: the address is rewritten; on the local channel its mailbox is
// looked up in the alias table ([inf] first "mailbox@host" so hosted domains can
// have their own aliases, then "mailbox", then the mailbox without its
// subaddress). Each target is resolved again with the alias chain attached, so
// nested aliases, loops (a -> b -> a, 5.4.6) and self-references
// ("list: list, x" keeps list as a mailbox) are decided on the chain. [inf] Any
// target that fails makes the whole resolution fail with that target's error: a
// partly delivered list without a bounce for the rest would lose mail silently.
func (rs *RuleSet) Resolve(req Request) Resolution {
	r := &resolver{rs: rs, req: req, seen: make(map[string]bool)}
	rw := rs.Rewrite(req)
	r.trace(rw.Trace)
	res := Resolution{Rewrite: rw}
	if rw.Err != nil {
		res.Err, res.Trace = rw.Err, r.steps
		return res
	}
	if err := r.expand(rw, nil, 0); err != nil {
		res.Err = err
		if req.Trace {
			r.steps = append(r.steps, TraceStep{Depth: 0, Text: "rejected: " + err.Error()})
		}
		res.Trace = r.steps
		return res
	}
	res.Recipients, res.Trace = r.out, r.steps
	return res
}

type resolver struct {
	rs   *RuleSet
	req  Request
	out  []Recipient
	seen map[string]bool // final recipients already listed (address|channel)
	// produced counts final recipients including duplicates, to tell an alias
	// that expanded to nothing from one whose members were already listed.
	produced int
	steps    []TraceStep
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

// aliasKeyOf names an alias chain entry; names are case-insensitive.
func aliasKeyOf(name string) string { return strings.ToLower(name) }

// expand handles one rewritten address: a final recipient, or an alias to expand.
// via is the alias chain that produced it, outermost first.
func (r *resolver) expand(rw Result, via []string, depth int) *status.Status {
	rs := r.rs
	ch, _ := rs.Channel(rw.Channel)
	if ch == nil || !ch.Local {
		r.add(rw, via)
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
		r.step(1, src, "alias "+strconv.Quote(name)+" -> "+strings.Join(targets, ", "))
		if len(targets) == 0 {
			return &status.Status{Code: 550, Enhanced: "5.1.1", Text: "unknown or illegal user: alias " + name + " expands to nothing"}
		}
		chain := append(append(make([]string, 0, len(via)+1), via...), name)
		before := r.produced
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
				return &e
			}
			if err := r.expand(trw, chain, depth+1); err != nil {
				return err
			}
		}
		if r.produced == before {
			return &status.Status{Code: 550, Enhanced: "5.1.1", Text: "unknown or illegal user: alias " + name + " expands to nothing"}
		}
		return nil
	}
	if strings.EqualFold(mbox, "postmaster") {
		r.add(rw, via)
		return nil
	}
	if !safeMailbox(mbox) {
		return &status.Status{Code: 550, Enhanced: "5.1.1", Text: "unknown or illegal user: " + strconv.Quote(mbox)}
	}
	if ch.ViaAliasRequired && len(via) == 0 {
		return &status.Status{Code: 550, Enhanced: "5.1.1", Text: "unknown or illegal user: " + rw.Address}
	}
	r.add(rw, via)
	return nil
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

// safeMailbox reports whether a mailbox name can be used as a directory name.
func safeMailbox(m string) bool {
	return m != "" && m[0] != '.' && !strings.ContainsAny(m, "/\x00")
}

func (r *resolver) add(rw Result, via []string) {
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
	})
}
