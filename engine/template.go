package engine

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// opKind is one step of a compiled template. Templates are parsed once, at
// Compile (or when a mapping result must be re-expanded); Rewrite walks the ops.
type opKind uint8

const (
	opLit      opKind = iota + 1 // s: literal text
	opPercent                    // template-level % separator
	opAt                         // template-level @ separator
	opU                          // $U
	opU0                         // $0U
	opU1                         // $1U
	opD                          // $nD, n labels skipped
	opH                          // $nH
	opL                          // $L
	opHLabelL                    // $&n
	opHLabelR                    // $!n
	opDLabelL                    // $*n
	opDLabelR                    // $#n
	opAddrChar                   // $nA
	opHostComp                   // $nX
	opLower                      // $\ .
	opUpper                      // $^
	opOrigCase                   // $_
	opRandom                     // $W
	opMap                        // ${s,sub}
	opGeneral                    // $(sub)
	opCondEnv                    // $E
	opCondHdr                    // $B
	opCondFwd                    // $F
	opCondBack                   // $R
	opCondLoc                    // $S $A $P $X; n = location bit
	opCondM                      // $Ms
	opCondN                      // $Ns
	opCondQ                      // $Qs
	opCondC                      // $Cs
	opCond1M                     // $1M
	opCond1N                     // $1N
	opTag                        // $Ts
	opCheck                      // $1~
	opErr                        // $?s or $nnnnnnn?s; n = status code digits (0: default)
)

// op is one compiled template step. n is a numeric argument (label index, code),
// s a literal or argument, sub the ops of a nested argument (${t,arg}, $(key)).
type op struct {
	kind opKind
	n    int32
	s    string
	sub  []op
}

// template is a compiled rule template.
type template struct {
	ops []op
	// onlyErr: nothing but $?text (and conditions): rewriting stops and the host is
	// looked up as it is.
	onlyErr bool
	// dynamic: contains ${..} or $(..), whose output may bring separators.
	dynamic bool
}

// parseTemplate compiles template text. inValue is set for general-database values,
// which are not rescanned for $(...): there the sequence is literal text.
func parseTemplate(t string, inValue bool) (template, error) {
	ops, err := parseOps(t, inValue, 0)
	if err != nil {
		return template{}, err
	}
	tp := template{ops: ops}
	var out, seps, errs, ats int
	var walk func([]op)
	walk = func(ops []op) {
		for _, o := range ops {
			switch o.kind {
			case opMap, opGeneral:
				tp.dynamic = true
			case opPercent:
				seps++
			case opAt:
				seps++
				ats++
			case opErr:
				errs++
			case opLit, opU, opU0, opU1, opD, opH, opL, opHLabelL, opHLabelR, opDLabelL,
				opDLabelR, opAddrChar, opHostComp, opRandom:
				out++
			}
		}
	}
	walk(ops)
	if errs > 0 && out == 0 && seps == 0 && !tp.dynamic {
		tp.onlyErr = true
	}
	if !tp.dynamic && !tp.onlyErr && !inValue {
		if seps == 0 {
			return tp, errors.New("template has no % or @ separator (no host to route to)")
		}
		if ats > 3 {
			return tp, errors.New("template has more than three @ separators")
		}
	}
	return tp, nil
}

// isArgEnd reports whether t[i:] ends the argument of $M $N $Q $C $T $?: the
// next such control (or $1M/$1N/$1~/$nnnnnnn?).
func isArgEnd(t string, i int) bool {
	if t[i] != '$' || i+1 >= len(t) {
		return false
	}
	switch t[i+1] {
	case 'N', 'n', 'M', 'm', 'Q', 'q', 'C', 'c', 'T', 't', '?':
		return true
	}
	j := i + 1
	for j < len(t) && t[j] >= '0' && t[j] <= '9' {
		j++
	}
	if j > i+1 && j < len(t) {
		switch t[j] {
		case '?', '~', 'M', 'm', 'N', 'n':
			return true
		}
	}
	return false
}

// findClose returns the index of the byte closing an opening at t[start-1],
// counting nested "${"/"$(" pairs; -1 if none.
func findClose(t string, start int, open, close byte) int {
	depth := 0
	for i := start; i < len(t); i++ {
		switch {
		case t[i] == '$' && i+1 < len(t) && t[i+1] == '$':
			i++
		case t[i] == '$' && i+1 < len(t) && t[i+1] == open:
			depth++
			i++
		case t[i] == close:
			if depth == 0 {
				return i
			}
			depth--
		}
	}
	return -1
}

const maxTemplateNesting = 8

// Lookup tables for the sequences that share a parsing shape (read-only). Letters
// are accepted in either case: the tables are indexed by the upper-case letter.
var (
	labelOps   = [256]opKind{'&': opHLabelL, '!': opHLabelR, '*': opDLabelL, '#': opDLabelR}
	channelOps = [256]opKind{'M': opCondM, 'N': opCondN, 'Q': opCondQ, 'C': opCondC, 'T': opTag}
	labelChar  = [...]string{opHLabelL: "&", opHLabelR: "!", opDLabelL: "*", opDLabelR: "#"}

	// plainOps are the sequences with neither a number before nor an argument
	// after. The location conditions carry their location bit in n. The
	// documentation gives $A and $X a second meaning without a number (the whole
	// address, the whole host); we chose the location conditions there, so the
	// substitutions need their number ($0A, $0X ...).
	plainOps = [256]op{
		'U': {kind: opU}, 'D': {kind: opD}, 'H': {kind: opH}, 'L': {kind: opL},
		'\\': {kind: opLower}, '^': {kind: opUpper}, '_': {kind: opOrigCase},
		'W': {kind: opRandom},
		'E': {kind: opCondEnv}, 'B': {kind: opCondHdr}, 'F': {kind: opCondFwd}, 'R': {kind: opCondBack},
		'S': {kind: opCondLoc, n: locRoute}, 'A': {kind: opCondLoc, n: locAt},
		'P': {kind: opCondLoc, n: locPercent}, 'X': {kind: opCondLoc, n: locBang},
	}

	// unsupportedOps are the product's sequences we refuse, with the error for each.
	unsupportedOps = [256]string{
		'[': "$[...] site callouts are not supported",
		']': "$]...[ LDAP lookups are not supported",
		'V': "$V directory domain checks are not supported",
		'Z': "$Z directory domain checks are not supported",
		'.': "$. LDAP failure text is not supported",
	}
)

// parseOps is the lexer of the template language: it turns template text into
// ops. inValue is set for general-database values (see parseTemplate); depth
// counts the ${..} and $(..) around t.
func parseOps(t string, inValue bool, depth int) ([]op, error) {
	if depth > maxTemplateNesting {
		return nil, errors.New("template nesting too deep")
	}
	var ops []op
	lit := func(s string) {
		if n := len(ops); n > 0 && ops[n-1].kind == opLit {
			ops[n-1].s += s
			return
		}
		ops = append(ops, op{kind: opLit, s: s})
	}
	for i := 0; i < len(t); {
		c := t[i]
		switch {
		case c == '%':
			ops = append(ops, op{kind: opPercent})
			i++
			continue
		case c == '@':
			ops = append(ops, op{kind: opAt})
			i++
			continue
		case c == ' ' || c == '\t':
			return nil, errors.New("whitespace in template outside $? text")
		case c != '$':
			j := i
			for j < len(t) && t[j] != '$' && t[j] != '%' && t[j] != '@' && t[j] != ' ' && t[j] != '\t' {
				j++
			}
			lit(t[i:j])
			i = j
			continue
		}
		// c == '$'
		i++
		if i >= len(t) {
			return nil, errors.New("template ends with a lone $")
		}
		// Optional decimal argument.
		j := i
		for j < len(t) && t[j] >= '0' && t[j] <= '9' {
			j++
		}
		digits := t[i:j]
		if j >= len(t) {
			return nil, fmt.Errorf("incomplete substitution $%s", digits)
		}
		c = t[j]
		i = j + 1
		if digits != "" {
			o, next, err := numberedOp(t, i, digits, c)
			if err != nil {
				return nil, err
			}
			ops = append(ops, o)
			i = next
			continue
		}
		if o := plainOps[upper(c)]; o.kind != 0 {
			ops = append(ops, o)
			continue
		}
		if why := unsupportedOps[upper(c)]; why != "" {
			if c == '[' && strings.IndexByte(t[i:], ']') < 0 || c == ']' && strings.IndexByte(t[i:], '[') < 0 {
				return nil, fmt.Errorf("unterminated $%c", c)
			}
			return nil, errors.New(why)
		}
		switch c {
		case '$', '%', '@':
			lit(string(c))
		case '&', '!', '*', '#':
			if i >= len(t) || t[i] < '0' || t[i] > '9' {
				return nil, fmt.Errorf("$%c needs a label number 0-9", c)
			}
			ops = append(ops, op{kind: labelOps[c], n: int32(t[i] - '0')})
			i++
		case '=':
			// $= quotes following material for an LDAP filter. We do no LDAP
			// lookups in rules, so it has nothing to quote for: accepted, no effect.
		case 'M', 'm', 'N', 'n', 'Q', 'q', 'C', 'c', 'T', 't':
			k := i
			for k < len(t) && t[k] != '@' && t[k] != '%' && t[k] != ' ' && t[k] != '\t' && !isArgEnd(t, k) {
				k++
			}
			arg := t[i:k]
			i = k
			kind := channelOps[upper(c)]
			if arg == "" && kind != opTag {
				return nil, fmt.Errorf("$%c needs a channel name", upper(c))
			}
			ops = append(ops, op{kind: kind, s: arg})
		case '?':
			text, k := errText(t, i)
			ops = append(ops, op{kind: opErr, n: 0, s: text})
			i = k
		case '{', '(':
			o, next, err := substitutionOp(t, i, c, inValue, depth)
			if err != nil {
				return nil, err
			}
			if o.kind == opLit {
				lit(o.s)
			} else {
				ops = append(ops, o)
			}
			i = next
		default:
			return nil, fmt.Errorf("unknown substitution $%c", c)
		}
	}
	return ops, nil
}

// substitutionOp parses the ${mapping,argument} (open is '{') or $(key) (open is
// '(') whose body starts at t[i], and returns the op and the offset just after
// the closing bracket. In a general-database value $(key) is not rescanned: the
// op is then the literal text of the sequence.
func substitutionOp(t string, i int, open byte, inValue bool, depth int) (op, int, error) {
	if open == '{' {
		k := findClose(t, i, '{', '}')
		if k < 0 {
			return op{}, 0, errors.New("unterminated ${")
		}
		body := t[i:k]
		comma := strings.IndexByte(body, ',')
		if comma <= 0 {
			return op{}, 0, fmt.Errorf("${%s}: expected ${mapping,argument}", body)
		}
		sub, err := parseOps(body[comma+1:], inValue, depth+1)
		if err != nil {
			return op{}, 0, err
		}
		return op{kind: opMap, s: body[:comma], sub: sub}, k + 1, nil
	}
	k := findClose(t, i, '(', ')')
	if k < 0 {
		return op{}, 0, errors.New("unterminated $(")
	}
	if inValue {
		return op{kind: opLit, s: t[i-2 : k+1]}, k + 1, nil
	}
	sub, err := parseOps(t[i:k], inValue, depth+1)
	if err != nil {
		return op{}, 0, err
	}
	return op{kind: opGeneral, sub: sub}, k + 1, nil
}

// numberedOp parses a sequence with a decimal argument: digits, then the
// character c at t[i-1]. It returns the op and the offset just after the
// sequence.
func numberedOp(t string, i int, digits string, c byte) (op, int, error) {
	if len(digits) > 7 {
		return op{}, 0, fmt.Errorf("number too long in $%s", digits)
	}
	v, _ := strconv.Atoi(digits)
	n := int32(v)
	switch c {
	case 'U', 'u':
		switch n {
		case 0:
			return op{kind: opU0}, i, nil
		case 1:
			return op{kind: opU1}, i, nil
		}
		return op{}, 0, fmt.Errorf("$%sU: only $0U and $1U exist", digits)
	case 'D', 'd':
		return op{kind: opD, n: n}, i, nil
	case 'H', 'h':
		return op{kind: opH, n: n}, i, nil
	case 'A', 'a':
		return op{kind: opAddrChar, n: n}, i, nil
	case 'X', 'x':
		return op{kind: opHostComp, n: n}, i, nil
	case 'M', 'm':
		if n != 1 {
			return op{}, 0, fmt.Errorf("$%sM: only $1M exists", digits)
		}
		return op{kind: opCond1M}, i, nil
	case 'N', 'n':
		if n != 1 {
			return op{}, 0, fmt.Errorf("$%sN: only $1N exists", digits)
		}
		return op{kind: opCond1N}, i, nil
	case '~':
		if n != 1 {
			return op{}, 0, fmt.Errorf("$%s~: only $1~ exists", digits)
		}
		return op{kind: opCheck}, i, nil
	case '?':
		if len(digits) != 7 {
			return op{}, 0, fmt.Errorf("$%s?: the status must have seven digits (x00y00z)", digits)
		}
		text, k := errText(t, i)
		return op{kind: opErr, n: n, s: text}, k, nil
	}
	return op{}, 0, fmt.Errorf("unknown substitution $%s%c", digits, c)
}

// errText returns the $? text starting at i: it runs to the next channel control
// ($N $M $Q $C $T $?) or the end of the template. Unlike the channel-name arguments,
// @ and % do not end it (the product's documentation does not say): error texts often
// name an address.
func errText(t string, i int) (string, int) {
	k := i
	for k < len(t) && !isArgEnd(t, k) {
		k++
	}
	return strings.TrimRight(t[i:k], " \t"), k
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}
