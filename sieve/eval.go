package sieve

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"sort"
	"strings"
	"sync"
	"time"

	"mtad.dev/mta/mailheader"
)

// Envelope is what the envelope test sees (RFC 5228 §5.4).
type Envelope struct {
	// From is the reverse path without angle brackets; "" for the null path.
	From string
	// To holds the recipients the script runs for: one for a user's script,
	// those of the message for an MTA-wide or channel filter.
	To []string
	// Auth is the identity the sender authenticated as, "" when none.
	Auth string
}

// SpamScore is a spam scanner's verdict as spamtest sees it. Score is on the
// product's scale: the scanner's score, rounded and held to 0..10 when tested.
type SpamScore struct {
	Score float64
	// Text is what the product appends to the score (e.g. "True ; 7.3 / 5.0").
	Text string
}

// VirusScore is a virus scanner's verdict for virustest (RFC 5235 §3.3): 1 no
// virus, 2 virus removed, 3 probably safe, 4 probably infected, 5 infected.
type VirusScore struct {
	Score int
	Text  string
}

// Env is everything an evaluation may look at besides the message. Nothing is
// read from the process: the time, the zone and the scanners' verdicts all come
// from here.
type Env struct {
	Envelope Envelope
	// Now is the time currentdate sees; with the zero time currentdate is false.
	Now time.Time
	// Location is the "local" zone of date and currentdate without :zone;
	// nil means Now's location.
	Location *time.Location
	// Spam and Virus are the scanners' verdicts; nil means not tested.
	Spam  *SpamScore
	Virus *VirusScore
	// SubaddressSeparator splits "user+detail" for :user and :detail; "" is "+".
	SubaddressSeparator string
	// Trace, when set, is called for every test evaluated and every action taken.
	Trace func(TraceEvent)
}

// TraceKind says what a TraceEvent reports.
type TraceKind uint8

const (
	TraceTest   TraceKind = iota // a test was evaluated
	TraceAction                  // an action was taken (or a variable set)
	TraceStop                    // "stop" ended the script
)

// TraceEvent is one step of an evaluation, for `mtactl test -exp -mm`.
type TraceEvent struct {
	Pos    Pos
	Kind   TraceKind
	Name   string // the test or command
	Result bool   // for a test: what it gave
	Text   string // for an action: the action as a log line prints it
}

func (t TraceEvent) String() string {
	switch t.Kind {
	case TraceTest:
		return fmt.Sprintf("%s: test %s = %v", t.Pos, t.Name, t.Result)
	case TraceStop:
		return fmt.Sprintf("%s: stop", t.Pos)
	}
	return fmt.Sprintf("%s: %s", t.Pos, t.Text)
}

// Script is a compiled script: immutable once Compile returns it and safe for
// concurrent Evaluate calls.
type Script struct {
	name   string
	code   []command
	limits Limits
	caps   map[string]bool
	// slotOf gives each header field name the script names as a constant (lower
	// case) a slot; an evaluation lists each slot's fields once, so a hundred
	// tests of "Subject" find it without scanning the header a hundred times.
	slotOf    map[string]int
	slotNames []string
	pool      *sync.Pool
}

// Name is the name given to Compile.
func (s *Script) Name() string { return s.name }

// Requires lists the capabilities the script requires, sorted.
func (s *Script) Requires() []string {
	out := make([]string, 0, len(s.caps))
	for c := range s.caps {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// node is where a compiled command or test comes from.
type node struct {
	pos  Pos
	name string
}

func (n node) where() node { return n }

type command interface {
	run(e *eval) error
	where() node
}

type test interface {
	eval(e *eval) (bool, error)
	where() node
}

// errStop unwinds the evaluation when "stop" runs; it is not an error.
var errStop = errors.New("stop")

// hfield is a header field as the evaluation sees it, with what tests derived
// from it kept for the next test.
type hfield struct {
	f       mailheader.Field
	slot    int32 // -1: a name the script does not name as a constant
	decoded bool
	value   string // unfolded, RFC 2047 decoded
	fold    string // value lower-cased
	parsed  bool
	addrs   []string
}

// eval is the state of one evaluation. Evaluations reuse it through the
// script's pool, so that a typical evaluation allocates little.
type eval struct {
	s   *Script
	ctx context.Context
	msg []byte
	env *Env
	sep string

	fields    []hfield
	bySlot    [][]int32
	scratch   []int32
	one       [1]int32
	one1      [1]string
	bodyStart int
	edited    bool
	eol       string

	vars         map[string]string
	matchVars    []string
	wantCaptures bool
	flags        []string

	actions      []Action
	implicitKeep bool
	redirects    int
	work         int64
	spam         *SpamScore
	spamTested   bool
	tags         int

	body *bodyCache
	env5 envelopeCache
}

// envelopeCache holds the envelope's values folded to lower case.
type envelopeCache struct {
	done bool
	from value
	to   []value
	auth value
}

func newPool(s *Script) *sync.Pool {
	return &sync.Pool{New: func() any { return &eval{s: s} }}
}

// Evaluate runs the script on a message (its raw bytes, header and body, with
// CRLF or LF line ends). On success it returns the actions to take. On a
// runtime error it returns the error (an *Error with the position of the
// command that failed) and NoFilter(): the MTA's rule for a failing script is
// to deliver as if there were no filter, and that result says just that.
func (s *Script) Evaluate(ctx context.Context, msg []byte, env Env) (res *Result, err error) {
	e := s.pool.Get().(*eval)
	defer func() {
		if p := recover(); p != nil {
			res, err = NoFilter(), &Error{Pos: Pos{File: s.name, Line: 1, Column: 1},
				Msg: fmt.Sprintf("internal error: %v", p)}
		}
		e.reset()
		s.pool.Put(e)
	}()
	e.start(ctx, msg, &env)
	if err := e.runBlock(s.code); err != nil && err != errStop {
		return NoFilter(), err
	}
	return e.result(), nil
}

// start readies the evaluation: the header is cut into fields once, here.
func (e *eval) start(ctx context.Context, msg []byte, env *Env) {
	e.ctx, e.msg, e.env = ctx, msg, env
	e.sep = env.SubaddressSeparator
	if e.sep == "" {
		e.sep = "+"
	}
	e.implicitKeep = true
	e.wantCaptures = e.s.caps["variables"]
	e.spam = env.Spam
	e.spamTested = env.Spam != nil
	b := mailheader.Walk(msg, func(f mailheader.Field) bool {
		e.fields = append(e.fields, hfield{f: f, slot: e.s.slotFor(f)})
		return true
	})
	e.bodyStart, e.eol = b.Body, b.EOL
	e.index()
}

// index lists, for each slot, the fields that fill it, in header order.
func (e *eval) index() {
	if cap(e.bySlot) < len(e.s.slotNames) {
		e.bySlot = make([][]int32, len(e.s.slotNames))
	}
	e.bySlot = e.bySlot[:len(e.s.slotNames)]
	for i := range e.bySlot {
		e.bySlot[i] = e.bySlot[i][:0]
	}
	for i := range e.fields {
		if sl := e.fields[i].slot; sl >= 0 {
			e.bySlot[sl] = append(e.bySlot[sl], int32(i))
		}
	}
}

// reset clears the state for the next evaluation, keeping the memory.
func (e *eval) reset() {
	for i := range e.fields {
		e.fields[i] = hfield{}
	}
	e.fields = e.fields[:0]
	bySlot, scratch := e.bySlot, e.scratch[:0]
	matchVars, actions, flags := e.matchVars[:0], e.actions[:0], e.flags[:0]
	for i := range actions[:cap(actions)] {
		actions[:cap(actions)][i] = nil
	}
	*e = eval{s: e.s, fields: e.fields, bySlot: bySlot, scratch: scratch,
		matchVars: matchVars, actions: actions, flags: flags}
}

// slotFor finds the slot of a field's name without allocating.
func (s *Script) slotFor(f mailheader.Field) int32 {
	if len(s.slotOf) == 0 {
		return -1
	}
	raw := f.Raw
	var buf [64]byte
	n := 0
	for n < len(raw) && raw[n] != ':' {
		n++
	}
	if n == len(raw) || n == 0 {
		return -1
	}
	name := raw[:n]
	for len(name) > 0 && (name[len(name)-1] == ' ' || name[len(name)-1] == '\t') {
		name = name[:len(name)-1]
	}
	if len(name) > len(buf) {
		if sl, ok := s.slotOf[strings.ToLower(string(name))]; ok {
			return int32(sl)
		}
		return -1
	}
	for i, c := range name {
		if c < 33 || c > 126 {
			return -1
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	if sl, ok := s.slotOf[string(buf[:len(name)])]; ok {
		return int32(sl)
	}
	return -1
}

// charge counts work and fails past the limit.
func (e *eval) charge(n int) error {
	e.work += int64(n)
	if e.work > e.s.limits.MaxWork {
		return errWork
	}
	return nil
}

var errWork = errors.New("evaluation exceeded its work limit")

// runBlock runs commands in order.
func (e *eval) runBlock(cmds []command) error {
	for _, c := range cmds {
		if err := e.ctx.Err(); err != nil {
			return &Error{Pos: c.where().pos, Msg: "evaluation cancelled: " + err.Error()}
		}
		if err := c.run(e); err != nil {
			if err == errWork {
				return &Error{Pos: c.where().pos, Msg: err.Error()}
			}
			return err
		}
	}
	return nil
}

// test evaluates a test and traces it.
func (e *eval) test(t test) (bool, error) {
	ok, err := t.eval(e)
	if err == nil && e.env.Trace != nil {
		n := t.where()
		e.env.Trace(TraceEvent{Pos: n.pos, Kind: TraceTest, Name: n.name, Result: ok})
	}
	return ok, err
}

// decoded returns a field's value unfolded and RFC 2047 decoded (RFC 5228
// §2.7.2), with its lower-case form, computing them on first use.
func (e *eval) decoded(i int) value {
	h := &e.fields[i]
	if !h.decoded {
		h.value = decodeHeaderValue(h.f.Value())
		h.fold = foldASCII(h.value)
		h.decoded = true
		e.work += int64(len(h.f.Raw))
	}
	return value{s: h.value, fold: h.fold, folded: true}
}

// decodeHeaderValue decodes encoded words; on a charset Go cannot read it keeps
// the text as written, so a test still sees something.
func decodeHeaderValue(v string) string {
	if !strings.Contains(v, "=?") {
		return v
	}
	var dec mime.WordDecoder
	if out, err := dec.DecodeHeader(v); err == nil {
		return out
	}
	return v
}

// hname is a header field name argument: its slot when it is a constant.
type hname struct {
	s    str
	slot int
}

// fieldIndexes returns the fields a test looks at for one name, in header
// order: all of them, or with :index only the n-th (counted from the end with
// :last; RFC 5260 §4). The slice is only valid until the next call.
func (e *eval) fieldIndexes(h hname, index int, last bool) []int32 {
	var list []int32
	if h.s.parts == nil && h.slot >= 0 {
		list = e.bySlot[h.slot]
	} else {
		name := h.s.lit
		if h.s.parts != nil {
			name = e.expand(h.s)
		}
		e.scratch = e.scratch[:0]
		for i := range e.fields {
			if e.fields[i].f.Is(name) {
				e.scratch = append(e.scratch, int32(i))
			}
		}
		list = e.scratch
	}
	if index == 0 {
		return list
	}
	if index > len(list) {
		return nil
	}
	k := index - 1
	if last {
		k = len(list) - index
	}
	e.one[0] = list[k]
	return e.one[:]
}

// addAction records an action and traces it.
func (e *eval) addAction(a Action) {
	e.actions = append(e.actions, a)
	if e.env.Trace != nil {
		e.env.Trace(TraceEvent{Pos: a.Position(), Kind: TraceAction, Name: actionName(a), Text: a.String()})
	}
}
