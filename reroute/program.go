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
	results := make([]channels.Result, len(m.Rcpts))
	failed := make([]bool, len(m.Rcpts))
	for i, r := range m.Rcpts {
		out := tx.AddRecipient(intake.Recipient{Addr: r.Addr, ORCPT: r.ORCPT, Notify: r.Notify})
		if out.Refused != nil {
			// Temporary statuses are requeued by the job controller, the rest
			// returned to the sender with this diagnostic.
			results[i] = channels.Result{Err: out.Refused, Reply: out.Refused.Error(), ConnFailed: out.Refused.Temporary()}
			failed[i] = true
		}
	}
	if tx.Len() == 0 {
		return results
	}
	res, _ := tx.Accept(ctx, msg)
	ids := make([][]string, len(m.Rcpts))
	errs := make([]error, len(m.Rcpts))
	for _, c := range res.Copies {
		for _, i := range c.Origins {
			switch {
			case c.Err != nil:
				errs[i] = c.Err
			case len(ids[i]) == 0 || ids[i][len(ids[i])-1] != c.ID:
				ids[i] = append(ids[i], c.ID)
			}
		}
	}
	for i := range m.Rcpts {
		switch {
		case failed[i]:
		case errs[i] != nil:
			st := status.New(451, "4.3.0", "reprocessing: enqueue failed: %v", errs[i])
			results[i] = channels.Result{Err: st, Reply: st.Error(), ConnFailed: true}
		default:
			results[i] = channels.Result{Reply: "reprocessed as " + strings.Join(ids[i], " ")}
		}
	}
	return results
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
