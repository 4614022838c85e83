// Package maillog writes mail.log, the one-line-per-recipient-per-event record that
// administrators grep, and the per-session SMTP debug transcripts (debug.go) with
// their purge (purge.go).
//
// A mail.log line is:
//
//	dd-Mon-yyyy hh:mm:ss.cc SOURCE [DEST] CODE SIZE FROM ORCPT TO ID [MESSAGE-ID] [CONN] [DIAG]
//
// CODE is an action code (codes.go: CodeEnqueued "E", CodeDelivered "D", ...),
// possibly followed by modifiers ("EE": enqueued over ESMTP). SIZE is in blocks of
// 1024 bytes (rounded up), FROM is "<>" for the empty sender (LOG_FORMAT=2 style, so
// the field count never changes), ORCPT is "type;address" ("rfc822;" + TO when the
// client gave none), ID is the queue id, MESSAGE-ID appears when LOG_MESSAGE_ID=1,
// and DIAG is the free-text diagnostic, last, because it may contain spaces. DEST is
// present on enqueue-side lines (E, J) and absent on dequeue lines (D, Q, R, K, W,
// H). CONN is the connection's source ("helo ([ip])") when LOG_CONNECTION bit 1 is
// on; the connection records O/C/X/Y have their own layout (see ConnRecord).
//
// It owns DATA/mail.log, its reopening for logrotate, and the files of the debug
// directory. It must not decide what is logged or when (its callers do), and
// nothing in the program may read mail.log back to learn what happened: the job
// controller publishes its outcomes in process (jobctl.Subscribe) for that. The
// format is for administrators and their scripts.
//
// Writes are asynchronous through one writer goroutine so that a slow disk never
// holds an SMTP reply; the writer flushes its buffer every 100 ms, and Sync waits
// until everything logged before it is in the file (for tests and tools that read
// the file). Nothing here is fsynced: the queue is the durable record.
package maillog
