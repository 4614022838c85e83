// Package smtpserver is the SMTP service: the dispatcher's listener (connection caps,
// PORT_ACCESS) and the SMTP server's policy (source-channel switching, the access
// tables FROM_ACCESS, ORIG_SEND_ACCESS, ORIG_MAIL_ACCESS, SEND_ACCESS, MAIL_ACCESS,
// recipient resolution through the rewrite engine, size and recipient limits, loop
// detection by Received: count) on top of github.com/emersion/go-smtp.
//
// It owns the SMTP conversation up to the moment a message is handed to an Enqueuer,
// the J, E and U records and the inbound O/C/X connection records of mail.log, and
// the slave_debug transcripts. It must not touch the image file (it is given a
// function returning the current *Policy), the queue's internals (it only calls
// Enqueue), delivery or scheduling.
//
// # How it works
//
// Snapshots. A connection takes Config.Policy() when it is accepted and uses it for
// PORT_ACCESS, the banner, EHLO and the source-channel switch. Each MAIL FROM takes the
// then-current policy and the transaction keeps it until it ends (DATA reply or RSET),
// so a reload never mixes two rule sets in one transaction.
//
// The guard. go-smtp v0.25.1 has several behaviours we must not inherit: it always
// advertises CHUNKING (issue #315), it closes after 4 bad commands with a 500, one
// line-length limit covers commands and message data alike, one timeout covers
// commands and DATA (and a stalled DATA is not closed, #196), and a few replies use
// 502 where RFC 5321 wants 503. Every connection is therefore wrapped in a guard, a
// net.Conn between the socket and go-smtp that works at line level:
//
//   - Read side: in command mode it hands go-smtp exactly one validated command line per
//     call, never a byte beyond it. go-smtp is synchronous (it reads the next line only
//     after answering the previous one), so when the guard is asked for a line, every
//     earlier reply has been written or buffered in order; the guard may answer a line itself (too long,
//     NUL or bare CR, unknown verb, BDAT, STARTTLS) without breaking reply order under
//     PIPELINING. In data mode (after go-smtp wrote 354) it passes bytes through a copy
//     of go-smtp's end-of-data state machine and stops at the terminating CRLF.CRLF, so
//     go-smtp's buffer never holds bytes of the next command and both sides agree where
//     DATA ends. Deadlines are set here: per command, per DATA block. Fast path:
//     session.Data does not read through go-smtp's reader (a ReadByte per byte) but
//     asks the guard (readDataDirect) to copy the message from the socket buffer,
//     removing dot-stuffing with the same state machine, plain runs found with
//     IndexByte; go-smtp's reader is then handed a bare ".\r\n" and ends at once. A
//     fuzz target holds the two to byte-identical results.
//   - Write side: go-smtp flushes one reply line per Write; the guard rewrites the
//     banner and the EHLO list (our host name, SIZE of this connection's policy, no
//     CHUNKING, STARTTLS when configured, AUTH when usable), turns 502-for-sequence into 503, and counts
//     protocol errors (5.5.x) toward Policy.MaxErrors, after which it answers 421 and
//     closes. Replies are coalesced: a multi-line reply is one write(2), and while the
//     client has pipelined input already buffered, complete replies wait and go out
//     together before the guard would block on a read (RFC 2920 §3.1 allows it; it is
//     what Postfix does). 221 and 421 are always written at once.
//   - STARTTLS is done by the guard, not go-smtp: it discards any bytes pipelined after
//     the command (command injection, CVE-2011-0411 class), handshakes, swaps the
//     underlying connection, and requires a new EHLO.
//
// SMTP AUTH (sasl.go). The guard also runs AUTH itself (PLAIN, LOGIN; RFC 4954),
// since go-smtp's AUTH cannot see TLS through our wrapper. AUTH is offered in EHLO
// and accepted only when the source channel is maysaslserver or mustsaslserver
// (ChannelPolicy.SASL), Config.Auth is set, the session has not authenticated yet,
// and the connection is TLS (or the channel's AllowPlainAuthLoopback and a loopback
// client); otherwise 503 (not enabled) or 538 5.7.11 (no TLS). It is not
// pipelinable: bytes already buffered when a 334 challenge would go out are
// dropped and the AUTH refused (503), so credentials are never read from input the
// client wrote blind; commands pipelined after an initial response that succeeds
// are served (RFC 4954 §4's exception). An address over Config.AuthLimiter's limit
// gets 454 4.7.0 before any password is checked; a wrong password 535 5.7.8, and
// the disconnectbadauthlimit-th one on a connection 421 and close. Success (235
// 2.7.0) calls session.authenticated: the source channel becomes the channel's
// saslswitchchannel, access probes carry $A, FROM_ACCESS's auth-from is the user,
// E records get the A modifier. Every outcome writes a U record (never the
// password). mustsaslserver refuses MAIL before AUTH with 530 5.7.0. STARTTLS
// after a loopback clear-text AUTH forgets it (RFC 3207 §4.2).
//
// Logs and metrics. With LOG_CONNECTION bit 2 (Policy.LogConnection) an admitted
// connection writes an O record to mail.log and a C record (messages accepted,
// reason) when it closes; a connection refused by a cap or PORT_ACCESS writes X
// instead. Bit 1 adds the client's "helo ([ip])" to E and J records. The C record
// is queued before the socket closes, so a client that sees EOF can rely on it.
// A source channel with slave_debug (decided at admission, after switchchannel;
// [inf] a later saslswitchchannel does not start or stop a transcript) gets the
// session's dialogue in Config.DebugDir (maillog.DebugLog: both directions, AUTH
// credentials masked, size-bounded); the guard tees the bytes it reads below its
// bufio.Reader and the replies it writes. Config.Metrics (nil: off) counts
// sessions, DATA outcomes, refusals by class (rejectClass), times Resolve per
// RCPT and Enqueue per message (the commit wait the DATA reply has).
//
// SMTP smuggling. go-smtp's DATA reader only ends a message at CRLF.CRLF, so a bare LF
// or bare CR cannot end a message early; such bytes would however stay inside the
// message and might end it at a later, laxer hop. The session therefore rejects any
// message containing a bare LF or bare CR with 550 5.5.2 (go-smtp then drains the rest,
// issue #209), so one DATA never yields more than one message.
package smtpserver
