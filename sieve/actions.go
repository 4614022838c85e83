package sieve

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"mtad.dev/mta/mailheader"
)

// Action is one thing a script asks the MTA to do. The concrete types are
// Keep, FileInto, Redirect, Discard, Jettison, Reject, Vacation, AddHeader,
// DeleteHeader, AddTag and SpamAdjust; each embeds the Pos of the command that
// caused it. String is the action as a log line or the test command prints it.
type Action interface {
	Position() Pos
	String() string
}

// Keep files the message into the user's main mailbox (RFC 5228 §4.3).
type Keep struct {
	Pos
	Flags []string // IMAP flags to set (RFC 5232); nil for none
}

// FileInto files the message into a folder (RFC 5228 §4.1). Copy says the
// script used :copy (RFC 3894): the implicit keep still applies.
type FileInto struct {
	Pos
	Folder string
	Flags  []string
	Copy   bool
}

// ResentMode says whether a redirected copy gets Resent- fields, the product's
// :resent / :noresent.
type ResentMode uint8

const (
	// ResentDefault: the script said neither; the MTA's option decides (the
	// product's SIEVE_REDIRECT_ADD_RESENT, on by default).
	ResentDefault ResentMode = iota
	// ResentAdd (:resent): add Resent-Date, Resent-From and Resent-To.
	ResentAdd
	// ResentNone (:noresent): add no Resent- fields.
	ResentNone
)

// Redirect sends the message on to another address (RFC 5228 §4.2).
type Redirect struct {
	Pos
	Address string
	// Copy (:copy, RFC 3894): the implicit keep still applies.
	Copy   bool
	Resent ResentMode
	// ResetMailFrom (:resetmailfrom): the redirected copy's envelope sender is
	// the address of the filter's owner (the recipient whose script this is),
	// so that bounces of the forwarded copy come back to the forwarder and not
	// to the original sender. The default (:keepmailfrom) keeps the original
	// envelope sender, as the product does.
	ResetMailFrom bool
	// Notify (:notify) is the DSN NOTIFY of the new recipient (RFC 3461):
	// "NEVER", or some of "SUCCESS", "FAILURE", "DELAY", upper case. nil: the
	// original recipient's.
	Notify []string
}

// Discard drops the message silently (RFC 5228 §4.4). A keep elsewhere (the
// user's own filter) still delivers it.
type Discard struct{ Pos }

// Jettison is the product's forced discard: the message is dropped for this
// recipient whatever any other filter, the user's included, says. The MTA
// sends it to the filter_discard channel when that is configured.
type Jettison struct{ Pos }

// Reject refuses the message with a reason (RFC 5429). Extended is ereject:
// refuse in the SMTP dialogue if still possible, rather than by a bounce.
type Reject struct {
	Pos
	Reason   string
	Extended bool
}

// AddHeader adds a header field (RFC 5293, and the product's one-argument
// addheader "Name: value"). The value is ready to write: RFC 2047 encoded when
// it is not ASCII.
type AddHeader struct {
	Pos
	Name  string
	Value string
	Last  bool // at the end of the header; else at the top
}

// DeleteHeader removed fields (RFC 5293). Removed is how many; the edited header
// itself is in Result.Header.
type DeleteHeader struct {
	Pos
	Name    string
	Removed int
}

// AddTag asks the MTA to tag the Subject (the product's addtag). Several tags
// are joined in order; a tag never holds "|", which the product uses to
// separate them.
type AddTag struct {
	Pos
	Tag string
}

// SpamAdjust is the product's spamadjust: Delta, the first real number of Text,
// was added to the spam score; Text was appended to the score's text.
type SpamAdjust struct {
	Pos
	Text  string
	Delta float64
}

func (a *Keep) String() string { return "keep" + flagsText(a.Flags) }
func (a *FileInto) String() string {
	s := "fileinto "
	if a.Copy {
		s += ":copy "
	}
	return s + strconv.Quote(a.Folder) + flagsText(a.Flags)
}
func (a *Redirect) String() string {
	s := "redirect "
	if a.Copy {
		s += ":copy "
	}
	switch a.Resent {
	case ResentAdd:
		s += ":resent "
	case ResentNone:
		s += ":noresent "
	}
	if a.ResetMailFrom {
		s += ":resetmailfrom "
	}
	if a.Notify != nil {
		s += ":notify " + strconv.Quote(strings.Join(a.Notify, ",")) + " "
	}
	return s + strconv.Quote(a.Address)
}
func (a *Discard) String() string  { return "discard" }
func (a *Jettison) String() string { return "jettison" }
func (a *Reject) String() string {
	if a.Extended {
		return "ereject " + strconv.Quote(a.Reason)
	}
	return "reject " + strconv.Quote(a.Reason)
}
func (a *AddHeader) String() string {
	s := "addheader "
	if a.Last {
		s += ":last "
	}
	return s + strconv.Quote(a.Name) + " " + strconv.Quote(a.Value)
}
func (a *DeleteHeader) String() string {
	return fmt.Sprintf("deleteheader %q (%d removed)", a.Name, a.Removed)
}
func (a *AddTag) String() string     { return "addtag " + strconv.Quote(a.Tag) }
func (a *SpamAdjust) String() string { return "spamadjust " + strconv.Quote(a.Text) }

func flagsText(flags []string) string {
	if len(flags) == 0 {
		return ""
	}
	return " :flags " + strconv.Quote(strings.Join(flags, " "))
}

// actionName is the command name of an action, for traces.
func actionName(a Action) string {
	s := a.String()
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i]
	}
	return s
}

// Result is what an evaluation decided.
type Result struct {
	// Actions in the order the script took them.
	Actions []Action
	// ImplicitKeep: no action cancelled the implicit keep (RFC 5228 §2.10.2),
	// so the MTA delivers to the main mailbox as if there were no filter, with
	// KeepFlags.
	ImplicitKeep bool
	KeepFlags    []string
	// Header is the edited header when addheader or deleteheader changed it,
	// nil otherwise. Every delivery of this evaluation uses it: Sieve actions
	// take effect when the script ends, so they all see the final header.
	Header *mailheader.Header
	// Spam is the spam score after spamadjust, to pass to the next script of
	// the same message; nil when neither a scanner nor spamadjust gave one.
	Spam *SpamScore
}

// NoFilter is the result of having no filter: keep, nothing else. Evaluate
// returns it with a runtime error.
func NoFilter() *Result { return &Result{ImplicitKeep: true} }

// Jettisoned says whether the script jettisoned the message.
func (r *Result) Jettisoned() bool {
	for _, a := range r.Actions {
		if _, ok := a.(*Jettison); ok {
			return true
		}
	}
	return false
}

// Tags are the addtag tags in order.
func (r *Result) Tags() []string {
	var out []string
	for _, a := range r.Actions {
		if t, ok := a.(*AddTag); ok {
			out = append(out, t.Tag)
		}
	}
	return out
}

// EditedMessage returns msg with the edited header when the script changed it,
// msg itself otherwise.
func (r *Result) EditedMessage(msg []byte) []byte {
	if r.Header == nil {
		return msg
	}
	var b bytes.Buffer
	b.Grow(len(msg) + 256)
	r.Header.WriteTo(&b)
	b.Write(msg[r.Header.End:])
	return b.Bytes()
}

// result builds the Result of a finished evaluation.
func (e *eval) result() *Result {
	r := &Result{ImplicitKeep: e.implicitKeep}
	r.Actions = append(r.Actions, e.actions...)
	if e.implicitKeep && len(e.flags) > 0 {
		r.KeepFlags = append([]string(nil), e.flags...)
	}
	if e.edited {
		h := &mailheader.Header{}
		h.Fields = make([]mailheader.Field, len(e.fields))
		for i := range e.fields {
			h.Fields[i] = e.fields[i].f
		}
		h.Bounds = mailheader.Walk(e.msg, func(mailheader.Field) bool { return true })
		r.Header = h
	}
	if e.spamTested {
		sc := *e.spam
		r.Spam = &sc
	}
	return r
}
