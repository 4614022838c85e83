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

// Lookup tables for the sequences that share a parsing shape (read-only).
var (
	labelOps   = [256]opKind{'&': opHLabelL, '!': opHLabelR, '*': opDLabelL, '#': opDLabelR}
	channelOps = [256]opKind{'M': opCondM, 'N': opCondN, 'Q': opCondQ, 'C': opCondC, 'T': opTag}
	labelChar  = [...]string{opHLabelL: "&", opHLabelR: "!", opDLabelL: "*", opDLabelR: "#"}
)

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
		n := int32(-1)
		if digits != "" && len(digits) <= 7 {
			v, _ := strconv.Atoi(digits)
			n = int32(v)
		} else if digits != "" {
			return nil, fmt.Errorf("number too long in $%s", digits)
		}
		c = t[j]
		i = j + 1
		if digits != "" {
			switch c {
			case 'U', 'u':
				switch n {
				case 0:
					ops = append(ops, op{kind: opU0})
				case 1:
					ops = append(ops, op{kind: opU1})
				default:
					return nil, fmt.Errorf("$%sU: only $0U and $1U exist", digits)
				}
			case 'D', 'd':
				ops = append(ops, op{kind: opD, n: n})
			case 'H', 'h':
				ops = append(ops, op{kind: opH, n: n})
			case 'A', 'a':
				ops = append(ops, op{kind: opAddrChar, n: n})
			case 'X', 'x':
				ops = append(ops, op{kind: opHostComp, n: n})
			case 'M', 'm':
				if n != 1 {
					return nil, fmt.Errorf("$%sM: only $1M exists", digits)
				}
				ops = append(ops, op{kind: opCond1M})
			case 'N', 'n':
				if n != 1 {
					return nil, fmt.Errorf("$%sN: only $1N exists", digits)
				}
				ops = append(ops, op{kind: opCond1N})
			case '~':
				if n != 1 {
					return nil, fmt.Errorf("$%s~: only $1~ exists", digits)
				}
				ops = append(ops, op{kind: opCheck})
			case '?':
				if len(digits) != 7 {
					return nil, fmt.Errorf("$%s?: the status must have seven digits (x00y00z)", digits)
				}
				text, k := errText(t, i)
				ops = append(ops, op{kind: opErr, n: n, s: text})
				i = k
			default:
				return nil, fmt.Errorf("unknown substitution $%s%c", digits, c)
			}
			continue
		}
		switch c {
		case '$', '%', '@':
			lit(string(c))
		case 'U', 'u':
			ops = append(ops, op{kind: opU})
		case 'D', 'd':
			ops = append(ops, op{kind: opD, n: 0})
		case 'H', 'h':
			ops = append(ops, op{kind: opH, n: 0})
		case 'L', 'l':
			ops = append(ops, op{kind: opL})
		case '&', '!', '*', '#':
			if i >= len(t) || t[i] < '0' || t[i] > '9' {
				return nil, fmt.Errorf("$%c needs a label number 0-9", c)
			}
			k := labelOps[c]
			ops = append(ops, op{kind: k, n: int32(t[i] - '0')})
			i++
		case '\\':
			ops = append(ops, op{kind: opLower})
		case '^':
			ops = append(ops, op{kind: opUpper})
		case '_':
			ops = append(ops, op{kind: opOrigCase})
		case '=':
			// $= quotes following material for an LDAP filter. We do no LDAP
			// lookups in rules, so it has nothing to quote for: accepted, no effect.
		case 'W', 'w':
			ops = append(ops, op{kind: opRandom})
		case 'E', 'e':
			ops = append(ops, op{kind: opCondEnv})
		case 'B', 'b':
			ops = append(ops, op{kind: opCondHdr})
		case 'F', 'f':
			ops = append(ops, op{kind: opCondFwd})
		case 'R', 'r':
			ops = append(ops, op{kind: opCondBack})
		// [inf] $A and $X without a number are the location conditions; the
		// substitutions need their number ($0A, $0X ...).
		case 'S', 's':
			ops = append(ops, op{kind: opCondLoc, n: locRoute})
		case 'A', 'a':
			ops = append(ops, op{kind: opCondLoc, n: locAt})
		case 'P', 'p':
			ops = append(ops, op{kind: opCondLoc, n: locPercent})
		case 'X', 'x':
			ops = append(ops, op{kind: opCondLoc, n: locBang})
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
		case '{':
			k := findClose(t, i, '{', '}')
			if k < 0 {
				return nil, errors.New("unterminated ${")
			}
			body := t[i:k]
			comma := strings.IndexByte(body, ',')
			if comma <= 0 {
				return nil, fmt.Errorf("${%s}: expected ${mapping,argument}", body)
			}
			sub, err := parseOps(body[comma+1:], inValue, depth+1)
			if err != nil {
				return nil, err
			}
			ops = append(ops, op{kind: opMap, s: body[:comma], sub: sub})
			i = k + 1
		case '(':
			k := findClose(t, i, '(', ')')
			if k < 0 {
				return nil, errors.New("unterminated $(")
			}
			if inValue {
				// General-database values are not rescanned for $(...).
				lit(t[i-2 : k+1])
				i = k + 1
				continue
			}
			sub, err := parseOps(t[i:k], inValue, depth+1)
			if err != nil {
				return nil, err
			}
			ops = append(ops, op{kind: opGeneral, sub: sub})
			i = k + 1
		case '[':
			if strings.IndexByte(t[i:], ']') < 0 {
				return nil, errors.New("unterminated $[")
			}
			return nil, errors.New("$[...] site callouts are not supported")
		case ']':
			if strings.IndexByte(t[i:], '[') < 0 {
				return nil, errors.New("unterminated $]")
			}
			return nil, errors.New("$]...[ LDAP lookups are not supported")
		case 'V', 'v':
			return nil, errors.New("$V directory domain checks are not supported")
		case 'Z', 'z':
			return nil, errors.New("$Z directory domain checks are not supported")
		case '.':
			return nil, errors.New("$. LDAP failure text is not supported")
		default:
			return nil, fmt.Errorf("unknown substitution $%c", c)
		}
	}
	return ops, nil
}

// errText returns the $? text starting at i: it runs to the next channel control
// ($N $M $Q $C $T $?) or the end of the template. [inf] Unlike the channel-name
// arguments, @ and % do not end it: error texts often name an address.
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
