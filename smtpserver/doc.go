// Package smtpserver is the SMTP service: the dispatcher's listener (connection caps,
// PORT_ACCESS), the inbound SMTP protocol, and what belongs to SMTP in the
// session's policy: source-channel switching (switchchannel, tlsswitchchannel,
// saslswitchchannel), the source channel's limits (size, recipients,
// transactions, the disconnect* limits, line and block limits), STARTTLS and AUTH.
//
// It owns every byte of the SMTP conversation: it reads and parses the commands and
// their parameters itself and writes every reply itself, so no library stands
// between the socket and the replies the tests pin. It also owns the inbound O/C/X
// connection records and the U (AUTH) records of mail.log, and the slave_debug
// transcripts. What becomes of a sender and its recipients — rewriting, the access
// tables, holds, the loop check, our Received: field, the E and J records — is
// intake's: a transaction begins, adds recipients and ends with intake, and the
// session only turns intake's answers into replies. It must not touch the image
// file (it is given a function returning the current *Policy), the queue, delivery
// or scheduling.
//
// # How it works
//
// One connection, one conn (conn.go), served by one goroutine: a state machine that
// reads a command line, dispatches on the verb (verbs.go, sasl.go) and answers with a
// typed reply (reply.go: code, enhanced code, text; named values and constructors
// for every reply we send). What belongs to policy rather than protocol is the
// session's (session.go): MAIL, RCPT and DATA call session.Mail, Rcpt and Data,
// which ask intake and return the reply. Files: server.go (listeners, caps, admission, Shutdown),
// conn.go (the connection and its command loop), wire.go (lines in, replies out),
// command.go (MAIL and RCPT arguments), data.go (the message of DATA), deadlines.go
// (the time bounds of DATA and of the session, the banner delay).
//
// Snapshots. A connection takes Config.Policy() when it is accepted and uses it for
// PORT_ACCESS, the banner, EHLO and the source-channel switch. Each MAIL FROM takes the
// then-current policy and the transaction keeps it until it ends (DATA reply or RSET),
// so a reload never mixes two rule sets in one transaction.
//
// Commands. A line is read with the greeting timeout before the first command and
// the command timeout after; a line over 512 octets (RFC 5321 §4.5.3.1.4) is read
// to its end and refused without being held in memory, a line with NUL or a bare CR
// is refused. MAIL and RCPT parameters are parsed here (SIZE, BODY, SMTPUTF8, RET,
// ENVID, AUTH; NOTIFY, ORCPT); an address keeps the client's spelling, except that a
// local part is written in its canonical form (unquoted when it is a Dot-string, so
// "user%host"@example.org routes as user%host@example.org; quoted when it is not). A
// SIZE over any limit is 552 5.3.4 whatever its digits. Sequence errors are 503;
// syntax and sequence errors (5.5.x but 5.5.3) count toward Policy.MaxErrors or the
// channel's disconnectbadcommandlimit, the last one answered 421 and the connection
// closed. MAIL and RSET check the disconnect* limits (421 and close). EHLO lists our
// host name, PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8, DSN, STARTTLS and
// AUTH when usable now, and SIZE of this connection's policy and source channel;
// never CHUNKING (BDAT is an unknown command).
//
// Replies. A reply is one write(2), a multi-line one included. While the client has
// pipelined more input that we have already read, replies wait and go out together
// before we would block on a read (RFC 2920 §3.1 allows it; Postfix does the same),
// so a PIPELINING group is answered with one write. 221 and 421 are written at once.
//
// DATA is the hot path (data.go). The session's Data reads the message from the
// connection's read buffer: plain runs are found with IndexByte and copied whole,
// and only line ends and line-leading dots are looked at byte by byte (dot-stuffing
// is removed there). The message ends only at CR LF "." CR LF, a CR always pairing
// with the byte after it. Each wait for more of the message has the DATA block
// timeout, and a stalled DATA is answered 421 and closed.
//
// Time limits (deadlines.go). They are the session's source channel's
// (ChannelPolicy.Timeouts, else Policy.Timeouts), from the moment it is the
// source. Besides the timeout of each wait, the DATA phase may last the DATA block
// timeout plus what its bytes are worth at MinDataRate, and the session Session
// plus what its message bytes are worth at that rate: a client that dribbles a
// byte now and then inside each timeout cannot hold a connection slot for ever. A
// read that misses either bound gets 421 4.4.2 (J records for a cut DATA, a
// warning line, the too_slow rejection class). Before the banner, the channel's
// BannerDelay (admission's channel, after switchchannel; not for clients in
// Policy.BannerDelayExempt) refuses a client that talks first with 554, a J
// record with its address and the early_talker class. One byte over the size
// limit is kept to tell "too big" from "exactly the limit"; the rest is read and
// dropped to the end of the message. Enqueue is bounded by DataTermination.
//
// SMTP smuggling. A bare LF or bare CR cannot end a message here, but such bytes
// would stay inside the message and might end it at a later, laxer hop. The
// reader notes any bare CR or LF on the wire, and the session refuses such a message
// with 550 5.5.2, so one DATA never yields more than one message.
//
// STARTTLS (RFC 3207) discards any bytes pipelined after the command (command
// injection, CVE-2011-0411), handshakes, swaps the connection under the read
// buffer, forgets the transaction and requires a new EHLO, and applies the
// channel's tlsswitchchannel.
//
// SMTP AUTH (sasl.go; PLAIN and LOGIN, RFC 4954). AUTH is offered in EHLO and
// accepted only when the source channel is maysaslserver or mustsaslserver
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
// Connections. Server caps simultaneous connections (MaxConns) and per client
// address (MaxConnsPerIP, with exempt networks); a refused connection gets 421 and
// an X record. Shutdown stops accepting, answers sessions waiting for a command
// 421, lets transactions in progress finish, and closes what is left when its
// context ends. A panic in a session is answered 421 and logged; the server goes
// on.
//
// Logs and metrics. With LOG_CONNECTION bit 2 (Policy.LogConnection) an admitted
// connection writes an O record to mail.log and a C record (messages accepted,
// reason) when it closes; a connection refused by a cap or PORT_ACCESS writes X
// instead. Bit 1 adds the client's "helo ([ip])" to E and J records. The C record
// is queued before the socket closes, so a client that sees EOF can rely on it.
// A source channel with slave_debug (decided at admission, after switchchannel; a
// later saslswitchchannel does not start or stop a transcript: the documentation
// is silent, and one session is one transcript) gets the session's dialogue in
// Config.DebugDir (maillog.DebugLog: both directions, AUTH credentials masked,
// size-bounded); the connection tees the bytes it reads below its read buffer and
// the replies it writes. Config.Metrics (nil: off) counts sessions, DATA outcomes,
// refusals by class (rejectClass), times Resolve per RCPT and Enqueue per message
// (the commit wait the DATA reply has).
package smtpserver
