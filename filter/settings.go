package filter

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"mtad.dev/mta/maillog"
	"mtad.dev/mta/sieve"
)

// Settings are the options every filter runs with.
type Settings struct {
	// Hostname is our name: in Message-IDs and the notices' Reporting-MTA.
	Hostname string
	// Postmaster is RETURN_ADDRESS: the From of notices, and an address no
	// vacation answers.
	Postmaster string
	// SubaddressSep is SUBADDRESS_CHAR ("" is "+").
	SubaddressSep string
	// AddResent is SIEVE_REDIRECT_ADD_RESENT: a redirect without :resent or
	// :noresent adds Resent- fields (the product's default, on).
	AddResent bool
	// LogFilter is LOG_FILTER: every action in a mail.log record also says
	// the script position that took it. The actions themselves are always
	// there: a filter never acts silently.
	LogFilter bool
	// Discard and Jettison are FILTER_DISCARD and FILTER_JETTISON: 2 parks
	// what a discard (jettison) drops on DiscardChannel (filter_discard) until
	// its last notices age, without notice; anything else deletes it at once.
	Discard, Jettison int
	// DiscardChannel is "filter_discard" when the configuration has that
	// channel, else "".
	DiscardChannel string
}

// parks says whether mail dropped by a discard (jettison) is parked.
func (s *Settings) parks(jettison bool) bool {
	mode := s.Discard
	if jettison {
		mode = s.Jettison
	}
	return mode == 2 && s.DiscardChannel != ""
}

// Submission is a message a filter sends besides the one filtered: a copy a
// redirect forwards, a vacation answer, the notice of a rejection.
type Submission struct {
	From    string // envelope sender; "" is <>
	To      []string
	Notify  string // for a redirect: the new recipient's NOTIFY; "" the default
	Content []byte
	// Notice marks a notice or an automatic answer: it is queued as the job
	// controller's notices are (NOTIFY=NEVER, no filters). Otherwise the
	// submission is a redirected copy.
	Notice bool
}

// Submitter queues a submission through intake (the daemon provides it).
type Submitter func(ctx context.Context, s *Submission) error

// Deps are what the system and users' filters share besides the settings.
type Deps struct {
	Scripts *Cache
	Submit  Submitter       // nil: nothing a filter asks to send is sent (logged)
	MailLog *maillog.Logger // nil: no records
	Log     *slog.Logger    // nil: no diagnostics
	Now     func() time.Time
}

func (d *Deps) logger() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}

func (d *Deps) now() time.Time {
	if d.Now == nil {
		return time.Now()
	}
	return d.Now()
}

// submit sends a submission, or logs why it cannot.
func (d *Deps) submit(ctx context.Context, s *Submission) error {
	if d.Submit == nil {
		d.logger().Warn("filter: no submitter; message not sent", "to", s.To)
		return nil
	}
	return d.Submit(ctx, s)
}

// actionText is one action as mail.log says it: the action, and with
// LOG_FILTER the script position that took it ("imta.filter:3: addtag ...").
func actionText(a sieve.Action, withPosition bool) string {
	if withPosition {
		return a.Position().Short() + ": " + a.String()
	}
	return a.String()
}

// joinNotes joins the non-empty notes with "; ".
func joinNotes(notes ...string) string {
	var out []string
	for _, n := range notes {
		if n != "" {
			out = append(out, n)
		}
	}
	return strings.Join(out, "; ")
}
