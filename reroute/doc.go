// Package reroute holds the master programs of the reprocess and hold channels.
// Neither delivers anywhere: each hands its recipients back to intake, which
// routes them again with the rules in force and queues the result.
//
//   - reprocess (or process): every recipient is resolved again, the source
//     channel being the reprocess channel itself, so that expandlimit, which
//     deferred an alias here, does not apply a second time. A recipient the rules
//     route back to this channel would loop for ever: it is returned (5.4.6).
//   - hold: fresh mail becomes a .HELD copy kept on the hold channel (reason
//     "hold channel"). When the postmaster releases that copy, the job controller
//     hands it to the hold channel again; its Source is then the hold channel
//     (only this program queues with that source), and it is rerouted like the
//     above, so it goes where the rules send it now; what they still send to the
//     hold channel is held again.
//
// qm requeue (Requeue) uses the same hand-back for recipients the postmaster moves:
// they are resolved from the message's original source channel, SEND_ACCESS
// judges them (intake.Requeue), and those the rules still send where they are
// stay.
//
// It owns the mapping from the recipients it was given to the copies intake
// queued, and nothing else: routing, holdlimit, the split by list owner and the E
// records are intake's, scheduling and retries the job controller's.
//
// Crash safety: the new copies are durable (Accept returned) before the original
// recipients are reported delivered. A crash in between delivers them twice; no
// order of events loses them.
//
// Decisions of ours, where the product's documentation says nothing:
//   - The copies keep the original arrival time, so notices and returns count
//     from when the sender sent the message, not from the hand-off.
//   - Recipients of a list with an owner get their own copy whose envelope sender
//     is the owner (as for SMTP); holdlimit applies to what rerouting produced.
//   - Priority is not part of what a channel program sees; the copies are normal.
package reroute
