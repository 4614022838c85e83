package reroute

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/intake"
	"mtad.dev/mta/status"
)

// IsReprocessChannel and IsHoldChannel follow the product's naming convention:
// the program of such a channel is chosen by its name, as bitbucket channels are.
func IsReprocessChannel(name string) bool {
	n := strings.ToLower(name)
	return strings.HasPrefix(n, "reprocess") || strings.HasPrefix(n, "process")
}

// IsHoldChannel: see IsReprocessChannel.
func IsHoldChannel(name string) bool { return strings.HasPrefix(strings.ToLower(name), "hold") }

// Program is the master program of one reprocess or hold channel.
type Program struct {
	channel string
	hold    bool                 // a hold channel: fresh mail is kept .HELD
	rules   func() *intake.Rules // the rules in force at each delivery
	intake  *intake.Intake
	log     *slog.Logger
}

var _ channels.Program = (*Program)(nil)

// New returns the program of the reprocess or hold (hold set) channel.
func New(channel string, hold bool, rules func() *intake.Rules, in *intake.Intake, log *slog.Logger) *Program {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Program{channel: channel, hold: hold, rules: rules, intake: in, log: log}
}

// Deliver implements channels.Program.
func (p *Program) Deliver(ctx context.Context, m *channels.Message) []channels.Result {
	content := make([]byte, m.Size)
	if _, err := io.ReadFull(io.NewSectionReader(m.Content, 0, m.Size), content); err != nil {
		return allResults(len(m.Rcpts), status.New(451, "4.3.0", "cannot read queued content: %v", err))
	}
	rules := p.rules()
	if rules == nil {
		return allResults(len(m.Rcpts), status.New(451, "4.3.0", "routing not available, try again later"))
	}
	selfRoute := intake.SelfRefuse
	if p.hold {
		selfRoute = intake.SelfHold
	}
	origin := intake.Origin{Kind: intake.Handback, Channel: p.channel, SelfRoute: selfRoute,
		Description: "localhost (" + p.channel + " channel, from " + m.ID + ")"}
	tx, _ := p.intake.Begin(rules, origin, m.From)
	msg := intake.Message{Content: content, Arrival: m.Arrival, RET: m.RET, EnvID: m.EnvID,
		Body8Bit: m.EightBit, SMTPUTF8: m.SMTPUTF8, LogAttrs: []any{"channel", p.channel, "from_id", m.ID}}
	if p.hold && m.Source != p.channel {
		return p.keep(ctx, tx, m, msg)
	}
	return p.reroute(ctx, tx, m, msg)
}

// keep makes a .HELD copy of fresh mail on the hold channel.
func (p *Program) keep(ctx context.Context, tx *intake.Transaction, m *channels.Message, msg intake.Message) []channels.Result {
	for _, r := range m.Rcpts {
		tx.Keep(intake.Recipient{Addr: r.Addr, ORCPT: r.ORCPT, Notify: r.Notify}, p.channel, r.Host, intake.HoldChannelReason)
	}
	res, err := tx.Accept(ctx, msg)
	if err != nil {
		return allResults(len(m.Rcpts), status.New(451, "4.3.0", "hold channel: enqueue failed: %v", err))
	}
	ids := strings.Join(res.IDs(), " ")
	p.log.Info("message held by the hold channel", "id", m.ID, "held_id", ids, "channel", p.channel)
	out := make([]channels.Result, len(m.Rcpts))
	for i := range out {
		out[i] = channels.Result{Reply: "held as " + ids}
	}
	return out
}

// reroute resolves every recipient again and queues the result. A recipient is
// handed off when every copy holding something it produced is durable;
// otherwise it is requeued whole (the copies that did succeed are then made
// again: a duplicate, never a loss).
func (p *Program) reroute(ctx context.Context, tx *intake.Transaction, m *channels.Message, msg intake.Message) []channels.Result {
	rcpts := make([]intake.Recipient, len(m.Rcpts))
	for i, r := range m.Rcpts {
		rcpts[i] = intake.Recipient{Addr: r.Addr, ORCPT: r.ORCPT, Notify: r.Notify}
	}
	outs := handBack(ctx, tx, rcpts, msg)
	results := make([]channels.Result, len(m.Rcpts))
	for i, o := range outs {
		switch {
		case o.Refused != nil:
			// Temporary statuses are requeued by the job controller, the rest
			// returned to the sender with this diagnostic.
			results[i] = channels.Result{Err: o.Refused, Reply: o.Refused.Error(), ConnFailed: o.Refused.Temporary()}
		case o.Err != nil:
			st := status.New(451, "4.3.0", "reprocessing: enqueue failed: %v", o.Err)
			results[i] = channels.Result{Err: st, Reply: st.Error(), ConnFailed: true}
		case len(o.IDs) > 0:
			results[i] = channels.Result{Reply: "reprocessed as " + strings.Join(o.IDs, " ")}
		}
	}
	return results
}

// handedBack is what became of one recipient handed back to intake.
type handedBack struct {
	Refused *status.Status  // refused by the rules (or the access tables): nothing was queued for it
	Routed  []intake.Routed // where the rules send it
	IDs     []string        // the durable copies holding what it was routed to
	Err     error           // a copy holding part of it could not be queued
}

// handBack adds every recipient to tx, accepts the message and tells, per
// recipient, which durable copies hold what it became. A recipient is handed
// off only when every copy holding part of it is durable; Err says otherwise.
func handBack(ctx context.Context, tx *intake.Transaction, rcpts []intake.Recipient, msg intake.Message) []handedBack {
	outs := make([]handedBack, len(rcpts))
	for i, r := range rcpts {
		o := tx.AddRecipient(r)
		outs[i].Refused, outs[i].Routed = o.Refused, o.Routed
	}
	if tx.Len() == 0 {
		return outs
	}
	res, _ := tx.Accept(ctx, msg)
	for _, c := range res.Copies {
		for _, i := range c.Origins {
			o := &outs[i]
			switch {
			case c.Err != nil:
				o.Err = c.Err
			case len(o.IDs) == 0 || o.IDs[len(o.IDs)-1] != c.ID:
				o.IDs = append(o.IDs, c.ID)
			}
		}
	}
	return outs
}

// allResults gives every recipient the same outcome. No server takes part in a
// hand-back: a temporary failure counts, for the job controller, like a host that
// did not answer (it waits out the channel's backoff rather than retrying at once).
func allResults(n int, st *status.Status) []channels.Result {
	res := make([]channels.Result, n)
	for i := range res {
		res[i] = channels.Result{Err: st, Reply: st.Error(), ConnFailed: st.Temporary()}
	}
	return res
}
