package control

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"mtad.dev/mta/jobctl"
	"mtad.dev/mta/mailheader"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/queue"
)

// Reader is the part of the queue the reports read; *queue.Queue and
// *queue.ReadOnly implement it.
type Reader interface {
	Walk(fn func(*queue.Envelope) bool) error
	Get(id string) (*queue.Envelope, error)
	Content(id string) (queue.Content, error)
}

var (
	_ Reader = (*queue.Queue)(nil)
	_ Reader = (*queue.ReadOnly)(nil)
)

// Filter selects messages for directory and the summaries. Recipient criteria
// (Channel, To, Domain) must all hold for one pending recipient.
type Filter struct {
	Channel string        `json:"channel,omitempty"`
	From    string        `json:"from,omitempty"`   // wildcard; "<>" is the empty sender
	To      string        `json:"to,omitempty"`     // wildcard on a pending recipient
	Domain  string        `json:"domain,omitempty"` // destination host; ".example.com" also matches subdomains
	Older   time.Duration `json:"older,omitempty"`  // arrived at least this long ago
	Younger time.Duration `json:"younger,omitempty"`
	Held    bool          `json:"held,omitempty"` // held messages only
}

// Validate reports a malformed filter.
func (f *Filter) Validate() error {
	for _, p := range []string{f.From, f.To} {
		if strings.Count(p, "[") != strings.Count(p, "]") {
			return fmt.Errorf("bad pattern %q: unbalanced [ ]", p)
		}
	}
	if f.Older < 0 || f.Younger < 0 {
		return errors.New("-older and -younger take a positive duration")
	}
	return nil
}

// rcpts returns the indexes of env's pending recipients that satisfy the
// recipient criteria, and whether the message matches as a whole.
func (f *Filter) rcpts(env *queue.Envelope, now time.Time) ([]int, bool) {
	if f.Held && !env.Held {
		return nil, false
	}
	age := now.Sub(env.Arrival)
	if f.Older > 0 && age < f.Older {
		return nil, false
	}
	if f.Younger > 0 && age >= f.Younger {
		return nil, false
	}
	if f.From != "" {
		from := env.From
		if from == "" {
			from = "<>"
		}
		if !Match(f.From, from) {
			return nil, false
		}
	}
	var out []int
	for i, r := range env.Rcpts {
		if r.State != queue.Pending {
			continue
		}
		if f.Channel != "" && !strings.EqualFold(f.Channel, r.Channel) {
			continue
		}
		if f.To != "" && !Match(f.To, r.Addr) && !(r.Orig != "" && Match(f.To, r.Orig)) {
			continue
		}
		if f.Domain != "" && !domainMatch(f.Domain, r.Host) {
			continue
		}
		out = append(out, i)
	}
	return out, len(out) > 0
}

func domainMatch(pat, host string) bool {
	pat, host = strings.ToLower(strings.TrimSuffix(pat, ".")), strings.ToLower(host)
	if sub, ok := strings.CutPrefix(pat, "."); ok {
		return host == sub || strings.HasSuffix(host, pat)
	}
	return host == pat
}

// Match reports whether s matches the shell-style wildcard pat, ignoring case:
// * any run, ? one character, [abc] / [a-z] / [!abc] one of a set.
func Match(pat, s string) bool {
	return matchRunes([]rune(strings.ToLower(pat)), []rune(strings.ToLower(s)))
}

func matchRunes(p, s []rune) bool {
	// Iterative with one backtrack point: linear in practice, never exponential.
	var starP, starS = -1, 0
	i, j := 0, 0
	for j < len(s) {
		if i < len(p) {
			switch p[i] {
			case '*':
				starP, starS = i, j
				i++
				continue
			case '?':
				i, j = i+1, j+1
				continue
			case '[':
				if n, ok := matchClass(p[i:], s[j]); n > 0 {
					if ok {
						i, j = i+n, j+1
						continue
					}
				} else if s[j] == '[' { // unterminated class: a literal [
					i, j = i+1, j+1
					continue
				}
			default:
				if p[i] == s[j] {
					i, j = i+1, j+1
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		i, j = starP+1, starS
	}
	for i < len(p) && p[i] == '*' {
		i++
	}
	return i == len(p)
}

// matchClass matches c against the class at the start of p ("[...]"). n is the
// class's length in p, 0 when it is not terminated.
func matchClass(p []rune, c rune) (n int, ok bool) {
	k := 1
	neg := false
	if k < len(p) && (p[k] == '!' || p[k] == '^') {
		neg = true
		k++
	}
	first := true
	for k < len(p) && (first || p[k] != ']') {
		first = false
		lo := p[k]
		hi := lo
		if k+2 < len(p) && p[k+1] == '-' && p[k+2] != ']' {
			hi = p[k+2]
			k += 2
		}
		if lo <= c && c <= hi {
			ok = true
		}
		k++
	}
	if k >= len(p) {
		return 0, false
	}
	return k + 1, ok != neg
}

// DirEntry is one line of qm directory.
type DirEntry struct {
	ID          string    `json:"id"`
	Arrival     time.Time `json:"arrival"`
	Size        int64     `json:"size"`
	From        string    `json:"from"`
	Channels    []string  `json:"channels"`
	Rcpts       []string  `json:"rcpts"` // pending recipients matching the filter
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"` // earliest, zero: as soon as possible
	LastError   string    `json:"last_error,omitempty"`
	Held        bool      `json:"held,omitempty"`
	HeldReason  string    `json:"held_reason,omitempty"`
	// Quarantined is set for a message recovery set aside as damaged (bad checksum,
	// truncated segment): it is never delivered and is listed so that it is seen.
	Quarantined string `json:"quarantined,omitempty"`
}

// quarantiner is the part of the queue that lists damaged messages; the read-only
// queue used when mtad is down does not have it.
type quarantiner interface {
	Quarantined() []queue.QuarantineInfo
}

// Directory lists the messages matching f, in id (arrival) order.
func Directory(r Reader, f Filter, now time.Time) ([]DirEntry, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	out := []DirEntry{}
	err := r.Walk(func(env *queue.Envelope) bool {
		idx, ok := f.rcpts(env, now)
		if !ok {
			return true
		}
		e := DirEntry{ID: env.ID, Arrival: env.Arrival, Size: env.Size, From: env.From, Held: env.Held, HeldReason: env.HeldReason}
		for _, i := range idx {
			rc := env.Rcpts[i]
			e.Rcpts = append(e.Rcpts, rc.Addr)
			if !slices.Contains(e.Channels, rc.Channel) {
				e.Channels = append(e.Channels, rc.Channel)
			}
			if rc.Attempts > e.Attempts || (rc.Attempts == e.Attempts && e.LastError == "") {
				e.Attempts = rc.Attempts
				if rc.LastError != "" {
					e.LastError = rc.LastError
				}
			}
			if e.NextAttempt.IsZero() || (!rc.NextAttempt.IsZero() && rc.NextAttempt.Before(e.NextAttempt)) {
				e.NextAttempt = rc.NextAttempt
			}
		}
		out = append(out, e)
		return true
	})
	if qr, ok := r.(quarantiner); ok && err == nil && !f.Held {
		for _, q := range qr.Quarantined() {
			e := DirEntry{ID: q.ID, Arrival: q.Time, Quarantined: q.Reason}
			if env := q.Envelope; env != nil {
				idx, ok := f.rcpts(env, now)
				if !ok {
					continue
				}
				e.Arrival, e.Size, e.From = env.Arrival, env.Size, env.From
				for _, i := range idx {
					e.Rcpts = append(e.Rcpts, env.Rcpts[i].Addr)
					if !slices.Contains(e.Channels, env.Rcpts[i].Channel) {
						e.Channels = append(e.Channels, env.Rcpts[i].Channel)
					}
				}
			} else if f != (Filter{}) {
				continue // nothing to match a filter against
			}
			out = append(out, e)
		}
	}
	return out, err
}

// ChannelSummary is one line of qm summarize.
type ChannelSummary struct {
	Name       string    `json:"name"`
	Messages   int       `json:"messages"`
	Recipients int       `json:"recipients"`
	Held       int       `json:"held"`   // held messages among Messages
	Size       int64     `json:"size"`   // bytes
	Blocks     int64     `json:"blocks"` // sum of each message's size in blocks, as qm directory counts
	Oldest     time.Time `json:"oldest"`
	Jobs       int       `json:"jobs"`
	Stopped    bool      `json:"stopped,omitempty"`
}

// Summary is qm summarize's reply.
type Summary struct {
	Channels []ChannelSummary `json:"channels"`
	Total    ChannelSummary   `json:"total"` // Messages counts each message once
	// Image is the compiled configuration the running mtad routes with; nil when
	// the answer comes from the files (mtad not running).
	Image *ImageInUse `json:"image,omitempty"`
}

// ImageInUse names the compiled configuration in force.
type ImageInUse struct {
	Built time.Time `json:"built"`
	Hash  string    `json:"source_hash"` // hex SHA-256 of the sources
}

// Summarize counts the matching messages per destination channel. Jobs and
// Stopped are left for the caller, who knows them.
func Summarize(r Reader, f Filter, now time.Time) (Summary, error) {
	if err := f.Validate(); err != nil {
		return Summary{}, err
	}
	by := map[string]*ChannelSummary{}
	var tot ChannelSummary
	err := r.Walk(func(env *queue.Envelope) bool {
		idx, ok := f.rcpts(env, now)
		if !ok {
			return true
		}
		tot.Messages++
		tot.Recipients += len(idx)
		tot.Size += env.Size
		tot.Blocks += maillog.Blocks(env.Size)
		if env.Held {
			tot.Held++
		}
		older(&tot.Oldest, env.Arrival)
		seen := map[string]bool{}
		for _, i := range idx {
			name := env.Rcpts[i].Channel
			cs := by[name]
			if cs == nil {
				cs = &ChannelSummary{Name: name}
				by[name] = cs
			}
			cs.Recipients++
			if !seen[name] {
				seen[name] = true
				cs.Messages++
				cs.Size += env.Size
				cs.Blocks += maillog.Blocks(env.Size)
				if env.Held {
					cs.Held++
				}
				older(&cs.Oldest, env.Arrival)
			}
		}
		return true
	})
	s := Summary{Total: tot}
	s.Total.Name = "total"
	for _, cs := range by {
		s.Channels = append(s.Channels, *cs)
	}
	slices.SortFunc(s.Channels, func(a, b ChannelSummary) int { return strings.Compare(a.Name, b.Name) })
	return s, err
}

// IndexAnswers reports whether the job controller's totals can answer summarize
// for f: they are per channel, scheduled and held apart, so a filter on the
// channel or on held messages is answered; one on the sender, recipient,
// destination host or age needs the envelopes (a walk of the queue).
func IndexAnswers(f Filter) bool {
	return f.From == "" && f.To == "" && f.Domain == "" && f.Older == 0 && f.Younger == 0
}

// SummarizeIndex is Summarize answered from the job controller's totals instead
// of a walk of the queue: the same numbers, at a cost that does not grow with the
// queue. ok is false when the totals cannot answer (see IndexAnswers; the
// controller's start-up walk not finished; a channel filter matching more than one
// channel name, which only a walk can count each message once for): walk then.
func SummarizeIndex(t jobctl.QueueTotals, f Filter) (s Summary, ok bool, err error) {
	if err := f.Validate(); err != nil {
		return Summary{}, false, err
	}
	if !t.Complete || !IndexAnswers(f) {
		return Summary{}, false, nil
	}
	pick := func(ct jobctl.ChannelTotals) ChannelSummary {
		n := ct.Held
		if !f.Held {
			n = ct.Queued
			n.Add(ct.Held)
		}
		return ChannelSummary{
			Name: ct.Name, Messages: n.Messages, Recipients: n.Recipients, Held: ct.Held.Messages,
			Size: n.Size, Blocks: n.Blocks, Oldest: n.Oldest,
		}
	}
	for _, ct := range t.Channels {
		if f.Channel != "" && !strings.EqualFold(f.Channel, ct.Name) {
			continue
		}
		if cs := pick(ct); cs.Messages > 0 {
			s.Channels = append(s.Channels, cs)
		}
	}
	switch {
	case f.Channel == "":
		s.Total = pick(t.Total)
	case len(s.Channels) == 0:
	case len(s.Channels) == 1:
		s.Total = s.Channels[0]
	default:
		return Summary{}, false, nil
	}
	s.Total.Name = "total"
	return s, true, nil
}

func older(dst *time.Time, t time.Time) {
	if dst.IsZero() || t.Before(*dst) {
		*dst = t
	}
}

// DomainSummary is one line of qm summarize -by=domain: a destination host of a
// channel.
type DomainSummary struct {
	Domain       string    `json:"domain"`
	Channel      string    `json:"channel"`
	Messages     int       `json:"messages"`
	Recipients   int       `json:"recipients"`
	Oldest       time.Time `json:"oldest"`
	Attempts     int       `json:"attempts"` // most attempts of one recipient
	LastError    string    `json:"last_error,omitempty"`
	BackoffUntil time.Time `json:"backoff_until"` // mtad only: the host is backed off as a whole
	nextAttempt  time.Time
}

// SummarizeDomains groups the matching pending recipients by channel and
// destination host, oldest message first.
func SummarizeDomains(r Reader, f Filter, now time.Time) ([]DomainSummary, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	type key struct{ ch, host string }
	by := map[key]*DomainSummary{}
	err := r.Walk(func(env *queue.Envelope) bool {
		idx, ok := f.rcpts(env, now)
		if !ok {
			return true
		}
		seen := map[key]bool{}
		for _, i := range idx {
			rc := env.Rcpts[i]
			k := key{rc.Channel, rc.Host}
			d := by[k]
			if d == nil {
				d = &DomainSummary{Domain: rc.Host, Channel: rc.Channel}
				by[k] = d
			}
			d.Recipients++
			if !seen[k] {
				seen[k] = true
				d.Messages++
				older(&d.Oldest, env.Arrival)
			}
			if rc.LastError != "" && (rc.Attempts > d.Attempts || (rc.Attempts == d.Attempts && rc.NextAttempt.After(d.nextAttempt))) {
				d.LastError = rc.LastError
				d.nextAttempt = rc.NextAttempt
			}
			d.Attempts = max(d.Attempts, rc.Attempts)
		}
		return true
	})
	out := make([]DomainSummary, 0, len(by))
	for _, d := range by {
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b DomainSummary) int {
		if c := a.Oldest.Compare(b.Oldest); c != 0 {
			return c
		}
		if a.Domain != b.Domain {
			return strings.Compare(a.Domain, b.Domain)
		}
		return strings.Compare(a.Channel, b.Channel)
	})
	return out, err
}

// MessageView is qm view's reply: the envelope, each recipient's state and the
// content's header.
type MessageView struct {
	Envelope queue.Envelope `json:"envelope"`
	Headers  string         `json:"headers"`
	// HeaderError is set when the content could not be read (damaged or gone).
	HeaderError string `json:"header_error,omitempty"`
}

// maxHeader bounds how much of the content view reads looking for the header's end.
const maxHeader = 64 << 10

// View returns one message. An unknown id gives queue.ErrNotFound.
func View(r Reader, id string) (*MessageView, error) {
	env, err := r.Get(id)
	if err != nil {
		return nil, err
	}
	v := &MessageView{Envelope: *env}
	c, err := r.Content(id)
	if err != nil {
		v.HeaderError = err.Error()
		return v, nil
	}
	defer c.Close()
	v.Headers, err = readHeader(io.NewSectionReader(c, 0, c.Size()))
	if err != nil {
		v.HeaderError = err.Error()
	}
	return v, nil
}

// readHeader returns the header block (up to the empty line), CRLF turned to LF.
func readHeader(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxHeader))
	if err != nil {
		return "", fmt.Errorf("read header: %w", err)
	}
	return string(mailheader.WithLineEnds(mailheader.Block(b, 0), "\n")), nil
}
