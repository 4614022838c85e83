// Package dsn builds delivery status notifications: RFC 3464 multipart/report
// messages (RFC 6522) with a human-readable explanation, a message/delivery-status
// part and the original message (message/rfc822 with RET=FULL) or its header
// (text/rfc822-headers), and answers the RFC 3461 NOTIFY question "does this
// recipient want a notice for this event?".
//
// It owns the notice format only. It must not decide when a notice is due, queue
// anything or touch the queue: the job controller (jobctl) decides and hands the
// bytes to its Submit hook. It imports nothing of ours.
//
// Decisions where the product's documentation is silent:
//   - An absent NOTIFY means FAILURE,DELAY (RFC 3461 §4.1 leaves the default to the
//     MTA; this is what most MTAs do).
//   - Subjects and the explanation text are ours: the product's wording is not
//     documented. The returned original is described as "Undelivered message
//     (header)" when a recipient of the report failed or was delayed, else as
//     "Message (header)", as Postfix labels its success notices' part.
//   - With RET=HDRS or no RET the original's header is returned (text/rfc822-headers),
//     as RFC 3461 §4.3 recommends when RET is absent.
//   - A diagnostic typed "lmtp" (as the LMTP channel reports a reply, so that
//     mail.log tells the protocols apart) becomes Diagnostic-Code "smtp; ...": an
//     LMTP reply is an SMTP reply, and RFC 3464 registers no "lmtp" type.
//   - Remote-MTA is always "dns; host". A recipient with no RemoteMTA (a local
//     program, an LMTP server on a Unix socket: the caller decides) has no
//     Remote-MTA field: a socket path is no DNS name, and an experimental name
//     type (x-unix, x-local-hostname) would tell a reader nothing the
//     Diagnostic-Code does not.
package dsn
