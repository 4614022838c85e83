// Package jobctl is the job controller: the only scheduler. It keeps an in-memory
// index of the queue's pending work, starts and feeds channel jobs within the
// maxjobs / pool / threaddepth limits, records every delivery result durably in the
// queue, writes the D/Q/R/K/W lines of mail.log and publishes the same outcomes in
// process (Subscribe), sends delay, failure and success notices (through package
// dsn and a Submit hook), keeps the persistent hold list of stopped channels (qm stop/start),
// carries out the postmaster's actions on one message in the right order (qm hold,
// release, delete, return, requeue: admin.go), and answers qm's questions (Snapshot).
//
// It owns the hold-list file and nothing else on disk. It must not deliver (that
// is channels), store messages (that is queue: it only calls Get, Content, Walk,
// Update, and Hold, Release, Delete for the postmaster), rewrite addresses or talk
// SMTP; it never imports smtpserver or mtad.
//
// # How it works
//
// Index. Every pending message is split into items: the recipients of that message
// going to one (channel, destination host). An item holds ids, recipient indexes
// and times, not envelopes: a job re-reads the envelope (Queue.Get) and the content
// when it takes the item, so a million queued messages cost a few hundred bytes
// each. Items live either in their host's ready FIFO (one per priority class,
// urgent first) or in one min-heap of delayed items ordered by next attempt. A
// second heap holds hosts backed off as a whole, a third each message's next
// notice deadline and a fourth the deadline of each held report. Run keeps one
// timer on the earliest of the four heads and is woken by Add (queue OnCommit)
// and by results; the disk is never polled. At
// start Run walks the queue once; Envelope.Rcpts[].Attempts/NextAttempt and
// Envelope.Notices make a restart resume each recipient's schedule.
//
// Jobs. A job is a goroutine bound to a channel. It takes items from the channel's
// round-robin of hosts (one item per host per turn, so a host with 50 000 queued
// recipients never delays the others), delivers through the channel's Program,
// records the results with Queue.Update, logs them, and asks again; when there is
// nothing it waits IdleTime and exits. Kick, called whenever work or a slot
// appears, starts jobs while the channel's eligible backlog exceeds
// jobs*ThreadDepth, its MaxJobs and its pool's job_limit (shared across the pool's
// channels) allow. When a pool is full and one of its channels has work but no
// job, an idle job gives its slot back at once and a busy job hands its slot to
// that channel after its current message, so a busy channel cannot keep a shared
// pool to itself. A host may be worked by at most its concurrency window of jobs
// (capped by HostJobs, else MaxJobs): the window starts at 2, grows by one each time
// the host answers an attempt and falls to 1 (a probe) after a connection-level
// failure, so a host that accepts connections and never answers holds two jobs while
// the channel's other hosts get the rest. A job whose current attempt has run longer
// than stuckAfter (500 ms) no longer counts in the jobs*ThreadDepth arithmetic, and
// Run wakes up when that happens, so ready work of other hosts gets a job at once.
//
// Results. Delivered: Delivered, D. When every recipient of the item was delivered
// and the queue offers UpdateAsync (AsyncUpdater), the job does not wait for the
// commit: it takes its next item at once while the result joins a later group
// commit; the item stays active (qm waits for it) and the D lines are written when
// the result is durable, and Run returns only after that. A crash in between
// redelivers (a duplicate), never loses. Temporary: Pending with Attempts+1 and
// NextAttempt from the channel's backoff list for the message's class (the last
// interval repeats), Q; the item goes back to the delayed heap only after the
// Update returned, so it is durable before it can run again (mox's rule: record
// the next attempt before trying). When every recipient of an attempt failed
// temporarily and no server took the transaction (Result.ConnFailed, which the
// delivery program sets), the host is backed off as a whole until that next attempt (at most the
// channel's first interval): its other ready items wait with it instead of each
// dialling a dead host. Permanent: the recipient waits for the message's report
// (below) and is marked Returned (R, or K when NOTIFY excludes FAILURE) only
// once the report's failure notice is submitted: a crash in between repeats a
// notice rather than losing one. Delivered where the sender asked to hear of it
// (NOTIFY=SUCCESS) and the program says no next hop will report it
// (Result.Handoff DeliveredHere or RelayedWithoutDSN, RFC 3461 §6.2): the same,
// marked Delivered (D) once the success notice is submitted.
//
// Reports (reports.go). What the attempts of one message find out is told in
// one notice per event, like Postfix: one failure notice listing every
// recipient that failed, one success notice listing every recipient delivered
// ("delivered") or relayed to a hop without DSN ("relayed"). A recipient that
// reached such a state is held, Pending on disk and out of the schedule, until
// none of its message's other work is under way or about to start (every item
// done or waiting for a later retry, or only ready in a stopped channel or for
// a backed-off host), then the report goes: sent by the job whose attempt was
// the last awaited, or by Run when something else ended the wait, at the
// latest reportHoldMax after its first recipient. A notice that cannot be
// submitted keeps its recipients held for retryNotice (failed ones requeued
// durably, Q). A delay notice leaves out held recipients; qm hold, delete and
// return first let a held report go; a clean shutdown sends what is held.
//
// Notices. A message's notice schedule is the notices list of the channel of its
// first pending recipient, in NoticeUnit. Each intermediate age passed sends one
// delay notice listing every pending recipient (W) and bumps Envelope.Notices
// (persisted when the queue implements NoticeRecorder); the last age returns
// everything still pending. Work in flight at that moment is returned by its job
// when the attempt ends. Notices have the empty envelope sender; a message with
// the empty sender gets no delay notice and its failure notice goes to the
// postmaster, and a failed notice to the postmaster is dropped: no loops.
//
// Outcomes. Every line the controller writes to mail.log (D, Q, R, K, W, and the
// H and K of qm hold and delete) is also offered to the subscriptions of its
// channel (Subscribe): qm run streams them instead of reading mail.log back. The
// outcome of an attempt is published before its work leaves the active state (a
// recipient held for a report counts as active work of its channel until the
// report is sent), so a subscriber that sees the channel's work done in a
// Snapshot has every outcome of it in its buffer. Publishing never blocks: a subscription has a bounded buffer,
// and what does not fit is dropped and counted (Subscription.Lost), so a slow
// subscriber loses outcomes rather than slowing delivery.
//
// Operator actions. qm hold makes the hold durable in the queue, then takes the
// message out of the schedule (waiting, bounded, for an attempt in flight), then
// logs H; qm delete takes it out of the schedule first, then deletes it, then logs
// K; qm return submits the failure notice before marking the recipients Returned,
// like a permanent failure. qm requeue (Requeue) takes the message out of the
// schedule, lets the caller queue the new copies, and only then marks the
// recipients that moved (D, without waiting for the commit when the queue offers
// UpdateAsync: the copies are durable already) and returns those refused for good;
// what stays is scheduled again.
//
// Windows. An item whose class is outside its channel's delivery window when a job
// reaches it is parked in the delayed heap until the window opens.
//
// Shutdown. When Run's context ends no job starts and idle jobs exit; running
// deliveries get ShutdownGrace, then their context is cancelled (programs then
// return temporary failures, which are recorded like any other). Run returns once
// every job has recorded its results.
//
// Decisions where the product's documentation is silent:
//   - Notices are evaluated continuously per message rather than by a daily return
//     job at 00:30: ages are exact, and a missed run cannot skip a warning.
//   - Several ages passed at once (after downtime) give one delay notice.
//   - Default maxjobs 10; a window "HH:MM-HH:MM" with start = end is always open;
//     a Channels key "tcp_*" matches by prefix, the longest prefix winning.
//   - Expired recipients are reported with Status 5.4.7; delay notices carry the
//     enhanced code found in the last error, else 4.0.0.
//   - A report waits at most reportHoldMax (5 minutes) for work of its message
//     that is under way or about to start: long enough for the attempts of one
//     delivery round, short enough that a saturated pool does not delay a bounce.
//   - A success notice returns only the original's header, whatever RET says
//     (RFC 3461 §4.3 has RET apply to notices of failure); its Diagnostic-Code is
//     the server's reply when a server answered (SMTP, LMTP), none for a local
//     program; Status is the reply's 2.x.x code, else 2.0.0.
//   - Remote-MTA is the first word of Result.Remote, left out when the program
//     says it is no DNS host (Result.NoRemoteMTA: an LMTP store on a Unix
//     socket, a pipe program).
//   - A channel without a Program (no master program) keeps its mail queued.
package jobctl
