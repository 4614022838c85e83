package daemon

// The reprocess and hold channels' master programs (channels.md §channel types,
// operations.md §6). Neither delivers anywhere: each hands its recipients back to
// the queue.
//
//   - reprocess/process: every recipient is resolved again with the image in
//     force, the source channel being the reprocess channel itself (so that
//     expandlimit, which deferred the alias here, does not apply a second time),
//     and the result is enqueued with the same content and envelope fields.
//   - hold: fresh mail becomes a .HELD copy kept on the hold channel (reason
//     "hold channel"). When the postmaster releases that copy, the job
//     controller hands it to the hold channel again; its Source is then the hold
//     channel (only this program enqueues with that source), and it is
//     reprocessed like the above, so it goes where the rules send it now.
//
// Crash safety: the new copies are durable (Enqueue returned) before the original
// recipients are reported delivered. A crash in between delivers them twice; no
// order of events loses them.
//
// Decisions where the reference is silent [inf]:
//   - The copies keep the original arrival time, so notices and returns count from
//     when the sender sent the message, not from the hand-off.
//   - A reprocess channel whose rules route an address back to itself would loop
//     for ever: such a recipient is returned with 5.4.6. On a hold channel the
//     same thing means "still held": the recipient is held again.
//   - Recipients of a list with an owner get their own copy whose envelope sender
//     is the owner (as in the SMTP server); holdlimit applies to what reprocessing
//     produced, per destination channel.
//   - Priority is not part of what a channel program sees; the copies are normal.

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/compiler"
	"mtad.dev/mta/engine"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/queue"
	"mtad.dev/mta/status"
)

// holdChannelReason is the .HELD reason of mail the hold channel keeps.
const holdChannelReason = "hold channel"

// isReprocessChannel and isHoldChannel follow the product's naming convention
// (channels.md §2), as bitbucket channels are recognised by their name.
func isReprocessChannel(name string) bool {
	n := strings.ToLower(name)
	return strings.HasPrefix(n, "reprocess") || strings.HasPrefix(n, "process")
}

func isHoldChannel(name string) bool { return strings.HasPrefix(strings.ToLower(name), "hold") }

// enqueuer is the part of the queue the reprocess program uses.
type enqueuer interface {
	Enqueue(ctx context.Context, env *queue.Envelope, content []byte) (string, error)
}

// reprocessor is the master program of one reprocess or hold channel.
type reprocessor struct {
	channel string
	hold    bool                   // a hold channel: fresh mail is kept .HELD
	image   func() *compiler.Image // the image in force at each delivery
	queue   enqueuer
	mlog    *maillog.Logger
	log     *slog.Logger
}

func newReprocessor(channel string, hold bool, image func() *compiler.Image, q enqueuer, mlog *maillog.Logger, log *slog.Logger) *reprocessor {
	return &reprocessor{channel: channel, hold: hold, image: image, queue: q, mlog: mlog, log: log}
}

// Deliver implements channels.Program.
func (p *reprocessor) Deliver(ctx context.Context, m *channels.Message) []channels.Result {
	content := make([]byte, m.Size)
	if _, err := io.ReadFull(io.NewSectionReader(m.Content, 0, m.Size), content); err != nil {
		return allResults(len(m.Rcpts), status.New(451, "4.3.0", "cannot read queued content: %v", err))
	}
	if p.hold && m.Source != p.channel {
		return p.keep(ctx, m, content)
	}
	return p.reroute(ctx, m, content)
}

// keep makes a .HELD copy of fresh mail on the hold channel.
func (p *reprocessor) keep(ctx context.Context, m *channels.Message, content []byte) []channels.Result {
	env := p.envelope(m, content, m.From)
	env.Held, env.HeldReason = true, holdChannelReason
	for _, r := range m.Rcpts {
		env.Rcpts = append(env.Rcpts, queue.Recipient{Addr: r.Addr, Orig: r.Addr, ORCPT: r.ORCPT, Notify: r.Notify,
			Channel: p.channel, Host: r.Host})
	}
	id, err := p.queue.Enqueue(ctx, env, content)
	if err != nil {
		p.log.Warn("hold channel: enqueue failed", "id", m.ID, "err", err)
		return allResults(len(m.Rcpts), status.New(451, "4.3.0", "hold channel: enqueue failed: %v", err))
	}
	p.logEnqueued(env, id)
	p.log.Info("message held by the hold channel", "id", m.ID, "held_id", id, "channel", p.channel)
	res := make([]channels.Result, len(m.Rcpts))
	for i := range res {
		res[i] = channels.Result{Reply: "held as " + id}
	}
	return res
}

// output is one recipient reprocessing produced, with the original recipients
// (indexes into Message.Rcpts) that produced it.
type output struct {
	rcpt    queue.Recipient
	sender  string // "" for the message's own
	held    string // .HELD reason for this recipient; "" none
	origins []int
}

// reroute resolves every recipient again and enqueues the result.
func (p *reprocessor) reroute(ctx context.Context, m *channels.Message, content []byte) []channels.Result {
	results := make([]channels.Result, len(m.Rcpts))
	img := p.image()
	if img == nil || img.Rules == nil {
		return allResults(len(m.Rcpts), status.New(451, "4.3.0", "routing not available, try again later"))
	}
	var outs []*output
	byKey := map[string]*output{}
	failed := make([]bool, len(m.Rcpts))
	for i, r := range m.Rcpts {
		res := img.Rules.Resolve(engine.Request{Address: r.Addr, Kind: engine.EnvelopeTo, SourceChannel: p.channel})
		st := res.Err
		if st == nil && len(res.Recipients) == 0 {
			st = status.New(550, "5.1.1", "No such user %s", r.Addr)
		}
		if st == nil && !p.hold {
			for _, rc := range res.Recipients {
				if rc.Channel == p.channel {
					st = status.New(554, "5.4.6", "routing loop: reprocessing routes %s back to channel %s", rc.Address, p.channel)
					break
				}
			}
		}
		if st != nil {
			// Temporary() statuses are requeued by the job controller, the rest
			// returned to the sender with this diagnostic.
			results[i] = channels.Result{Err: st, Reply: st.Error()}
			failed[i] = true
			continue
		}
		for _, rc := range res.Recipients {
			held := ""
			if rc.Channel == p.channel {
				held = holdChannelReason // hold channel: the rules still hold it
			}
			key := strings.ToLower(rc.Sender + "\x00" + rc.Channel + "\x00" + rc.Address)
			if o := byKey[key]; o != nil {
				o.origins = append(o.origins, i)
				continue
			}
			o := &output{
				rcpt: queue.Recipient{Addr: rc.Address, Orig: r.Addr, ORCPT: r.ORCPT, Notify: r.Notify,
					Channel: rc.Channel, Host: strings.ToLower(rc.Host)},
				sender: rc.Sender, held: held, origins: []int{i},
			}
			byKey[key] = o
			outs = append(outs, o)
		}
	}
	if len(outs) == 0 {
		return results
	}

	limitReason := holdLimitReason(img, outs)
	// One envelope per (sender, held reason), in the order of first appearance.
	type copyEnv struct {
		env     *queue.Envelope
		origins []int
		id      string
		err     error
	}
	var copies []*copyEnv
	byGroup := map[string]*copyEnv{}
	for _, o := range outs {
		from := m.From
		if o.sender != "" {
			from = o.sender
		}
		reason := o.held
		if reason == "" {
			reason = limitReason
		}
		g := from + "\x00" + reason
		c := byGroup[g]
		if c == nil {
			c = &copyEnv{env: p.envelope(m, content, from)}
			c.env.Held, c.env.HeldReason = reason != "", reason
			byGroup[g] = c
			copies = append(copies, c)
		}
		c.env.Rcpts = append(c.env.Rcpts, o.rcpt)
		c.origins = append(c.origins, o.origins...)
	}
	for _, c := range copies {
		c.id, c.err = p.queue.Enqueue(ctx, c.env, content)
		if c.err != nil {
			p.log.Warn("reprocess: enqueue failed", "channel", p.channel, "id", m.ID, "from", c.env.From, "err", c.err)
			continue
		}
		p.logEnqueued(c.env, c.id)
		if c.env.Held && c.env.HeldReason == limitReason {
			lvl := slog.LevelInfo
			if heldSndopr(img) {
				lvl = slog.LevelWarn
			}
			p.log.Log(ctx, lvl, "message forced .HELD", "id", c.id, "reason", c.env.HeldReason, "from", c.env.From, "channel", p.channel)
		}
	}

	// An original recipient is handed off when every copy holding something it
	// produced is durable; otherwise it is requeued whole (the copies that did
	// succeed are then made again: a duplicate, never a loss).
	ids := make([][]string, len(m.Rcpts))
	var errs = make([]error, len(m.Rcpts))
	for _, c := range copies {
		for _, i := range c.origins {
			if c.err != nil {
				errs[i] = c.err
			} else if len(ids[i]) == 0 || ids[i][len(ids[i])-1] != c.id {
				ids[i] = append(ids[i], c.id)
			}
		}
	}
	for i := range m.Rcpts {
		switch {
		case failed[i]:
		case errs[i] != nil:
			st := status.New(451, "4.3.0", "reprocessing: enqueue failed: %v", errs[i])
			results[i] = channels.Result{Err: st, Reply: st.Error()}
		default:
			results[i] = channels.Result{Reply: "reprocessed as " + strings.Join(ids[i], " ")}
		}
	}
	return results
}

// envelope is a copy of m's envelope fields, queued by this channel.
func (p *reprocessor) envelope(m *channels.Message, content []byte, from string) *queue.Envelope {
	h, _ := splitHeader(content)
	return &queue.Envelope{
		From:      from,
		Source:    p.channel,
		Arrival:   m.Arrival,
		RET:       m.RET,
		EnvID:     m.EnvID,
		Body8Bit:  m.EightBit,
		SMTPUTF8:  m.SMTPUTF8,
		MessageID: strings.TrimSpace(h.get("Message-ID")),
		Client:    "localhost (" + p.channel + " channel, from " + m.ID + ")",
	}
}

func (p *reprocessor) logEnqueued(env *queue.Envelope, id string) {
	for _, rc := range env.Rcpts {
		p.mlog.Log(maillog.Record{Source: p.channel, Dest: rc.Channel, Code: "E", Size: env.Size, From: env.From,
			ORCPT: rc.ORCPT, To: rc.Addr, ID: id, MessageID: env.MessageID})
	}
}

func allResults(n int, st *status.Status) []channels.Result {
	res := make([]channels.Result, n)
	for i := range res {
		res[i] = channels.Result{Err: st, Reply: st.Error()}
	}
	return res
}

// holdLimitReason is the .HELD reason when the outputs give some channel more
// recipients than its holdlimit; "" otherwise.
func holdLimitReason(img *compiler.Image, outs []*output) string {
	rcpts := make([]queue.Recipient, len(outs))
	for i, o := range outs {
		rcpts[i] = o.rcpt
	}
	return holdLimit(img, rcpts)
}

// holdLimit is queue.HoldLimitReason with the image's channels.
func holdLimit(img *compiler.Image, rcpts []queue.Recipient) string {
	return queue.HoldLimitReason(rcpts, func(ch string) int {
		c, ok := img.Channel(ch)
		if !ok {
			return 0
		}
		return c.HoldLimit
	})
}

// heldSndopr is option.dat HELD_SNDOPR (the compiler validates it as a boolean
// and keeps it in Options.Raw).
func heldSndopr(img *compiler.Image) bool {
	if img == nil {
		return false
	}
	n, err := strconv.Atoi(strings.TrimSpace(img.Options.Raw["HELD_SNDOPR"]))
	return err == nil && n != 0
}
