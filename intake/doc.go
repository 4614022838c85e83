// Package intake accepts a message into the queue. Every way mail enters mtad goes
// through it: the SMTP service, local submission (`mtactl sendmail`), the reprocess
// and hold channels that hand queued mail back, and the delivery notices the job
// controller writes. What it decides is therefore decided once, the same way for
// all of them:
//
//   - each recipient resolved (rewritten, routed, alias-expanded) by the engine;
//   - the access tables FROM_ACCESS, ORIG_SEND_ACCESS, ORIG_MAIL_ACCESS,
//     SEND_ACCESS and MAIL_ACCESS, each probed with one builder per probe format
//     (probe.go), and their effects: refuse, hold ($H), discard ($V, $Z), send to
//     the bitbucket ($B);
//   - expandlimit (a long alias is queued unexpanded to the reprocess channel);
//   - de-duplication of recipients;
//   - the loop check (too many Received: fields, or too many naming this host),
//     holdlimit, and the HELD_SNDOPR warning for mail they hold;
//   - the Sieve filters of acceptance (Rules.Filter: the MTA-wide filter, the
//     source and destination channels' filters), once every recipient is known
//     and before anything is queued (filter.go): each recipient is replaced by
//     what the filters deliver it as, a message every recipient of which a
//     filter rejected is refused as a whole;
//   - the split by list owner (members of a list with an owner get a copy whose
//     bounces go to the owner);
//   - our Received: field;
//   - sender authentication of SMTP clients (auth.go; Rules.Auth, package
//     senderauth): SPF at MAIL FROM or at the first valid recipient, whose
//     refusals are the command's reply and whose results ACCESS_SPF shows the
//     access tables; DKIM and DMARC when the content arrives, before any copy
//     is queued, with our Authentication-Results: field added on top, forged
//     ones removed, a DMARC reject refusing the message and a quarantine
//     holding it; the DMARC verdict kept for filters (AuthVerdict);
//   - the Sender Rewriting Scheme (Rules.SRS): the sender of a copy that
//     leaves the site is rewritten when the source channel has sourcesrs, the
//     destination destinationsrs and the sender's channel addresssrs; a
//     recipient at our SRS domain is decoded to the original sender before it
//     is routed, a forged or expired one refused as an unknown user;
//   - the E (enqueued) and J (rejected) records of mail.log.
//
// It must not speak a protocol (the SMTP dialogue, its limits and replies belong to
// smtpserver), touch the queue's files (it only calls Enqueue), schedule or deliver,
// or read the compiled image: the daemon hands it Rules built from the image in
// force, and every transaction keeps the Rules it began with.
//
// # How it works
//
// A caller begins a Transaction with the Rules of the moment and an Origin (who is
// submitting, and through which channel); Begin runs FROM_ACCESS for SMTP clients.
// AddRecipient resolves one address and runs the recipient tables; a refusal comes
// back as a status for the caller to answer with, and is already logged J. Accept
// takes the content (our Received: field first; see Received), runs the filter
// step, decides whether the message is held, splits it by sender and content,
// enqueues every copy concurrently so that they share one group commit, and logs
// E for what became durable. A 250 (or exit
// status 0) is given only after Accept returned without error.
//
// What each kind of origin gets (Kind):
//
//   - SMTP: every access table; refusals logged J.
//   - Local submission: ORIG_SEND_ACCESS and SEND_ACCESS only (the other tables
//     describe an SMTP client: its port, its HELO name); refusals logged J.
//   - Channel hand-back (reprocess, hold): no access tables, as the mail was
//     checked when it arrived; a recipient the rules route back to the same
//     channel is refused (reprocess would loop) or held again (the hold channel).
//   - Notices (and a filter's vacation answers): no access tables; recipients
//     get NOTIFY=NEVER, so a notice never causes another notice.
//   - Redirects (a copy a Sieve filter redirected): no access tables, NOTIFY as
//     the filter gave it. The filters of acceptance have already run on the
//     message the copy came from.
//   - Requeue (qm requeue): queued mail routed again with the rules in force,
//     from its original source channel; SEND_ACCESS applies (the configuration
//     may now refuse what it accepted), not ORIG_SEND_ACCESS, which judged the
//     address the client gave before alias expansion; refusals are not logged
//     J: the caller returns them to the sender.
package intake
