package queue

// Placeholder bodies so that other packages compile while this package is built.
// The owner of queue/ replaces this file; the signatures are the contract.

import (
	"context"
	"io"
)

// Queue is the durable message queue. Safe for concurrent use.
type Queue struct{}

// Open opens or creates the queue under dir and recovers it (everything committed
// is there; anything half-written is discarded) before returning.
func Open(dir string, opts Options) (*Queue, error) { panic("queue.Open: not implemented") }

// Close stops the committer after flushing pending work.
func (q *Queue) Close() error { panic("not implemented") }

// Enqueue stores env and content durably and returns the new id only once both are
// on disk (fsync'd, shared with concurrent enqueues by group commit). The caller
// answers 250 after this returns nil.
func (q *Queue) Enqueue(ctx context.Context, env *Envelope, content []byte) (string, error) {
	panic("queue.Enqueue: not implemented")
}

// Content opens a message's content for reading; the caller must Close it.
func (q *Queue) Content(id string) (Content, error) { panic("not implemented") }

// Content is a message's bytes.
type Content interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// Get returns a copy of one envelope.
func (q *Queue) Get(id string) (*Envelope, error) { panic("not implemented") }

// Walk calls fn for every message in the queue (held ones too), in id order, until
// fn returns false. Envelopes passed to fn must not be retained across calls unless copied.
func (q *Queue) Walk(fn func(*Envelope) bool) error { panic("not implemented") }

// Update records delivery results durably (group-committed). When no recipient is
// Pending any more, the message is removed from the queue.
func (q *Queue) Update(id string, updates []Update) error { panic("not implemented") }

// Hold marks a message .HELD with a reason; Release clears it (and calls OnCommit).
func (q *Queue) Hold(id, reason string) error { panic("not implemented") }
func (q *Queue) Release(id string) error      { panic("not implemented") }

// Delete removes a message silently (qm delete).
func (q *Queue) Delete(id string) error { panic("not implemented") }

// ErrNotFound is returned for an unknown id.
var ErrNotFound = errNotFound{}

type errNotFound struct{}

func (errNotFound) Error() string { return "queue: no such message" }
