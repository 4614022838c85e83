package main

// Administration commands that talk to a running mtad: reload, log -reopen,
// counters, process, cache -flush, and the running half of version.

import (
	"errors"
	"fmt"
	"time"

	"mtad.dev/mta/control"
)

func cmdReload(a *app, args []string) int {
	fs := a.flags("reload")
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(a.stderr, "mtactl reload: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var info control.Info
	if _, err := a.call(control.Request{Command: control.CmdReload}, &info); err != nil {
		return a.callFailed("reload", err)
	}
	fmt.Fprintf(a.stdout, "configuration reloaded: image built %s, source hash %.16s\n", info.ImageBuilt.Format(time.RFC3339), info.ImageHash)
	return 0
}

func cmdLog(a *app, args []string) int {
	fs := a.flags("log")
	reopen := fs.Bool("reopen", false, "make mtad reopen mail.log (after logrotate moved it)")
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	if !*reopen || fs.NArg() > 0 {
		fmt.Fprintln(a.stderr, "usage: mtactl log -reopen")
		return 2
	}
	if _, err := a.call(control.Request{Command: control.CmdReopenLog}, nil); err != nil {
		return a.callFailed("log -reopen", err)
	}
	fmt.Fprintln(a.stdout, "mail.log reopened")
	return 0
}

func cmdCounters(a *app, args []string) int { return qmCounters(a, "counters", args) }

func cmdCache(a *app, args []string) int {
	fs := a.flags("cache")
	flush := fs.Bool("flush", false, "empty mtad's DNS cache")
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	if !*flush || fs.NArg() > 0 {
		fmt.Fprintln(a.stderr, "usage: mtactl cache -flush")
		return 2
	}
	var res control.FlushResult
	if _, err := a.call(control.Request{Command: control.CmdFlushCache}, &res); err != nil {
		return a.callFailed("cache -flush", err)
	}
	fmt.Fprintf(a.stdout, "DNS cache flushed (%s)\n", plural(res.Resolvers, "resolver"))
	return 0
}

func cmdProcess(a *app, args []string) int {
	fs := a.flags("process")
	asJSON := fs.Bool("json", false, "print JSON")
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(a.stderr, "mtactl process: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var p control.Process
	if _, err := a.call(control.Request{Command: control.CmdProcess}, &p); err != nil {
		return a.callFailed("process", err)
	}
	if *asJSON {
		return a.printJSON(p)
	}
	fmt.Fprintf(a.stdout, "mtad pid %d, up %s (since %s), data %s, config %s\n", p.Info.PID, age(a.now().Sub(p.Info.Started)),
		p.Info.Started.Format(time.RFC3339), p.Info.DataDir, p.Info.Config)
	maxConns := "default"
	if p.MaxConns > 0 {
		maxConns = fmt.Sprint(p.MaxConns)
	}
	for i, l := range p.Listeners {
		sessions := "n/a" // an mtad from before per-listener counts
		if i < len(p.ListenerSessions) {
			sessions = fmt.Sprint(p.ListenerSessions[i])
		}
		fmt.Fprintf(a.stdout, "dispatcher: SMTP listening on %s, max %s connections, open sessions %s\n", l, maxConns, sessions)
	}
	fmt.Fprintln(a.stdout, "job controller:")
	tw := table(a.stdout)
	fmt.Fprintln(tw, "  POOL\tJOBS\tLIMIT")
	for _, pl := range p.Pools {
		fmt.Fprintf(tw, "  %s\t%d\t%d\n", pl.Name, pl.Jobs, pl.Limit)
	}
	tw.Flush()
	tw = table(a.stdout)
	fmt.Fprintln(tw, "  CHANNEL\tPOOL\tJOBS\tIDLE\tMAXJOBS\tSTATE")
	for _, c := range p.Channels {
		state := "running"
		if c.Stopped {
			state = "stopped"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%s\n", c.Name, orDash(c.Pool), c.Jobs, c.Idle, c.MaxJobs, state)
	}
	tw.Flush()
	return 0
}

// cmdVersionAll is version plus, when mtad answers, the image it runs: enough to
// tell whether a cnbuild has been reloaded.
func cmdVersionAll(a *app, args []string) int {
	if rc := cmdVersion(a, args); rc != 0 {
		return rc
	}
	var info control.Info
	_, err := a.call(control.Request{Command: control.CmdPing}, &info)
	switch {
	case err == nil:
		fmt.Fprintf(a.stdout, "running mtad: pid %d, %s, started %s\n", info.PID, info.Version, info.Started.Format(time.RFC3339))
		fmt.Fprintf(a.stdout, "  config      = %s\n", info.Config)
		fmt.Fprintf(a.stdout, "  build time  = %s\n", info.ImageBuilt.Format(time.RFC3339))
		fmt.Fprintf(a.stdout, "  source hash = %s\n", info.ImageHash)
	case errors.Is(err, control.ErrNotRunning):
		fmt.Fprintln(a.stdout, "running mtad: none")
	default:
		fmt.Fprintf(a.stdout, "running mtad: %v\n", err)
	}
	return 0
}
