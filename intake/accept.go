package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"mtad.dev/mta/maillog"
	"mtad.dev/mta/queue"
	"mtad.dev/mta/status"
)

// Message is the content and the envelope fields of a message to accept.
type Message struct {
	// Content is the message as it will be queued, our Received: field first
	// (ReceivedSMTP, ReceivedLocal; a hand-back keeps the content it had).
	Content []byte
	// ReceivedLen is the length of our Received: field at the start of Content,
	// so that a J record gives the size of what the client sent.
	ReceivedLen int
	RET         string // RFC 3461 RET
	EnvID       string // RFC 3461 ENVID
	Body8Bit    bool   // BODY=8BITMIME
	SMTPUTF8    bool
	// Arrival is when the sender sent the message; zero: now. A hand-back keeps
	// the original arrival so that notices count from it.
	Arrival time.Time
	// Priority and Notices are kept by a requeued message: its class, and the
	// delay notices already sent for it (so that the sender is not warned twice).
	Priority int
	Notices  int
	// LogAttrs are added to the diagnostic lines about the message (the SMTP
	// session's id, the submitting user, the handing channel).
	LogAttrs []any
}

// Copy is one envelope of an accepted message: one per envelope sender (list
// owners) and .HELD reason.
type Copy struct {
	Envelope *queue.Envelope
	// Content is what the copy is queued with: the message, or a filter's edit
	// of it (addheader, addtag ...).
	Content []byte
	ID      string // the queue id; "" when the enqueue failed
	Err     error  // why the enqueue failed
	// Origins are the AddRecipient calls (0, 1, ...) whose recipients the copy
	// holds: a hand-back reports each original recipient by them.
	Origins []int
	notes   []string // per recipient: the filters' note for its E record; nil: none
}

// Result is what Accept did.
type Result struct {
	Copies []Copy
	// Discarded is set when nothing was queued and nothing had to be: an access
	// entry discarded the message ($V, $Z) or sent every recipient to the
	// bitbucket ($B).
	Discarded bool
	// Held is the .HELD reason of the message, "" when it is not held (a
	// hand-back may still hold single copies: see Copy.Envelope).
	Held string
	// Forced is set when the loop check or holdlimit held the message: the
	// holds HELD_SNDOPR is about.
	Forced bool
	// MessageID is the message's Message-ID: field, "" when it has none.
	MessageID string
}

// IDs are the queue ids of the copies that became durable, in order.
func (r *Result) IDs() []string {
	ids := make([]string, 0, len(r.Copies))
	for _, c := range r.Copies {
		if c.ID != "" {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// Accept decides whether the message is held, makes one copy per envelope
// sender and .HELD reason, enqueues the copies (concurrently, so that they share
// one group commit), and logs E for each recipient of each durable copy. The
// error joins the failures; copies that became durable are delivered anyway, so
// a sender that retries after an error may duplicate them, never lose them.
func (t *Transaction) Accept(ctx context.Context, m Message) (*Result, error) {
	trace := countTrace(m.Content, t.rules.hostname())
	res := &Result{MessageID: trace.messageID}
	if t.discard || len(t.rcpts) == 0 {
		res.Discarded = true
		return res, nil
	}
	if err := t.authenticate(ctx, &m); err != nil {
		return res, err
	}
	fr := t.runFilter(ctx, m)
	if fr != nil && fr.Refused != nil {
		return res, fr.Refused
	}
	after := func() {
		if fr != nil && fr.After != nil {
			fr.After(ctx)
		}
	}
	if len(t.rcpts) == 0 { // every recipient discarded or redirected by a filter
		res.Discarded = true
		after()
		return res, nil
	}
	held, forced := t.heldReason(trace)
	res.Held, res.Forced = held, forced
	res.Copies = t.copies(m, held, trace.messageID)
	t.enqueue(ctx, res.Copies)

	var errs []error
	for _, c := range res.Copies {
		if c.Err != nil {
			errs = append(errs, c.Err)
			continue
		}
		t.logEnqueued(c, len(c.Content))
		if forced && c.Envelope.HeldReason == held {
			lvl := slog.LevelInfo
			if t.rules.HeldSndopr {
				lvl = slog.LevelWarn
			}
			t.in.logger().Log(ctx, lvl, "message forced .HELD", append([]any{"id", c.ID, "reason", held, "from", c.Envelope.From}, m.LogAttrs...)...)
		}
	}
	if len(errs) == 0 {
		after()
		return res, nil
	}
	err := errors.Join(errs...)
	t.in.logger().Warn("enqueue failed", append([]any{"queued", res.IDs(), "err", err}, m.LogAttrs...)...)
	if t.origin.logsRefusals() {
		st := temporaryIfOdd(status.From(err))
		for _, c := range res.Copies {
			if c.Err == nil {
				continue // logged E: it will be delivered
			}
			for _, rc := range c.Envelope.Rcpts {
				t.in.LogRefused(t.origin, c.Envelope.From, rc.Channel, rc.Addr, rc.ORCPT, int64(len(c.Content)-m.ReceivedLen), st)
			}
		}
	}
	return res, err
}

// heldReason decides whether the whole message is held: a loop first, then an
// access entry's $H, then holdlimit. forced is set for the loop and holdlimit,
// the holds HELD_SNDOPR is about.
func (t *Transaction) heldReason(trace traceCounts) (reason string, forced bool) {
	if r := LoopReason(trace.received, trace.local, t.rules.MaxReceivedLines, t.rules.MaxLocalReceivedLines, t.rules.hostname()); r != "" {
		return r, true
	}
	if t.held != "" {
		return t.held, false
	}
	if r := t.rules.holdLimitReason(t.Recipients()); r != "" {
		return r, true
	}
	return "", false
}

// copies makes one envelope per envelope sender, .HELD reason and content, in
// the order of their first recipient. Recipients that came through a list with
// an owner get the owner as sender, so that their bounces go to the owner, not to
// the poster; recipients a filter edited the message for get their own copy.
func (t *Transaction) copies(m Message, held, messageID string) []Copy {
	var out []Copy
	byKey := map[string]int{}
	for _, e := range t.rcpts {
		from := t.from
		if e.sender != "" {
			from = e.sender
		}
		from = t.forwardSRS(from, e.rcpt.Channel)
		reason := held
		if e.held != "" {
			reason = e.held
		}
		key := from + "\x00" + reason + "\x00" + strconv.Itoa(e.variant)
		i, ok := byKey[key]
		if !ok {
			i = len(out)
			byKey[key] = i
			out = append(out, Copy{Content: t.contentOf(e.variant, m), Envelope: &queue.Envelope{
				From:       from,
				Source:     t.origin.Channel,
				Arrival:    m.Arrival,
				Priority:   m.Priority,
				Notices:    m.Notices,
				RET:        m.RET,
				EnvID:      m.EnvID,
				Body8Bit:   m.Body8Bit,
				SMTPUTF8:   m.SMTPUTF8,
				MessageID:  messageID,
				Client:     t.origin.Description,
				Held:       reason != "",
				HeldReason: reason,
			}})
		}
		c := &out[i]
		c.Envelope.Rcpts = append(c.Envelope.Rcpts, e.rcpt)
		c.Origins = append(c.Origins, e.origins...)
		if t.rules.Filter != nil {
			c.notes = append(c.notes, e.note)
		}
	}
	return out
}

// enqueue makes every copy durable with the same content. The copies of a
// message from an SMTP client are enqueued concurrently so that they share one
// group commit: the reply then waits for one fsync, not one per list owner. The
// others are enqueued in order, so queue ids follow the order of the copies.
func (t *Transaction) enqueue(ctx context.Context, copies []Copy) {
	one := func(c *Copy) {
		c.ID, c.Err = t.in.Queue.Enqueue(ctx, c.Envelope, c.Content)
		if c.Err != nil {
			c.ID = ""
			if len(copies) > 1 {
				c.Err = fmt.Errorf("copy for sender <%s>: %w", c.Envelope.From, c.Err)
			}
		}
	}
	if len(copies) == 1 || t.origin.Kind != SMTP {
		for i := range copies {
			one(&copies[i])
		}
		return
	}
	var wg sync.WaitGroup
	for i := range copies {
		wg.Go(func() { one(&copies[i]) })
	}
	wg.Wait()
}

// logEnqueued writes the E records of a durable copy, one per recipient.
func (t *Transaction) logEnqueued(c Copy, size int) {
	if t.in.MailLog == nil {
		return
	}
	code := t.origin.EnqueueCode
	if code == "" {
		code = maillog.CodeEnqueued
	}
	env := c.Envelope
	for i, rc := range env.Rcpts {
		var diag string
		if i < len(c.notes) {
			diag = c.notes[i]
		}
		t.in.MailLog.Log(maillog.Record{
			Source: t.origin.Channel, Dest: rc.Channel, Code: code, Size: int64(size), From: env.From,
			ORCPT: rc.ORCPT, To: rc.Addr, ID: c.ID, MessageID: env.MessageID, Conn: t.origin.conn(), Diag: diag,
		})
	}
}
