package sieve

import (
	"strconv"
	"strings"
)

// imap4flags (RFC 5232): an internal variable holds the flags keep and
// fileinto set when they have no :flags; setflag/addflag/removeflag change it,
// or a named variable when one is given (which needs "variables").

// canonicalFlags adds the flags of more (each string may hold several,
// separated by spaces) to list, dropping duplicates regardless of case.
func canonicalFlags(list []string, more []string) []string {
	for _, s := range more {
		for _, f := range strings.Fields(s) {
			dup := false
			for _, have := range list {
				if strings.EqualFold(have, f) {
					dup = true
					break
				}
			}
			if !dup {
				list = append(list, f)
			}
		}
	}
	return list
}

func removeFlags(list []string, gone []string) []string {
	out := list[:0]
	for _, f := range list {
		drop := false
		for _, g := range gone {
			if strings.EqualFold(f, g) {
				drop = true
				break
			}
		}
		if !drop {
			out = append(out, f)
		}
	}
	return out
}

type cmdFlag struct {
	node
	variable string // "" for the internal variable
	flags    []str
}

func buildFlag(c *checker, a *callArgs, n node) command {
	f := &cmdFlag{node: n}
	list := a.pos[len(a.pos)-1]
	if len(a.pos) == 2 {
		name, ok := c.variableName(a.pos[0])
		if ok {
			f.variable = name
		}
	}
	f.flags = c.strs(list)
	return f
}

// variableName checks the name of a variable to set: an identifier, not a
// match variable, and only with "variables" required.
func (c *checker) variableName(arg *Argument) (string, bool) {
	name := arg.Strings[0]
	switch {
	case !c.caps["variables"]:
		c.errorf(arg.Pos, "a variable name needs require %q", "variables")
	case !isIdentifier(name):
		c.errorf(arg.Pos, "%q is not a valid variable name", name)
	default:
		return strings.ToLower(name), true
	}
	return "", false
}

func (c *cmdFlag) run(e *eval) error {
	given := canonicalFlags(nil, e.expandList(c.flags))
	var cur []string
	if c.variable == "" {
		cur = e.flags
	} else {
		cur = strings.Fields(e.vars[c.variable])
	}
	switch c.name {
	case "setflag":
		cur = append(cur[:0], given...)
	case "addflag":
		cur = canonicalFlags(cur, given)
	default:
		cur = removeFlags(cur, given)
	}
	if c.variable == "" {
		e.flags = cur
		return nil
	}
	return e.setVar(c.pos, c.variable, strings.Join(cur, " "))
}

type testHasFlag struct {
	node
	m     matcher
	vars  []string // nil: the internal variable
	flags []key
}

func buildHasFlag(c *checker, a *callArgs, n node, _ []test) test {
	t := &testHasFlag{node: n, m: c.matcher(a)}
	if len(a.pos) == 2 {
		for _, s := range a.pos[0].Strings {
			name, ok := c.variableName(&Argument{Pos: a.pos[0].Pos, Strings: []string{s}})
			if ok {
				t.vars = append(t.vars, name)
			}
		}
	}
	t.flags = c.keys(t.m, a.pos[len(a.pos)-1])
	return t
}

// eval compares each flag set with the keys (RFC 5232 §4).
func (t *testHasFlag) eval(e *eval) (bool, error) {
	var have []string
	if t.vars == nil {
		have = e.flags
	} else {
		for _, v := range t.vars {
			have = canonicalFlags(have, []string{e.vars[v]})
		}
	}
	ta := tally{m: &t.m, keys: t.flags}
	for _, f := range have {
		if !ta.add(e, value{s: f}) {
			break
		}
	}
	return ta.result(e)
}

// --- set (RFC 5229 §4) ---

func buildSet(c *checker, a *callArgs, n node) command {
	s := &cmdSet{node: n, value: c.str(a.pos[1])}
	name, ok := c.variableName(a.pos[0])
	if ok {
		s.name = name
	}
	for tag, bit := range map[string]int{"lower": modLower, "upper": modUpper, "lowerfirst": modLowerFirst,
		"upperfirst": modUpperFirst, "quotewildcard": modQuoteWildcard, "length": modLength} {
		if a.has(tag) {
			s.mods |= bit
		}
	}
	return s
}

// firstReal finds the first real number in s ("-1.5", "+2", ".5"), 0 if none.
func firstReal(s string) float64 {
	for i := 0; i < len(s); i++ {
		j := i
		if s[j] == '+' || s[j] == '-' {
			j++
		}
		k := j
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			k++
		}
		digits := k > j
		if k < len(s) && s[k] == '.' {
			m := k + 1
			for m < len(s) && s[m] >= '0' && s[m] <= '9' {
				m++
			}
			if m > k+1 {
				digits, k = true, m
			}
		}
		if !digits {
			continue
		}
		v, err := strconv.ParseFloat(s[i:k], 64)
		if err == nil {
			return v
		}
	}
	return 0
}
