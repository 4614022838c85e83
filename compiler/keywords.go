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
// parser only splits the line), so this table is what decides it.
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

// keywordSignificant is how many characters of a keyword the product compares
// (channels.md §1.2): "maxjobsXYZ..." beyond 32 characters still matches.
const keywordSignificant = 32

// Limits from channels.md §3.3 and §4.
const (
	maxBackoffValues = 8
	maxNoticeValues  = 5
	maxPoolNameLen   = 12
)

// keywords is every channel keyword of channels.md §3 (plus the rarer ones of §7
// that the reference names), with its argument shape.
var keywords = map[string]argKind{
	// 3.1 protocol, line endings
	"smtp": argNone, "nosmtp": argNone, "smtp_crlf": argNone, "smtp_lf": argNone,
	"smtp_cr": argNone, "smtp_crorlf": argNone, "ehlo": argNone, "noehlo": argNone,
	"checkehlo": argNone, "allowetrn": argNone, "blocketrn": argNone,
	// [ours] deliver over LMTP (RFC 2033) to daemon HOST + port N, or daemon /socket
	"lmtp": argNone,
	// 3.2 outbound host choice, DNS
	"defaultmx": argNone, "mx": argNone, "nonrandommx": argNone, "randommx": argNone,
	"nomx": argNone, "nodns": argNone, "nameservers": argIPs, "defaultnameservers": argNone,
	"daemon": argWord, "lastresort": argWord, "port": argInt, "interfaceaddress": argWord,
	"connectalias": argNone, "connectcanonical": argNone, "cacheeverything": argNone,
	"cachefailures": argNone, "cachesuccesses": argNone, "nocache": argNone,
	"dequeue_removeroute": argNone,
	// 3.3 copies, jobs, pools
	"multiple": argNone, "single_sys": argNone, "single": argNone, "addrsperfile": argInt,
	"addrsperjob": argInt, "filesperjob": argInt, "maxjobs": argInt, "threaddepth": argInt,
	"pool": argWord, "queue": argWord, "urgentqueue": argWord, "normalqueue": argWord,
	"nonurgentqueue": argWord, "subdirs": argInt, "nosubdirs": argNone, "after": argWord,
	// 3.4 priority, immediacy, deferral
	"immediate": argNone, "periodic": argNone, "immurgent": argNone, "immnormal": argNone,
	"immnonurgent": argNone, "urgentblocklimit": argInt, "normalblocklimit": argInt,
	"nonurgentblocklimit": argInt, "deferred": argNone, "nodeferred": argNone,
	// 3.5 source-channel selection
	"switchchannel": argNone, "allowswitchchannel": argNone, "noswitchchannel": argNone,
	"saslswitchchannel": argChannel, "nosaslswitchchannel": argNone,
	"tlsswitchchannel": argChannel, "userswitchchannel": argNone,
	"identnone": argNone, "identnonesymbolic": argNone, "identnonenumeric": argNone,
	"identnonelimited": argNone, "identtcp": argNone, "identtcpsymbolic": argNone,
	"identtcpnumeric": argNone, "identtcplimited": argNone, "forwardchecknone": argNone,
	"forwardchecktag": argNone, "forwardcheckdelete": argNone,
	// 3.6 TLS, SASL
	"notls": argNone, "notlsclient": argNone, "notlsserver": argNone, "maytls": argNone,
	"maytlsclient": argNone, "maytlsserver": argNone, "musttls": argNone,
	"musttlsclient": argNone, "musttlsserver": argNone, "nosasl": argNone,
	"nosaslserver": argNone, "maysaslserver": argNone, "mustsaslserver": argNone,
	"disconnectbadauthlimit": argInt,
	// 3.7 addresses and headers
	"noremotehost": argNone, "remotehost": argNone, "defaulthost": argHosts,
	"nodefaulthost": argNone, "noinner": argNone, "inner": argNone, "headertrim": argNone,
	"noheadertrim": argNone, "headerread": argNone, "noheaderread": argNone,
	"innertrim": argNone, "noinnertrim": argNone, "missingrecipientpolicy": argInt,
	"addreturnpath": argNone, "noaddreturnpath": argNone, "viaaliasoptional": argNone,
	"viaaliasrequired": argNone, "maxprocchars": argInt, "maxheaderaddrs": argInt,
	"maxheaderchars": argInt, "charset7": argWord, "charset8": argWord, "charsetesc": argWord,
	"rules": argNone, "norules": argNone, "authrewrite": argOptInt,
	"routelocal": argNone, "bangoverpercent": argNone, "nobangoverpercent": argNone,
	"exproute": argNone, "noexproute": argNone, "improute": argNone, "noimproute": argNone,
	"733": argNone, "822": argNone, "bangstyle": argNone, "datefour": argNone,
	"datetwo": argNone, "dayofweek": argNone, "nodayofweek": argNone,
	"returnaddress": argWord, "returnpersonal": argWord, "returnenvelope": argInt,
	// 3.8 8-bit
	"sevenbit": argNone, "eightbit": argNone, "eightnegotiate": argNone, "eightstrict": argNone,
	// 3.9 limits
	"blocklimit": argInt, "noblocklimit": argNone, "sourceblocklimit": argInt,
	"linelimit": argInt, "nolinelimit": argNone, "maxblocks": argInt, "maxlines": argInt,
	"alternatechannel": argChannel, "alternateblocklimit": argInt,
	"alternatelinelimit": argInt, "alternaterecipientlimit": argInt,
	"recipientlimit": argInt, "recipientcutoff": argInt, "expandlimit": argInt,
	"expandchannel": argChannel, "holdlimit": argInt, "transactionlimit": argInt,
	"deferralrejectlimit": argInt, "disconnectrecipientlimit": argInt,
	"disconnectrejectlimit": argInt, "disconnecttransactionlimit": argInt,
	"disconnectbadcommandlimit": argInt,
	// 3.10 misc
	"mailfromdnsverify": argNone, "nomailfromdnsverify": argNone, "loopcheck": argNone,
	"noloopcheck": argNone, "sourcefilter": argWord, "destinationfilter": argWord,
	"channelfilter": argWord, "filter": argWord, "nofilter": argNone, "fileinto": argWord,
	"holdexquota": argNone, "noexquota": argNone, "logging": argNone, "nologging": argNone,
	"logheader": argInt, "master_debug": argNone, "nomaster_debug": argNone,
	"slave_debug": argNone, "noslave_debug": argNone, "defragment": argNone,
	"nodefragment": argNone, "sendpost": argNone, "copysendpost": argNone,
	"errsendpost": argNone, "nosendpost": argNone, "warnpost": argNone,
	"copywarnpost": argNone, "errwarnpost": argNone, "nowarnpost": argNone,
	// master / slave (§2)
	"master": argNone, "slave": argNone, "bidirectional": argNone,
	// 4 retries and notices
	"backoff": argDurations, "urgentbackoff": argDurations, "normalbackoff": argDurations,
	"nonurgentbackoff": argDurations, "notices": argInts, "urgentnotices": argInts,
	"normalnotices": argInts, "nonurgentnotices": argInts,
}

// KeywordNames lists every known channel keyword, sorted (for docs and tests).
func KeywordNames() []string {
	out := make([]string, 0, len(keywords))
	for k := range keywords {
		out = append(out, k)
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

// lookupKeyword finds a keyword, comparing only the significant characters.
func lookupKeyword(w string) (string, argKind, bool) {
	s := significant(w)
	if k, ok := keywords[s]; ok {
		return s, k, true
	}
	if len(s) == keywordSignificant {
		for name, k := range keywords {
			if len(name) >= keywordSignificant && name[:keywordSignificant] == s {
				return name, k, true
			}
		}
	}
	return "", 0, false
}

// Keyword is one keyword as the channel block (or an inherited defaults line) gave
// it, with its arguments, kept for `cnbuild -show` and `test -rewrite`.
type Keyword struct {
	Name    string   // canonical lower-case name; for an unknown word, the word itself
	Args    []string // arguments as written (quotes removed)
	Pos     cnf.Pos
	Default bool // inherited from a defaults line
	Unknown bool // not a keyword: a group id (channels.md §1.2)
}

// String renders the keyword as it would be written in imta.cnf.
func (k Keyword) String() string {
	if len(k.Args) == 0 {
		return k.Name
	}
	return k.Name + " " + strings.Join(k.Args, " ")
}

// splitKeywords groups the words of one channel-name line into keywords. It reports
// bad arguments as errors, and unknown words (the product takes them as group ids)
// and keywords this version does not implement (noeffect.go) as warnings, each at
// the word's own position.
func splitKeywords(words []cnf.Word, errs, warns *cnf.ErrorList) []Keyword {
	var out []Keyword
	for i := 0; i < len(words); i++ {
		w := words[i]
		name, kind, ok := lookupKeyword(w.Text)
		if !ok || w.Quoted {
			msg := fmt.Sprintf("unknown channel keyword %q (taken as a group id)", w.Text)
			if s := suggestKeyword(w.Text); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			*warns = append(*warns, &cnf.Error{Pos: w.Pos, Msg: msg})
			out = append(out, Keyword{Name: w.Text, Pos: w.Pos, Unknown: true})
			continue
		}
		kw := Keyword{Name: name, Pos: w.Pos}
		bad := func(format string, args ...any) {
			*errs = append(*errs, &cnf.Error{Pos: w.Pos, Msg: fmt.Sprintf("bad argument for channel keyword %q: ", name) + fmt.Sprintf(format, args...)})
		}
		next := func() (cnf.Word, bool) {
			if i+1 < len(words) {
				return words[i+1], true
			}
			return cnf.Word{}, false
		}
		switch kind {
		case argNone:
		case argInt, argOptInt:
			nw, ok := next()
			if !ok || (!nw.Quoted && isKeyword(nw.Text) && !isInteger(nw.Text)) {
				if kind == argInt {
					bad("missing integer argument")
				}
				break
			}
			if !isInteger(nw.Text) {
				if kind == argOptInt {
					break
				}
				bad("%q is not an integer", nw.Text)
			}
			kw.Args = append(kw.Args, nw.Text)
			i++
		case argWord, argChannel:
			nw, ok := next()
			if !ok {
				bad("missing argument")
				break
			}
			if name == "pool" && len(nw.Text) > maxPoolNameLen {
				bad("pool name %q is longer than %d characters", nw.Text, maxPoolNameLen)
			}
			kw.Args = append(kw.Args, nw.Text)
			i++
		case argHosts:
			nw, ok := next()
			if !ok {
				bad("missing host argument")
				break
			}
			kw.Args = append(kw.Args, nw.Text)
			i++
			// [inf] the optional second domain is taken only when it looks like a
			// domain (has a dot) and is not itself a keyword.
			if nw2, ok := next(); ok && strings.Contains(nw2.Text, ".") && !isKeyword(nw2.Text) {
				kw.Args = append(kw.Args, nw2.Text)
				i++
			}
		case argDurations:
			for {
				nw, ok := next()
				if !ok || !(nw.Quoted || looksLikePeriod(nw.Text)) {
					break
				}
				kw.Args = append(kw.Args, nw.Text)
				i++
			}
			if len(kw.Args) == 0 {
				bad("missing ISO 8601 period (e.g. \"pt30m\")")
				break
			}
			if len(kw.Args) > maxBackoffValues {
				bad("%d values, at most %d allowed", len(kw.Args), maxBackoffValues)
			}
			for _, a := range kw.Args {
				if _, err := ParsePeriod(a); err != nil {
					bad("%v", err)
				}
			}
		case argInts:
			for {
				nw, ok := next()
				if !ok || nw.Text == "" || !(nw.Text[0] >= '0' && nw.Text[0] <= '9' || nw.Text[0] == '-') {
					break
				}
				// [conflict] channels.md §4.2: "2,4,6,8" is accepted as well as blanks.
				for _, p := range strings.Split(nw.Text, ",") {
					if p != "" {
						kw.Args = append(kw.Args, p)
					}
				}
				i++
			}
			if len(kw.Args) == 0 {
				bad("missing integer arguments")
				break
			}
			if len(kw.Args) > maxNoticeValues {
				bad("%d values, at most %d allowed", len(kw.Args), maxNoticeValues)
			}
			prev := 0
			for j, a := range kw.Args {
				n, err := strconv.Atoi(a)
				if err != nil || n <= 0 {
					bad("%q is not a positive integer", a)
					break
				}
				if j > 0 && n <= prev {
					bad("values must be increasing (%d after %d)", n, prev)
					break
				}
				prev = n
			}
		case argIPs:
			for {
				nw, ok := next()
				if !ok {
					break
				}
				if _, err := netip.ParseAddr(nw.Text); err != nil {
					break
				}
				kw.Args = append(kw.Args, nw.Text)
				i++
			}
			if len(kw.Args) == 0 {
				bad("missing IP address")
			}
		}
		out = append(out, kw)
	}
	warnNoEffect(out, warns)
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
// case-insensitive. [inf] a year is 365 days and a month 30 days; nobody writes them.
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
