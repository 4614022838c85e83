package filter

import (
	"bytes"
	"context"

	"mtad.dev/mta/intake"
	"mtad.dev/mta/sieve"
)

// ChannelFilters are one channel's filter keywords.
type ChannelFilters struct {
	// Source and Destination are the sourcefilter and destinationfilter
	// (channelfilter) URLs; "" none.
	Source, Destination string
	// FileInto is the fileinto template ($U+$S@$D): a system filter's fileinto
	// becomes this address on the same channel. "" none: the fileinto is a keep.
	FileInto string
	// User is the filter URL-pattern of users' own filters; "" none.
	User string
}

// System is the filtering of acceptance, intake's Filter: the MTA-wide filter
// (imta.filter, compiled into the image) and the channel filters (read from
// their URLs, so that an edit takes effect without cnbuild). Its zero value
// filters nothing.
type System struct {
	Deps
	Settings
	// MTA is imta.filter, compiled; nil: none.
	MTA *sieve.Script
	// Channels are the channels' filter keywords by channel name.
	Channels map[string]ChannelFilters
	// ConfigDir is where relative filter URLs point (IMTA_TABLE).
	ConfigDir string
	// Users, when set, gives users' filters their say over a system discard:
	// the product's documentation says a discard does not override a user's
	// keep (jettison does).
	Users *Users
}

// Active reports whether any filter of acceptance is configured.
func (s *System) Active() bool {
	if s.MTA != nil {
		return true
	}
	for _, c := range s.Channels {
		if c.Source != "" || c.Destination != "" {
			return true
		}
	}
	return false
}

// stage is one script's evaluation.
type stage struct {
	name    string
	res     *sieve.Result // nil when the script failed (as if there were none)
	err     error
	content []byte // the message after the script's edits
}

// group is the recipients of one destination channel.
type group struct {
	channel string
	rcpts   []int
	dest    *sieve.Script
	destErr error
	stage   *stage
}

// run is the filtering of one message.
type run struct {
	s     *System
	ctx   context.Context
	req   *intake.FilterRequest
	whole []*stage // the message-wide stages: imta.filter, then the source filter
	// content is the message after the message-wide stages.
	content  []byte
	groups   []*group
	sources  []*sieve.Script // the message-wide scripts to run, in order
	srcErr   error
	rejects  []int
	rejectOf map[int]*sieve.Reject
	msgID    string
}

// Filter implements intake.Filter. The MTA-wide filter and the source
// channel's filter run once on the message, with every recipient in the
// envelope; each destination channel's filter then runs on what they left,
// with that channel's recipients. A message handed back by the reprocess or
// hold channel has been through the first two when it arrived: only the
// destination filters of its new destinations run. Notices and the copies
// filters send run none.
func (s *System) Filter(ctx context.Context, req *intake.FilterRequest) *intake.FilterResult {
	switch req.Origin.Kind {
	case intake.Notice, intake.Redirect:
		return nil
	}
	r := &run{s: s, ctx: ctx, req: req, content: req.Content}
	if !r.plan(req.Origin.Kind != intake.Handback) {
		return nil
	}
	r.evaluate()
	return r.result()
}

// plan finds the scripts that apply; false when none does.
func (r *run) plan(whole bool) bool {
	found := false
	if whole {
		if r.s.MTA != nil {
			r.sources = append(r.sources, r.s.MTA)
		}
		if url := r.s.Channels[r.req.Origin.Channel].Source; url != "" {
			sc, err := r.s.load(url)
			if sc != nil {
				r.sources = append(r.sources, sc)
			}
			r.srcErr = err
		}
		found = len(r.sources) > 0 || r.srcErr != nil
	}
	byChannel := map[string]*group{}
	for i, rc := range r.req.Rcpts {
		g := byChannel[rc.Channel]
		if g == nil {
			g = &group{channel: rc.Channel}
			if url := r.s.Channels[rc.Channel].Destination; url != "" {
				g.dest, g.destErr = r.s.load(url)
				found = found || g.dest != nil || g.destErr != nil
			}
			byChannel[rc.Channel] = g
			r.groups = append(r.groups, g)
		}
		g.rcpts = append(g.rcpts, i)
	}
	return found
}

// load finds and compiles a channel filter; (nil, nil) when its file does not
// exist.
func (s *System) load(url string) (*sieve.Script, error) {
	loc, err := Locate(url, s.ConfigDir, "")
	if err != nil {
		return nil, err
	}
	return s.Scripts.Script(loc, LevelSystem)
}

// evaluate runs the message-wide scripts, then each destination filter.
func (r *run) evaluate() {
	all := make([]string, len(r.req.Rcpts))
	for i, rc := range r.req.Rcpts {
		all[i] = rc.Addr
	}
	if r.srcErr != nil {
		r.whole = append(r.whole, &stage{name: r.s.Channels[r.req.Origin.Channel].Source, err: r.srcErr, content: r.content})
	}
	for _, sc := range r.sources {
		st := r.eval(sc, r.content, all)
		r.whole = append(r.whole, st)
		r.content = st.content
	}
	for _, g := range r.groups {
		switch {
		case g.destErr != nil:
			g.stage = &stage{name: r.s.Channels[g.channel].Destination, err: g.destErr, content: r.content}
		case g.dest != nil:
			to := make([]string, len(g.rcpts))
			for k, i := range g.rcpts {
				to[k] = all[i]
			}
			g.stage = r.eval(g.dest, r.content, to)
		}
	}
}

// eval runs one script; a runtime error leaves the message as it was.
func (r *run) eval(sc *sieve.Script, content []byte, to []string) *stage {
	env := sieve.Env{
		Envelope:            sieve.Envelope{From: r.req.From, To: to, Auth: r.req.Origin.AuthUser},
		Now:                 r.s.now(),
		SubaddressSeparator: r.s.SubaddressSep,
	}
	res, err := sc.Evaluate(r.ctx, content, env)
	if err != nil {
		r.s.logger().Error("filter failed; the message passes as if it did not exist", "filter", sc.Name(), "err", err)
		return &stage{name: sc.Name(), err: err, content: content}
	}
	return &stage{name: sc.Name(), res: res, content: edited(content, res)}
}

// result decides each recipient's fate from the stages.
func (r *run) result() *intake.FilterResult {
	out := &intake.FilterResult{Rcpts: make([]intake.FilteredRcpt, len(r.req.Rcpts))}
	for _, g := range r.groups {
		stages := r.whole
		content := r.content
		if g.stage != nil {
			stages = append(stages[:len(stages):len(stages)], g.stage)
			content = g.stage.content
		}
		if bytes.Equal(content, r.req.Content) {
			content = nil
		}
		for _, i := range g.rcpts {
			out.Rcpts[i] = r.decide(i, g.channel, stages, content)
		}
	}
	// Before the sender was told 250 (SMTP, local submission) a message every
	// recipient of which is rejected is refused; a hand-back comes after the
	// 250, so its rejections are a notice to the sender, as partial ones are.
	if len(r.rejects) > 0 && len(r.rejects) == len(r.req.Rcpts) && r.req.Origin.Kind != intake.Handback {
		out.Refused = r.refuseAll()
		return out
	}
	r.logRejects()
	out.After = r.after
	return out
}
