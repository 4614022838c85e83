package sieve

import (
	"errors"
	"fmt"
	"strings"
)

// Options configure Compile.
type Options struct {
	Limits Limits
	// Extensions lists the capabilities scripts may require; nil means every
	// one the package supports (Extensions()). The MTA may, for example, refuse
	// "vacation" in an MTA-wide filter.
	Extensions []string
	// Implicit lists capabilities a script has without requiring them. The
	// product's own documentation writes system scriptlets such as
	// `data:,addtag "[SPAM]";` without a require, so the MTA grants its own
	// extensions implicitly to the scripts its administrator writes; a user's
	// script gets none and must require what it uses (RFC 5228 §3.2).
	Implicit []string
}

// extensionNames are the capabilities this package implements. "addheader",
// "addtag" and "jettison" are the product's own; "spamadjust" has none of its
// own (it needs "spamtest").
var extensionNames = []string{
	"addheader", "addtag", "body", "comparator-i;ascii-casemap", "comparator-i;ascii-numeric",
	"comparator-i;octet", "copy", "date", "editheader", "encoded-character", "envelope",
	"ereject", "fileinto", "imap4flags", "index", "jettison", "relational", "reject",
	"spamtest", "spamtestplus", "subaddress", "vacation", "variables", "virustest",
}

// Extensions lists the capabilities a script may require, sorted.
func Extensions() []string { return append([]string(nil), extensionNames...) }

// Compile parses and checks a script. The error, when there is one, is an
// ErrorList of every problem found, each at its file:line:column.
func Compile(name string, src []byte, opts Options) (*Script, error) {
	f, err := Parse(name, src, opts.Limits)
	if err != nil {
		return nil, err
	}
	return Check(f, opts)
}

// Check checks a parsed script and compiles it for evaluation. When the
// script requires "encoded-character", the strings of f are decoded in place.
func Check(f *File, opts Options) (*Script, error) {
	c := &checker{
		file:    f.Name,
		limits:  opts.Limits.withDefaults(),
		allowed: map[string]bool{},
		caps:    map[string]bool{},
		slotOf:  map[string]int{},
	}
	names := opts.Extensions
	if names == nil {
		names = extensionNames
	}
	for _, n := range names {
		c.allowed[strings.ToLower(n)] = true
	}
	for _, n := range opts.Implicit {
		if low := strings.ToLower(n); c.allowed[low] {
			c.caps[low] = true
		}
	}
	code := c.top(f.Commands)
	if len(c.errs) > 0 {
		sortErrors(c.errs)
		return nil, c.errs
	}
	s := &Script{name: f.Name, code: code, limits: c.limits, caps: c.caps,
		slotOf: c.slotOf, slotNames: c.slotNames}
	s.pool = newPool(s)
	return s, nil
}

// checker holds what checking a script has learnt so far.
type checker struct {
	file      string
	limits    Limits
	allowed   map[string]bool
	caps      map[string]bool // required by the script
	errs      ErrorList
	count     int
	slotOf    map[string]int
	slotNames []string
}

func (c *checker) errorf(at Pos, format string, args ...any) {
	c.errs = append(c.errs, &Error{Pos: at, Msg: fmt.Sprintf(format, args...)})
}

// top checks the script's commands: the require commands first, then the rest.
func (c *checker) top(cmds []*Command) []command {
	i := 0
	for ; i < len(cmds) && cmds[i].Name == "require"; i++ {
		c.require(cmds[i])
	}
	if c.caps["spamtestplus"] {
		c.caps["spamtest"] = true
	}
	if c.caps["encoded-character"] {
		c.decodeEncoded(cmds[i:])
	}
	return c.block(cmds[i:])
}

// require records the capabilities a require command names (RFC 5228 §3.2).
func (c *checker) require(cmd *Command) {
	if len(cmd.Args) != 1 || cmd.Args[0].Kind < ArgString || len(cmd.Tests) > 0 || cmd.HasBlock {
		c.errorf(cmd.Pos, "require takes one string list of capabilities")
		return
	}
	for _, name := range cmd.Args[0].Strings {
		low := strings.ToLower(name)
		switch {
		case !c.allowed[low] && contains(extensionNames, low):
			c.errorf(cmd.Args[0].Pos, "extension %q is not allowed here", name)
		case !c.allowed[low]:
			c.errorf(cmd.Args[0].Pos, "unsupported extension %q", name)
		default:
			c.caps[low] = true
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// decodeEncoded applies "encoded-character" to every string of the script.
func (c *checker) decodeEncoded(cmds []*Command) {
	var args func([]*Argument)
	var tests func([]*Test)
	args = func(as []*Argument) {
		for _, a := range as {
			for i, s := range a.Strings {
				out, problem := decodeEncoded(s)
				if problem != "" {
					c.errorf(a.Pos, "%s", problem)
					continue
				}
				a.Strings[i] = out
			}
		}
	}
	tests = func(ts []*Test) {
		for _, t := range ts {
			args(t.Args)
			tests(t.Tests)
		}
	}
	for _, cmd := range cmds {
		args(cmd.Args)
		tests(cmd.Tests)
		c.decodeEncoded(cmd.Block)
	}
}

// block checks a list of commands and compiles it; if/elsif/else chains become
// one node.
func (c *checker) block(cmds []*Command) []command {
	var out []command
	var chain *cmdIf
	for _, cmd := range cmds {
		c.countNode(cmd.Pos)
		switch cmd.Name {
		case "require":
			c.errorf(cmd.Pos, "require must come before any other command, at the top of the script")
			chain = nil
		case "if":
			chain = &cmdIf{node: node{cmd.Pos, "if"}}
			chain.branches = append(chain.branches, c.branch(cmd))
			out = append(out, chain)
		case "elsif", "else":
			if chain == nil || chain.hasElse {
				c.errorf(cmd.Pos, "%s must follow if or elsif", cmd.Name)
				c.branch(cmd)
				continue
			}
			chain.branches = append(chain.branches, c.branch(cmd))
			if cmd.Name == "else" {
				chain.hasElse = true
			}
		default:
			chain = nil
			if n := c.command(cmd); n != nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// countNode counts a command or test against Limits.MaxCommands; the error is
// given once, at the first one too many.
func (c *checker) countNode(at Pos) {
	c.count++
	if c.count == c.limits.MaxCommands+1 {
		c.errorf(at, "script has more than %d commands and tests", c.limits.MaxCommands)
	}
}

// branch checks one if, elsif or else.
func (c *checker) branch(cmd *Command) ifBranch {
	b := ifBranch{}
	if len(cmd.Args) > 0 {
		c.errorf(cmd.Args[0].Pos, "%s takes no %s", cmd.Name, cmd.Args[0].describe())
	}
	switch {
	case cmd.Name == "else" && len(cmd.Tests) > 0:
		c.errorf(cmd.Tests[0].Pos, "else takes no test")
	case cmd.Name != "else" && len(cmd.Tests) == 0:
		c.errorf(cmd.Pos, "%s needs a test", cmd.Name)
	case cmd.Name != "else" && cmd.TestList:
		c.errorf(cmd.Tests[0].Pos, "%s takes one test, not a list in parentheses (use allof or anyof)", cmd.Name)
	case cmd.Name != "else":
		b.test = c.test(cmd.Tests[0])
	}
	if !cmd.HasBlock {
		c.errorf(cmd.Pos, "%s needs a block in braces", cmd.Name)
	}
	b.block = c.block(cmd.Block)
	return b
}

// callArgs are a command's or test's arguments sorted out against its spec.
type callArgs struct {
	name string
	at   Pos
	tags map[string]*Argument // the tag's value, or the tag itself when it takes none
	pos  []*Argument
}

func (a *callArgs) has(tag string) bool { _, ok := a.tags[tag]; return ok }

// command checks a command other than require/if/elsif/else.
func (c *checker) command(cmd *Command) command {
	sp, ok := commandSpecs[cmd.Name]
	if !ok {
		if _, isTest := testSpecs[cmd.Name]; isTest {
			c.errorf(cmd.Pos, "%q is a test, not a command", cmd.Name)
		} else {
			c.errorf(cmd.Pos, "unknown command %q", cmd.Name)
		}
		return nil
	}
	if !c.needs(cmd.Pos, "command", cmd.Name, sp.ext) {
		return nil
	}
	if len(cmd.Tests) > 0 {
		c.errorf(cmd.Tests[0].Pos, "command %q takes no test, found %q", cmd.Name, cmd.Tests[0].Name)
	}
	if cmd.HasBlock {
		c.errorf(cmd.Pos, "command %q takes no block", cmd.Name)
	}
	a, ok := c.args(cmd.Name, cmd.Pos, cmd.Args, sp)
	if !ok {
		return nil
	}
	return sp.cmd(c, a, node{cmd.Pos, cmd.Name})
}

// test checks a test and compiles it.
func (c *checker) test(t *Test) test {
	c.countNode(t.Pos)
	sp, ok := testSpecs[t.Name]
	if !ok {
		if _, isCmd := commandSpecs[t.Name]; isCmd || t.Name == "if" || t.Name == "require" {
			c.errorf(t.Pos, "%q is a command, not a test", t.Name)
		} else {
			c.errorf(t.Pos, "unknown test %q", t.Name)
		}
		return nil
	}
	if !c.needs(t.Pos, "test", t.Name, sp.ext) {
		return nil
	}
	var subs []test
	switch {
	case sp.tests == 0 && len(t.Tests) > 0:
		// Most often a missing block or semicolon ("if true keep;"): the test
		// that follows is not looked at, to keep to one message.
		c.errorf(t.Tests[0].Pos, "test %q takes no test, found %q", t.Name, t.Tests[0].Name)
		return nil
	case sp.tests == 1 && (len(t.Tests) != 1 || t.TestList):
		c.errorf(t.Pos, "test %q takes exactly one test", t.Name)
	case sp.tests == 2 && !t.TestList:
		c.errorf(t.Pos, "test %q takes a list of tests in parentheses", t.Name)
	}
	for _, sub := range t.Tests {
		subs = append(subs, c.test(sub))
	}
	a, ok := c.args(t.Name, t.Pos, t.Args, sp)
	if !ok {
		return nil
	}
	return sp.test(c, a, node{t.Pos, t.Name}, subs)
}

// needs checks that one of the capabilities a command or test needs was required.
func (c *checker) needs(at Pos, kind, name string, ext []string) bool {
	if len(ext) == 0 {
		return true
	}
	for _, e := range ext {
		if c.caps[e] {
			return true
		}
	}
	if !c.allowed[ext[0]] {
		c.errorf(at, "%s %q is not available here (extension %q is not allowed)", kind, name, ext[0])
		return false
	}
	names := make([]string, len(ext))
	for i, e := range ext {
		names[i] = fmt.Sprintf("%q", e)
	}
	c.errorf(at, "%s %q needs require %s", kind, name, strings.Join(names, " or "))
	return false
}

// args sorts out tagged and positional arguments against the spec: every tag
// known and required for, a value after the tags that take one, at most one
// tag of each group, then the positional arguments' number and kinds.
func (c *checker) args(name string, at Pos, list []*Argument, sp *spec) (*callArgs, bool) {
	a := &callArgs{name: name, at: at, tags: map[string]*Argument{}}
	ok := true
	groups := map[string]string{}
	for i := 0; i < len(list); i++ {
		arg := list[i]
		if arg.Kind != ArgTag {
			a.pos = append(a.pos, arg)
			continue
		}
		if len(a.pos) > 0 {
			c.errorf(arg.Pos, "tagged argument :%s must come before the positional arguments of %q", arg.Tag, name)
			ok = false
		}
		ts, known := sp.tag(arg.Tag)
		switch {
		case !known:
			c.errorf(arg.Pos, "unknown tagged argument :%s for %q", arg.Tag, name)
			ok = false
			continue
		case ts.ext != "" && !c.caps[ts.ext]:
			c.errorf(arg.Pos, ":%s needs require %q", arg.Tag, ts.ext)
			ok = false
		case a.has(arg.Tag):
			c.errorf(arg.Pos, ":%s is given twice", arg.Tag)
			ok = false
		case ts.group != "" && groups[ts.group] != "":
			c.errorf(arg.Pos, ":%s cannot be used with :%s", arg.Tag, groups[ts.group])
			ok = false
		}
		if ts.group != "" && groups[ts.group] == "" {
			groups[ts.group] = arg.Tag
		}
		a.tags[arg.Tag] = arg
		if ts.value == valNone {
			continue
		}
		if i+1 >= len(list) || !ts.value.accepts(list[i+1]) {
			c.errorf(arg.Pos, ":%s needs a %s after it", arg.Tag, ts.value)
			ok = false
			if i+1 < len(list) && list[i+1].Kind != ArgTag {
				i++ // the wrong value, not a positional argument
			}
			continue
		}
		i++
		a.tags[arg.Tag] = list[i]
	}
	return a, c.positional(a, sp) && ok
}

// positional checks the number and kinds of the positional arguments. With
// optFirst the optional ones are at the front (hasflag's variable list).
func (c *checker) positional(a *callArgs, sp *spec) bool {
	n, min := len(a.pos), len(sp.args)-sp.optional
	if n < min || n > len(sp.args) {
		want := fmt.Sprintf("%d positional arguments", len(sp.args))
		switch {
		case len(sp.args) == 0:
			want = "no positional argument"
		case sp.optional > 0:
			want = fmt.Sprintf("%d to %d positional arguments", min, len(sp.args))
		case len(sp.args) == 1:
			want = "1 positional argument"
		}
		where := a.at
		if n > len(sp.args) {
			where = a.pos[len(sp.args)].Pos
		}
		c.errorf(where, "%q takes %s, found %d", a.name, want, n)
		return false
	}
	kinds := sp.args[:n]
	if sp.optFirst {
		kinds = sp.args[len(sp.args)-n:]
	}
	ok := true
	for i, k := range kinds {
		if !k.accepts(a.pos[i]) {
			c.errorf(a.pos[i].Pos, "argument %d of %q must be a %s, found %s", i+1, a.name, k, a.pos[i].describe())
			ok = false
		}
	}
	return ok
}

// valKind is the kind of value an argument must have.
type valKind uint8

const (
	valNone valKind = iota
	valString
	valStringList // a single string is a list of one
	valNumber
)

func (k valKind) String() string {
	switch k {
	case valString:
		return "string"
	case valStringList:
		return "string list"
	case valNumber:
		return "number"
	}
	return "nothing"
}

func (k valKind) accepts(a *Argument) bool {
	switch k {
	case valString:
		return a.Kind == ArgString
	case valStringList:
		return a.Kind == ArgString || a.Kind == ArgStringList
	case valNumber:
		return a.Kind == ArgNumber
	}
	return false
}

// slot gives a constant header field name its slot (see Script.slotOf).
func (c *checker) slot(name string) int {
	low := strings.ToLower(name)
	if sl, ok := c.slotOf[low]; ok {
		return sl
	}
	c.slotOf[low] = len(c.slotNames)
	c.slotNames = append(c.slotNames, low)
	return len(c.slotNames) - 1
}

// asErrorList turns any error of Parse into an ErrorList.
func asErrorList(err error) ErrorList {
	var l ErrorList
	if errors.As(err, &l) {
		return l
	}
	var e *Error
	if errors.As(err, &e) {
		return ErrorList{e}
	}
	return ErrorList{{Msg: err.Error()}}
}
