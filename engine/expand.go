package engine

import (
	"strconv"
	"strings"
)

// templateInputs is what a matched candidate's template can insert, and where
// the spec being rewritten was found.
type templateInputs struct {
	u    string // local part for $U (as written)
	spec string // the host specification, original case
	h    string // unmatched / wildcarded part ($H)
	d    string // part that matched literal pattern text ($D)
	l    string // unmatched part of a domain literal ($L)
	loc  uint8  // where the spec was found (locRoute, locAt ...), for $S $A $P $X
	addr *address
	cur  string // current address, formatted lazily for $nA
}

// sepPos is a template-level separator in the expansion output.
type sepPos struct {
	at  bool // '@' (else '%')
	pos int32
}

// templateEffects collects the conditions and actions met while expanding a
// template. Conditions that only depend on the request fail at once; channel
// checks stay pending until the end or a $1~, as the product's documentation
// describes. The tag, error text and location conditions take effect only if the
// candidate wins.
type templateEffects struct {
	chanFail    bool
	chanWhy     string
	mSeen, mHit bool
	qSeen, qHit bool
	mWhy, qWhy  string
	locMask     uint8
	stopped     bool // a $1~ ended the template early
	tag         string
	tagSet      bool
	errText     string
	errCode     int32
	errSet      bool
}

func (e *templateEffects) pendingFail() bool {
	return e.chanFail || e.mSeen && !e.mHit || e.qSeen && !e.qHit
}

func (e *templateEffects) pendingWhy() string {
	switch {
	case e.chanFail:
		return e.chanWhy
	case e.mSeen && !e.mHit:
		return e.mWhy
	default:
		return e.qWhy
	}
}

const maxExpandDepth = 6

// appendCased appends s under the current case mode ($\ $^ $_).
func (call *rewriteCall) appendCased(s string) {
	switch call.caseMode {
	case opLower:
		for i := 0; i < len(s); i++ {
			call.out = append(call.out, lowerByte(s[i]))
		}
	case opUpper:
		for i := 0; i < len(s); i++ {
			call.out = append(call.out, upper(s[i]))
		}
	default:
		call.out = append(call.out, s...)
	}
}

func lowerByte(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// labelsFrom drops the first n dot-separated labels of s, keeping a leading dot
// when s had one ($1D of ".siroe.com" is ".com"; the product's documentation does not
// say, and keeping the dot lets $U%$H$nD rebuild a host as $D does).
func labelsFrom(s string, n int) string {
	if n <= 0 {
		return s
	}
	dot := ""
	body := s
	if strings.HasPrefix(s, ".") {
		dot, body = ".", s[1:]
	}
	for ; n > 0; n-- {
		i := strings.IndexByte(body, '.')
		if i < 0 {
			return ""
		}
		body = body[i+1:]
	}
	if dot != "" {
		return s[len(s)-len(body)-1:]
	}
	return body
}

// label returns the nth label of s counted from the left (or the right).
func label(s string, n int, fromRight bool) (string, bool) {
	s = strings.TrimPrefix(s, ".")
	if s == "" {
		return "", false
	}
	if !fromRight {
		for ; n > 0; n-- {
			i := strings.IndexByte(s, '.')
			if i < 0 {
				return "", false
			}
			s = s[i+1:]
		}
		if i := strings.IndexByte(s, '.'); i >= 0 {
			s = s[:i]
		}
		return s, true
	}
	for ; n > 0; n-- {
		i := strings.LastIndexByte(s, '.')
		if i < 0 {
			return "", false
		}
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '.'); i >= 0 {
		s = s[i+1:]
	}
	return s, true
}

// subaddress splits a local part at the first subaddress character.
func (call *rewriteCall) subaddress(u string) (base, sub string) {
	if i := strings.IndexByte(u, call.rs.opts.SubaddressChar); i >= 0 {
		return u[:i], u[i:]
	}
	return u, ""
}

// expand runs ops into call.out. arg is set inside ${..} / $(..) arguments, where
// separators are plain characters. It returns false and a reason when the
// candidate fails; the reason is only formatted when tracing.
func (call *rewriteCall) expand(ops []op, in *templateInputs, effects *templateEffects, arg bool, depth int) (bool, string) {
	if depth > maxExpandDepth {
		return false, "substitutions nested too deep"
	}
	for i := range ops {
		if effects.stopped {
			return true, ""
		}
		o := &ops[i]
		switch o.kind {
		case opLit:
			call.appendCased(o.s)
		case opPercent, opAt:
			if arg {
				if o.kind == opAt {
					call.out = append(call.out, '@')
				} else {
					call.out = append(call.out, '%')
				}
				continue
			}
			call.seps = append(call.seps, sepPos{at: o.kind == opAt, pos: int32(len(call.out))})
		case opU:
			call.appendCased(canonicalLocal(in.u))
		case opU0:
			b, _ := call.subaddress(in.u)
			call.appendCased(b)
		case opU1:
			_, s := call.subaddress(in.u)
			call.appendCased(s)
		case opD:
			call.appendCased(labelsFrom(in.d, int(o.n)))
		case opH:
			call.appendCased(labelsFrom(in.h, int(o.n)))
		case opL:
			call.appendCased(in.l)
		case opHLabelL, opHLabelR, opDLabelL, opDLabelR:
			src := in.h
			if o.kind == opDLabelL || o.kind == opDLabelR {
				src = in.d
			}
			s, ok := label(src, int(o.n), o.kind == opHLabelR || o.kind == opDLabelR)
			if !ok {
				return call.fail(func() string {
					return "$" + labelChar[o.kind] + strconv.Itoa(int(o.n)) + ": no such label in " + strconv.Quote(src)
				})
			}
			call.appendCased(s)
		case opAddrChar:
			if in.cur == "" {
				in.cur = in.addr.format()
			}
			if o.n < 0 {
				call.appendCased(in.cur)
			} else if int(o.n) < len(in.cur) {
				call.appendCased(in.cur[o.n : o.n+1])
			} else {
				return call.fail(func() string { return "$" + strconv.Itoa(int(o.n)) + "A: the address is shorter" })
			}
		case opHostComp:
			if o.n < 0 {
				call.appendCased(in.spec)
			} else if s, ok := label(in.spec, int(o.n), false); ok {
				call.appendCased(s)
			} else {
				return call.fail(func() string { return "$" + strconv.Itoa(int(o.n)) + "X: no such host component" })
			}
		case opLower, opUpper, opOrigCase:
			call.caseMode = o.kind
		case opRandom:
			v := call.rs.random.Add(0x9E3779B97F4A7C15)
			call.out = strconv.AppendUint(call.out, v, 36)
		case opMap:
			if ok, why := call.expandMap(o, in, effects, depth); !ok {
				return false, why
			}
		case opGeneral:
			if ok, why := call.expandGeneral(o, in, effects, depth); !ok {
				return false, why
			}
		case opCondEnv, opCondHdr, opCondFwd, opCondBack:
			if why := call.kindConditionFails(o.kind); why != "" {
				return false, why
			}
		case opCondLoc:
			effects.locMask |= uint8(o.n)
		case opCondM, opCondN, opCond1M, opCond1N:
			if call.srcRules { // norules on the source channel: source checks ignored
				call.checkSourceChannel(o, effects)
			}
		case opCondQ, opCondC:
			// Ignored while rewriting the envelope To: that rewrite picks the destination.
			if call.req.Kind != EnvelopeTo && call.dstRules {
				call.checkDestChannel(o, effects)
			}
		case opCheck:
			if effects.pendingFail() {
				// $1~: failing channel checks end the template here, successfully.
				effects.stopped = true
				effects.chanFail, effects.mSeen, effects.qSeen = false, false, false
				if call.trace {
					call.step(2, "", "$1~: channel checks failed, template ends here")
				}
				return true, ""
			}
			effects.chanFail, effects.mSeen, effects.qSeen = false, false, false
		case opTag:
			effects.tag, effects.tagSet = o.s, true
		case opErr:
			effects.errText, effects.errCode, effects.errSet = o.s, o.n, true
		}
	}
	return true, ""
}

// fail is expand's answer for a failing candidate. The reason only ever appears
// in the trace, so it is built only when tracing: reason is not called otherwise,
// and the fast path neither formats nor allocates. Two things that look simpler
// cost an allocation per rewrite: a fail(format, args ...any) boxes its
// arguments before it can look at call.trace, and fmt inside reason makes escape
// analysis move the templateInputs' address to the heap (it cannot tell that
// reason runs only when tracing), so reasons are built by concatenation.
func (call *rewriteCall) fail(reason func() string) (bool, string) {
	if !call.trace {
		return false, ""
	}
	return false, reason()
}

// kindConditionFails checks a $E $B $F or $R condition against the kind of
// address being rewritten. It returns why the candidate fails, or "" when the
// condition holds.
func (call *rewriteCall) kindConditionFails(cond opKind) string {
	k := call.req.Kind
	switch cond {
	case opCondEnv:
		if k != EnvelopeTo && k != EnvelopeFrom {
			return "$E: not an envelope address"
		}
	case opCondHdr:
		if k != HeaderTo && k != HeaderFrom {
			return "$B: not a header address"
		}
	case opCondFwd:
		if k != EnvelopeTo && k != HeaderTo {
			return "$F: not a forward-pointing address"
		}
	case opCondBack:
		if k != EnvelopeFrom && k != HeaderFrom {
			return "$R: not a backward-pointing address"
		}
	}
	return ""
}

// checkSourceChannel notes a source channel condition ($Mchannel, $Nchannel, $1M,
// $1N) in effects: they stay pending until the end of the template or a $1~.
func (call *rewriteCall) checkSourceChannel(o *op, effects *templateEffects) {
	src := call.srcName
	switch o.kind {
	case opCondM:
		effects.mSeen = true
		if strings.EqualFold(o.s, src) {
			effects.mHit = true
		} else if call.trace && effects.mWhy == "" {
			effects.mWhy = "$M" + o.s + " (source channel is " + src + ")"
		}
	case opCondN:
		if strings.EqualFold(o.s, src) && !effects.chanFail {
			effects.chanFail = true
			if call.trace {
				effects.chanWhy = "$N" + o.s + " (source channel is " + src + ")"
			}
		}
	case opCond1M:
		if !isReprocessing(src) && !effects.chanFail {
			effects.chanFail = true
			if call.trace {
				effects.chanWhy = "$1M (source channel " + src + " is not a reprocessing channel)"
			}
		}
	case opCond1N:
		if isReprocessing(src) && !effects.chanFail {
			effects.chanFail = true
			if call.trace {
				effects.chanWhy = "$1N (source channel " + src + " is a reprocessing channel)"
			}
		}
	}
}

// checkDestChannel notes a destination channel condition ($Qchannel, $Cchannel) in
// effects: they stay pending until the end of the template or a $1~.
func (call *rewriteCall) checkDestChannel(o *op, effects *templateEffects) {
	dst := call.req.DestChannel
	if o.kind == opCondQ {
		effects.qSeen = true
		if strings.EqualFold(o.s, dst) {
			effects.qHit = true
		} else if call.trace && effects.qWhy == "" {
			effects.qWhy = "$Q" + o.s + " (destination channel is " + dst + ")"
		}
	} else if strings.EqualFold(o.s, dst) && !effects.chanFail {
		effects.chanFail = true
		if call.trace {
			effects.chanWhy = "$C" + o.s + " (destination channel is " + dst + ")"
		}
	}
}

// expandArg expands argument ops and returns their text, leaving call.out as it was.
func (call *rewriteCall) expandArg(ops []op, in *templateInputs, effects *templateEffects, depth int) (string, bool, string) {
	mark := len(call.out)
	ok, why := call.expand(ops, in, effects, true, depth+1)
	s := string(call.out[mark:])
	call.out = call.out[:mark]
	return s, ok, why
}

func (call *rewriteCall) expandMap(o *op, in *templateInputs, effects *templateEffects, depth int) (bool, string) {
	arg, ok, why := call.expandArg(o.sub, in, effects, depth)
	if !ok {
		return false, why
	}
	if call.rs.mappings == nil {
		return call.fail(func() string { return "${" + o.s + "," + arg + "}: no mapping tables loaded" })
	}
	r, found := call.rs.mappings.Map(o.s, arg, 0, call.rs.env)
	if !found {
		return call.fail(func() string { return "${" + o.s + "," + arg + "}: no mapping table " + o.s })
	}
	if !r.Matched || !r.Flags.Has('Y') {
		return call.fail(func() string { return "${" + o.s + "," + arg + "}: result did not set $Y" })
	}
	if call.trace {
		call.step(2, r.Src, "${"+o.s+","+arg+"} -> "+strconv.Quote(r.Output))
	}
	ops, err := parseOps(r.Output, false, 0)
	if err != nil {
		return call.fail(func() string {
			return "${" + o.s + "," + arg + "}: result " + strconv.Quote(r.Output) + ": " + err.Error()
		})
	}
	return call.expand(ops, in, effects, false, depth+1)
}

func (call *rewriteCall) expandGeneral(o *op, in *templateInputs, effects *templateEffects, depth int) (bool, string) {
	key, ok, why := call.expandArg(o.sub, in, effects, depth)
	if !ok {
		return false, why
	}
	v, found := call.rs.genTmpl[strings.ToLower(key)]
	if !found {
		return call.fail(func() string { return "$(" + key + "): not in the general database" })
	}
	if v.err != nil {
		return call.fail(func() string { return "$(" + key + "): " + v.err.Error() })
	}
	if call.trace {
		call.step(2, "", "$("+key+") -> "+strconv.Quote(call.rs.general[strings.ToLower(key)]))
	}
	return call.expand(v.tmpl.ops, in, effects, false, depth+1)
}
