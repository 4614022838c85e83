package compiler

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"mtad.dev/mta/cnf"
)

// argKind says how many words after a channel keyword are its arguments and what
// they must look like. Grouping words into keywords is the compiler's job (the cnf
// parser only splits the line), so the argument shapes of the keyword table
// (keywordtable.go) decide it.
type argKind uint8

const (
	argNone      argKind = iota
	argInt               // exactly one integer
	argOptInt            // an integer if the next word is one
	argWord              // exactly one word (pool name, host, URL ...)
	argChannel           // exactly one word naming a channel of the table
	argDurations         // 1..8 ISO 8601 periods (backoff)
	argInts              // 1..5 increasing integers (notices)
	argIPs               // 1..n IP addresses (nameservers)
	argHosts             // one host, optionally a second (defaulthost D [D2])
)

// keywordSignificant is how many characters of a keyword the product compares (its
// documentation says 32): "maxjobsXYZ..." beyond 32 characters still matches.
const keywordSignificant = 32

// Limits the product's documentation gives: backoff takes at most 8 periods,
// notices at most 5 ages, and a pool name is at most 12 characters.
const (
	maxBackoffValues = 8
	maxNoticeValues  = 5
	maxPoolNameLen   = 12
)

// keywordSpec declares one channel keyword, once: how its arguments are read, what
// it does to the channel, and, when it does less than the product's documentation
// says, why (cnbuild's warning and docs/configuration.md both come from here).
type keywordSpec struct {
	name string
	args argKind
	// check, when set, validates the argument further than its shape: the
	// problem, "" when there is none.
	check func(arg string) string
	// set records the keyword in the channel; nil when the keyword changes
	// nothing. A keyword has a setter or an effect class, or both (a keyword
	// whose setter covers only part of what the product does).
	set func(c *ChannelConfig, k Keyword)
	// effect is zero for a keyword that does what the product's documentation says;
	// otherwise it says why the keyword (or the part of it that set does not cover)
	// has no effect, and why is the reason cnbuild and the documentation give.
	effect effectClass
	why    string
	// asArgs are the arguments for which a notImplemented keyword asks for what
	// this version does anyway (no warning then).
	asArgs []string
}

// keywordIndex finds a keyword's spec by its full lower-case name.
var keywordIndex = indexKeywords(keywordSpecs)

func indexKeywords(specs []keywordSpec) map[string]*keywordSpec {
	m := make(map[string]*keywordSpec, len(specs))
	for i := range specs {
		m[specs[i].name] = &specs[i]
	}
	return m
}

// KeywordNames lists every known channel keyword, sorted (for docs and tests).
func KeywordNames() []string {
	out := make([]string, 0, len(keywordSpecs))
	for i := range keywordSpecs {
		out = append(out, keywordSpecs[i].name)
	}
	sort.Strings(out)
	return out
}

// significant lower-cases a keyword and keeps its significant prefix.
func significant(w string) string {
	w = strings.ToLower(w)
	if len(w) > keywordSignificant {
		w = w[:keywordSignificant]
	}
	return w
}

// lookupKeyword finds a keyword, comparing only the significant characters; it
// returns the keyword's canonical name and its spec.
func lookupKeyword(w string) (string, *keywordSpec, bool) {
	s := significant(w)
	if k, ok := keywordIndex[s]; ok {
		return s, k, true
	}
	if len(s) == keywordSignificant {
		for name, k := range keywordIndex {
			if len(name) >= keywordSignificant && name[:keywordSignificant] == s {
				return name, k, true
			}
		}
	}
	return "", nil, false
}

// Keyword is one keyword as the channel block (or an inherited defaults line) gave
// it, with its arguments, kept for `cnbuild -show` and `test -rewrite`.
type Keyword struct {
	Name    string   // canonical lower-case name; for an unknown word, the word itself
	Args    []string // arguments as written (quotes removed)
	Pos     cnf.Pos
	Default bool // inherited from a defaults line
	Unknown bool // not a keyword: the product takes an unknown word as a group id
}

// String renders the keyword as it would be written in imta.cnf.
func (k Keyword) String() string {
	if len(k.Args) == 0 {
		return k.Name
	}
	return k.Name + " " + strings.Join(k.Args, " ")
}

// arg is the keyword's first argument, "" when it has none.
func (k Keyword) arg() string {
	if len(k.Args) == 0 {
		return ""
	}
	return k.Args[0]
}

// setInt stores the keyword's integer argument in dst. A missing or malformed
// one leaves dst as it was: splitKeywords has reported it, and the build fails.
func (k Keyword) setInt(dst *int) {
	if n, err := strconv.Atoi(k.arg()); err == nil {
		*dst = n
	}
}

// splitKeywords groups the words of one channel-name line into keywords. It reports
// bad arguments as errors, and unknown words (the product takes them as group ids)
// and keywords this version does not implement (noeffect.go) as warnings, each at
// the word's own position.
func splitKeywords(words []cnf.Word, errs, warns *cnf.ErrorList) []Keyword {
	var out []Keyword
	s := keywordScanner{words: words, errs: errs}
	for ; s.i < len(words); s.i++ {
		w := words[s.i]
		name, spec, ok := lookupKeyword(w.Text)
		if !ok || w.Quoted {
			msg := fmt.Sprintf("unknown channel keyword %q (taken as a group id)", w.Text)
			if sug := suggestKeyword(w.Text); sug != "" {
				msg += fmt.Sprintf("; did you mean %q?", sug)
			}
			*warns = append(*warns, &cnf.Error{Pos: w.Pos, Msg: msg})
			out = append(out, Keyword{Name: w.Text, Pos: w.Pos, Unknown: true})
			continue
		}
		s.pos, s.name = w.Pos, name
		out = append(out, Keyword{Name: name, Pos: w.Pos, Args: s.args(spec)})
	}
	warnNoEffect(out, warns)
	return out
}

// keywordScanner reads the arguments of one keyword after another from the words
// of a line: i is the keyword's word, and every argument taken advances it.
type keywordScanner struct {
	words []cnf.Word
	i     int
	errs  *cnf.ErrorList
	pos   cnf.Pos // the keyword being read
	name  string
}

// bad reports a bad argument of the keyword being read.
func (s *keywordScanner) bad(format string, args ...any) {
	*s.errs = append(*s.errs, &cnf.Error{Pos: s.pos, Msg: fmt.Sprintf("bad argument for channel keyword %q: ", s.name) + fmt.Sprintf(format, args...)})
}

// next is the word after the current one.
func (s *keywordScanner) next() (cnf.Word, bool) {
	if s.i+1 < len(s.words) {
		return s.words[s.i+1], true
	}
	return cnf.Word{}, false
}

// args reads the arguments the keyword's shape asks for.
func (s *keywordScanner) args(spec *keywordSpec) []string {
	switch spec.args {
	case argInt, argOptInt:
		return s.intArg(spec.args == argOptInt)
	case argWord, argChannel:
		return s.wordArg(spec)
	case argHosts:
		return s.hostArgs()
	case argDurations:
		return s.durationArgs()
	case argInts:
		return s.noticeArgs()
	case argIPs:
		return s.ipArgs()
	}
	return nil
}

func (s *keywordScanner) intArg(optional bool) []string {
	nw, ok := s.next()
	if !ok || (!nw.Quoted && isKeyword(nw.Text) && !isInteger(nw.Text)) {
		if !optional {
			s.bad("missing integer argument")
		}
		return nil
	}
	if !isInteger(nw.Text) {
		if optional {
			return nil
		}
		s.bad("%q is not an integer", nw.Text)
	}
	s.i++
	return []string{nw.Text}
}

func (s *keywordScanner) wordArg(spec *keywordSpec) []string {
	nw, ok := s.next()
	if !ok {
		s.bad("missing argument")
		return nil
	}
	if spec.check != nil {
		if problem := spec.check(nw.Text); problem != "" {
			s.bad("%s", problem)
		}
	}
	s.i++
	return []string{nw.Text}
}

func (s *keywordScanner) hostArgs() []string {
	nw, ok := s.next()
	if !ok {
		s.bad("missing host argument")
		return nil
	}
	out := []string{nw.Text}
	s.i++
	// The documentation is silent on telling the optional second domain from
	// the next keyword: we take it only when it looks like a domain (has a
	// dot) and is not itself a keyword.
	if nw2, ok := s.next(); ok && strings.Contains(nw2.Text, ".") && !isKeyword(nw2.Text) {
		out = append(out, nw2.Text)
		s.i++
	}
	return out
}

func (s *keywordScanner) durationArgs() []string {
	var out []string
	for {
		nw, ok := s.next()
		if !ok || !(nw.Quoted || looksLikePeriod(nw.Text)) {
			break
		}
		out = append(out, nw.Text)
		s.i++
	}
	if len(out) == 0 {
		s.bad("missing ISO 8601 period (e.g. \"pt30m\")")
		return out
	}
	if len(out) > maxBackoffValues {
		s.bad("%d values, at most %d allowed", len(out), maxBackoffValues)
	}
	for _, a := range out {
		if _, err := ParsePeriod(a); err != nil {
			s.bad("%v", err)
		}
	}
	return out
}

func (s *keywordScanner) noticeArgs() []string {
	var out []string
	for {
		nw, ok := s.next()
		if !ok || nw.Text == "" || !(nw.Text[0] >= '0' && nw.Text[0] <= '9' || nw.Text[0] == '-') {
			break
		}
		// The product's texts disagree on the separator: "2,4,6,8" is
		// accepted as well as blanks.
		for _, p := range strings.Split(nw.Text, ",") {
			if p != "" {
				out = append(out, p)
			}
		}
		s.i++
	}
	if len(out) == 0 {
		s.bad("missing integer arguments")
		return out
	}
	if len(out) > maxNoticeValues {
		s.bad("%d values, at most %d allowed", len(out), maxNoticeValues)
	}
	prev := 0
	for j, a := range out {
		n, err := strconv.Atoi(a)
		if err != nil || n <= 0 {
			s.bad("%q is not a positive integer", a)
			break
		}
		if j > 0 && n <= prev {
			s.bad("values must be increasing (%d after %d)", n, prev)
			break
		}
		prev = n
	}
	return out
}

func (s *keywordScanner) ipArgs() []string {
	var out []string
	for {
		nw, ok := s.next()
		if !ok {
			break
		}
		if _, err := netip.ParseAddr(nw.Text); err != nil {
			break
		}
		out = append(out, nw.Text)
		s.i++
	}
	if len(out) == 0 {
		s.bad("missing IP address")
	}
	return out
}

func isKeyword(w string) bool { _, _, ok := lookupKeyword(w); return ok }

func isInteger(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

// looksLikePeriod says whether an unquoted word after backoff is meant as one of its
// periods: it starts with P followed by a digit or T ("pt5m", "p1d", and also the
// malformed "pt5x" so that it is reported rather than taken as a group id).
func looksLikePeriod(w string) bool {
	if len(w) < 2 || (w[0] != 'p' && w[0] != 'P') || isKeyword(w) {
		return false
	}
	c := w[1]
	return c >= '0' && c <= '9' || c == 't' || c == 'T'
}

// ParsePeriod parses the ISO 8601 periods of backoff: P[nY][nM][nW][nD][T[nH][nM][nS]],
// case-insensitive. A year is 365 days and a month 30 days (the product's documentation
// does not say; nobody writes them).
func ParsePeriod(s string) (time.Duration, error) {
	bad := fmt.Errorf("%q is not an ISO 8601 period P[nD][T[nH][nM][nS]]", s)
	u := strings.ToUpper(s)
	if len(u) < 2 || u[0] != 'P' {
		return 0, bad
	}
	u = u[1:]
	var d time.Duration
	inTime := false
	seen := false
	num := ""
	for _, c := range u {
		switch {
		case c >= '0' && c <= '9':
			num += string(c)
			continue
		case c == 'T':
			if inTime || num != "" {
				return 0, bad
			}
			inTime = true
			continue
		}
		if num == "" {
			return 0, bad
		}
		n, err := strconv.Atoi(num)
		if err != nil {
			return 0, bad
		}
		num = ""
		seen = true
		var unit time.Duration
		switch {
		case !inTime && c == 'Y':
			unit = 365 * 24 * time.Hour
		case !inTime && c == 'M':
			unit = 30 * 24 * time.Hour
		case !inTime && c == 'W':
			unit = 7 * 24 * time.Hour
		case !inTime && c == 'D':
			unit = 24 * time.Hour
		case inTime && c == 'H':
			unit = time.Hour
		case inTime && c == 'M':
			unit = time.Minute
		case inTime && c == 'S':
			unit = time.Second
		default:
			return 0, bad
		}
		d += time.Duration(n) * unit
	}
	if num != "" || !seen || d <= 0 {
		return 0, bad
	}
	return d, nil
}

// suggestKeyword returns the known keyword closest to w when it is close enough to
// be a typo (edit distance at most 2, or 3 for long words).
func suggestKeyword(w string) string {
	w = strings.ToLower(w)
	best, bestD := "", 1<<30
	for _, k := range KeywordNames() {
		d := editDistance(w, k)
		if d < bestD {
			best, bestD = k, d
		}
	}
	limit := 2
	if len(w) >= 10 {
		limit = 3
	}
	if bestD <= limit && bestD < len(w) {
		return best
	}
	return ""
}

// editDistance is the Levenshtein distance.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
