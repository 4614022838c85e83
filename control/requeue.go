package control

import (
	"fmt"
	"slices"
	"time"

	"mtad.dev/mta/queue"
)

// CmdRequeue is qm requeue: IDs and/or Filter, DryRun -> Events (a progress line every few seconds; with DryRun one line
// per recipient that would move), then RequeueResult.
const CmdRequeue = "requeue"

// RequeueResult is what qm requeue did (or, with DryRun, would do).
type RequeueResult struct {
	DryRun bool `json:"dry_run,omitempty"`
	// Messages and Recipients count what the selection matched.
	Messages   int `json:"messages"`
	Recipients int `json:"recipients"`
	// Moved recipients now live in new copies on their new channel.
	Moved int `json:"moved"`
	// Returned recipients were refused for good by the configuration in force
	// and returned to their sender.
	Returned int `json:"returned"`
	// Unchanged recipients are routed where they already are: left alone.
	Unchanged int `json:"unchanged"`
	// Kept recipients stayed where they were: a temporary refusal, or a failure
	// listed in Errors. Running the command again retries them.
	Kept int `json:"kept"`
	// Flows count the moved recipients per old and new channel.
	Flows []RequeueFlow `json:"flows,omitempty"`
	// Errors are the first failures, "ID: reason" (ErrorsLeftOut more).
	Errors        []string      `json:"errors,omitempty"`
	ErrorsLeftOut int           `json:"errors_left_out,omitempty"`
	Elapsed       time.Duration `json:"elapsed"`
}

// RequeueFlow is a number of recipients moved (or to move) from one channel to
// another.
type RequeueFlow struct {
	From       string `json:"from"`
	To         string `json:"to"`
	Recipients int    `json:"recipients"`
}

// maxRequeueErrors bounds the failures a RequeueResult lists one by one.
const maxRequeueErrors = 20

// AddFlow counts n recipients moved from one channel to another.
func (r *RequeueResult) AddFlow(from, to string, n int) {
	i := slices.IndexFunc(r.Flows, func(f RequeueFlow) bool { return f.From == from && f.To == to })
	if i < 0 {
		r.Flows = append(r.Flows, RequeueFlow{From: from, To: to})
		i = len(r.Flows) - 1
	}
	r.Flows[i].Recipients += n
}

// AddError records one failure, keeping the first few.
func (r *RequeueResult) AddError(id string, err error) {
	if len(r.Errors) >= maxRequeueErrors {
		r.ErrorsLeftOut++
		return
	}
	r.Errors = append(r.Errors, id+": "+err.Error())
}

// Merge adds o's counts to r's.
func (r *RequeueResult) Merge(o *RequeueResult) {
	r.Messages += o.Messages
	r.Recipients += o.Recipients
	r.Moved += o.Moved
	r.Returned += o.Returned
	r.Unchanged += o.Unchanged
	r.Kept += o.Kept
	for _, f := range o.Flows {
		r.AddFlow(f.From, f.To, f.Recipients)
	}
	for _, e := range o.Errors {
		if len(r.Errors) < maxRequeueErrors {
			r.Errors = append(r.Errors, e)
		} else {
			r.ErrorsLeftOut++
		}
	}
	r.ErrorsLeftOut += o.ErrorsLeftOut
}

// Progress is the progress line of a requeue still running.
func (r *RequeueResult) Progress(elapsed time.Duration) string {
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(r.Messages) / s
	}
	return fmt.Sprintf("requeue: %d messages, %d recipients examined; %d moved, %d returned, %d unchanged, %d kept; %s, %.0f messages/s",
		r.Messages, r.Recipients, r.Moved, r.Returned, r.Unchanged, r.Kept, elapsed.Round(time.Second), rate)
}

// Select returns the indexes of env's pending recipients that qm requeue
// selects: those the filter matches,
// in a held message only with Held and in a message that is not held only
// without it (a held message was set aside on purpose: moving it needs -held).
func (f *Filter) Select(env *queue.Envelope, now time.Time) []int {
	if env.Held != f.Held {
		return nil
	}
	idx, _ := f.rcpts(env, now)
	return idx
}
