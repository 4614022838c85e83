package intake

import (
	"context"

	"mtad.dev/mta/queue"
	"mtad.dev/mta/status"
)

// Filter is the Sieve filtering of a message at acceptance: the MTA-wide filter
// and the channels' source and destination filters (package filter implements
// it). It runs once per message, when every recipient is known and before any
// copy is queued, so that a refusal can still be the reply to DATA and every
// way into the queue gets the same filters.
type Filter interface {
	// Filter decides what becomes of each recipient. A nil result leaves the
	// message as it is. The filter writes the mail.log records of what it
	// decided itself (D for a discard, J for a refusal); intake writes the E
	// records of what it queues.
	Filter(ctx context.Context, req *FilterRequest) *FilterResult
}

// FilterRequest is the message as the filters see it.
type FilterRequest struct {
	Origin  *Origin
	Conn    string // the connection's description for J records ("" unless LOG_CONNECTION asks)
	From    string
	Rcpts   []queue.Recipient // the distinct recipients, in order
	Content []byte            // as it will be queued, our Received: field first
	RET     string
	EnvID   string
}

// FilterResult is what the filters decided.
type FilterResult struct {
	// Refused, when set, refuses the message as a whole (every recipient was
	// rejected): Accept returns it and queues nothing.
	Refused *status.Status
	// Rcpts has one entry per recipient of the request, in order.
	Rcpts []FilteredRcpt
	// After, when set, runs once the message is queued (not when Accept
	// fails: the sender will send it again): it sends what the filters asked
	// for besides the message itself, redirected copies and the notice of
	// recipients a filter rejected.
	After func(ctx context.Context)
}

// FilteredRcpt is what becomes of one recipient: it is replaced by its
// deliveries; none drops it.
type FilteredRcpt struct {
	Deliveries []Delivery
}

// Delivery is one recipient to queue in place of a filtered one.
type Delivery struct {
	Addr    string // "": the recipient's own address
	Channel string // "": the recipient's own channel
	Notify  string // "": the recipient's own NOTIFY
	Content []byte // nil: the message as submitted; else the filters' edit of it
	Note    string // said in the E record's diagnostic
}

// runFilter applies the rules' filter to the transaction's recipients: each is
// replaced by its deliveries. It returns the result, nil without a filter.
func (t *Transaction) runFilter(ctx context.Context, m Message) *FilterResult {
	if t.rules.Filter == nil {
		return nil
	}
	req := &FilterRequest{Origin: &t.origin, Conn: t.origin.conn(), From: t.from,
		Rcpts: t.Recipients(), Content: m.Content, RET: m.RET, EnvID: m.EnvID}
	fr := t.rules.Filter.Filter(ctx, req)
	if fr == nil || fr.Refused != nil || len(fr.Rcpts) != len(t.rcpts) {
		return fr
	}
	var kept []*entry
	for i, e := range t.rcpts {
		for _, d := range fr.Rcpts[i].Deliveries {
			ne := *e
			if d.Addr != "" {
				if ne.rcpt.ORCPT == "" {
					// The original recipient is still the one the sender gave:
					// notices and the log name it.
					ne.rcpt.ORCPT = "rfc822;" + ne.rcpt.Addr
				}
				ne.rcpt.Addr = d.Addr
			}
			if d.Channel != "" {
				ne.rcpt.Channel = d.Channel
			}
			if d.Notify != "" {
				ne.rcpt.Notify = d.Notify
			}
			ne.note = d.Note
			if d.Content != nil {
				ne.variant = t.variant(d.Content)
			}
			kept = append(kept, &ne)
		}
	}
	t.rcpts = kept
	return fr
}

// variant numbers an edited content; the same slice given for several
// recipients (those of one destination filter) is one variant, so that they
// share one queued copy.
func (t *Transaction) variant(content []byte) int {
	for i, v := range t.variants {
		if len(v) == len(content) && (len(v) == 0 || &v[0] == &content[0]) {
			return i + 1
		}
	}
	t.variants = append(t.variants, content)
	return len(t.variants)
}

// contentOf is the content a recipient is queued with.
func (t *Transaction) contentOf(variant int, m Message) []byte {
	if variant == 0 {
		return m.Content
	}
	return t.variants[variant-1]
}
