package mappings

import (
	"strconv"
	"strings"
)

// Access is a decoded access-table result (PORT_ACCESS, *_SEND_ACCESS, *_MAIL_ACCESS,
// FROM_ACCESS): the flags' arguments cut from the output string in the documented order.
type Access struct {
	Matched      bool
	Allow        bool   // $Y, or matched without $N/$F; also true when nothing matched
	Reject       bool   // $N or $F
	Text         string // $N/$F text ("$ " already turned into spaces)
	Enhanced     string // $X argument, e.g. "4.2.1"; "" means the default 5.7.1
	Delay        int    // $D argument, hundredths of a second (negative: address command only)
	Hold         bool   // $H
	Bitbucket    bool   // $B
	Discard      bool   // $V / $Z
	Debug        int    // $U argument
	SetFrom      string // $J argument (FROM_ACCESS)
	SetSender    string // $K argument (FROM_ACCESS)
	Tag          string // $T argument
	AddHeader    string // $A argument
	SyslogMatch  string // $< argument
	SyslogReject string // $> argument
	Src          string // deciding entry

	GroupUser  string // $I first field (user)
	GroupID    string // $I second field (group identifier)
	NoVacation bool   // $! (FROM_ACCESS)
	Flags      Flags  // every flag the entry set, for logging
}

// DecodeAccess cuts the flag arguments out of a mapping result.
//
// Arguments are taken from the front of the output string, one '|'-terminated field
// per flag present, in the fixed order U J K I(two fields) < > D T A X; whatever is
// left is the $N/$F text (this order is the product's documented one). A field without
// a terminating '|' takes the rest. Decisions where the product's documentation is
// silent: $N/$F win over $Y when both are set; an unmatched (or failed) mapping is
// Allow with no other effect, as "no match accepts" in every access table; the
// documentation's text on the $T/$A/$X slots is incomplete, so they take the place
// just before $N that its example $X4.2.1|$NHost$ temporarily$ blocked implies.
func DecodeAccess(r Result) Access {
	a := Access{Matched: r.Matched, Src: r.Src}
	if !r.Matched {
		a.Allow = true
		return a
	}
	f := r.Flags
	a.Flags = f
	rest := r.Output
	cut := func() string {
		field, after, found := strings.Cut(rest, "|")
		if !found {
			field, after = rest, ""
		}
		rest = after
		return field
	}
	if f.Has('U') {
		a.Debug, _ = strconv.Atoi(strings.TrimSpace(cut()))
	}
	if f.Has('J') {
		a.SetFrom = cut()
	}
	if f.Has('K') {
		a.SetSender = cut()
	}
	if f.Has('I') {
		a.GroupUser = cut()
		a.GroupID = cut()
	}
	if f&FlagSyslogMatch != 0 {
		a.SyslogMatch = cut()
	}
	if f&FlagSyslogReject != 0 {
		a.SyslogReject = cut()
	}
	if f.Has('D') {
		a.Delay, _ = strconv.Atoi(strings.TrimSpace(cut()))
	}
	if f.Has('T') {
		a.Tag = cut()
	}
	if f.Has('A') {
		a.AddHeader = cut()
	}
	if f.Has('X') {
		a.Enhanced = cut()
	}
	a.Reject = f.Has('N') || f.Has('F')
	if a.Reject {
		a.Text = rest
	}
	a.Allow = !a.Reject
	a.Hold = f.Has('H')
	a.Bitbucket = f.Has('B')
	a.Discard = f.Has('V') || f.Has('Z')
	a.NoVacation = f&FlagNoVacation != 0
	return a
}
