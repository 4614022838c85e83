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
	// LogFilter is LOG_FILTER: every action of every filter, with its script
	// position, goes into the diagnostic of the recipient's mail.log record.
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

// actionNote is one action as LOG_FILTER writes it: "file:line: action".
func actionNote(a sieve.Action) string { return a.Position().Short() + ": " + a.String() }

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
