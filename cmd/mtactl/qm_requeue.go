package main

// qm requeue: queued recipients routed again with the configuration in force and
// moved to the channel it sends them to now (daemon/requeue.go does the work).

import (
	"context"
	"fmt"
	"time"

	"mtad.dev/mta/control"
)

func qmRequeue(a *app, name string, args []string) int {
	fs := a.flags("qm " + name)
	var f control.Filter
	filterFlags(fs, &f)
	dry := fs.Bool("n", false, "show what would move where, change nothing")
	asJSON := fs.Bool("json", false, "print the final report as JSON")
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	if err := f.Validate(); err != nil {
		fmt.Fprintf(a.stderr, "mtactl qm requeue: %v\n", err)
		return 2
	}
	var res control.RequeueResult
	req := control.Request{Command: control.CmdRequeue, Filter: &f, IDs: fs.Args(), DryRun: *dry}
	_, err := a.client().Stream(context.Background(), req, func(line string) { fmt.Fprintln(a.stdout, line) }, &res)
	if err != nil {
		return a.callFailed("qm requeue", err)
	}
	if *asJSON {
		if rc := a.printJSON(res); rc != 0 {
			return rc
		}
	} else {
		printRequeue(a, &res)
	}
	if res.Kept > 0 || len(res.Errors) > 0 {
		return 1
	}
	return 0
}

// printRequeue writes the final report: the counts, the moves per channel and
// the failures.
func printRequeue(a *app, res *control.RequeueResult) {
	moved, returned := "moved", "returned"
	if res.DryRun {
		fmt.Fprint(a.stdout, "dry run, nothing changed: ")
		moved, returned = "would move", "would be returned"
	}
	fmt.Fprintf(a.stdout, "%s, %s examined: %d %s, %d %s, %d unchanged, %d kept (%s)\n",
		plural(res.Messages, "message"), plural(res.Recipients, "recipient"), res.Moved, moved,
		res.Returned, returned, res.Unchanged, res.Kept, res.Elapsed.Round(time.Millisecond))
	for _, fl := range res.Flows {
		fmt.Fprintf(a.stdout, "  %s -> %s: %s\n", fl.From, fl.To, plural(fl.Recipients, "recipient"))
	}
	for _, e := range res.Errors {
		fmt.Fprintf(a.stderr, "mtactl qm requeue: %s\n", e)
	}
	if res.ErrorsLeftOut > 0 {
		fmt.Fprintf(a.stderr, "mtactl qm requeue: %s more (mtad's log has them)\n", plural(res.ErrorsLeftOut, "failure"))
	}
	if res.Kept > 0 && !res.DryRun {
		fmt.Fprintln(a.stderr, "mtactl qm requeue: kept recipients stay where they were; run the command again to retry them")
	}
}
