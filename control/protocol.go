package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Version is the protocol version. A server answers requests of the same version
// only; bump it when a field changes meaning.
const Version = 1

// SocketName is the control socket's file name in the data directory.
const SocketName = "control.sock"

// Commands understood by mtad. Each comment reads "the Request fields the command
// uses -> the type of its final Response's Result" (what Client.Call decodes
// into); CmdSubmitMessage is in submit.go, CmdRequeue in requeue.go.
const (
	CmdPing       = "ping"        // -> Info
	CmdDirectory  = "directory"   // Filter -> []DirEntry
	CmdSummarize  = "summarize"   // Filter (Channel) -> Summary
	CmdDomains    = "domains"     // Filter (Channel) -> []DomainSummary
	CmdCounters   = "counters"    // Clear -> CountersCleared
	CmdJobs       = "jobs"        // Channel -> Jobs
	CmdView       = "view"        // IDs[0] -> MessageView
	CmdHold       = "hold"        // IDs -> []IDResult
	CmdRelease    = "release"     // IDs -> []IDResult
	CmdDelete     = "delete"      // IDs -> []IDResult
	CmdReturn     = "return"      // IDs -> []IDResult
	CmdRun        = "run"         // Channel, Timeout -> Events, then RunResult
	CmdSubmit     = "submit"      // Channel -> RunResult
	CmdStop       = "stop"        // Channel -> []string (the stopped channels)
	CmdStart      = "start"       // Channel -> []string (the stopped channels)
	CmdReload     = "reload"      // -> Info
	CmdReopenLog  = "log-reopen"  // -> nothing
	CmdProcess    = "process"     // -> Process
	CmdFlushCache = "cache-flush" // -> FlushResult
	CmdStopped    = "stopped"     // -> []string
	// maxRequestSize bounds one request: a local submission's content, base64 in
	// JSON, plus room for the envelope.
	maxRequestSize = MaxSubmitContent/3*4 + 1<<20
)

// Request is what the client sends: one per connection.
type Request struct {
	Version int           `json:"version"`
	Command string        `json:"command"`
	IDs     []string      `json:"ids,omitempty"`
	Channel string        `json:"channel,omitempty"`
	Filter  *Filter       `json:"filter,omitempty"`
	Clear   bool          `json:"clear,omitempty"`
	Timeout time.Duration `json:"timeout,omitempty"` // run: how long to watch at most
	DryRun  bool          `json:"dry_run,omitempty"` // requeue -n: tell, change nothing
	// Submission is the message of CmdSubmitMessage (mtactl sendmail).
	Submission *Submission `json:"submission,omitempty"`
}

// Response is one reply object. Error is set on failure (and Final then too).
type Response struct {
	Version int             `json:"version"`
	Final   bool            `json:"final,omitempty"`
	Error   string          `json:"error,omitempty"`
	Time    time.Time       `json:"time"`              // the server's clock when answering
	Event   string          `json:"event,omitempty"`   // run: one outcome as a mail.log line, or an indented transcript line
	Result  json.RawMessage `json:"result,omitempty"`  // the command's result
	Kind    string          `json:"kind,omitempty"`    // error kind, see ErrKind*
	Extra   string          `json:"message,omitempty"` // a human note to print on stderr
}

// Error kinds a client may act on.
const (
	ErrKindNotFound = "notfound" // unknown id or channel
	ErrKindUsage    = "usage"    // bad request
	ErrKindInternal = "internal" // anything else
	ErrKindShutdown = "shutdown" // mtad is stopping: the client retries until the socket is gone
)

// Error is a failed request as the client sees it.
type Error struct {
	Kind string
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// ErrNotRunning is returned by the client when nothing listens on the socket (no
// file, or connection refused): mtad is not running.
var ErrNotRunning = errors.New("mtad is not running")

// ErrNotAnswering is returned when the socket accepts but mtad does not answer in time.
var ErrNotAnswering = errors.New("mtad is running but not answering")

// decodeResult unmarshals a result into v.
func decodeResult(r *Response, v any) error {
	if v == nil || len(r.Result) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Result, v); err != nil {
		return fmt.Errorf("control: bad reply: %w", err)
	}
	return nil
}

// Info identifies the running mtad (ping, reload, version).
type Info struct {
	PID        int       `json:"pid"`
	Started    time.Time `json:"started"`
	DataDir    string    `json:"data_dir"`
	Config     string    `json:"config"`
	ImageBuilt time.Time `json:"image_built"`
	ImageHash  string    `json:"image_hash"`
	Version    string    `json:"version"`
}

// IDResult is the outcome of an action on one message.
type IDResult struct {
	ID    string `json:"id"`
	Error string `json:"error,omitempty"`
	Note  string `json:"note,omitempty"`
}

// RunResult is what run and submit report at the end.
type RunResult struct {
	Channel   string `json:"channel"`
	Made      int    `json:"made_ready"` // entries taken out of backoff
	Delivered int    `json:"delivered"`
	Requeued  int    `json:"requeued"`
	Returned  int    `json:"returned"`
	Left      int    `json:"left"`   // entries still queued for the channel at the end
	Reason    string `json:"reason"` // why watching stopped
	// Lost (run) is how many outcomes mtad could not stream because the command
	// fell behind (its buffer in mtad was full); the counts above leave them out
	// and mail.log has them.
	Lost int64 `json:"lost,omitempty"`
}

// CounterRow is one channel's counters, since mtad started and since the last clear.
type CounterRow struct {
	Channel string   `json:"channel"`
	Total   Counters `json:"total"`
	Since   Counters `json:"since_clear"`
}

// Counters are per-recipient totals of one channel.
type Counters struct {
	Received  int64 `json:"received"`
	Delivered int64 `json:"delivered"`
	Requeued  int64 `json:"requeued"`
	Returned  int64 `json:"returned"`
	Held      int64 `json:"held"`
}

// Sub is c minus base, field by field.
func (c Counters) Sub(base Counters) Counters {
	return Counters{
		Received: c.Received - base.Received, Delivered: c.Delivered - base.Delivered,
		Requeued: c.Requeued - base.Requeued, Returned: c.Returned - base.Returned, Held: c.Held - base.Held,
	}
}

// CountersCleared is the counters reply: rows and when they were last cleared.
type CountersCleared struct {
	Rows    []CounterRow `json:"rows"`
	Started time.Time    `json:"started"`
	Cleared time.Time    `json:"cleared"`
}

// Jobs is the jobs reply.
type Jobs struct {
	Channels []JobChannel `json:"channels"`
}

// JobChannel is one channel with jobs.
type JobChannel struct {
	Name     string    `json:"name"`
	Jobs     int       `json:"jobs"`
	Idle     int       `json:"idle"`
	MaxJobs  int       `json:"max_jobs"`
	Pool     string    `json:"pool,omitempty"`
	Stopped  bool      `json:"stopped,omitempty"`
	Hosts    []JobHost `json:"hosts,omitempty"`
	Messages []JobMsg  `json:"messages,omitempty"`
}

// JobHost is a destination host some jobs talk to.
type JobHost struct {
	Host  string `json:"host"`
	Jobs  int    `json:"jobs"`
	Ready int    `json:"ready"`
}

// JobMsg is a message in flight.
type JobMsg struct {
	ID    string    `json:"id"`
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
}

// Process is the process reply: the SMTP service and the job controller.
type Process struct {
	Info      Info     `json:"info"`
	Listeners []string `json:"listeners"`
	MaxConns  int      `json:"max_conns"`
	Sessions  int      `json:"sessions"` // open SMTP sessions, all listeners
	// ListenerSessions is the open sessions of each of Listeners, in the same order.
	ListenerSessions []int         `json:"listener_sessions"`
	Channels         []JobChannel  `json:"channels"`
	Pools            []PoolProcess `json:"pools"`
}

// PoolProcess is one job controller pool.
type PoolProcess struct {
	Name  string `json:"name"`
	Limit int    `json:"limit"`
	Jobs  int    `json:"jobs"`
}

// FlushResult is the cache -flush reply.
type FlushResult struct {
	Resolvers int `json:"resolvers"`
}

// HoldListError is the product's message for a hold-list update that failed
// (QM-E-NOTSTOPPED), with the cause after ": ". cmd is CmdStop or CmdStart.
func HoldListError(cmd string, err error) string {
	if cmd == CmdStart {
		// The product documents only the stop text; ours for start mirrors it.
		return "QM-E-NOTSTARTED, unable to start the channel; cannot update the hold list: " + err.Error()
	}
	return "QM-E-NOTSTOPPED, unable to stop the channel; cannot update the hold list: " + err.Error()
}
