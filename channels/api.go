package channels

// This file is the delivery contract between the job controller and the delivery
// programs. Keep the exported names and signatures; add, don't change.

import (
	"context"
	"io"
	"time"

	"mtad.dev/mta/status"
)

// Message is one delivery attempt of one queued message to some of its recipients,
// all of one channel.
type Message struct {
	ID       string // queue id, for logs
	From     string // envelope sender; "" is <>
	Rcpts    []Rcpt
	Content  io.ReaderAt // the stored content, byte-exact (Received: already prepended)
	Size     int64
	EightBit bool // BODY=8BITMIME was given
	SMTPUTF8 bool
	RET      string
	EnvID    string
	Arrival  time.Time
	// Source is the channel that enqueued the message. The hold channel tells a
	// released copy (which it enqueued itself) from fresh mail by it.
	Source string
}

// Rcpt is one recipient of a delivery attempt.
type Rcpt struct {
	Addr   string // envelope address
	ORCPT  string // "rfc822;addr" or ""
	Notify string // RFC 3461 NOTIFY as given
	Host   string // destination domain
}

// Result is the outcome for one recipient. Err nil means delivered.
type Result struct {
	Err    *status.Status // nil: delivered; Temporary(): requeue; else return
	Remote string         // who answered, e.g. "mx.example.net (TCP|127.0.0.1|41234|127.0.0.1|2526)"
	Reply  string         // the remote reply or local outcome for mail.log ("smtp;250 2.0.0 ok")
}

// Program delivers messages for one channel. Deliver returns exactly one Result per
// Rcpt, in order, and honours ctx (cancelled: return temporary failures). It must not
// schedule, retry or touch the queue: it delivers and reports.
type Program interface {
	Deliver(ctx context.Context, m *Message) []Result
}
