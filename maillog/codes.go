package maillog

// Action codes: the first letter of a record's CODE field, saying what happened to
// the recipient (or, for the connection records, to the connection). The meanings
// are the product's documented ones; where mtad uses a code for a case the
// documentation does not name, the comment says so.
const (
	// CodeEnqueued: the recipient was queued (written by the enqueuing side, with
	// the destination channel).
	CodeEnqueued = "E"
	// CodeRejected: an enqueue attempt was refused (an SMTP RCPT or DATA refusal,
	// a local submission refused); there is no queue id.
	CodeRejected = "J"
	// CodeDelivered: a successful dequeue, delivered or handed on to the next hop.
	CodeDelivered = "D"
	// CodeRequeued: a temporary failure; the recipient stays queued for a retry.
	CodeRequeued = "Q"
	// CodeReturned: the recipient failed for good, or was returned when its last
	// notice age passed or by the postmaster (qm return), and a failure notice
	// was generated.
	CodeReturned = "R"
	// CodeReturnedNoNotice: like CodeReturned, but no notice was sent because the
	// sender's NOTIFY excluded it. mtad also writes it for a message the postmaster
	// deleted (qm delete): the documentation has no code for a deletion, and K is
	// the one that means "gone without a notice".
	CodeReturnedNoNotice = "K"
	// CodeDelayNoticeSent: a delay notice (warning) was sent for the recipient.
	CodeDelayNoticeSent = "W"
	// CodeHeld: the postmaster held the message (qm hold). The documentation lists
	// no code for this; mtad uses H.
	CodeHeld = "H"
	// CodeAuthenticated: an SMTP AUTH attempt, successful or not (the reply is in
	// the diagnostic).
	CodeAuthenticated = "U"

	// Connection records (ConnRecord, LOG_CONNECTION bit 2).

	// CodeConnOpened: a connection was opened.
	CodeConnOpened = "O"
	// CodeConnClosed: a connection was closed; the diagnostic says why.
	CodeConnClosed = "C"
	// CodeConnRefused: an inbound connection was refused before the banner
	// (PORT_ACCESS or a connection cap).
	CodeConnRefused = "X"
	// CodeConnFailed: an outbound connection attempt failed before a connection
	// existed.
	CodeConnFailed = "Y"
)

// Modifiers follow an action code on enqueue and authentication records
// ("EESA": enqueued over ESMTP, with TLS, after SASL authentication).
const (
	ModESMTP = "E" // the session used EHLO
	ModTLS   = "S" // the session ran under TLS
	ModSASL  = "A" // the client authenticated
)

// ReturnCode is the code of a returned recipient: CodeReturned when its failure
// notice included it, CodeReturnedNoNotice when NOTIFY left it out.
func ReturnCode(noticeSent bool) string {
	if noticeSent {
		return CodeReturned
	}
	return CodeReturnedNoNotice
}
