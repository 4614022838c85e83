package main

// Text forms of the qm reports: plain aligned columns (text/tabwriter), one line
// per item, ages relative to now. -json prints the structures instead.

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"mtad.dev/mta/control"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/queue"
)

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// age formats a duration the way an operator reads it: "3d4h", "2h05m", "4m10s", "12s".
func age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Truncate(time.Second)
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd%dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", d/time.Hour, d%time.Hour/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%02ds", d/time.Minute, d%time.Minute/time.Second)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

func ageOf(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return age(now.Sub(t))
}

func sender(s string) string {
	if s == "" {
		return "<>"
	}
	return s
}

// clip shortens free text for a table cell.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-3]) + "..."
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printDirectory(w io.Writer, es []control.DirEntry, now time.Time) {
	if len(es) == 0 {
		fmt.Fprintln(w, "no messages")
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "ID\tAGE\tBLOCKS\tCHANNEL\tFROM\tRECIPIENTS\tTRIES\tLAST ERROR")
	var blocks int64
	rcpts := 0
	for _, e := range es {
		last := clip(e.LastError, 60)
		if e.Held {
			last = "HELD: " + e.HeldReason
		}
		if e.Quarantined != "" {
			last = "QUARANTINED: " + e.Quarantined
		}
		rs := strings.Join(e.Rcpts, ",")
		if len(e.Rcpts) > 2 {
			rs = fmt.Sprintf("%s,%s (+%d)", e.Rcpts[0], e.Rcpts[1], len(e.Rcpts)-2)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s\n", e.ID, ageOf(e.Arrival, now), maillog.Blocks(e.Size),
			strings.Join(e.Channels, ","), sender(e.From), rs, e.Attempts, orDash(last))
		blocks += maillog.Blocks(e.Size)
		rcpts += len(e.Rcpts)
	}
	tw.Flush()
	fmt.Fprintf(w, "total: %s, %s, %s\n", plural(len(es), "message"), plural(rcpts, "recipient"), plural(int(blocks), "block"))
}

func printSummary(w io.Writer, s control.Summary, online bool, now time.Time) {
	tw := table(w)
	fmt.Fprintln(tw, "CHANNEL\tMESSAGES\tRECIPIENTS\tHELD\tBLOCKS\tOLDEST\tJOBS\tSTATE")
	jobs := func(n int) string {
		if !online {
			return "-"
		}
		return fmt.Sprint(n)
	}
	state := func(stopped bool) string {
		if stopped {
			return "stopped"
		}
		return "running"
	}
	for _, c := range s.Channels {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", c.Name, c.Messages, c.Recipients, c.Held, c.Blocks,
			ageOf(c.Oldest, now), jobs(c.Jobs), state(c.Stopped))
	}
	t := s.Total
	fmt.Fprintf(tw, "total\t%d\t%d\t%d\t%d\t%s\t%s\n", t.Messages, t.Recipients, t.Held, t.Blocks, ageOf(t.Oldest, now), jobs(t.Jobs))
	tw.Flush()
	if s.Image != nil {
		// which configuration routed this mail: after a cnbuild, the first thing to check
		fmt.Fprintf(w, "configuration in force: image built %s, source hash %.16s\n", s.Image.Built.Format(time.RFC3339), s.Image.Hash)
	}
}

func printDomains(w io.Writer, ds []control.DomainSummary, now time.Time) {
	if len(ds) == 0 {
		fmt.Fprintln(w, "no messages")
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "DOMAIN\tCHANNEL\tMESSAGES\tRECIPIENTS\tOLDEST\tTRIES\tLAST ERROR")
	for _, d := range ds {
		last := orDash(clip(d.LastError, 70))
		if !d.BackoffUntil.IsZero() && d.BackoffUntil.After(now) {
			last += " [host backed off for " + age(d.BackoffUntil.Sub(now)) + "]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%s\n", orDash(d.Domain), d.Channel, d.Messages, d.Recipients, ageOf(d.Oldest, now), d.Attempts, last)
	}
	tw.Flush()
}

func printCounters(w io.Writer, c control.CountersCleared, cleared bool) {
	if len(c.Rows) == 0 {
		fmt.Fprintf(w, "no traffic since mtad started (%s)\n", c.Started.Format(time.RFC3339))
		return
	}
	block := func(title string, get func(control.CounterRow) control.Counters) {
		fmt.Fprintln(w, title)
		tw := table(w)
		fmt.Fprintln(tw, "CHANNEL\tRECEIVED\tDELIVERED\tREQUEUED\tRETURNED\tHELD")
		var t control.Counters
		for _, r := range c.Rows {
			x := get(r)
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\n", r.Channel, x.Received, x.Delivered, x.Requeued, x.Returned, x.Held)
			t = control.Counters{Received: t.Received + x.Received, Delivered: t.Delivered + x.Delivered,
				Requeued: t.Requeued + x.Requeued, Returned: t.Returned + x.Returned, Held: t.Held + x.Held}
		}
		fmt.Fprintf(tw, "total\t%d\t%d\t%d\t%d\t%d\n", t.Received, t.Delivered, t.Requeued, t.Returned, t.Held)
		tw.Flush()
	}
	block(fmt.Sprintf("since mtad started (%s), recipients:", c.Started.Format(time.RFC3339)), func(r control.CounterRow) control.Counters { return r.Total })
	if c.Cleared.After(c.Started) {
		fmt.Fprintln(w)
		block(fmt.Sprintf("since the last clear (%s):", c.Cleared.Format(time.RFC3339)), func(r control.CounterRow) control.Counters { return r.Since })
	}
	if cleared {
		fmt.Fprintln(w, "counters cleared")
	}
}

func printJobs(w io.Writer, j control.Jobs, hosts, msgs bool, now time.Time) {
	total, idle := 0, 0
	for _, c := range j.Channels {
		total += c.Jobs
		idle += c.Idle
		extra := ""
		if c.Pool != "" {
			extra = ", pool " + c.Pool
		}
		if c.Stopped {
			extra += ", stopped"
		}
		fmt.Fprintf(w, "channel %s: %s (%d idle), maxjobs %d%s\n", c.Name, plural(c.Jobs, "job"), c.Idle, c.MaxJobs, extra)
		if hosts {
			for _, h := range c.Hosts {
				fmt.Fprintf(w, "  host %s: %s, %d ready\n", h.Host, plural(h.Jobs, "job"), h.Ready)
			}
		}
		if msgs {
			for _, m := range c.Messages {
				fmt.Fprintf(w, "  message %s to %s since %s\n", m.ID, m.Host, ageOf(m.Since, now))
			}
		}
	}
	fmt.Fprintf(w, "%s (%d idle) in %s\n", plural(total, "job"), idle, plural(len(j.Channels), "channel"))
}

func printView(w io.Writer, v *control.MessageView, now time.Time) {
	e := &v.Envelope
	at := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.In(now.Location()).Format(time.RFC3339)
	}
	tw := table(w)
	fmt.Fprintf(tw, "id:\t%s\n", e.ID)
	fmt.Fprintf(tw, "from:\t%s\n", sender(e.From))
	fmt.Fprintf(tw, "arrival:\t%s (%s ago)\n", at(e.Arrival), ageOf(e.Arrival, now))
	fmt.Fprintf(tw, "size:\t%d bytes (%s)\n", e.Size, plural(int(maillog.Blocks(e.Size)), "block"))
	fmt.Fprintf(tw, "source:\t%s\n", orDash(e.Source))
	fmt.Fprintf(tw, "client:\t%s\n", orDash(e.Client))
	fmt.Fprintf(tw, "message-id:\t%s\n", orDash(e.MessageID))
	fmt.Fprintf(tw, "priority:\t%s\n", map[int]string{-1: "nonurgent", 0: "normal", 1: "urgent"}[max(-1, min(1, e.Priority))])
	if e.RET != "" || e.EnvID != "" {
		fmt.Fprintf(tw, "dsn:\tRET=%s ENVID=%s\n", orDash(e.RET), orDash(e.EnvID))
	}
	if e.Held {
		fmt.Fprintf(tw, "held:\t%s\n", orDash(e.HeldReason))
	}
	if e.Notices > 0 {
		fmt.Fprintf(tw, "notices:\t%d delay notice(s) sent\n", e.Notices)
	}
	tw.Flush()
	fmt.Fprintln(w, "recipients:")
	for i, r := range e.Rcpts {
		state := map[queue.RcptState]string{queue.Pending: "pending", queue.Delivered: "delivered", queue.Returned: "returned"}[r.State]
		fmt.Fprintf(w, "  %d. %s\n", i+1, r.Addr)
		field := func(k, v string) { fmt.Fprintf(w, "     %-14s %s\n", k+":", v) }
		if r.Orig != "" && r.Orig != r.Addr {
			field("original", r.Orig)
		}
		field("channel", r.Channel)
		field("host", orDash(r.Host))
		field("state", state+", "+plural(r.Attempts, "attempt"))
		if r.State == queue.Pending {
			next := "as soon as possible"
			if !r.NextAttempt.IsZero() {
				if r.NextAttempt.After(now) {
					next = at(r.NextAttempt) + " (in " + age(r.NextAttempt.Sub(now)) + ")"
				} else {
					next = at(r.NextAttempt) + " (due)"
				}
			}
			field("next attempt", next)
		}
		if r.LastError != "" {
			field("last error", r.LastError)
		}
	}
	fmt.Fprintln(w, "headers:")
	if v.HeaderError != "" {
		fmt.Fprintf(w, "  (content unreadable: %s)\n", v.HeaderError)
	}
	for _, l := range strings.Split(strings.TrimSuffix(v.Headers, "\n"), "\n") {
		if l != "" {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
}
