package channels

// This file is the delivery contract between the job controller and the delivery
// programs. Keep the exported names and signatures; add, don't change.

import (
	"context"
	"io"
	"strings"
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

// Handoff says what a delivery (Result.Err nil) did with the sender's request
// for delivery status notifications (RFC 3461: NOTIFY, ORCPT, RET, ENVID), so
// that the job controller knows whether a success notice (NOTIFY=SUCCESS) is
// now its to send (RFC 3461 §6.2).
type Handoff uint8

const (
	// HandedOn: the message went on with the request, to a next hop that takes
	// it over: an SMTP or LMTP server that offers DSN got NOTIFY, ORCPT, RET and
	// ENVID, or the queue again (the reprocess and hold channels). That hop
	// reports; we send nothing. It is the zero value, so a program that does not
	// say keeps the behaviour it had before Handoff existed.
	HandedOn Handoff = iota
	// DeliveredHere: the message reached its final place here: a Maildir, an
	// LMTP store that does not offer DSN, a pipe program, the bitbucket. A
	// recipient that asked for it gets a "delivered" notice.
	DeliveredHere
	// RelayedWithoutDSN: an SMTP server that does not offer DSN took it, without
	// NOTIFY or ORCPT, so no notice will come from beyond it. A recipient that
	// asked for it gets a "relayed" notice.
	RelayedWithoutDSN
)

// Result is the outcome for one recipient. Err nil means delivered.
type Result struct {
	Err    *status.Status // nil: delivered; Temporary(): requeue; else return
	Remote string         // who answered, e.g. "mx.example.net (TCP|127.0.0.1|41234|127.0.0.1|2526)"
	Reply  string         // the remote reply or local outcome for mail.log ("smtp;250 2.0.0 ok")
	// ConnFailed says a temporary failure is the destination's, not this
	// message's: no server took the transaction. Either no server took part at
	// all (connection refused or timed out, DNS failing for now, a cancelled
	// delivery, a local program with no server behind it), or the failure is
	// of the network and routing class, X.4.x in RFC 3463 (connection lost or
	// timed out during the session, greeting or EHLO refused for good, a
	// server's own 4.4.x reply). A server that answered anything else (a 4xx
	// about the message, a 421 4.3.2 greeting, no STARTTLS when TLS is
	// required) took part: ConnFailed is false. Never set with a nil or
	// permanent Err. The job controller backs off the whole host when every
	// result of an attempt has it, so that its other messages wait instead of
	// each trying a host that is down.
	ConnFailed bool
	// NoRemoteMTA says Remote is not a host with a DNS name: an LMTP server on a
	// Unix socket, a local program. A delivery status notification then has no
	// Remote-MTA field (RFC 3464 §2.3.5 makes it "dns; hostname"; a socket path
	// is not one, and no other name type is registered). Otherwise the job
	// controller reports the first word of Remote.
	NoRemoteMTA bool
	// Handoff, for a delivered recipient, says who reports its success.
	Handoff Handoff
}

// failedAtConnection is the rule every program applies for Result.ConnFailed:
// st is temporary, and either no server took part (remote is "") or st is of
// the network and routing class 4.4.x.
func failedAtConnection(st *status.Status, remote string) bool {
	return st != nil && st.Temporary() && (remote == "" || strings.HasPrefix(st.Enhanced, "4.4."))
}

// Program delivers messages for one channel. Deliver returns exactly one Result per
// Rcpt, in order, and honours ctx (cancelled: return temporary failures). It must not
// schedule, retry or touch the queue: it delivers and reports.
type Program interface {
	Deliver(ctx context.Context, m *Message) []Result
}
