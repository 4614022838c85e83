package filter

import (
	"bytes"
	"context"
	"strconv"
	"strings"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/sieve"
	"mtad.dev/mta/status"
)

// Users runs users' own filters when the local channel delivers (the
// channel's filter URL-pattern names each recipient's script). A script that
// does not compile or fails is reported and the message kept in the mailbox,
// as if there were no filter (RFC 5228 §2.10.6): mail is never lost to a
// script error.
type Users struct {
	Deps
	Settings
	// ConfigDir is where relative filter URLs and ssrd: files are.
	ConfigDir string
	// Vacations remembers vacation answers; nil: none is sent.
	Vacations *VacationStore
}

// ForChannel is the Maildir program's filter for a channel's filter
// URL-pattern.
func (u *Users) ForChannel(pattern string) channels.MailboxFilter {
	return &mailboxFilter{u: u, pattern: pattern}
}

type mailboxFilter struct {
	u       *Users
	pattern string
}

// Script finds and compiles a recipient's filter. A recipient without one gets
// (loc, nil, nil).
func (u *Users) Script(pattern, addr string) (Location, *sieve.Script, error) {
	url, err := ExpandURL(pattern, addr, u.SubaddressSep)
	if err != nil {
		return Location{Given: pattern}, nil, err
	}
	loc, err := Locate(url, u.ConfigDir, "")
	if err != nil {
		return loc, nil, err
	}
	sc, err := u.Scripts.Script(loc, LevelUser)
	return loc, sc, err
}

func (u *Users) env(from, addr string) sieve.Env {
	return sieve.Env{Envelope: sieve.Envelope{From: from, To: []string{addr}}, Now: u.now(),
		SubaddressSeparator: u.SubaddressSep}
}

// FilterMailbox implements channels.MailboxFilter.
func (f *mailboxFilter) FilterMailbox(ctx context.Context, req *channels.FilterRequest) channels.FilterPlan {
	u := f.u
	keep := channels.FilterPlan{Filings: []channels.Filing{{Folder: req.Folder}}}
	loc, sc, err := u.Script(f.pattern, req.Rcpt.Addr)
	if err == nil && sc == nil {
		return keep
	}
	if err == nil {
		var res *sieve.Result
		if res, err = sc.Evaluate(ctx, req.Content, u.env(req.Message.From, req.Rcpt.Addr)); err == nil {
			return u.apply(ctx, req, res)
		}
	}
	u.logger().Error("user's filter failed; message kept", "rcpt", req.Rcpt.Addr, "filter", loc.Name, "err", err)
	keep.Note = "filter " + loc.Name + " failed, message kept: " + err.Error()
	return keep
}

// plan collects a user's filings: one per folder, flags added up.
type plan struct {
	channels.FilterPlan
	notes []string
}

func (p *plan) file(folder string, flags []string) {
	for i := range p.Filings {
		if sameFolder(p.Filings[i].Folder, folder) {
			p.Filings[i].Flags = append(p.Filings[i].Flags, flags...)
			return
		}
	}
	p.Filings = append(p.Filings, channels.Filing{Folder: folder, Flags: flags})
}

// sameFolder reports whether two folder names are one folder ("INBOX" and "",
// "a/b" and "a.b"); a name that is no folder only equals itself.
func sameFolder(a, b string) bool {
	ca, errA := channels.MaildirFolder(a)
	cb, errB := channels.MaildirFolder(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return ca == cb
}

// apply carries out a user's actions: the answers and forwards now, the
// filings by the Maildir program once this returns.
func (u *Users) apply(ctx context.Context, req *channels.FilterRequest, res *sieve.Result) channels.FilterPlan {
	var p plan
	content := edited(req.Content, res)
	if !bytes.Equal(content, req.Content) {
		p.Content = content
	}
	for _, a := range res.Actions {
		if r, ok := a.(*sieve.Reject); ok {
			// After the 250 a rejection is a notice to the sender: the job
			// controller sends it for a permanent failure.
			p.Err = RejectStatus(r)
			p.Note = "rejected by filter at " + r.Position().Short()
			return p.FilterPlan
		}
	}
	for _, a := range res.Actions {
		note := ""
		switch a := a.(type) {
		case *sieve.Keep:
			p.file(req.Folder, a.Flags)
		case *sieve.FileInto:
			p.file(a.Folder, a.Flags)
		case *sieve.Discard, *sieve.Jettison:
			note = "discarded by filter at " + a.Position().Short()
		case *sieve.Redirect:
			var st *status.Status
			var kept bool
			note, kept, st = u.redirect(ctx, req, content, a)
			if st != nil {
				return channels.FilterPlan{Err: st, Note: note}
			}
			if kept {
				p.file(req.Folder, nil)
			}
		case *sieve.Vacation:
			note = u.vacation(ctx, req, a)
		}
		switch a.(type) {
		case *sieve.Redirect, *sieve.Vacation, *sieve.Discard, *sieve.Jettison:
			// their note says what was done
			if u.LogFilter {
				note = joinNotes(actionText(a, true), note)
			}
		default:
			note = actionText(a, u.LogFilter)
		}
		p.notes = append(p.notes, note)
	}
	if res.ImplicitKeep {
		p.file(req.Folder, res.KeepFlags)
	}
	p.Note = joinNotes(p.notes...)
	return p.FilterPlan
}

// redirect forwards a user's copy, unless it would loop: a message that was
// delivered to this user before (its Delivered-To: names the user) is kept
// instead, as is a redirect to the user's own address.
func (u *Users) redirect(ctx context.Context, req *channels.FilterRequest, content []byte, a *sieve.Redirect) (note string, kept bool, st *status.Status) {
	owner := req.Rcpt.Addr
	if strings.EqualFold(a.Address, owner) || deliveredTo(req.Content, owner) {
		return "redirect to " + a.Address + " at " + a.Position().Short() + " refused: mail loop (delivered to " + owner + " before); kept", true, nil
	}
	from := req.Message.From
	if a.ResetMailFrom {
		from = owner
	}
	notify := strings.Join(a.Notify, ",")
	if a.Notify == nil {
		notify = req.Rcpt.Notify
	}
	resent := a.Resent == sieve.ResentAdd || a.Resent == sieve.ResentDefault && u.AddResent
	sub := &Submission{From: from, To: []string{a.Address}, Notify: notify,
		Content: redirectCopy(content, owner, a.Address, resent, u.now(), u.Hostname)}
	if err := u.submit(ctx, sub); err != nil {
		return "redirect to " + a.Address + " not queued", false, status.New(451, "4.3.0", "redirect to %s not queued: %v", a.Address, err)
	}
	return "redirected to " + a.Address, false, nil
}

// vacation answers the sender once per :days, unless the answer must not be
// sent; the note says which.
func (u *Users) vacation(ctx context.Context, req *channels.FilterRequest, v *sieve.Vacation) string {
	sender := v.ReplyTo
	switch {
	case v.Suppressed != "":
		return "vacation not sent: " + v.Suppressed
	case u.ours(sender):
		return "vacation not sent: the sender is this MTA"
	case u.Vacations == nil:
		return "vacation not sent: no vacation store"
	}
	now := u.now()
	sent, err := u.Vacations.Answer(req.Mailbox, v.Handle, sender, v.Days, now, func() error {
		return u.submit(ctx, &Submission{To: []string{sender}, Content: vacationAnswer(v, req.Rcpt.Addr, u.Hostname, now), Notice: true})
	})
	switch {
	case err != nil && sent:
		u.logger().Error("vacation answer sent but not recorded", "mailbox", req.Mailbox, "to", sender, "err", err)
		return "vacation answer sent to " + sender
	case err != nil:
		u.logger().Error("vacation answer not sent", "mailbox", req.Mailbox, "to", sender, "err", err)
		return "vacation answer to " + sender + " failed: " + err.Error()
	case !sent:
		return "vacation not sent: " + sender + " was answered less than " + strconv.Itoa(v.Days) + " day(s) ago"
	}
	return "vacation answer sent to " + sender
}

// ours reports whether an address is this MTA's own: its postmaster or mailer
// daemon, which an automatic answer must never go to.
func (u *Users) ours(addr string) bool {
	if u.Postmaster != "" && strings.EqualFold(addr, u.Postmaster) {
		return true
	}
	local, domain, _ := strings.Cut(strings.ToLower(addr), "@")
	return strings.EqualFold(domain, u.Hostname) && (local == "postmaster" || local == "mailer-daemon")
}

// keepsExplicitly reports whether a recipient's own filter would deliver a
// message anywhere (keep, fileinto, redirect): the product's documentation
// says a system discard does not override a user's keep.
func (u *Users) keepsExplicitly(ctx context.Context, pattern, from, addr string, content []byte) bool {
	_, sc, err := u.Script(pattern, addr)
	if err != nil || sc == nil {
		return false
	}
	res, err := sc.Evaluate(ctx, content, u.env(from, addr))
	if err != nil {
		return false
	}
	for _, a := range res.Actions {
		switch a.(type) {
		case *sieve.Keep, *sieve.FileInto, *sieve.Redirect:
			return true
		}
	}
	return false
}
