package jobctl

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/queue"
)

// Queue is what the controller needs from the durable queue; *queue.Queue implements it.
type Queue interface {
	Walk(fn func(*queue.Envelope) bool) error
	Get(id string) (*queue.Envelope, error)
	Content(id string) (queue.Content, error)
	Update(id string, updates []queue.Update) error
}

var _ Queue = (*queue.Queue)(nil)

// AsyncUpdater is implemented by a queue that can record delivery results without
// making the caller wait for the commit (queue.Queue does): done is called once the
// change is durable or failed, from the queue's goroutine. With it, a job that
// delivered every recipient of an item goes on at once (see recordDelivered).
type AsyncUpdater interface {
	UpdateAsync(id string, updates []queue.Update, done func(error))
}

var _ AsyncUpdater = (*queue.Queue)(nil)

// NoticeRecorder is implemented by a queue that can persist Envelope.Notices (the
// number of delay notices already sent). Without it the count lives in memory only
// and a restart may repeat the latest delay notice.
type NoticeRecorder interface {
	SetNotices(id string, n int) error
}

// OperatorQueue is implemented by a queue on which the postmaster's qm hold,
// release and delete act (queue.Queue does). Hold, Release and Delete need it.
type OperatorQueue interface {
	Hold(id, reason string) error
	Release(id string) error
	Delete(id string) error
}

var _ OperatorQueue = (*queue.Queue)(nil)

// Class is a delivery priority class; it indexes per-class settings.
type Class int

const (
	Urgent    Class = iota // Envelope.Priority 1
	Normal                 // Envelope.Priority 0
	NonUrgent              // Envelope.Priority -1
)

// ClassOf maps an envelope priority (-1, 0, 1) to its class.
func ClassOf(priority int) Class {
	switch {
	case priority > 0:
		return Urgent
	case priority < 0:
		return NonUrgent
	}
	return Normal
}

func (c Class) String() string {
	return [...]string{"urgent", "normal", "nonurgent"}[c]
}

// Channel holds the scheduling settings of one channel (imta.cnf keywords and the
// [CHANNEL=] section of job_controller.cnf). Zero values take the defaults. It is
// a plain value (fixed arrays, no slices or pointers), so two settings compare
// with ==.
type Channel struct {
	MaxJobs     int    // maxjobs; 0: DefaultMaxJobs
	Pool        string // pool; "": Config.DefaultPool
	ThreadDepth int    // threaddepth; 0: 10
	// HostJobs caps concurrent jobs on one destination host; 0: MaxJobs. A host
	// that failed at connection level is probed by one job whatever this says.
	HostJobs int
	// AddrsPerFile (addrsperfile) caps the recipients one call of the delivery
	// program gets, i.e. one SMTP transaction; a message with more recipients for
	// one host is delivered in several transactions. 0: no cap.
	AddrsPerFile int
	// Backoff per class (backoff, urgentbackoff ...); the zero Backoff: the
	// product's documented defaults. The last interval repeats.
	Backoff [3]Backoff
	// Notices ages (notices a b c ...), in Config.NoticeUnit; zero: 3 6 9 12.
	Notices Notices
	// Windows per class (urgent_delivery ...); the zero Window is always open.
	Windows [3]Window
}

// MaxBackoff and MaxNotices are the most values the backoff and notices
// keywords take (the product's documentation says 8 and 5).
const (
	MaxBackoff = 8
	MaxNotices = 5
)

// Backoff is a retry schedule: the waits after the first, second ... failure.
// The first zero ends the list.
type Backoff [MaxBackoff]time.Duration

// BackoffOf is the schedule of the given waits; those past MaxBackoff are
// dropped (the compiler refuses more).
func BackoffOf(waits ...time.Duration) Backoff {
	var b Backoff
	copy(b[:], waits)
	return b
}

// list is the schedule up to its first zero.
func (b *Backoff) list() []time.Duration {
	n := 0
	for n < len(b) && b[n] > 0 {
		n++
	}
	return b[:n]
}

// Notices are the message ages at which notices go out; the first zero ends the
// list.
type Notices [MaxNotices]int

// NoticesOf is the schedule of the given ages; those past MaxNotices are dropped
// (the compiler refuses more).
func NoticesOf(ages ...int) Notices {
	var n Notices
	copy(n[:], ages)
	return n
}

// Defaults.
const (
	DefaultMaxJobs     = 10 // the product's maxjobs default is undocumented; our choice
	DefaultThreadDepth = 10 // the product's documented default
)

// defaultNotices is the notices schedule when none is configured (the product's
// documented default).
var defaultNotices = []int{3, 6, 9, 12}

// defaultBackoff is the product's documented table, in minutes, per class.
var defaultBackoff = [3][]time.Duration{
	minutes(30, 60, 60, 120, 120, 120, 240),
	minutes(60, 120, 120, 240, 240, 240, 480),
	minutes(120, 240, 240, 480, 480, 480, 960),
}

func minutes(ms ...int) []time.Duration {
	d := make([]time.Duration, len(ms))
	for i, m := range ms {
		d[i] = time.Duration(m) * time.Minute
	}
	return d
}

// DefaultBackoff returns the default retry intervals of a class.
func DefaultBackoff(c Class) []time.Duration {
	return append([]time.Duration(nil), defaultBackoff[c]...)
}

// RetryDelay is the wait after the attempts-th failed attempt (1 = first failure)
// for a class: the attempts-th interval of the list, the last one repeating.
func (ch *Channel) RetryDelay(c Class, attempts int) time.Duration {
	list := ch.Backoff[c].list()
	if len(list) == 0 {
		list = defaultBackoff[c]
	}
	i := attempts - 1
	if i < 0 {
		i = 0
	}
	if i >= len(list) {
		i = len(list) - 1
	}
	return list[i]
}

func (ch *Channel) maxJobs() int {
	if ch.MaxJobs <= 0 {
		return DefaultMaxJobs
	}
	return ch.MaxJobs
}

func (ch *Channel) threadDepth() int {
	if ch.ThreadDepth <= 0 {
		return DefaultThreadDepth
	}
	return ch.ThreadDepth
}

// notices is the schedule a newly queued message follows. A message keeps the
// schedule it got, even when a reload changes the channel's: so the list is a
// copy, never a view of the channel's settings, which a reload overwrites.
func (ch *Channel) notices() []int {
	n := 0
	for n < len(ch.Notices) && ch.Notices[n] > 0 {
		n++
	}
	if n == 0 {
		return defaultNotices
	}
	return append([]int(nil), ch.Notices[:n]...)
}

// FirstNotice is the age at which a message queued to the channel now gets
// its first notice, with unit the Config's NoticeUnit (for monitoring: an
// oldest message older than this has warned its sender).
func (ch *Channel) FirstNotice(unit time.Duration) time.Duration {
	return time.Duration(ch.notices()[0]) * unit
}

// Window is a daily delivery window "HH:MM-HH:MM" in the clock's local time. End
// before Start wraps past midnight.
type Window struct {
	Start, End int // minutes after midnight; End may be 1440 ("24:00")
}

// ParseWindow parses "HH:MM-HH:MM". A window whose start equals its end is open all
// day (the product's documentation does not give the grammar; an empty window would be
// a silent way to stop a channel, which qm stop already does explicitly).
func ParseWindow(s string) (*Window, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return nil, fmt.Errorf("invalid delivery window %q: want HH:MM-HH:MM", s)
	}
	start, err := parseHHMM(a)
	if err != nil {
		return nil, fmt.Errorf("invalid delivery window %q: %w", s, err)
	}
	end, err := parseHHMM(b)
	if err != nil {
		return nil, fmt.Errorf("invalid delivery window %q: %w", s, err)
	}
	if start == 1440 {
		return nil, fmt.Errorf("invalid delivery window %q: start 24:00", s)
	}
	return &Window{Start: start, End: end}, nil
}

func parseHHMM(s string) (int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || hh == 24 && mm != 0 || len(m) != 2 {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	return hh*60 + mm, nil
}

func (w *Window) String() string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d", w.Start/60, w.Start%60, w.End/60, w.End%60)
}

// Open reports whether t falls inside the window.
func (w *Window) Open(t time.Time) bool {
	if w == nil || w.Start == w.End {
		return true
	}
	m := t.Hour()*60 + t.Minute()
	if w.Start < w.End {
		return m >= w.Start && m < w.End
	}
	return m >= w.Start || m < w.End
}

// NextOpen returns t when the window is open, else the next time it opens.
func (w *Window) NextOpen(t time.Time) time.Time {
	if w.Open(t) {
		return t
	}
	m := t.Hour()*60 + t.Minute()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location())
	if m >= w.Start {
		day = day.AddDate(0, 0, 1)
	}
	return day.Add(time.Duration(w.Start) * time.Minute)
}

// Clock is the controller's time source; tests substitute a fake.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is a resettable one-shot timer.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// SystemClock is the real clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time { return time.Now() }

func (SystemClock) NewTimer(d time.Duration) Timer { return sysTimer{time.NewTimer(d)} }

type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time        { return t.t.C }
func (t sysTimer) Stop() bool                 { return t.t.Stop() }
func (t sysTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }

// SubmitFunc enqueues a notice: from is the envelope sender ("" for <>), to the
// envelope recipients, content the whole message. mtad wires it to rewriting and
// queue.Enqueue.
type SubmitFunc func(ctx context.Context, from string, to []string, content []byte) error

// Config configures a Controller. Everything but Queue has a usable zero value.
type Config struct {
	Queue Queue
	// Programs delivers for each channel; a channel without one keeps its mail
	// queued (no master program: nothing dequeues it).
	Programs map[string]channels.Program
	// Channels by name; a key ending in "*" matches every channel with that prefix,
	// the longest such prefix winning (the product's documentation does not say which
	// of several matching sections applies; we take the most specific).
	Channels map[string]Channel
	// Pools maps a pool name to its job_limit. Empty: no pool limits at all.
	Pools map[string]int
	// DefaultPool serves channels naming no pool: the first [POOL=] of
	// job_controller.cnf. A channel naming an unknown pool starts no jobs.
	DefaultPool string

	Clock   Clock           // nil: SystemClock
	MailLog *maillog.Logger // nil: no mail.log
	Logger  *slog.Logger    // nil: slog.Default()

	// HoldList is the path of the persistent stopped-channel list ("" keeps it
	// in memory only, for tests and tools).
	HoldList string

	// Submit enqueues notices. Nil: notices are logged and dropped.
	Submit SubmitFunc
	// Hostname is the Reporting-MTA; Postmaster receives copies of failed notices
	// of <> messages. Defaults: "localhost", "postmaster@"+Hostname.
	Hostname   string
	Postmaster string
	// NoticeUnit is the unit of Channel.Notices: 24h, or 1h with RETURN_UNITS=1.
	NoticeUnit time.Duration

	// IdleTime is how long an idle job waits for work before exiting (default 5s).
	IdleTime time.Duration
	// ShutdownGrace bounds how long running deliveries may continue after Run's
	// context is cancelled before their context is cancelled too (default 30s).
	ShutdownGrace time.Duration
}

// channel resolves the settings of a channel name.
func (c *Config) channel(name string) Channel {
	if ch, ok := c.Channels[name]; ok {
		return ch
	}
	best, bestLen := Channel{}, -1
	for k, ch := range c.Channels {
		if p, ok := strings.CutSuffix(k, "*"); ok && strings.HasPrefix(name, p) && len(p) > bestLen {
			best, bestLen = ch, len(p)
		}
	}
	return best
}

func (c *Config) withDefaults() Config {
	n := *c
	if n.Clock == nil {
		n.Clock = SystemClock{}
	}
	if n.Logger == nil {
		n.Logger = slog.Default()
	}
	if n.Hostname == "" {
		n.Hostname = "localhost"
	}
	if n.Postmaster == "" {
		n.Postmaster = "postmaster@" + n.Hostname
	}
	if n.NoticeUnit <= 0 {
		n.NoticeUnit = 24 * time.Hour
	}
	if n.IdleTime <= 0 {
		n.IdleTime = 5 * time.Second
	}
	if n.ShutdownGrace <= 0 {
		n.ShutdownGrace = 30 * time.Second
	}
	return n
}
