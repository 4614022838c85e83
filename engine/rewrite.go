package engine

import (
	"strconv"
	"strings"

	"mtad.dev/mta/status"
)

// rewriteCall is the scratch space of one Rewrite call, pooled per RuleSet so that the
// probe path reuses its buffers.
type rewriteCall struct {
	rs    *RuleSet
	req   Request // a copy: a pointer would make every Request escape
	trace bool
	steps []TraceStep
	lower []byte // the spec, lower-cased once
	probe []byte // tag + probe text
	key   []byte // a lower-cased host name being looked up
	// curU, curSpec are the user and spec being probed, for splitTemplateResult to reuse. They
	// are kept here rather than read from the templateInputs: escape analysis would
	// then let its *address escape, one allocation per rewrite.
	curU, curSpec string
	win           outcome // the winning candidate's outcome (tryRule)
	out           []byte  // template expansion
	seps          []sepPos
	caseMode      opKind

	tag     string
	errText string // sticky $? text
	errCode int32
	errSet  bool

	srcName  string
	srcCh    int // -1 when the source channel is unknown
	srcRules bool
	dstRules bool
}

func (rs *RuleSet) getCall(req *Request) *rewriteCall {
	call, _ := rs.pool.Get().(*rewriteCall)
	if call == nil {
		call = &rewriteCall{}
	}
	call.rs, call.req, call.trace = rs, *req, req.Trace
	call.tag, call.errText, call.errCode, call.errSet = "", "", 0, false
	call.steps = nil
	call.srcName, call.srcCh, call.srcRules, call.dstRules = req.SourceChannel, -1, true, true
	switch {
	case call.srcName == "" && rs.local >= 0:
		// The common case needs no name lookup: the local channel is known.
		call.srcName, call.srcCh = rs.channels[rs.local].Name, rs.local
		call.srcRules = rs.channels[rs.local].Rules
	default:
		if call.srcName == "" {
			call.srcName = "l"
		}
		if i, ok := rs.lookupName(call.srcName); ok {
			call.srcCh = i
			call.srcRules = rs.channels[i].Rules
		}
	}
	if req.DestChannel != "" {
		if i, ok := rs.lookupName(req.DestChannel); ok {
			call.dstRules = rs.channels[i].Rules
		}
	}
	return call
}

func (rs *RuleSet) putCall(call *rewriteCall) {
	call.rs, call.req, call.steps, call.curU, call.curSpec, call.win = nil, Request{}, nil, "", "", outcome{}
	if cap(call.out) > 4096 {
		call.out = nil
	}
	rs.pool.Put(call)
}

// lookupName finds a channel by name without allocating for the common case of a
// name already in lower case.
func (rs *RuleSet) lookupName(name string) (int, bool) {
	if i, ok := rs.byName[name]; ok {
		return i, true
	}
	i, ok := rs.byName[strings.ToLower(name)]
	return i, ok
}

// lookupHost finds the channel owning a host name, case-insensitively.
func (call *rewriteCall) lookupHost(h string) (hostEntry, bool) {
	call.probe = appendLower(call.probe[:0], h)
	e, ok := call.rs.hosts[string(call.probe)]
	return e, ok
}

func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		b = append(b, lowerByte(s[i]))
	}
	return b
}

func (call *rewriteCall) step(depth int, src, text string) {
	call.steps = append(call.steps, TraceStep{Depth: depth, Src: src, Text: text})
}

// outcome kinds of one spec's rewrite.
const (
	outApplied  = iota // a rule (or the channel table, or the spec itself) gave a routing host
	outOnlyErr         // a $?-only rule: look the spec up as it is
	outFallback        // A%B@localhost / B!A@localhost: hand to the local host, no more specs
	outError           // err is set

	// outAgain marks an A%B template result: the address is rewritten again with
	// B as its spec. It never leaves tryRule, which makes it outApplied.
	outAgain = -1
)

type outcome struct {
	kind    int
	local   string // new local part
	host    string // new host
	route   string // inserted source route, or ""
	routing string // routing host
	src     string // deciding rule
	err     *status.Status
	// unmatchedLiteral: a domain literal no probe matched (not even "."); it is
	// dropped when the address has more specs.
	unmatchedLiteral bool
	// he is routing's channel-table entry when heKnown (splitTemplateResult
	// looked it up already); heFound says whether there is one.
	he               hostEntry
	heKnown, heFound bool
}

var kindNames = [...]string{EnvelopeTo: "envelope To", EnvelopeFrom: "envelope From", HeaderTo: "header To", HeaderFrom: "header From"}

func kindName(k Kind) string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind " + strconv.Itoa(int(k))
}

// Rewrite rewrites and routes one address.
func (rs *RuleSet) Rewrite(req Request) Result {
	call := rs.getCall(&req)
	res := call.rewrite()
	if call.trace {
		res.Trace = call.steps
	}
	rs.putCall(call)
	return res
}

// rewrite rewrites and routes call.req's address: it takes the address's host
// specifications one at a time (nextSpec), rewrites each (rewriteSpec) and applies
// the outcome (route), until a spec routes the address to a channel or refuses it.
func (call *rewriteCall) rewrite() Result {
	rs := call.rs
	req := &call.req
	if call.trace {
		call.step(0, "", "address "+strconv.Quote(req.Address)+" ("+kindName(req.Kind)+", source channel "+call.srcName+")")
	}
	a, perr := parseAddress(req.Address)
	if perr != nil {
		if call.trace {
			call.step(0, "", "rejected: "+perr.Error())
		}
		return Result{Err: perr}
	}
	bangOverPercent := call.srcCh >= 0 && rs.channels[call.srcCh].BangOverPercent
	if len(a.route) == 0 && !a.hasDomain && !hasMoreSpecs(a.local) {
		// A bare local part belongs to the local host.
		if rs.opts.LocalHost == "" {
			return Result{Err: call.unknownHost("no local host for bare local part")}
		}
		a.domain, a.hasDomain = rs.opts.LocalHost, true
		if call.trace {
			call.step(1, "", "bare local part: host is the local host "+strconv.Quote(a.domain))
		}
	}
	if len(a.route) > 0 {
		a.route = append([]string(nil), a.route...) // ours to edit
	}
	limit := rs.opts.MaxRewritePasses * 4
	for iter := 0; ; iter++ {
		if iter >= limit {
			// Each pass consumes one spec of the address itself, so this is the
			// address's fault, not the configuration's: permanent.
			e := &status.Status{Code: 554, Enhanced: "5.4.6", Text: "routing loop: more than " + strconv.Itoa(limit) + " host specifications in address"}
			if call.trace {
				call.step(0, "", "rejected: "+e.Error())
			}
			return Result{Err: e}
		}
		spec, err := call.nextSpec(&a, bangOverPercent)
		if err != nil {
			return Result{Err: err}
		}
		if call.trace {
			call.step(1, "", "spec "+strconv.Quote(spec.host)+" ("+locName(spec.loc)+"), user "+strconv.Quote(spec.user)+tagNote(call.tag))
		}
		out := call.rewriteSpec(spec.host, spec.user, spec.loc, &a)
		if out.unmatchedLiteral && spec.more {
			// A domain literal nothing matched is dropped and rewriting goes on
			// with the next part of the address, as the product's documentation
			// says.
			if call.trace {
				call.step(1, "", "literal "+strconv.Quote(spec.host)+" matched nothing: dropped, re-extracting")
			}
			a.drop(spec.loc, spec.rest)
			continue
		}
		if res, done := call.route(&a, &spec, &out); done {
			return res
		}
	}
}

// hostSpec is the host specification of the address that rewrite works on next.
type hostSpec struct {
	host string // the spec itself
	user string // the local part that goes with it
	loc  uint8  // where it was found: locRoute, locAt, locPercent or locBang
	rest string // for a % or ! spec, what remains of the local part without it
	more bool   // the address has more specs after this one
}

// nextSpec extracts the spec to rewrite next: the first host of the source route,
// else the domain, else a % or ! host of the local part (localSpec says which;
// bangOverPercent is the source channel's choice between the two).
func (call *rewriteCall) nextSpec(a *address, bangOverPercent bool) (hostSpec, *status.Status) {
	switch {
	case len(a.route) > 0:
		return hostSpec{host: a.route[0], user: a.local, loc: locRoute, more: true}, nil
	case a.hasDomain:
		return hostSpec{host: a.domain, user: a.local, loc: locAt, more: hasMoreSpecs(a.local)}, nil
	}
	host, user, loc, ok := localSpec(a.local, bangOverPercent)
	if !ok {
		return hostSpec{}, call.unknownHost("no host in address")
	}
	if host == "" || user == "" {
		return hostSpec{}, badSyntax("empty host or user around %q or %q", "%", "!")
	}
	if err := checkDomain(host); err != nil {
		return hostSpec{}, err
	}
	return hostSpec{host: host, user: user, loc: loc, rest: user, more: hasMoreSpecs(user)}, nil
}

// route applies out, the outcome of rewriting spec, to the address a. done is
// set with the final Result: the address routed to a channel, or refused. done
// is false when the spec was dropped (a local or routelocal channel with more
// specs left) and rewriting goes on with the next spec.
func (call *rewriteCall) route(a *address, spec *hostSpec, out *outcome) (res Result, done bool) {
	switch out.kind {
	case outError:
		return Result{Err: out.err, Rule: out.src}, true
	case outOnlyErr:
		e, ok := call.lookupHost(spec.host)
		if !ok {
			return Result{Err: call.unknownHost("host " + spec.host + " is not in the channel table"), Rule: out.src}, true
		}
		return call.result(a, e, spec.host, out.src), true
	}
	e, ok := out.he, out.heFound
	if !out.heKnown {
		e, ok = call.lookupHost(out.routing)
	}
	if !ok {
		if call.trace {
			call.step(1, "", "routing host "+strconv.Quote(out.routing)+": no channel")
		}
		return Result{Err: call.unknownHost("routing host " + out.routing + " is not in the channel table"), Rule: out.src}, true
	}
	c := &call.rs.channels[e.ch]
	if call.trace {
		call.step(1, c.Src, "routing host "+strconv.Quote(out.routing)+" -> channel "+c.Name)
	}
	if (c.Local || c.RouteLocal) && spec.more && out.kind != outFallback {
		// Local or routelocal with specs left: the rewrite is discarded and the
		// spec deleted, so routes through this host disappear.
		a.drop(spec.loc, spec.rest)
		if call.trace {
			call.step(1, c.Src, "channel "+c.Name+" is local/routelocal and more specs remain: spec "+strconv.Quote(spec.host)+" dropped, re-extracting")
		}
		return Result{}, false
	}
	switch spec.loc {
	case locRoute:
		a.route[0] = out.host
	default:
		a.domain, a.hasDomain = out.host, true
	}
	a.local = out.local
	if out.route != "" {
		a.route = append([]string{out.route}, a.route...)
	}
	return call.result(a, e, out.routing, out.src), true
}

// drop deletes the spec just extracted at loc; rest is what remains of the local
// part for a % or ! spec.
func (a *address) drop(loc uint8, rest string) {
	switch loc {
	case locRoute:
		a.route = a.route[1:]
	case locAt:
		a.domain, a.hasDomain = "", false
	default:
		a.local = rest
	}
}

func tagNote(tag string) string {
	if tag == "" {
		return ""
	}
	return ", tag " + strconv.Quote(tag)
}

// result builds the Result for an address routed to a channel.
func (call *rewriteCall) result(a *address, e hostEntry, routing, src string) Result {
	c := &call.rs.channels[e.ch]
	if call.req.Kind == EnvelopeTo && a.hasDomain && call.rs.hasProper {
		// A host line's proper name replaces the host of envelope To addresses.
		if he, ok := call.lookupHost(a.domain); ok && he.proper != "" && he.ch == e.ch {
			if call.trace {
				call.step(1, c.Src, "host "+strconv.Quote(a.domain)+" has proper name "+strconv.Quote(he.proper))
			}
			a.domain = he.proper
		}
	}
	full := a.formatReuse(call.req.Address)
	local := full[len(full)-len(a.local)-len(a.domain)-1 : len(full)-len(a.domain)-1]
	host := full[len(full)-len(a.domain):]
	if !a.hasDomain {
		local, host = full[len(full)-len(a.local):], ""
	}
	if call.trace {
		call.step(0, src, "result "+strconv.Quote(full)+" channel "+c.Name)
	}
	return Result{Address: full, Channel: c.Name, Official: routing, Mailbox: local, Host: host, Rule: src}
}

// unknownHost is the error for an unroutable address: the sticky $? text if a rule
// set one, else the configured unknown-host text (5.1.2).
func (call *rewriteCall) unknownHost(detail string) *status.Status {
	text, code := call.rs.opts.UnknownHostText, int32(0)
	if call.errSet {
		text, code = call.errText, call.errCode
	}
	s := statusFor(code, text)
	if call.trace {
		call.step(0, "", "rejected: "+s.Error()+" ("+detail+")")
	}
	return s
}

// statusFor builds a status from $nnnnnnn? digits: x00y00z means x.y.z; 0 means
// the default 5.1.2.
func statusFor(code int32, text string) *status.Status {
	if code == 0 {
		return &status.Status{Code: 550, Enhanced: "5.1.2", Text: text}
	}
	x, y, z := code/1000000, code/1000%1000, code%1000
	enh := strconv.Itoa(int(x)) + "." + strconv.Itoa(int(y)) + "." + strconv.Itoa(int(z))
	smtp := 550
	if x == 4 {
		smtp = 450
	}
	return &status.Status{Code: smtp, Enhanced: enh, Text: text}
}

func (call *rewriteCall) loopError(detail string) *status.Status {
	s := &status.Status{Code: 451, Enhanced: "4.4.6", Text: "rewrite loop: " + detail}
	if call.trace {
		call.step(0, "", "rejected: "+s.Error())
	}
	return s
}

// rewriteSpec rewrites one spec, following A%B passes.
func (call *rewriteCall) rewriteSpec(spec, u string, loc uint8, a *address) outcome {
	first := true
	for pass := 0; ; pass++ {
		if pass > call.rs.opts.MaxRewritePasses {
			return outcome{kind: outError, err: call.loopError("more than " + strconv.Itoa(call.rs.opts.MaxRewritePasses) + " A%B passes, last spec " + spec)}
		}
		out, again, newU, newSpec := call.probeSpec(spec, u, loc, a, first)
		if !again {
			return out
		}
		first = false
		if newSpec == "" {
			return outcome{kind: outError, err: badSyntax("rule %s produced an empty host", out.src), src: out.src}
		}
		if call.trace {
			call.step(1, out.src, "A%B pass "+strconv.Itoa(pass+1)+": rewrite again with spec "+strconv.Quote(newSpec)+", user "+strconv.Quote(newU)+tagNote(call.tag))
		}
		spec, u = newSpec, newU
	}
}

// probeSpec runs the probe order on one spec. again is set for an A%B template.
func (call *rewriteCall) probeSpec(spec, u string, loc uint8, a *address, withAny bool) (out outcome, again bool, newU, newSpec string) {
	rs := call.rs
	call.lower = appendLower(call.lower[:0], spec)
	call.curU, call.curSpec = u, spec
	in := templateInputs{u: u, spec: spec, loc: loc, addr: a}
	try := func(probe string, in *templateInputs) (bool, bool) {
		call.probe = append(append(call.probe[:0], call.tag...), probe...)
		return call.tryProbe(in)
	}
	// 1. $* (not on A%B repeat passes).
	if withAny && rs.hasAny {
		in.h, in.d, in.l = spec, "", ""
		if ok, ag := try(patAny, &in); ok {
			return call.winner(ag)
		}
	}
	// 2. exact.
	in.h, in.d, in.l = "", spec, ""
	call.probe = append(append(call.probe[:0], call.tag...), call.lower...)
	if ok, ag := call.tryProbe(&in); ok {
		return call.winner(ag)
	}
	// 3. channel table. It is consulted whatever the tag (the product's documentation
	// does not say): the tag is prepended to rule patterns, and a channel host name is
	// not a pattern.
	if _, ok := rs.hosts[string(call.lower)]; ok {
		if call.trace {
			call.step(2, "", "channel table: "+strconv.Quote(spec)+" is a channel host")
		}
		return outcome{kind: outApplied, local: u, host: spec, routing: spec}, false, "", ""
	} else if call.trace {
		call.step(2, "", "channel table: "+strconv.Quote(spec)+" is not a channel host")
	}
	// 4. generalisation.
	if len(spec) > 1 && spec[0] == '[' {
		if ok, ag := call.probeLiteral(spec, &in); ok {
			return call.winner(ag)
		}
	} else {
		lw := call.lower
		n := 1 + strings.Count(spec, ".")
		pos := 0 // start of label k in spec
		for k := 1; k <= n; k++ {
			if k < n {
				pos += strings.IndexByte(spec[pos:], '.') + 1
			} else {
				pos = len(spec) + 1
			}
			// s2: k left-most labels turned into '*'.
			call.probe = append(call.probe[:0], call.tag...)
			for j := 0; j < k; j++ {
				if j > 0 {
					call.probe = append(call.probe, '.')
				}
				call.probe = append(call.probe, '*')
			}
			if k < n {
				call.probe = append(call.probe, '.')
				call.probe = append(call.probe, lw[pos:]...)
				in.h, in.d = spec[:pos-1], spec[pos-1:]
			} else {
				in.h, in.d = spec, ""
			}
			if ok, ag := call.tryProbe(&in); ok {
				return call.winner(ag)
			}
			// s1: first labels dropped, leading dot kept; "." last.
			call.probe = append(call.probe[:0], call.tag...)
			if k < n {
				call.probe = append(call.probe, lw[pos-1:]...)
				in.h, in.d = spec[:pos-1], spec[pos-1:]
			} else {
				// "." is reached only when the spec is not a channel host: the
				// channel-table probe above would have routed it.
				call.probe = append(call.probe, '.')
				in.h, in.d = spec, "."
			}
			if ok, ag := call.tryProbe(&in); ok {
				return call.winner(ag)
			}
		}
	}
	// 5. nothing matched.
	if loc == locPercent || loc == locBang {
		pat, sep := patPercent, "%"
		if loc == locBang {
			pat, sep = patBang, "!"
		}
		in.h, in.d, in.l = spec, "", ""
		if ok, ag := try(pat, &in); ok {
			return call.winner(ag)
		}
		// Without a $% / $! rule the address goes to the local host whole:
		// A%B@localhost, B!A@localhost (the product's documentation does not say; like
		// an address with no host at all, it goes to the local host).
		local := u + sep + spec
		if loc == locBang {
			local = spec + sep + u
		}
		if call.trace {
			call.step(2, "", "no rule: handed to the local host as "+strconv.Quote(local+"@"+rs.opts.LocalHost))
		}
		return outcome{kind: outFallback, local: local, host: rs.opts.LocalHost, routing: rs.opts.LocalHost}, false, "", ""
	}
	if call.trace {
		call.step(2, "", "no rule matched: "+strconv.Quote(spec)+" is the routing host")
	}
	return outcome{kind: outApplied, local: u, host: spec, routing: spec, unmatchedLiteral: spec[0] == '['}, false, "", ""
}

// winner is probeSpec's return for the candidate that won (call.win).
func (call *rewriteCall) winner(again bool) (outcome, bool, string, string) {
	o := call.win
	return o, again, o.local, o.host
}

// probeLiteral runs the domain-literal probes: [a.b.c.d], [a.b.c.], ... [],
// [*.*.*.*], then ".".
func (call *rewriteCall) probeLiteral(spec string, in *templateInputs) (ok, again bool) {
	content := spec[1 : len(spec)-1]
	lc := call.lower[1 : len(call.lower)-1]
	n := 1 + strings.Count(content, ".")
	// Right-most elements removed one at a time: cut = end of the kept prefix.
	cut := len(content)
	for k := n - 1; k >= 1; k-- {
		cut = strings.LastIndexByte(content[:cut], '.')
		call.probe = append(append(append(call.probe[:0], call.tag...), '['), lc[:cut+1]...)
		call.probe = append(call.probe, ']')
		in.h, in.d, in.l = "", spec, content[cut+1:]
		if ok, ag := call.tryProbe(in); ok {
			return ok, ag
		}
	}
	in.h, in.d, in.l = "", spec, content
	call.probe = append(append(call.probe[:0], call.tag...), "[]"...)
	if ok, ag := call.tryProbe(in); ok {
		return ok, ag
	}
	call.probe = append(append(call.probe[:0], call.tag...), '[')
	for j := 0; j < n; j++ {
		if j > 0 {
			call.probe = append(call.probe, '.')
		}
		call.probe = append(call.probe, '*')
	}
	call.probe = append(call.probe, ']')
	if ok, ag := call.tryProbe(in); ok {
		return ok, ag
	}
	in.h, in.d = spec, "."
	call.probe = append(append(call.probe[:0], call.tag...), '.')
	return call.tryProbe(in)
}

// tryProbe tries every rule whose pattern is call.probe, in file order. ok reports
// a winner (its outcome is in call.win); again that its template was A%B.
func (call *rewriteCall) tryProbe(in *templateInputs) (ok, again bool) {
	i, found := call.rs.byKey[string(call.probe)]
	if !found {
		if call.trace {
			call.step(2, "", "probe "+strconv.Quote(string(call.probe))+": no rule")
		}
		return false, false
	}
	for ; i >= 0; i = call.rs.next[i] {
		if won, ag := call.tryRule(&call.rs.rules[i], in); won {
			return true, ag
		}
	}
	return false, false
}

// tryRule expands one candidate's template and splits the result, which it
// leaves in call.win when the candidate wins. (The outcome is large: passing it
// back by value through every failing probe cost more than the probes.)
func (call *rewriteCall) tryRule(r *rule, in *templateInputs) (won, again bool) {
	call.out, call.seps, call.caseMode = call.out[:0], call.seps[:0], opOrigCase
	var effects templateEffects
	ok, why := call.expand(r.tmpl.ops, in, &effects, false, 0)
	if ok && effects.locMask != 0 && effects.locMask&in.loc == 0 {
		ok = false
		if call.trace {
			why = "location condition (spec is " + locName(in.loc) + ")"
		}
	}
	if ok && !effects.stopped && effects.pendingFail() {
		ok, why = false, effects.pendingWhy()
	}
	if !ok {
		if call.trace {
			call.step(2, r.src, "probe "+strconv.Quote(string(call.probe))+": rule "+r.src+" failed: "+why)
		}
		return false, false
	}
	if effects.tagSet {
		call.tag = effects.tag
	}
	if effects.errSet {
		call.errText, call.errCode, call.errSet = effects.errText, effects.errCode, true
	}
	if len(call.seps) == 0 && len(call.out) == 0 && effects.errSet {
		if call.trace {
			call.step(2, r.src, "probe "+strconv.Quote(string(call.probe))+": rule "+r.src+" matched: $? only, host looked up as it is")
		}
		call.win = outcome{kind: outOnlyErr, src: r.src}
		return true, false
	}
	split, why := call.splitTemplateResult(call.curU, call.curSpec)
	if !split {
		if call.trace {
			call.step(2, r.src, "probe "+strconv.Quote(string(call.probe))+": rule "+r.src+" failed: "+why)
		}
		return false, false
	}
	o := &call.win
	o.src = r.src
	if call.trace {
		form := "A%B@C"
		switch {
		case o.kind == outAgain:
			form = "A%B (rewrite again)"
		case o.route != "":
			form = "route inserted"
		}
		call.step(2, r.src, "probe "+strconv.Quote(string(call.probe))+": rule "+r.src+" matched ("+form+"): user "+
			strconv.Quote(o.local)+" host "+strconv.Quote(o.host)+routeNote(*o)+tagNote(effects.tag))
	}
	again = o.kind == outAgain
	if again {
		o.kind = outApplied
	}
	return true, again
}

func routeNote(o outcome) string {
	s := ""
	if o.route != "" {
		s += " route " + strconv.Quote(o.route)
	}
	if o.routing != "" {
		s += " routing host " + strconv.Quote(o.routing)
	}
	return s
}

// span is a byte range of the template expansion; lo < 0 when absent.
type span struct{ lo, hi int }

var noSpan = span{-1, -1}

// splitTemplateResult splits the expansion at its template-level separators into
// the local part, host, route and routing host of the forms A%B, A@B, A%B@C,
// A@B@C and A@B@C@D, into call.win. An A%B result has kind outAgain.
//
// The parts are cut from call.out, which the next candidate overwrites, so they must
// become strings. Most are text we already hold as strings: the user and the spec
// ($U%$D), and a routing host spelt as the channel table spells it. Those are
// reused, and the expansion is copied (once) only for parts that are new text;
// the routing host's channel-table entry is kept for rewrite, which needs it next.
func (call *rewriteCall) splitTemplateResult(u, spec string) (bool, string) {
	out := call.out
	// The parts separated by '@' are out[cuts[i]:cuts[i+1]] for i < nparts; the
	// last '%' of the first part, at pct, splits A from B.
	var cuts [6]int
	ats, pct := 0, -1
	for _, s := range call.seps {
		if !s.at {
			if ats == 0 {
				pct = int(s.pos)
				continue
			}
			return false, "% after @ in template result"
		}
		if ats >= 4 {
			return false, "more than three @ in template result"
		}
		ats++
		cuts[ats] = int(s.pos)
	}
	nparts := ats + 1
	cuts[nparts] = len(out)
	var local, host span
	route, routing := noSpan, noSpan
	o := &call.win
	*o = outcome{}
	first := 1 // the first part after A@B / A%B
	if pct >= 0 {
		local, host = span{0, pct}, span{pct, cuts[1]}
		if nparts == 1 {
			host.hi = len(out)
			o.kind = outAgain
		}
	} else {
		if nparts < 2 {
			return false, "no host in template result"
		}
		local, host = span{0, cuts[1]}, span{cuts[1], cuts[2]}
		first = 2
	}
	if o.kind != outAgain {
		switch rest := nparts - first; rest {
		case 0:
			routing = host
		case 1:
			routing = span{cuts[first], cuts[first+1]}
			if pct < 0 {
				route = routing
			}
		case 2:
			route = span{cuts[first], cuts[first+1]}
			routing = span{cuts[first+1], cuts[first+2]}
		default:
			return false, "too many @ in template result"
		}
		if routing.lo == routing.hi {
			return false, "empty routing host"
		}
	}
	full, copied := "", false
	text := func(s span, known string) string {
		if string(out[s.lo:s.hi]) == known {
			return known
		}
		if !copied {
			full, copied = string(out), true
		}
		return full[s.lo:s.hi]
	}
	o.local = text(local, u)
	o.host = text(host, spec)
	if routing.lo >= 0 {
		known := ""
		if routing == host {
			known = o.host
		} else {
			o.he, o.heFound, known = call.channelHost(out[routing.lo:routing.hi])
		}
		o.routing = text(routing, known)
		o.heKnown = true
		if !o.heFound && known != "" {
			o.he, o.heFound = call.lookupHost(o.routing)
		}
	}
	if route.lo >= 0 {
		o.route = text(route, o.routing)
	}
	return true, ""
}

// channelHost looks the host name b up in the channel table, case-insensitively.
// spelt is the name as the channel table spells it when that is exactly b, else "".
func (call *rewriteCall) channelHost(b []byte) (e hostEntry, found bool, spelt string) {
	key := b
	for _, c := range b {
		if c >= 'A' && c <= 'Z' {
			call.key = call.key[:0]
			for _, c := range b {
				call.key = append(call.key, lowerByte(c))
			}
			key = call.key
			break
		}
	}
	if e, found = call.rs.hosts[string(key)]; found {
		spelt = call.rs.channelName(e.ch, b)
	}
	return e, found, spelt
}

// channelName returns the name of channel ch's host table that is spelt exactly
// as b, or "".
func (rs *RuleSet) channelName(ch int, b []byte) string {
	c := &rs.channels[ch]
	switch string(b) {
	case c.Official:
		return c.Official
	case c.Alias:
		return c.Alias
	}
	for i := range c.Hosts {
		if string(b) == c.Hosts[i].Name {
			return c.Hosts[i].Name
		}
	}
	return ""
}
