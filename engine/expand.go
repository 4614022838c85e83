package engine

import (
	"strconv"
	"strings"
)

// mctx is what a matched candidate's template can insert.
type mctx struct {
	u    string // local part for $U (as written)
	spec string // the host specification, original case
	h    string // unmatched / wildcarded part ($H)
	d    string // part that matched literal pattern text ($D)
	l    string // unmatched part of a domain literal ($L)
	loc  uint8
	addr *address
	cur  string // current address, formatted lazily for $nA
}

// sepPos is a template-level separator in the expansion output.
type sepPos struct {
	at  bool // '@' (else '%')
	pos int32
}

// expansion collects the conditions and actions met while expanding a template.
// Conditions that only depend on the request fail at once; channel checks stay
// pending until the end or a $1~, as the reference describes.
type expansion struct {
	chanFail     bool
	chanWhy      string
	mSeen, mHit  bool
	qSeen, qHit  bool
	mWhy, qWhy   string
	locMask      uint8
	stopped      bool // a $1~ ended the template early
	tag          string
	tagSet       bool
	errText      string
	errCode      int32
	errSet       bool
	channelsSeen bool
}

func (ex *expansion) pendingFail() bool {
	return ex.chanFail || ex.mSeen && !ex.mHit || ex.qSeen && !ex.qHit
}

func (ex *expansion) pendingWhy() string {
	switch {
	case ex.chanFail:
		return ex.chanWhy
	case ex.mSeen && !ex.mHit:
		return ex.mWhy
	default:
		return ex.qWhy
	}
}

const maxExpandDepth = 6

// appendCased appends s under the current case mode ($\ $^ $_).
func (st *state) appendCased(s string) {
	switch st.caseMode {
	case opLower:
		for i := 0; i < len(s); i++ {
			st.out = append(st.out, lowerByte(s[i]))
		}
	case opUpper:
		for i := 0; i < len(s); i++ {
			st.out = append(st.out, upper(s[i]))
		}
	default:
		st.out = append(st.out, s...)
	}
}

func lowerByte(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// labelsFrom drops the first n dot-separated labels of s, keeping a leading dot
// when s had one ([inf] $1D of ".siroe.com" is ".com").
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
func (st *state) subaddress(u string) (base, sub string) {
	if i := strings.IndexByte(u, st.rs.opts.SubaddressChar); i >= 0 {
		return u[:i], u[i:]
	}
	return u, ""
}

// expand runs ops into st.out. arg is set inside ${..} / $(..) arguments, where
// separators are plain characters. It returns false and a reason when the
// candidate fails; the reason is only formatted when tracing.
func (st *state) expand(ops []op, m *mctx, ex *expansion, arg bool, depth int) (bool, string) {
	if depth > maxExpandDepth {
		return false, "substitutions nested too deep"
	}
	for i := range ops {
		if ex.stopped {
			return true, ""
		}
		o := &ops[i]
		switch o.kind {
		case opLit:
			st.appendCased(o.s)
		case opPercent, opAt:
			if arg {
				if o.kind == opAt {
					st.out = append(st.out, '@')
				} else {
					st.out = append(st.out, '%')
				}
				continue
			}
			st.seps = append(st.seps, sepPos{at: o.kind == opAt, pos: int32(len(st.out))})
		case opU:
			st.appendCased(canonicalLocal(m.u))
		case opU0:
			b, _ := st.subaddress(m.u)
			st.appendCased(b)
		case opU1:
			_, s := st.subaddress(m.u)
			st.appendCased(s)
		case opD:
			st.appendCased(labelsFrom(m.d, int(o.n)))
		case opH:
			st.appendCased(labelsFrom(m.h, int(o.n)))
		case opL:
			st.appendCased(m.l)
		case opHLabelL, opHLabelR, opDLabelL, opDLabelR:
			src := m.h
			if o.kind == opDLabelL || o.kind == opDLabelR {
				src = m.d
			}
			s, ok := label(src, int(o.n), o.kind == opHLabelR || o.kind == opDLabelR)
			if !ok {
				if st.trace {
					return false, "$" + labelChar[o.kind] +
						strconv.Itoa(int(o.n)) + ": no such label in " + strconv.Quote(src)
				}
				return false, ""
			}
			st.appendCased(s)
		case opAddrChar:
			if m.cur == "" {
				m.cur = m.addr.format()
			}
			if o.n < 0 {
				st.appendCased(m.cur)
			} else if int(o.n) < len(m.cur) {
				st.appendCased(m.cur[o.n : o.n+1])
			} else {
				if st.trace {
					return false, "$" + strconv.Itoa(int(o.n)) + "A: the address is shorter"
				}
				return false, ""
			}
		case opHostComp:
			if o.n < 0 {
				st.appendCased(m.spec)
			} else if s, ok := label(m.spec, int(o.n), false); ok {
				st.appendCased(s)
			} else {
				if st.trace {
					return false, "$" + strconv.Itoa(int(o.n)) + "X: no such host component"
				}
				return false, ""
			}
		case opLower, opUpper, opOrigCase:
			st.caseMode = o.kind
		case opRandom:
			v := st.rs.random.Add(0x9E3779B97F4A7C15)
			st.out = strconv.AppendUint(st.out, v, 36)
		case opMap:
			if ok, why := st.expandMap(o, m, ex, depth); !ok {
				return false, why
			}
		case opGeneral:
			if ok, why := st.expandGeneral(o, m, ex, depth); !ok {
				return false, why
			}
		case opCondEnv:
			if k := st.req.Kind; k != EnvelopeTo && k != EnvelopeFrom {
				return false, "$E: not an envelope address"
			}
		case opCondHdr:
			if k := st.req.Kind; k != HeaderTo && k != HeaderFrom {
				return false, "$B: not a header address"
			}
		case opCondFwd:
			if k := st.req.Kind; k != EnvelopeTo && k != HeaderTo {
				return false, "$F: not a forward-pointing address"
			}
		case opCondBack:
			if k := st.req.Kind; k != EnvelopeFrom && k != HeaderFrom {
				return false, "$R: not a backward-pointing address"
			}
		case opCondLoc:
			ex.locMask |= uint8(o.n)
		case opCondM, opCondN, opCond1M, opCond1N:
			if !st.srcRules {
				continue // norules on the source channel: source checks ignored
			}
			switch o.kind {
			case opCondM:
				ex.mSeen = true
				if strings.EqualFold(o.s, st.srcName) {
					ex.mHit = true
				} else if st.trace && ex.mWhy == "" {
					ex.mWhy = "$M" + o.s + " (source channel is " + st.srcName + ")"
				}
			case opCondN:
				if strings.EqualFold(o.s, st.srcName) && !ex.chanFail {
					ex.chanFail = true
					if st.trace {
						ex.chanWhy = "$N" + o.s + " (source channel is " + st.srcName + ")"
					}
				}
			case opCond1M:
				if !isReprocessing(st.srcName) && !ex.chanFail {
					ex.chanFail = true
					if st.trace {
						ex.chanWhy = "$1M (source channel " + st.srcName + " is not a reprocessing channel)"
					}
				}
			case opCond1N:
				if isReprocessing(st.srcName) && !ex.chanFail {
					ex.chanFail = true
					if st.trace {
						ex.chanWhy = "$1N (source channel " + st.srcName + " is a reprocessing channel)"
					}
				}
			}
		case opCondQ, opCondC:
			// Ignored while rewriting the envelope To: that rewrite picks the destination.
			if st.req.Kind == EnvelopeTo || !st.dstRules {
				continue
			}
			if o.kind == opCondQ {
				ex.qSeen = true
				if strings.EqualFold(o.s, st.req.DestChannel) {
					ex.qHit = true
				} else if st.trace && ex.qWhy == "" {
					ex.qWhy = "$Q" + o.s + " (destination channel is " + st.req.DestChannel + ")"
				}
			} else if strings.EqualFold(o.s, st.req.DestChannel) && !ex.chanFail {
				ex.chanFail = true
				if st.trace {
					ex.chanWhy = "$C" + o.s + " (destination channel is " + st.req.DestChannel + ")"
				}
			}
		case opCheck:
			if ex.pendingFail() {
				// $1~: failing channel checks end the template here, successfully.
				ex.stopped = true
				ex.chanFail, ex.mSeen, ex.qSeen = false, false, false
				if st.trace {
					st.step(2, "", "$1~: channel checks failed, template ends here")
				}
				return true, ""
			}
			ex.chanFail, ex.mSeen, ex.qSeen = false, false, false
		case opTag:
			ex.tag, ex.tagSet = o.s, true
		case opErr:
			ex.errText, ex.errCode, ex.errSet = o.s, o.n, true
		}
	}
	return true, ""
}

// expandArg expands argument ops and returns their text, leaving st.out as it was.
func (st *state) expandArg(ops []op, m *mctx, ex *expansion, depth int) (string, bool, string) {
	mark := len(st.out)
	ok, why := st.expand(ops, m, ex, true, depth+1)
	s := string(st.out[mark:])
	st.out = st.out[:mark]
	return s, ok, why
}

func (st *state) expandMap(o *op, m *mctx, ex *expansion, depth int) (bool, string) {
	arg, ok, why := st.expandArg(o.sub, m, ex, depth)
	if !ok {
		return false, why
	}
	if st.rs.mappings == nil {
		return false, "${" + o.s + "," + arg + "}: no mapping tables loaded"
	}
	r, found := st.rs.mappings.Map(o.s, arg, 0, st.rs.env)
	if !found {
		return false, "${" + o.s + "," + arg + "}: no mapping table " + o.s
	}
	if !r.Matched || !r.Flags.Has('Y') {
		return false, "${" + o.s + "," + arg + "}: result did not set $Y"
	}
	if st.trace {
		st.step(2, r.Src, "${"+o.s+","+arg+"} -> "+strconv.Quote(r.Output))
	}
	ops, err := parseOps(r.Output, false, 0)
	if err != nil {
		return false, "${" + o.s + "," + arg + "}: result " + strconv.Quote(r.Output) + ": " + err.Error()
	}
	return st.expand(ops, m, ex, false, depth+1)
}

func (st *state) expandGeneral(o *op, m *mctx, ex *expansion, depth int) (bool, string) {
	key, ok, why := st.expandArg(o.sub, m, ex, depth)
	if !ok {
		return false, why
	}
	v, found := st.rs.genTmpl[strings.ToLower(key)]
	if !found {
		return false, "$(" + key + "): not in the general database"
	}
	if v.err != nil {
		return false, "$(" + key + "): " + v.err.Error()
	}
	if st.trace {
		st.step(2, "", "$("+key+") -> "+strconv.Quote(st.rs.general[strings.ToLower(key)]))
	}
	return st.expand(v.tmpl.ops, m, ex, false, depth+1)
}
