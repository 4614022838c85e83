package reroute

// qm requeue: recipients already queued are routed again with the rules in
// force and moved where the rules send them now. It is the reprocess channel's
// hand-back (handBack) with two differences: the rules see the message from its
// original source channel, as if it arrived now, and SEND_ACCESS judges each
// recipient (intake.Requeue); and a recipient the rules still send where it is
// stays as it is instead of being copied.

import (
	"context"
	"strings"
	"time"

	"mtad.dev/mta/intake"
	"mtad.dev/mta/status"
)

// Queued is a queued message to route again: its envelope and its content,
// byte for byte as queued.
type Queued struct {
	ID       string
	From     string // envelope sender; "" is <>
	Source   string // the channel it came in by; "" is treated as the local channel l
	Client   string // who submitted it, as queued (kept on the copies)
	Arrival  time.Time
	RET      string
	EnvID    string
	Body8Bit bool
	SMTPUTF8 bool
	Priority int
	Notices  int // delay notices already sent
	// Content reads the content; it is called only when a recipient is to be
	// copied, so that examining a message whose recipients stay costs no read.
	Content func() ([]byte, error)
}

// QueuedRcpt is one recipient of a Queued message, as it is queued now.
type QueuedRcpt struct {
	Addr    string
	Orig    string
	ORCPT   string
	Notify  string
	Channel string
}

// Move is what requeueing did (or, for a dry run, would do) with one recipient.
type Move struct {
	// Routed is where the rules in force send the recipient.
	Routed []intake.Routed
	// Unchanged: the rules still send it to the same address on the same
	// channel; it was left as it is.
	Unchanged bool
	// Refused: the rules or the access tables refuse it now. Nothing was
	// queued for it; a permanent status means it is to be returned.
	Refused *status.Status
	// IDs are the durable copies holding what it became (none for a dry run).
	IDs []string
	// Err: a copy holding part of it could not be queued; it is to stay where
	// it is (the copies that did become durable are then a duplicate).
	Err error
}

// Moved reports whether the recipient now lives in the copies IDs: the old
// recipient may go.
func (m Move) Moved() bool { return !m.Unchanged && m.Refused == nil && m.Err == nil && len(m.IDs) > 0 }

// Requeue routes rcpts of msg again with rules and, unless dryRun, queues those
// whose route changed in new copies that keep the envelope (sender, NOTIFY,
// ORCPT, ENVID, RET, arrival, priority, delay notices sent) and the content.
// It returns one Move per recipient. Nothing of the old message is changed:
// removing the recipients that moved is the caller's, after this returned, so
// that the new copies are durable before the old recipients go.
func Requeue(ctx context.Context, in *intake.Intake, rules *intake.Rules, msg *Queued, rcpts []QueuedRcpt, dryRun bool) []Move {
	moves := make([]Move, len(rcpts))
	if rules == nil {
		st := status.New(451, "4.3.0", "routing not available, try again later")
		for i := range moves {
			moves[i].Refused = st
		}
		return moves
	}
	origin := intake.Origin{Kind: intake.Requeue, Channel: msg.Source, Description: msg.Client}
	if origin.Channel == "" {
		origin.Channel = "l"
	}
	given := make([]intake.Recipient, len(rcpts))
	for i, r := range rcpts {
		given[i] = intake.Recipient{Addr: r.Addr, Orig: r.Orig, ORCPT: r.ORCPT, Notify: r.Notify}
	}
	// First only resolve, to tell the recipients whose route changed from the
	// others: those stay untouched rather than being copied onto themselves.
	plan, _ := in.Begin(rules, origin, msg.From)
	var changed []int
	for i, r := range given {
		o := plan.AddRecipient(r)
		moves[i].Refused, moves[i].Routed = o.Refused, o.Routed
		switch {
		case o.Refused != nil:
		case sameRoute(o.Routed, rcpts[i]):
			moves[i].Unchanged = true
		default:
			changed = append(changed, i)
		}
	}
	if dryRun || len(changed) == 0 {
		return moves
	}
	content, err := msg.Content()
	if err != nil {
		for _, i := range changed {
			moves[i].Err = err
		}
		return moves
	}
	tx, _ := in.Begin(rules, origin, msg.From)
	sub := make([]intake.Recipient, len(changed))
	for k, i := range changed {
		sub[k] = given[i]
	}
	im := intake.Message{Content: content, Arrival: msg.Arrival, RET: msg.RET, EnvID: msg.EnvID,
		Body8Bit: msg.Body8Bit, SMTPUTF8: msg.SMTPUTF8, Priority: msg.Priority, Notices: msg.Notices,
		LogAttrs: []any{"requeue_of", msg.ID}}
	for k, o := range handBack(ctx, tx, sub, im) {
		m := &moves[changed[k]]
		m.Refused, m.Routed, m.IDs, m.Err = o.Refused, o.Routed, o.IDs, o.Err
	}
	return moves
}

// sameRoute reports whether routes is exactly the recipient as it is queued.
func sameRoute(routes []intake.Routed, r QueuedRcpt) bool {
	return len(routes) == 1 && strings.EqualFold(routes[0].Channel, r.Channel) && strings.EqualFold(routes[0].Addr, r.Addr)
}
