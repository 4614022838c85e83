// Package channels holds the delivery programs: local Maildir, SMTP client, LMTP,
// pipe, bitbucket (hold is not here: holding is not delivering). Each implements Program: deliver one message to some
// recipients and report one result per recipient.
//
// It must not schedule, retry, or touch the queue: the job controller does that.
// It imports status, dnsx, maillog and mailaddr only; never queue, jobctl, engine or smtpserver.
//
// The rule every program follows: only a definitive answer about a recipient
// (a 5xx from the remote server, an unsafe mailbox name, a sysexits code the
// site program chose) is permanent. Everything the MTA or the network caused —
// a full disk, a refused connection, a timeout, a dropped or stale connection,
// a DNS failure — is temporary, so it defers and never bounces.
//
// # Maildir
//
// One copy per recipient under root/<mailbox>/ (mailbox = lower-cased local part
// without +detail), with "Return-Path: <from>" and "Delivered-To: addr" prepended
// and the stored content copied byte-exact in its LF form: every CRLF becomes LF,
// as Maildir readers expect, every other byte stays (maildirlf.go). Written to
// tmp/, fsynced, renamed into new/ with S= the file's size, and new/ fsynced: a
// message appears in new/ complete or not at all.
//
// Folders and users' filters (maildirfolders.go): a folder is the Maildir++
// directory root/<mailbox>/.<folder>/ that Dovecot and Courier read, created
// on demand; a copy with IMAP flags goes to cur/ with the info suffix ":2,FS".
// With a MailboxFilter (a user's own Sieve filter, package filter) the filter
// decides the filings and the content to store, or refuses the recipient; with
// FolderFromDetail a subaddress names the folder (the channel's fileinto
// template turns a system filter's fileinto into a subaddress).
//
// # SMTP and LMTP client
//
// The client is in layers, each readable without the ones above it:
//   - route.go: where to go. Recipients grouped by domain (all together when
//     Daemon is set); for each, the hosts to try in order: an address literal,
//     the smart host, or MX records in preference order (equal preferences
//     shuffled under randommx), the domain itself when it has no MX (RFC 5321
//     §5.1), a permanent 5.1.10 on a null MX (RFC 7505), lastresort last; and
//     each host's addresses.
//   - pool.go: the connection cache per host (hostPool).
//   - dial.go and tls.go: opening a session (connect, greeting, EHLO, and
//     STARTTLS as the TLS policy says).
//   - client.go: the protocol client, smtpConn. Its Deliver runs one
//     transaction and returns the server's replies (MAIL, one per RCPT, DATA,
//     the final one or, in LMTP, one per accepted recipient) and where it broke
//     off, if it did. It knows nothing of MX records or Results.
//   - prepare.go: fitting a message to a server (SIZE, 7-bit, SMTPUTF8).
//   - smtp.go: the program. It maps replies to Results and decides when to try
//     the next address or host.
//
// How it works:
//   - Every address of a host is tried before the next host.
//   - At most MaxConnsPerHost connections exist per host; idle ones are closed
//     after IdleTimeout or MaxMessagesPerConn transactions. A cached connection
//     is checked with RSET before reuse; if that fails, or it dies before
//     answering MAIL, it is dropped and a fresh one is opened: a stale
//     connection never becomes the message's failure.
//   - A transaction sends MAIL, every RCPT and DATA in one write when the server
//     offers PIPELINING (RFC 2920 §3.1: DATA may end a group; a server with no
//     accepted recipient refuses it, and one that answers 354 anyway gets an
//     empty "." and no content), then the dot-stuffed content through one
//     buffered writer: two writes and two round trips per message. The group
//     is written by its own goroutine while the replies are read, so a server
//     that answers each command at once cannot fill our receive buffer and
//     wait for us while we wait for it (a long recipient list would otherwise
//     stall until a timeout). Without PIPELINING, lock-step. SIZE is checked
//     before MAIL (552 5.3.4); BODY=8BITMIME, SMTPUTF8, RET/ENVID and
//     NOTIFY/ORCPT are sent when offered.
//   - Outcomes: a 2xx RCPT then 2xx after the dot delivers; a 4xx/5xx reply is
//     that recipient's temporary/permanent result. A connection failure (refused,
//     timeout, 421, drop, garbage) makes every recipient of the transaction
//     temporary (except those already refused with a 5xx); before DATA it moves
//     on to the next address/host, after DATA it does not (the message may have
//     arrived: a duplicate beats a loss).
//   - Result.ConnFailed marks a temporary failure as the host's: no server took
//     part (connection refused or timed out, DNS failing), or the status is of
//     class 4.4.x (connection lost or timed out mid-session, a greeting or EHLO
//     refused for good, a server's own 4.4.x). The job controller then backs
//     the host off as a whole.
//   - Result.Handoff of a delivery says who reports its success to a sender
//     who asked (NOTIFY=SUCCESS, RFC 3461 §6.2): a server that offers DSN got
//     NOTIFY, ORCPT, RET and ENVID and reports itself (HandedOn); otherwise an
//     LMTP store is the final delivery (DeliveredHere) and an SMTP server a
//     relay beyond which nothing is reported (RelayedWithoutDSN): the job
//     controller sends the notice. A server on a Unix socket has no DNS name for
//     a notice's Remote-MTA (Result.NoRemoteMTA).
//   - Every stage has its own inactivity timeout (RFC 5321 §4.5.3.2), and the
//     context's cancellation interrupts any blocked read or write.
//   - STARTTLS (tls.go): TLSMay upgrades when offered and falls back to plaintext
//     on a fresh connection if the handshake fails; TLSMust never sends a message
//     in plaintext (451 4.7.5). Nothing is pipelined before the handshake.
//   - A server without 8BITMIME gets a 7-bit rendering (eightbit.go): only the
//     MIME parts that need it are re-encoded, the rest goes out byte-identical.
//
// Maildir, pipe and bitbucket deliveries are final (Handoff DeliveredHere): a
// sender who asked gets a "delivered" notice from the job controller.
//
// # Pipe
//
// The site program runs once per recipient, without a shell, with the message
// on stdin, in its own process group killed on timeout. Exit 0 delivers, 75
// defers, 64-78 bounce (sysexits), anything else defers; the first lines of
// stderr go into the diagnostic.
package channels
