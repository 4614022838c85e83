package mappings

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
)

// Output flags that are not letters. Flag() only knows letters, so these take the
// bits above 'Z'. They are set by $< $> (syslog on match / on refusal) and $!
// (FROM_ACCESS "novacation").
const (
	FlagSyslogMatch  Flags = 1 << 26 // $<
	FlagSyslogReject Flags = 1 << 27 // $>
	FlagNoVacation   Flags = 1 << 28 // $!
)

// flagBit maps a template flag character to its bit.
func flagBit(c byte) Flags {
	switch c {
	case '<':
		return FlagSyslogMatch
	case '>':
		return FlagSyslogReject
	case '!':
		return FlagNoVacation
	}
	return Flag(c)
}

// Describe lists the set flags as Flags.String does, followed by '<', '>' and '!'
// for the non-letter flags ("NX<").
func (f Flags) Describe() string {
	s := f.String()
	if f&FlagSyslogMatch != 0 {
		s += "<"
	}
	if f&FlagSyslogReject != 0 {
		s += ">"
	}
	if f&FlagNoVacation != 0 {
		s += "!"
	}
	return s
}

// maxOutput bounds one template's output (far above any address or probe); a
// longer result fails the entry, which keeps $0$0$R style growth from eating memory
// and keeps the matcher's memo small on re-passes. The product documents no such
// bound; the size is our choice.
const maxOutput = 8 << 10

// maxNestDepth bounds $|table;arg| recursion (a table may call itself). The product
// documents no such bound; 10 is our choice.
const maxNestDepth = 10

type opKind uint8

const (
	oText    opKind = iota // text
	oCap                   // n: saved item n
	oCase                  // c: '\\' lower, '^' upper, '_' original case
	oFlag                  // c: flag character; C L R E also steer scanning
	oPush                  // start a sub-buffer (key of ${..} / argument of $|..|)
	oGeneral               // pop the sub-buffer, look it up in the general database
	oNested                // pop the sub-buffer, map it through table text
	oPercent               // n: succeed n percent of the time
	oExit                  // $+1E: stop here with $E
)

// op is one template instruction. Like a pattern item it holds no pointers: the
// text of oText (the literal) and oNested (the table name) is
// Template.data[off:end], so a table's ops are one array the garbage collector
// never scans and decoding them copies no text.
type op struct {
	kind     opKind
	c        byte
	n        uint16
	off, end uint32
}

// Template is one compiled mapping template.
type Template struct {
	ops  []op
	data string // the ops' text
	// need/forbid are the $:x / $;x input-flag tests, hoisted out of the op list:
	// they decide whether the entry applies at all, so they are checked before the
	// pattern is even tried. A failed test makes the entry not apply, as if its
	// pattern had not matched; it is not an entry failure (the product's
	// documentation does not say which).
	need, forbid Flags
}

// CompileTemplate compiles a template for a pattern that saves nsave items.
func CompileTemplate(t string, nsave int) (*Template, error) {
	tp := &Template{}
	if err := compileTemplate(t, nsave, tp); err != nil {
		return nil, err
	}
	return tp, nil
}

func compileTemplate(t string, nsave int, tp *Template) error {
	if len(t) > MaxTemplateLen {
		return fmt.Errorf("template too long: %d characters (maximum %d)", len(t), MaxTemplateLen)
	}
	c := templateCompiler{src: t, nsave: nsave, tp: tp}
	_, err := c.compileUntil(0, 0)
	tp.data = string(c.data)
	return err
}

// text returns the text of op o of t.
func (t *Template) text(o *op) string { return t.data[o.off:o.end] }

// templateCompiler holds what compileTemplate has built so far.
type templateCompiler struct {
	src   string
	nsave int // saved items of the pattern, for checking $n
	tp    *Template
	lit   []byte // literal text read since the last op
	data  []byte // Template.data being built
	depth int    // open ${..} / $|..| around the current offset
}

// open starts a ${..} or $|..| whose '$' is at offset at.
func (c *templateCompiler) open(at int) error {
	if c.depth >= maxSubDepth {
		return fmt.Errorf("${...} and $|...| nested more than %d deep at offset %d", maxSubDepth, at)
	}
	c.depth++
	c.emit(op{kind: oPush})
	return nil
}

func (c *templateCompiler) emit(o op) {
	c.flush()
	c.tp.ops = append(c.tp.ops, o)
}

func (c *templateCompiler) flush() {
	if len(c.lit) > 0 {
		c.tp.ops = append(c.tp.ops, c.withText(op{kind: oText}, c.lit))
		c.lit = c.lit[:0]
	}
}

// withText stores text in the template's data and points o at it.
func (c *templateCompiler) withText(o op, text []byte) op {
	o.off = uint32(len(c.data))
	c.data = append(c.data, text...)
	o.end = uint32(len(c.data))
	return o
}

// compileUntil compiles from offset i until the unquoted terminator term (0: end
// of text) and returns the offset just after it. When the text ends before term
// it returns offset 0, and the caller reports the unterminated construct.
func (c *templateCompiler) compileUntil(i int, term byte) (int, error) {
	s := c.src
	for i < len(s) {
		ch := s[i]
		if term != 0 && ch == term {
			c.flush()
			return i + 1, nil
		}
		if ch != '$' {
			c.lit = append(c.lit, ch)
			i++
			continue
		}
		if i+1 >= len(s) {
			return 0, errors.New("template ends with a lone $")
		}
		next, err := c.dollar(i, term != 0)
		if err != nil {
			return 0, err
		}
		i = next
	}
	c.flush()
	if term != 0 {
		return 0, nil
	}
	return i, nil
}

// dollar compiles the $-sequence whose '$' is at src[at] and returns the offset
// just after it. inSub is set inside ${...} and $|...|, where flags and input-flag
// tests are not allowed.
func (c *templateCompiler) dollar(at int, inSub bool) (int, error) {
	s := c.src
	ch := s[at+1]
	i := at + 2
	switch {
	case ch == '$' || ch == ' ' || ch == '\t':
		c.lit = append(c.lit, ch)
	case isDigit(ch):
		n := int(ch - '0')
		if n >= c.nsave && c.nsave == 0 {
			return 0, fmt.Errorf("substitution $%d at offset %d: the pattern saves no wildcards", n, at)
		}
		if n >= c.nsave {
			return 0, fmt.Errorf("substitution $%d at offset %d is beyond the pattern's saved wildcards (it saves %d: $0..$%d)", n, at, c.nsave, c.nsave-1)
		}
		c.emit(op{kind: oCap, n: uint16(n)})
	case ch == '\\' || ch == '^' || ch == '_':
		c.emit(op{kind: oCase, c: ch})
	case ch == '{':
		end, err := c.subExpression(at, i, '}', "${...} database lookup")
		if err != nil {
			return 0, err
		}
		c.emit(op{kind: oGeneral})
		return end, nil
	case ch == '|':
		return c.mappingCall(at)
	case ch == '?':
		end := strings.IndexByte(s[i:], '?')
		if end < 0 {
			return 0, fmt.Errorf("unterminated $?x? percentage at offset %d", at)
		}
		num := s[i : i+end]
		n, ok := atoiSmall(num)
		if !ok || n > 100 {
			return 0, fmt.Errorf("bad $?x? percentage %q at offset %d: want 0..100", num, at)
		}
		c.emit(op{kind: oPercent, n: uint16(n)})
		return i + end + 1, nil
	case ch == ':' || ch == ';':
		if inSub {
			return 0, fmt.Errorf("input flag test $%c at offset %d is not allowed inside ${...} or $|...|", ch, at)
		}
		if i >= len(s) || !isLetter(s[i]) {
			return 0, fmt.Errorf("input flag test $%c at offset %d needs a flag letter", ch, at)
		}
		if ch == ':' {
			c.tp.need |= Flag(s[i])
		} else {
			c.tp.forbid |= Flag(s[i])
		}
		return i + 1, nil
	case ch == '+':
		if !strings.HasPrefix(s[i:], "1E") && !strings.HasPrefix(s[i:], "1e") {
			return 0, fmt.Errorf("$+ at offset %d: only $+1E is supported", at)
		}
		if inSub {
			return 0, fmt.Errorf("$+1E at offset %d is not allowed inside ${...} or $|...|", at)
		}
		c.emit(op{kind: oExit})
		return i + 2, nil
	case isLetter(ch) || ch == '<' || ch == '>' || ch == '!':
		if inSub {
			return 0, fmt.Errorf("flag $%c at offset %d is not allowed inside ${...} or $|...|", ch, at)
		}
		c.emit(op{kind: oFlag, c: upper(ch)})
	default:
		if what := unsupportedTemplateSequence(ch); what != "" {
			return 0, fmt.Errorf("%s are not supported (offset %d)", what, at)
		}
		return 0, fmt.Errorf("invalid $%c sequence in template at offset %d", ch, at)
	}
	return i, nil
}

// unsupportedTemplateSequence names the template sequences of the product that
// this implementation refuses ("" for any other character after the '$').
func unsupportedTemplateSequence(ch byte) string {
	switch ch {
	case ']':
		return "LDAP URL lookups ($]...[)"
	case '[':
		return "site-supplied routine callouts ($[...])"
	case '}':
		return "domain attribute lookups ($}...{)"
	case '#':
		return "sequence number substitutions ($#...#)"
	}
	return ""
}

// mappingCall compiles $|table;argument| whose '$' is at src[at] and returns the
// offset just after it.
func (c *templateCompiler) mappingCall(at int) (int, error) {
	s := c.src
	i := at + 2
	semi := strings.IndexAny(s[i:], ";|")
	if semi < 0 || s[i+semi] != ';' {
		return 0, fmt.Errorf("unterminated $|table;argument| mapping call at offset %d: missing ;", at)
	}
	table := s[i : i+semi]
	if table == "" {
		return 0, fmt.Errorf("$|table;argument| at offset %d has no table name", at)
	}
	end, err := c.subExpression(at, i+semi+1, '|', "$|table;argument| mapping call")
	if err != nil {
		return 0, err
	}
	c.emit(c.withText(op{kind: oNested}, []byte(table)))
	return end, nil
}

// subExpression compiles the body of a ${...} or $|...| (named by what in the
// error) whose '$' is at src[at], from offset i up to its closing term, and
// returns the offset just after term. The caller emits the closing op.
func (c *templateCompiler) subExpression(at, i int, term byte, what string) (int, error) {
	if err := c.open(at); err != nil {
		return 0, err
	}
	end, err := c.compileUntil(i, term)
	if err != nil {
		return 0, err
	}
	if end == 0 {
		return 0, fmt.Errorf("unterminated %s at offset %d", what, at)
	}
	c.depth--
	return end, nil
}

func atoiSmall(s string) (int, bool) {
	if s == "" || len(s) > 3 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// evalResult is the outcome of one template evaluation.
type evalResult struct {
	out     string
	flags   Flags
	ctrl    byte // 'C' 'L' 'R' or 'E' (0: none written, i.e. $E)
	failed  bool
	ctrlHit bool // failed after a C/L/R flag had been read
}

// evaluator carries what a template needs besides its ops.
type evaluator struct {
	set   *Set
	in    Flags
	env   *Env
	depth int
	work  *int // see maxWork
}

// appendCase appends txt to out in the case mode of $\ (lower), $^ (upper) or $_.
func appendCase(out []byte, mode byte, txt string) []byte {
	switch mode {
	case '\\':
		for i := 0; i < len(txt); i++ {
			out = append(out, lower(txt[i]))
		}
	case '^':
		for i := 0; i < len(txt); i++ {
			out = append(out, upper(txt[i]))
		}
	default:
		out = append(out, txt...)
	}
	return out
}

// maxSubDepth bounds nesting of ${..} and $|..| inside one template (checked at
// compile time) so eval can keep the sub-expression start marks on the stack.
const maxSubDepth = 8

// eval runs t with the captures (offset pairs into s). A sub-expression is built
// at the end of the same buffer: oPush remembers where it starts, the closing op
// cuts it off and appends its value in its place.
func (ev *evaluator) eval(t *Template, s string, caps []int) evalResult {
	var r evalResult
	var scratch [256]byte
	out := scratch[:0]
	var marks [maxSubDepth]int
	depth := 0
	mode := byte('_')
	for k := range t.ops {
		o := &t.ops[k]
		switch o.kind {
		case oText:
			out = appendCase(out, mode, t.text(o))
		case oCap:
			if n := int(o.n); 2*n+1 < len(caps) {
				out = appendCase(out, mode, s[caps[2*n]:caps[2*n+1]])
			}
		case oCase:
			mode = o.c
		case oFlag:
			r.flags |= flagBit(o.c)
			switch o.c {
			case 'C', 'L', 'R', 'E':
				r.ctrl = o.c
			}
		case oPush:
			marks[depth] = len(out)
			depth++
		case oGeneral, oNested:
			depth--
			arg := string(out[marks[depth]:])
			out = out[:marks[depth]]
			var val string
			var ok bool
			if o.kind == oGeneral {
				if ev.env != nil && ev.env.General != nil {
					val, ok = ev.env.General(arg)
				}
			} else {
				val, ok = ev.nested(t.text(o), arg)
			}
			if !ok {
				return failed(r.ctrl)
			}
			out = appendCase(out, mode, val)
		case oPercent:
			var p int
			if ev.env != nil && ev.env.Percent != nil {
				p = ev.env.Percent()
			} else {
				p = rand.IntN(100)
			}
			if p >= int(o.n) {
				return failed(r.ctrl)
			}
		case oExit:
			r.flags |= Flag('E')
			r.ctrl = 'E'
			r.out = string(out)
			return r
		}
		if len(out) > maxOutput {
			return failed(r.ctrl)
		}
	}
	r.out = string(out)
	return r
}

func failed(ctrl byte) evalResult {
	return evalResult{failed: true, ctrlHit: ctrl == 'C' || ctrl == 'L' || ctrl == 'R'}
}

// nested runs $|table;arg|: the table must exist, match and set $Y.
func (ev *evaluator) nested(table, arg string) (string, bool) {
	if ev.set == nil || ev.depth >= maxNestDepth || *ev.work <= 0 {
		return "", false
	}
	*ev.work--
	tb := ev.set.table(table)
	if tb == nil {
		return "", false
	}
	res := ev.set.run(tb, arg, ev.in, ev.env, ev.depth+1, ev.work)
	if !res.Matched || !res.Flags.Has('Y') {
		return "", false
	}
	return res.Output, true
}
