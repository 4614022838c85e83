package queue

// This file is the contract other packages code against (smtpserver via mtad, jobctl,
// mtactl qm). Keep the exported names and signatures; add, don't change.

import (
	"log/slog"
	"time"
)

// RcptState is where one recipient stands.
type RcptState uint8

const (
	Pending   RcptState = iota // still to deliver (maybe waiting for NextAttempt)
	Delivered                  // delivered (D); never delivered again
	Returned                   // failed permanently or expired; a bounce was generated (R/K)
)

// Recipient is one envelope recipient with its routing and delivery state.
type Recipient struct {
	Addr    string // envelope address after rewriting, as it will be delivered
	Orig    string // the address as the client gave it (RCPT TO)
	ORCPT   string // RFC 3461 ORCPT ("rfc822;addr"), "" when not given
	Notify  string // RFC 3461 NOTIFY as given ("", "NEVER", "SUCCESS,FAILURE,DELAY" ...)
	Channel string // destination channel
	Host    string // destination domain, lower-cased: the unit of per-host scheduling

	State       RcptState
	Attempts    int
	NextAttempt time.Time // zero: as soon as possible
	LastError   string    // last diagnostic (for qm, notices and R lines)
}

// Envelope is one queued message: everything but the content.
type Envelope struct {
	ID         string // assigned by Enqueue; appears in every log line
	From       string // envelope sender; "" is <>
	Rcpts      []Recipient
	Source     string    // source channel
	Arrival    time.Time // set by Enqueue when zero
	Size       int64     // content size in bytes, set by Enqueue
	RET        string    // RFC 3461 RET: "FULL", "HDRS" or ""
	EnvID      string    // RFC 3461 ENVID
	Body8Bit   bool      // BODY=8BITMIME
	SMTPUTF8   bool
	MessageID  string // Message-ID header value, for logs
	Client     string // "host ([ip])" of the submitting client, for logs and notices
	Priority   int    // -1 nonurgent, 0 normal, 1 urgent
	Held       bool   // .HELD: kept but never delivered until released
	HeldReason string
	Notices    int // delay notices already sent (the job controller's bookkeeping)
}

// Update is a durable change to one recipient after a delivery attempt.
type Update struct {
	Rcpt        int // index into Envelope.Rcpts
	State       RcptState
	Attempts    int
	NextAttempt time.Time
	LastError   string
}

// Options for Open.
type Options struct {
	// MaxBatch caps how many enqueues share one commit (0: a sensible default).
	MaxBatch int
	// OnCommit is called, outside any lock, with envelopes that just became durable
	// and deliverable: new enqueues and released messages. The job controller feeds
	// its in-memory index from it. Envelopes passed in must not be modified.
	// It runs on a goroutine of its own, in commit order; it may call the queue
	// (but not Close). Messages enqueued already Held are not passed.
	OnCommit func(envs []*Envelope)

	// MaxBatchBytes caps the content bytes one commit gathers (0: 32 MiB), so a burst
	// of large messages does not make every waiter wait for all of them.
	MaxBatchBytes int
	// QuickRecovery makes Open check only each content record's header and length,
	// not the content checksum, so a queue of millions opens without reading every
	// byte. Content still verifies the checksum before anything is delivered.
	QuickRecovery bool
	// Logger receives diagnostics (nil: slog.Default()).
	Logger *slog.Logger
	// CommitObserver, when set, is told about every group commit (see
	// CommitStats), on the committing goroutine after the waiters are released: it
	// must be quick (a metrics update) and must not call the queue.
	CommitObserver func(CommitStats)

	// Test hooks (nil in production).
	createSegment func(path string) (segFile, error) // open a new segment for appending
	beforeCommit  func() error                       // runs inside each index transaction
	segmentSize   int64                              // rotate segments past this size (0: segTarget)
	lockTimeout   time.Duration                      // wait for another process's lock (0: 2s)
}
