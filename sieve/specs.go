package sieve

import (
	"strings"
)

// spec is the shape of one command or test: what enables it, its tagged and
// positional arguments, its tests and how to compile it.
type spec struct {
	ext      []string // one of these must be required; nil for the base language
	tags     []tagSpec
	args     []valKind // positional arguments
	optional int       // how many positional arguments may be left out
	optFirst bool      // the optional ones are the first (else the last)
	tests    int       // tests: 0 none, 1 exactly one, 2 a list in parentheses
	cmd      func(c *checker, a *callArgs, n node) command
	test     func(c *checker, a *callArgs, n node, subs []test) test
}

func (sp *spec) tag(name string) (tagSpec, bool) {
	for _, t := range sp.tags {
		if t.name == name {
			return t, true
		}
	}
	return tagSpec{}, false
}

// tagSpec is one tagged argument. Tags of one group exclude each other.
type tagSpec struct {
	name  string
	value valKind
	group string
	ext   string
}

func tags(lists ...[]tagSpec) []tagSpec {
	var out []tagSpec
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// The tag sets shared by several tests.
var (
	comparatorTag = []tagSpec{{name: "comparator", value: valString, group: "comparator"}}
	matchTags     = []tagSpec{
		{name: "is", group: "match"}, {name: "contains", group: "match"}, {name: "matches", group: "match"},
		{name: "count", value: valString, group: "match", ext: "relational"},
		{name: "value", value: valString, group: "match", ext: "relational"},
	}
	addressPartTags = []tagSpec{
		{name: "all", group: "part"}, {name: "localpart", group: "part"}, {name: "domain", group: "part"},
		{name: "user", group: "part", ext: "subaddress"}, {name: "detail", group: "part", ext: "subaddress"},
	}
	indexTags = []tagSpec{{name: "index", value: valNumber, ext: "index"}, {name: "last", ext: "index"}}
	flagsTag  = []tagSpec{{name: "flags", value: valStringList, ext: "imap4flags"}}
	copyTag   = []tagSpec{{name: "copy", ext: "copy"}}
	sl        = valStringList
	st        = valString
)

// commandSpecs are the commands other than require, if, elsif and else.
var commandSpecs = map[string]*spec{
	"stop":    {cmd: buildStop},
	"keep":    {tags: flagsTag, cmd: buildKeep},
	"discard": {cmd: buildDiscard},
	"redirect": {tags: tags(copyTag, []tagSpec{
		{name: "resent", group: "resent"}, {name: "noresent", group: "resent"},
		{name: "resetmailfrom", group: "mailfrom"}, {name: "keepmailfrom", group: "mailfrom"},
		{name: "notify", value: sl},
	}), args: []valKind{st}, cmd: buildRedirect},
	"fileinto": {ext: []string{"fileinto"}, tags: tags(copyTag, flagsTag), args: []valKind{st}, cmd: buildFileInto},
	"reject":   {ext: []string{"reject"}, args: []valKind{st}, cmd: buildReject},
	"ereject":  {ext: []string{"ereject"}, args: []valKind{st}, cmd: buildReject},
	"vacation": {ext: []string{"vacation"}, tags: []tagSpec{
		{name: "days", value: valNumber}, {name: "subject", value: st}, {name: "from", value: st},
		{name: "addresses", value: sl}, {name: "mime"}, {name: "handle", value: st},
	}, args: []valKind{st}, cmd: buildVacation},
	"set": {ext: []string{"variables"}, tags: []tagSpec{
		{name: "lower", group: "case"}, {name: "upper", group: "case"},
		{name: "lowerfirst", group: "first"}, {name: "upperfirst", group: "first"},
		{name: "quotewildcard"}, {name: "length"},
	}, args: []valKind{st, st}, cmd: buildSet},
	"setflag":    {ext: []string{"imap4flags"}, args: []valKind{st, sl}, optional: 1, optFirst: true, cmd: buildFlag},
	"addflag":    {ext: []string{"imap4flags"}, args: []valKind{st, sl}, optional: 1, optFirst: true, cmd: buildFlag},
	"removeflag": {ext: []string{"imap4flags"}, args: []valKind{st, sl}, optional: 1, optFirst: true, cmd: buildFlag},
	"addheader": {ext: []string{"editheader", "addheader"}, tags: []tagSpec{{name: "last"}},
		args: []valKind{st, st}, optional: 1, cmd: buildAddHeader},
	"deleteheader": {ext: []string{"editheader"}, tags: tags(
		[]tagSpec{{name: "index", value: valNumber}, {name: "last"}}, comparatorTag, matchTags),
		args: []valKind{st, sl}, optional: 1, cmd: buildDeleteHeader},
	"addtag":     {ext: []string{"addtag"}, args: []valKind{st}, cmd: buildAddTag},
	"spamadjust": {ext: []string{"spamtest"}, args: []valKind{st}, cmd: buildSpamAdjust},
	"jettison":   {ext: []string{"jettison"}, cmd: buildJettison},
}

// testSpecs are the tests.
var testSpecs = map[string]*spec{
	"true":  {test: buildConst},
	"false": {test: buildConst},
	"not":   {tests: 1, test: buildNot},
	"allof": {tests: 2, test: buildAllAny},
	"anyof": {tests: 2, test: buildAllAny},
	"address": {tags: tags(comparatorTag, matchTags, addressPartTags, indexTags),
		args: []valKind{sl, sl}, test: buildAddress},
	"envelope": {ext: []string{"envelope"}, tags: tags(comparatorTag, matchTags, addressPartTags),
		args: []valKind{sl, sl}, test: buildEnvelope},
	"header": {tags: tags(comparatorTag, matchTags, indexTags), args: []valKind{sl, sl}, test: buildHeader},
	"exists": {args: []valKind{sl}, test: buildExists},
	"size": {tags: []tagSpec{{name: "over", group: "size"}, {name: "under", group: "size"}},
		args: []valKind{valNumber}, test: buildSize},
	"body": {ext: []string{"body"}, tags: tags(comparatorTag, matchTags, []tagSpec{
		{name: "raw", group: "transform"}, {name: "content", value: sl, group: "transform"},
		{name: "text", group: "transform"},
	}), args: []valKind{sl}, test: buildBody},
	"string":  {ext: []string{"variables"}, tags: tags(comparatorTag, matchTags), args: []valKind{sl, sl}, test: buildString},
	"hasflag": {ext: []string{"imap4flags"}, tags: tags(comparatorTag, matchTags), args: []valKind{sl, sl}, optional: 1, optFirst: true, test: buildHasFlag},
	"date": {ext: []string{"date"}, tags: tags(comparatorTag, matchTags, indexTags, []tagSpec{
		{name: "zone", value: st, group: "zone"}, {name: "originalzone", group: "zone"},
	}), args: []valKind{st, st, sl}, test: buildDate},
	"currentdate": {ext: []string{"date"}, tags: tags(comparatorTag, matchTags, []tagSpec{
		{name: "zone", value: st, group: "zone"},
	}), args: []valKind{st, sl}, test: buildCurrentDate},
	"spamtest": {ext: []string{"spamtest"}, tags: tags(comparatorTag, matchTags, []tagSpec{
		{name: "percent", ext: "spamtestplus"},
	}), args: []valKind{st}, test: buildSpamTest},
	"virustest": {ext: []string{"virustest"}, tags: tags(comparatorTag, matchTags), args: []valKind{st}, test: buildVirusTest},
}

// --- helpers the builders share ---

// matcher reads the comparator and match type of a test (RFC 5228 §2.7) and
// checks that they go together.
func (c *checker) matcher(a *callArgs) matcher {
	m := matcher{mt: mtIs, cmp: cmpCasemap}
	if arg, ok := a.tags["comparator"]; ok {
		name := strings.ToLower(arg.Strings[0])
		cmp, known := comparatorNames[name]
		switch {
		case !known:
			c.errorf(arg.Pos, "unknown comparator %q", arg.Strings[0])
		case cmp == cmpNumeric && !c.caps["comparator-i;ascii-numeric"]:
			c.errorf(arg.Pos, "comparator %q needs require %q", name, "comparator-"+name)
		}
		m.cmp = cmp
	}
	for _, t := range []string{"is", "contains", "matches", "count", "value"} {
		if _, ok := a.tags[t]; !ok {
			continue
		}
		m.mt = map[string]matchType{"is": mtIs, "contains": mtContains, "matches": mtMatches,
			"count": mtCount, "value": mtValue}[t]
		if arg := a.tags[t]; arg.Kind == ArgString {
			op, ok := relOps[strings.ToLower(arg.Strings[0])]
			if !ok {
				c.errorf(arg.Pos, "unknown relational operator %q (gt, ge, lt, le, eq or ne)", arg.Strings[0])
			}
			m.rel = op
		}
		if m.cmp == cmpNumeric && (m.mt == mtContains || m.mt == mtMatches) {
			c.errorf(a.tags[t].Pos, "comparator \"i;ascii-numeric\" cannot be used with :%s", t)
		}
	}
	return m
}

// keys compiles a key list for a matcher.
func (c *checker) keys(m matcher, arg *Argument) []key {
	out := make([]key, len(arg.Strings))
	for i, s := range arg.Strings {
		k := key{s: c.compileStr(s, arg.Pos)}
		if k.s.parts == nil {
			k.folded = s
			if m.cmp == cmpCasemap {
				k.folded = foldASCII(s)
			}
			if m.mt == mtMatches {
				k.glob = compileGlob(k.folded)
			}
		}
		out[i] = k
	}
	return out
}

// strs compiles the strings of an argument.
func (c *checker) strs(arg *Argument) []str {
	out := make([]str, len(arg.Strings))
	for i, s := range arg.Strings {
		out[i] = c.compileStr(s, arg.Pos)
	}
	return out
}

// str compiles a single-string argument.
func (c *checker) str(arg *Argument) str { return c.compileStr(arg.Strings[0], arg.Pos) }

// hnames compiles header field names; a constant name must be a valid one.
func (c *checker) hnames(arg *Argument) []hname {
	out := make([]hname, 0, len(arg.Strings))
	for _, s := range arg.Strings {
		h := hname{s: c.compileStr(s, arg.Pos), slot: -1}
		if h.s.parts == nil {
			if !validFieldName(s) {
				c.errorf(arg.Pos, "%q is not a valid header field name", s)
			}
			h.s.lit = strings.ToLower(s)
			h.slot = c.slot(s)
		}
		out = append(out, h)
	}
	return out
}

// validFieldName: RFC 5322 ftext, printable ASCII but ":".
func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 || s[i] == ':' {
			return false
		}
	}
	return true
}

// index reads :index and :last (RFC 5260 §4).
func (c *checker) index(a *callArgs) (int, bool) {
	arg, ok := a.tags["index"]
	if !ok {
		if l, ok := a.tags["last"]; ok {
			c.errorf(l.Pos, ":last needs :index")
		}
		return 0, false
	}
	if arg.Number < 1 || arg.Number > 1<<20 {
		c.errorf(arg.Pos, ":index must be from 1 to %d", 1<<20)
		return 0, false
	}
	return int(arg.Number), a.has("last")
}

// addressPart is which part of an address a test compares.
type addressPart uint8

const (
	partAll addressPart = iota
	partLocal
	partDomain
	partUser
	partDetail
)

func (c *checker) addressPart(a *callArgs) addressPart {
	for name, p := range map[string]addressPart{"localpart": partLocal, "domain": partDomain,
		"user": partUser, "detail": partDetail} {
		if a.has(name) {
			return p
		}
	}
	return partAll
}

// constant reports whether an argument's string is fixed when the script is
// compiled, and says so when an argument must be.
func (c *checker) constant(arg *Argument, what string) (string, bool) {
	s := arg.Strings[0]
	if c.compileStr(s, arg.Pos).parts != nil {
		c.errorf(arg.Pos, "%s cannot contain variables", what)
		return s, false
	}
	return s, true
}
