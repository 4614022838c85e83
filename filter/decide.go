package filter

import (
	"bytes"
	"context"
	"strings"

	"mtad.dev/mta/dsn"
	"mtad.dev/mta/intake"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/sieve"
	"mtad.dev/mta/status"
)

// fate is what the scripts that saw one recipient decided, taken together as
// one run of one script would be: the implicit keep stays only when no script
// cancelled it, keeps and fileintos add up, a jettison beats everything and a
// rejection beats any delivery.
type fate struct {
	implicitKeep bool
	keep         bool
	folders      []string
	discard      sieve.Action
	jettison     sieve.Action
	reject       *sieve.Reject
	redirects    []string
	actions      []string // every action as mail.log says it (actionText)
	failures     []string // the scripts that failed, and why
}

func mergeFate(stages []*stage, withPositions bool) *fate {
	f := &fate{implicitKeep: true}
	for _, st := range stages {
		if st.res == nil {
			f.failures = append(f.failures, "filter "+st.name+" failed, ignored: "+st.err.Error())
			continue
		}
		f.implicitKeep = f.implicitKeep && st.res.ImplicitKeep
		for _, a := range st.res.Actions {
			f.actions = append(f.actions, actionText(a, withPositions))
			switch a := a.(type) {
			case *sieve.Keep:
				f.keep = true
			case *sieve.FileInto:
				f.folders = append(f.folders, a.Folder)
			case *sieve.Discard:
				f.discard = firstOf(f.discard, a)
			case *sieve.Jettison:
				f.jettison = firstOf(f.jettison, a)
			case *sieve.Reject:
				if f.reject == nil {
					f.reject = a
				}
			case *sieve.Redirect:
				f.redirects = append(f.redirects, a.Address)
			}
		}
	}
	return f
}

func firstOf(have, a sieve.Action) sieve.Action {
	if have != nil {
		return have
	}
	return a
}

// decide turns a recipient's fate into its deliveries, writing the records of
// what is not queued.
func (r *run) decide(i int, channel string, stages []*stage, content []byte) intake.FilteredRcpt {
	f := mergeFate(stages, r.s.LogFilter)
	rc := r.req.Rcpts[i]
	// Every action is in the record of a recipient that is queued; the record
	// of one that is not says why in its own words, with the actions only
	// under LOG_FILTER.
	note := joinNotes(joinNotes(f.failures...), strings.Join(f.actions, "; "))
	dropNote := joinNotes(f.failures...)
	if r.s.LogFilter {
		dropNote = note
	}
	switch {
	case f.jettison != nil:
		return r.drop(i, content, true, f.jettison, dropNote)
	case f.reject != nil:
		r.rejects = append(r.rejects, i)
		if r.rejectOf == nil {
			r.rejectOf = map[int]*sieve.Reject{}
		}
		r.rejectOf[i] = f.reject
		return intake.FilteredRcpt{}
	}
	var out intake.FilteredRcpt
	seen := map[string]bool{}
	add := func(addr, note string) {
		if !seen[strings.ToLower(addr)] {
			seen[strings.ToLower(addr)] = true
			out.Deliveries = append(out.Deliveries, intake.Delivery{Addr: addr, Content: content, Note: note})
		}
	}
	if f.keep || f.implicitKeep {
		add("", note)
	}
	tmpl := r.s.Channels[channel].FileInto
	for _, folder := range f.folders {
		addr, err := ExpandFileInto(tmpl, rc.Addr, folder, r.s.SubaddressSep)
		switch {
		case strings.EqualFold(folder, "INBOX"):
			add("", note)
		case tmpl == "":
			add("", joinNotes(note, "a keep on channel "+channel+", which has no fileinto template"))
		case err != nil:
			add("", joinNotes(note, "a keep: "+err.Error()))
		default:
			add(addr, note)
		}
	}
	switch {
	case len(out.Deliveries) > 0:
		return out
	case f.discard != nil && r.userKeeps(i, channel, content):
		add("", joinNotes("discarded by filter at "+f.discard.Position().Short()+", kept by the user's own filter", dropNote))
		return out
	case f.discard != nil:
		return r.drop(i, content, false, f.discard, dropNote)
	}
	r.record(maillog.CodeDelivered, i, joinNotes("redirected by filter to "+strings.Join(f.redirects, ", "), dropNote))
	return out
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

// drop is a recipient a discard or jettison dropped: parked on the
// filter_discard channel when FILTER_DISCARD (FILTER_JETTISON) says so, else
// gone, with a D record that says why.
func (r *run) drop(i int, content []byte, jettison bool, a sieve.Action, note string) intake.FilteredRcpt {
	what := "discarded by filter"
	if jettison {
		what = "jettisoned"
	}
	what += " at " + a.Position().Short()
	if r.s.parks(jettison) {
		return intake.FilteredRcpt{Deliveries: []intake.Delivery{{Channel: r.s.DiscardChannel, Notify: "NEVER",
			Content: content, Note: joinNotes(what, note)}}}
	}
	r.record(maillog.CodeDelivered, i, joinNotes(what, note))
	return intake.FilteredRcpt{}
}

// userKeeps asks the recipient's own filter whether it keeps a message a
// system filter discarded (keep, fileinto or redirect: any action that
// delivers it). It only looks: the user's filter runs again, and acts, when
// the message reaches the mailbox.
func (r *run) userKeeps(i int, channel string, content []byte) bool {
	pattern := r.s.Channels[channel].User
	if r.s.Users == nil || pattern == "" {
		return false
	}
	if content == nil {
		content = r.req.Content
	}
	return r.s.Users.keepsExplicitly(r.ctx, pattern, r.req.From, r.req.Rcpts[i].Addr, content)
}

// record writes a mail.log record about recipient i.
func (r *run) record(code string, i int, diag string) {
	if r.s.MailLog == nil {
		return
	}
	rc := r.req.Rcpts[i]
	rec := maillog.Record{Source: r.req.Origin.Channel, Code: code, Size: int64(len(r.req.Content)),
		From: r.req.From, ORCPT: rc.ORCPT, To: rc.Addr, MessageID: r.messageID(), Diag: diag}
	if code == maillog.CodeRejected {
		rec.Dest, rec.Conn = rc.Channel, r.req.Conn
	}
	r.s.MailLog.Log(rec)
}

func (r *run) messageID() string {
	if r.msgID == "" {
		r.msgID = headerValue(r.req.Content, "Message-ID")
	}
	return r.msgID
}

// refuseAll refuses a message every recipient of which a filter rejected: the
// first rejection is the reply to DATA.
func (r *run) refuseAll() *status.Status {
	r.logRejects()
	return RejectStatus(r.rejectOf[r.rejects[0]])
}

func (r *run) logRejects() {
	for _, i := range r.rejects {
		st := RejectStatus(r.rejectOf[i])
		r.record(maillog.CodeRejected, i, st.Error()+" (filter at "+r.rejectOf[i].Position().Short()+")")
	}
}

// after sends what the filters asked for besides the message: the redirected
// copies, then the notice of the recipients a filter rejected.
func (r *run) after(ctx context.Context) {
	stages := append([]*stage(nil), r.whole...)
	for _, g := range r.groups {
		if g.stage != nil {
			stages = append(stages, g.stage)
		}
	}
	for _, st := range stages {
		if st.res == nil {
			continue
		}
		for _, a := range st.res.Actions {
			if rd, ok := a.(*sieve.Redirect); ok {
				r.redirect(ctx, st, rd)
			}
		}
	}
	if len(r.rejects) > 0 {
		r.noticeRejects(ctx)
	}
}

// redirect sends a system filter's redirect: the message as the filter left
// it, from the original sender (the postmaster with :resetmailfrom), through
// rewriting like any new message.
func (r *run) redirect(ctx context.Context, st *stage, rd *sieve.Redirect) {
	from := r.req.From
	if rd.ResetMailFrom {
		from = r.s.Postmaster
	}
	resent := rd.Resent == sieve.ResentAdd || rd.Resent == sieve.ResentDefault && r.s.AddResent
	sub := &Submission{From: from, To: []string{rd.Address}, Notify: strings.Join(rd.Notify, ","),
		Content: redirectCopy(st.content, "", rd.Address, resent, r.s.now(), r.s.Hostname)}
	if err := r.s.submit(ctx, sub); err != nil {
		r.s.logger().Error("filter redirect not sent", "filter", rd.Position().String(), "to", rd.Address, "err", err)
	}
}

// noticeRejects sends the sender one notice for the recipients a filter
// rejected while others were accepted: DATA has one reply, so it could not
// refuse them alone.
func (r *run) noticeRejects(ctx context.Context) {
	if r.req.From == "" {
		return
	}
	now := r.s.now()
	rep := &dsn.Report{ReportingMTA: r.s.Hostname, From: r.s.Postmaster, To: r.req.From, Date: now,
		MessageID: newMessageID("dsn", r.s.Hostname, now), EnvID: r.req.EnvID, Arrival: now,
		OrigMessageID: r.messageID(), Full: strings.EqualFold(r.req.RET, "FULL"), Original: bytes.NewReader(r.req.Content)}
	for _, i := range r.rejects {
		rc := r.req.Rcpts[i]
		if !dsn.Wants(rc.Notify, dsn.EventFailure) {
			continue
		}
		st := RejectStatus(r.rejectOf[i])
		rep.Recipients = append(rep.Recipients, dsn.Recipient{Original: rc.ORCPT, Final: rc.Addr,
			Action: dsn.Failed, Status: st.Enhanced, Diagnostic: st.Error()})
	}
	if len(rep.Recipients) == 0 {
		return
	}
	b, err := dsn.Build(rep)
	if err == nil {
		err = r.s.submit(ctx, &Submission{To: []string{r.req.From}, Content: b, Notice: true})
	}
	if err != nil {
		r.s.logger().Error("notice of recipients a filter rejected not sent", "to", r.req.From, "err", err)
	}
}
