package control

import "mtad.dev/mta/status"

// CmdSubmitMessage is local submission (mtactl sendmail): Submission -> SubmitResult.
// It is not CmdSubmit, which is qm submit (run a channel without watching).
const CmdSubmitMessage = "submit-message"

// MaxSubmitContent bounds the content of one local submission on the wire. mtad
// applies the configuration's own, usually smaller, message size limit; this one
// only keeps a request from exhausting memory. The request limit of the socket is
// derived from it (the content travels base64-encoded in JSON).
const MaxSubmitContent = 64 << 20

// Submission is one message handed to mtad by mtactl sendmail. The client reads
// and normalises the input (line ends, the lone "."); mtad does everything that
// needs the configuration in force: the local host name for the default sender and
// the added header fields, recipient extraction (-t), rewriting and routing.
type Submission struct {
	// Sender is the envelope sender given with -f, "" or "<>" meaning the empty
	// sender. Used only when SenderSet; otherwise the sender is User@local-host.
	Sender    string `json:"sender,omitempty"`
	SenderSet bool   `json:"sender_set,omitempty"`
	FullName  string `json:"full_name,omitempty"` // -F: the display name of an added From:
	User      string `json:"user"`                // the invoking user's login name
	// Recipients are the command-line recipients. With FromHeaders (-t) they are
	// ignored, as classic sendmail does, and the To/Cc/Bcc fields name them.
	Recipients  []string `json:"recipients,omitempty"`
	FromHeaders bool     `json:"from_headers,omitempty"`
	Content     []byte   `json:"content"` // header and body, CRLF line ends
}

// SubmitResult is mtad's answer to a submission. Exactly one of ID (queued) and a
// refusal (Status, or a refused recipient) holds, except for a message that access
// mappings discarded, which has neither. Nothing is queued when anything is refused:
// a caller that fixes the address and tries again sends no duplicate.
type SubmitResult struct {
	ID         string            `json:"id,omitempty"`     // the queue id
	Sender     string            `json:"sender"`           // the envelope sender used ("" is <>)
	MessageID  string            `json:"message_id"`       // the Message-ID field (given or added)
	Held       string            `json:"held,omitempty"`   // why the message was queued .HELD
	Status     *status.Status    `json:"status,omitempty"` // the whole message refused
	Recipients []SubmitRecipient `json:"recipients,omitempty"`
}

// SubmitRecipient is one recipient as given (or as found in the header with -t).
type SubmitRecipient struct {
	Addr   string         `json:"addr"`
	Status *status.Status `json:"status,omitempty"` // refused: unroutable, access denied ...
	Queued []QueuedRcpt   `json:"queued,omitempty"` // what it was rewritten and expanded to
}

// QueuedRcpt is one queue recipient a submitted address became.
type QueuedRcpt struct {
	Addr    string `json:"addr"`
	Channel string `json:"channel"`
}

// Refused reports whether anything in the result was refused, and whether every
// refusal is temporary (a retry may succeed).
func (r *SubmitResult) Refused() (refused, temporary bool) {
	temporary = true
	check := func(s *status.Status) {
		if s != nil {
			refused = true
			temporary = temporary && s.Temporary()
		}
	}
	check(r.Status)
	for _, rc := range r.Recipients {
		check(rc.Status)
	}
	return refused, refused && temporary
}
