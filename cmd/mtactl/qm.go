package main

// qm: the queue manager. Every subcommand asks mtad over DATA/control.sock; when
// mtad is not running, directory, summarize, view, stop and start work on the files
// directly and the others say that they need mtad.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"mtad.dev/mta/control"
	"mtad.dev/mta/jobctl"
	"mtad.dev/mta/queue"
)

// qmSub is one qm subcommand.
type qmSub struct {
	run   func(a *app, name string, args []string) int
	usage string
}

func qmCommands() map[string]qmSub {
	return map[string]qmSub{
		"directory": {qmDirectory, "directory [-channel=C] [-from=PAT] [-to=PAT] [-domain=D] [-older=DUR] [-younger=DUR] [-held] [-json]"},
		"summarize": {qmSummarize, "summarize [-by=channel|domain] [-channel=C] [-json]"},
		"counters":  {qmCounters, "counters [-clear] [-json]"},
		"jobs":      {qmJobs, "jobs [-hosts] [-messages] [-json] [CHANNEL]"},
		"view":      {qmView, "view [-json] ID"},
		"hold":      {qmAction, "hold ID...: sideline messages (.HELD) until released"},
		"release":   {qmAction, "release ID...: release held messages"},
		"delete":    {qmAction, "delete ID...: remove messages without a notice (logged)"},
		"return":    {qmAction, "return ID...: bounce messages to their sender now"},
		"run":       {qmRun, "run [-timeout=DUR] CHANNEL: attempt the channel's messages now, ignoring backoff, and show the SMTP dialogue and the outcomes"},
		"submit":    {qmSubmit, "submit CHANNEL: attempt the channel's messages now, ignoring backoff"},
		"requeue":   {qmRequeue, "requeue [-n] [-channel=C] [-domain=D] [-to=PAT] [-held] [ID...]: route queued recipients again with the configuration in force and move them to their new channel"},
		"stop":      {qmStopStart, "stop CHANNEL: stop delivery on a channel (persistent)"},
		"start":     {qmStopStart, "start CHANNEL: resume delivery on a channel"},
	}
}

func cmdQm(a *app, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "help" {
		qmUsage(a.stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	sub, ok := qmCommands()[args[0]]
	if !ok {
		fmt.Fprintf(a.stderr, "mtactl qm: unknown subcommand %q\n", args[0])
		qmUsage(a.stderr)
		return 2
	}
	return sub.run(a, args[0], args[1:])
}

func qmUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: mtactl [-config DIR] [-data DIR] qm SUBCOMMAND [options]")
	subs := qmCommands()
	names := make([]string, 0, len(subs))
	for n := range subs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		u := subs[n].usage
		if !strings.HasPrefix(u, n) {
			u = n + " " + u
		}
		fmt.Fprintf(w, "  %s\n", u)
	}
}

// flags returns a flag set for a subcommand that prints its errors on stderr.
func (a *app) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("mtactl "+name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	return fs
}

// parse parses args; it returns -1 when parsing succeeded, else the exit status.
func parse(fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	return -1
}

func (a *app) client() *control.Client {
	return &control.Client{Path: filepath.Join(a.dataDir, control.SocketName)}
}

// call sends one request to mtad. It returns errNotRunning-wrapping errors as they
// come; the caller decides between offline work and failure.
func (a *app) call(req control.Request, result any) (*control.Response, error) {
	return a.client().Call(context.Background(), req, result)
}

// callFailed reports a failed call on stderr and returns the exit status. When
// mtad is not running and the command needs it, it says so.
func (a *app) callFailed(what string, err error) int {
	switch {
	case errors.Is(err, control.ErrNotRunning):
		fmt.Fprintf(a.stderr, "mtactl %s: mtad is not running (no answer on %s); this command needs it\n", what, a.client().Path)
	case errors.Is(err, control.ErrNotAnswering):
		fmt.Fprintf(a.stderr, "mtactl %s: mtad is running but not answering\n", what)
	default:
		fmt.Fprintf(a.stderr, "mtactl %s: %v\n", what, err)
	}
	return 1
}

// offline opens the queue on disk for a command that can work without mtad.
func (a *app) offline(what string) (*queue.ReadOnly, int) {
	fmt.Fprintln(a.stderr, "mtad is not running: reading the queue on disk")
	dir := filepath.Join(a.dataDir, "queue")
	q, err := queue.OpenReadOnly(dir, 300*time.Millisecond)
	switch {
	case err == nil:
		return q, -1
	case errors.Is(err, queue.ErrLocked):
		fmt.Fprintf(a.stderr, "mtactl %s: mtad is running but not answering (the queue is locked)\n", what)
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(a.stderr, "mtactl %s: no queue in %s\n", what, a.dataDir)
	default:
		fmt.Fprintf(a.stderr, "mtactl %s: %v\n", what, err)
	}
	return nil, 1
}

// printJSON writes v indented: the -json form of every report.
func (a *app) printJSON(v any) int {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(a.stderr, "mtactl: %v\n", err)
		return 1
	}
	return 0
}

// filterFlags registers the selection flags shared by directory and summarize.
func filterFlags(fs *flag.FlagSet, f *control.Filter) {
	fs.StringVar(&f.Channel, "channel", "", "only recipients queued to `CHANNEL`")
	fs.StringVar(&f.From, "from", "", "envelope sender matching `PAT` (wildcards * ? [...], case-insensitive; <> = empty)")
	fs.StringVar(&f.To, "to", "", "a pending recipient matching `PAT`")
	fs.StringVar(&f.Domain, "domain", "", "a pending recipient for `DOMAIN` (.example.com: and its subdomains)")
	fs.DurationVar(&f.Older, "older", 0, "arrived at least `DUR` ago")
	fs.DurationVar(&f.Younger, "younger", 0, "arrived less than `DUR` ago")
	fs.BoolVar(&f.Held, "held", false, "held (.HELD) messages only")
}

func qmDirectory(a *app, name string, args []string) int {
	fs := a.flags("qm " + name)
	var f control.Filter
	filterFlags(fs, &f)
	asJSON := fs.Bool("json", false, "print JSON")
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(a.stderr, "mtactl qm directory: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := f.Validate(); err != nil {
		fmt.Fprintf(a.stderr, "mtactl qm directory: %v\n", err)
		return 2
	}
	var res []control.DirEntry
	_, err := a.call(control.Request{Command: control.CmdDirectory, Filter: &f}, &res)
	if errors.Is(err, control.ErrNotRunning) {
		q, rc := a.offline("qm directory")
		if q == nil {
			return rc
		}
		defer q.Close()
		res, err = control.Directory(q, f, a.now())
	}
	if err != nil {
		return a.callFailed("qm directory", err)
	}
	if *asJSON {
		return a.printJSON(res)
	}
	printDirectory(a.stdout, res, a.now())
	return 0
}

func qmSummarize(a *app, name string, args []string) int {
	fs := a.flags("qm " + name)
	var f control.Filter
	by := fs.String("by", "channel", "group by `channel` or domain")
	fs.StringVar(&f.Channel, "channel", "", "only recipients queued to `CHANNEL`")
	asJSON := fs.Bool("json", false, "print JSON")
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(a.stderr, "mtactl qm summarize: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	switch *by {
	case "channel":
		var res control.Summary
		_, err := a.call(control.Request{Command: control.CmdSummarize, Filter: &f}, &res)
		online := err == nil
		if errors.Is(err, control.ErrNotRunning) {
			q, rc := a.offline("qm summarize")
			if q == nil {
				return rc
			}
			defer q.Close()
			res, err = control.Summarize(q, f, a.now())
			if err == nil {
				a.addStoppedOffline(&res, f.Channel)
			}
		}
		if err != nil {
			return a.callFailed("qm summarize", err)
		}
		if *asJSON {
			return a.printJSON(res)
		}
		printSummary(a.stdout, res, online, a.now())
	case "domain":
		var res []control.DomainSummary
		_, err := a.call(control.Request{Command: control.CmdDomains, Filter: &f}, &res)
		if errors.Is(err, control.ErrNotRunning) {
			q, rc := a.offline("qm summarize")
			if q == nil {
				return rc
			}
			defer q.Close()
			res, err = control.SummarizeDomains(q, f, a.now())
		}
		if err != nil {
			return a.callFailed("qm summarize", err)
		}
		if *asJSON {
			return a.printJSON(res)
		}
		printDomains(a.stdout, res, a.now())
	default:
		fmt.Fprintf(a.stderr, "mtactl qm summarize: -by=%s: want channel or domain\n", *by)
		return 2
	}
	return 0
}

// addStoppedOffline marks the channels of the hold list on disk and lists stopped
// channels with nothing queued.
func (a *app) addStoppedOffline(s *control.Summary, only string) {
	h, err := jobctl.OpenHoldList(filepath.Join(a.dataDir, "holdlist"))
	if err != nil {
		fmt.Fprintf(a.stderr, "mtactl: %v\n", err)
		return
	}
	have := map[string]bool{}
	for i := range s.Channels {
		have[s.Channels[i].Name] = true
		s.Channels[i].Stopped = h.Stopped(s.Channels[i].Name)
	}
	for _, c := range h.List() {
		if !have[c] && (only == "" || only == c) {
			s.Channels = append(s.Channels, control.ChannelSummary{Name: c, Stopped: true})
		}
	}
	sort.Slice(s.Channels, func(i, j int) bool { return s.Channels[i].Name < s.Channels[j].Name })
}

func qmCounters(a *app, name string, args []string) int {
	fs := a.flags("qm " + name)
	clear := fs.Bool("clear", false, "show, then start counting again from zero (the totals since start stay)")
	asJSON := fs.Bool("json", false, "print JSON")
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(a.stderr, "mtactl %s: unexpected argument %q\n", name, fs.Arg(0))
		return 2
	}
	var res control.CountersCleared
	if _, err := a.call(control.Request{Command: control.CmdCounters, Clear: *clear}, &res); err != nil {
		return a.callFailed(name, err)
	}
	if *asJSON {
		return a.printJSON(res)
	}
	printCounters(a.stdout, res, *clear)
	return 0
}

func qmJobs(a *app, name string, args []string) int {
	fs := a.flags("qm " + name)
	hosts := fs.Bool("hosts", false, "list the hosts each channel's jobs talk to")
	msgs := fs.Bool("messages", false, "list the messages in flight")
	asJSON := fs.Bool("json", false, "print JSON")
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(a.stderr, "mtactl qm jobs: at most one channel\n")
		return 2
	}
	var res control.Jobs
	if _, err := a.call(control.Request{Command: control.CmdJobs, Channel: fs.Arg(0)}, &res); err != nil {
		return a.callFailed("qm jobs", err)
	}
	if *asJSON {
		return a.printJSON(res)
	}
	printJobs(a.stdout, res, *hosts, *msgs, a.now())
	return 0
}

func qmView(a *app, name string, args []string) int {
	fs := a.flags("qm " + name)
	asJSON := fs.Bool("json", false, "print JSON")
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(a.stderr, "usage: mtactl qm view [-json] ID")
		return 2
	}
	id := fs.Arg(0)
	var res *control.MessageView
	_, err := a.call(control.Request{Command: control.CmdView, IDs: []string{id}}, &res)
	if errors.Is(err, control.ErrNotRunning) {
		q, rc := a.offline("qm view")
		if q == nil {
			return rc
		}
		defer q.Close()
		res, err = control.View(q, id)
		if errors.Is(err, queue.ErrNotFound) {
			err = &control.Error{Kind: control.ErrKindNotFound, Msg: "no such message: " + id}
		}
	}
	if err != nil {
		return a.callFailed("qm view", err)
	}
	if *asJSON {
		return a.printJSON(res)
	}
	printView(a.stdout, res, a.now())
	return 0
}

func qmAction(a *app, name string, args []string) int {
	fs := a.flags("qm " + name)
	asJSON := fs.Bool("json", false, "print JSON")
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() == 0 {
		fmt.Fprintf(a.stderr, "usage: mtactl qm %s ID...\n", name)
		return 2
	}
	var res []control.IDResult
	if _, err := a.call(control.Request{Command: name, IDs: fs.Args()}, &res); err != nil {
		return a.callFailed("qm "+name, err)
	}
	if *asJSON {
		a.printJSON(res)
	}
	done := map[string]string{"hold": "held", "release": "released", "delete": "deleted", "return": "returned"}[name]
	rc := 0
	for _, r := range res {
		switch {
		case r.Error != "":
			fmt.Fprintf(a.stderr, "mtactl qm %s: %s: %s\n", name, r.ID, r.Error)
			rc = 1
		case *asJSON:
		case r.Note != "" && !strings.Contains(r.Note, "returned"):
			fmt.Fprintf(a.stdout, "%s: %s\n", r.ID, r.Note)
		case r.Note != "":
			fmt.Fprintf(a.stdout, "%s: %s (%s)\n", r.ID, done, r.Note)
		default:
			fmt.Fprintf(a.stdout, "%s: %s\n", r.ID, done)
		}
	}
	return rc
}

func qmRun(a *app, name string, args []string) int {
	fs := a.flags("qm " + name)
	timeout := fs.Duration("timeout", time.Minute, "stop watching after `DUR` (delivery goes on)")
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(a.stderr, "usage: mtactl qm run [-timeout=DUR] CHANNEL")
		return 2
	}
	var res control.RunResult
	_, err := a.client().Stream(context.Background(), control.Request{Command: control.CmdRun, Channel: fs.Arg(0), Timeout: *timeout},
		func(line string) { fmt.Fprintln(a.stdout, line) }, &res)
	if err != nil {
		return a.callFailed("qm run", err)
	}
	fmt.Fprintf(a.stdout, "%s: %s delivered, %s requeued, %s returned; %s left: %s\n", res.Channel,
		plural(res.Delivered, "recipient"), plural(res.Requeued, "recipient"), plural(res.Returned, "recipient"),
		plural(res.Left, "entry", "entries"), res.Reason)
	if res.Lost > 0 {
		fmt.Fprintf(a.stderr, "mtactl qm run: %s not shown (this command fell behind); mail.log has them\n",
			plural(int(res.Lost), "outcome"))
	}
	return 0
}

func qmSubmit(a *app, name string, args []string) int {
	fs := a.flags("qm " + name)
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(a.stderr, "usage: mtactl qm submit CHANNEL")
		return 2
	}
	var res control.RunResult
	if _, err := a.call(control.Request{Command: control.CmdSubmit, Channel: fs.Arg(0)}, &res); err != nil {
		return a.callFailed("qm submit", err)
	}
	fmt.Fprintf(a.stdout, "%s: submitted; %s taken out of backoff\n", res.Channel, plural(res.Made, "entry", "entries"))
	return 0
}

func qmStopStart(a *app, name string, args []string) int {
	fs := a.flags("qm " + name)
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(a.stderr, "usage: mtactl qm %s CHANNEL\n", name)
		return 2
	}
	ch := fs.Arg(0)
	var stopped []string
	_, err := a.call(control.Request{Command: name, Channel: ch}, &stopped)
	if errors.Is(err, control.ErrNotRunning) {
		fmt.Fprintln(a.stderr, "mtad is not running: updating the hold list on disk")
		if img, ok := a.image(false); ok {
			if _, known := img.Channel(ch); !known {
				fmt.Fprintf(a.stderr, "mtactl qm %s: no such channel: %s\n", name, ch)
				return 1
			}
		} else {
			return 1
		}
		err = holdListUpdate(filepath.Join(a.dataDir, "holdlist"), name, ch)
	}
	if err != nil {
		return a.callFailed("qm "+name, err)
	}
	fmt.Fprintf(a.stdout, "channel %s %s\n", ch, map[string]string{"stop": "stopped", "start": "started"}[name])
	return 0
}

// holdListUpdate stops or starts a channel in the hold list file (mtad not running).
func holdListUpdate(path, cmd, ch string) error {
	h, err := jobctl.OpenHoldList(path)
	if err == nil {
		if cmd == "stop" {
			err = h.Stop(ch)
		} else {
			err = h.Start(ch)
		}
	}
	if err != nil {
		return errors.New(control.HoldListError(cmd, err))
	}
	return nil
}
