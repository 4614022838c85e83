package dsn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"mtad.dev/mta/mailheader"
)

// Action is the RFC 3464 §2.3.3 action of one recipient.
type Action string

const (
	Failed    Action = "failed"
	Delayed   Action = "delayed"
	Delivered Action = "delivered"
	Relayed   Action = "relayed"
	Expanded  Action = "expanded"
)

// Event is what a notice reports, for the NOTIFY test.
type Event int

const (
	EventFailure Event = iota
	EventDelay
	EventSuccess
)

// Wants reports whether a recipient whose RCPT TO carried NOTIFY=notify asks for a
// notice about ev. An empty notify means FAILURE,DELAY (our choice where the RFC
// leaves it to the MTA; see the package doc).
func Wants(notify string, ev Event) bool {
	notify = strings.ToUpper(strings.TrimSpace(notify))
	if notify == "" {
		return ev == EventFailure || ev == EventDelay
	}
	want := map[Event]string{EventFailure: "FAILURE", EventDelay: "DELAY", EventSuccess: "SUCCESS"}[ev]
	for _, kw := range strings.Split(notify, ",") {
		kw = strings.TrimSpace(kw)
		if kw == "NEVER" {
			return false
		}
		if kw == want {
			return true
		}
	}
	return false
}

// Recipient is one per-recipient block of the delivery-status part.
type Recipient struct {
	Original       string    // ORCPT as given, "rfc822;addr"; "" when the client gave none
	Final          string    // the address delivery was attempted to
	Action         Action    // failed, delayed, ...
	Status         string    // enhanced status code, "5.1.1"; derived from Action when empty
	RemoteMTA      string    // host that answered, without "dns;"
	Diagnostic     string    // the remote reply or local reason, "550 5.1.1 no such user"
	LastAttempt    time.Time // zero: omitted
	WillRetryUntil time.Time // for delays; zero: omitted
}

// Report is everything a notice says.
type Report struct {
	ReportingMTA string    // our host name, "mta.example.com"
	From         string    // header From: address of the notice, "postmaster@mta.example.com"
	FromName     string    // its display name; "" for "Mail Delivery System"
	To           string    // who gets the notice: the original envelope sender
	Date         time.Time // notice date
	MessageID    string    // of the notice, without angle brackets
	Boundary     string    // MIME boundary; "" derives one from MessageID
	QueueID      string    // the original's queue id, for the explanation and X-Queue-ID
	EnvID        string    // RFC 3461 ENVID of the original
	Arrival      time.Time // when the original was received
	Recipients   []Recipient
	// Original is the original message as stored. With Full the whole message is
	// returned as message/rfc822, otherwise only its header (text/rfc822-headers).
	Original io.Reader
	Full     bool
	// OrigMessageID is the original's Message-ID, for In-Reply-To/References.
	OrigMessageID string
}

// Build renders r as an RFC 3464 notice ready to be enqueued (CRLF line endings).
func Build(r *Report) ([]byte, error) {
	if len(r.Recipients) == 0 {
		return nil, errors.New("dsn: no recipients to report")
	}
	if r.To == "" {
		return nil, errors.New("dsn: no notice recipient")
	}
	boundary := r.Boundary
	if boundary == "" {
		boundary = "=_dsn_" + sanitizeBoundary(r.MessageID)
	}

	var h message.Header
	// go-message writes header fields in reverse order of addition.
	fields := [][2]string{
		{"Date", r.Date.Format(time.RFC1123Z)},
		{"From", fromHeader(r)},
		{"To", "<" + r.To + ">"},
		{"Subject", subject(r.Recipients)},
		{"Message-ID", "<" + r.MessageID + ">"},
	}
	if r.OrigMessageID != "" {
		id := strings.Trim(r.OrigMessageID, "<>")
		fields = append(fields, [2]string{"In-Reply-To", "<" + id + ">"}, [2]string{"References", "<" + id + ">"})
	}
	fields = append(fields,
		[2]string{"Auto-Submitted", "auto-replied"},
		[2]string{"MIME-Version", "1.0"},
	)
	for i := len(fields) - 1; i >= 0; i-- {
		h.Add(fields[i][0], fields[i][1])
	}
	h.SetContentType("multipart/report", map[string]string{
		"report-type": "delivery-status",
		"boundary":    boundary,
	})

	var buf bytes.Buffer
	w, err := message.CreateWriter(&buf, h)
	if err != nil {
		return nil, fmt.Errorf("dsn: create message: %w", err)
	}

	// 1: the explanation for humans.
	var ph message.Header
	ph.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	ph.Set("Content-Transfer-Encoding", "8bit")
	ph.Set("Content-Description", "Notification")
	pw, err := w.CreatePart(ph)
	if err != nil {
		return nil, fmt.Errorf("dsn: text part: %w", err)
	}
	if _, err := io.WriteString(pw, crlf(explanation(r))); err != nil {
		return nil, err
	}
	pw.Close()

	// 2: the machine-readable report.
	var sh message.Header
	sh.SetContentType("message/delivery-status", nil)
	sh.Set("Content-Description", "Delivery report")
	sw, err := w.CreatePart(sh)
	if err != nil {
		return nil, fmt.Errorf("dsn: status part: %w", err)
	}
	if _, err := io.WriteString(sw, crlf(statusFields(r))); err != nil {
		return nil, err
	}
	sw.Close()

	// 3: the original, or its header.
	if r.Original != nil {
		var oh message.Header
		var body []byte
		if r.Full {
			oh.SetContentType("message/rfc822", nil)
			body, err = io.ReadAll(r.Original)
		} else {
			oh.SetContentType("text/rfc822-headers", nil)
			body, err = readHeader(r.Original)
		}
		// after the type: go-message writes fields in reverse order of addition
		oh.Set("Content-Description", originalDescription(r.Recipients, r.Full))
		if err != nil {
			return nil, fmt.Errorf("dsn: read original: %w", err)
		}
		ow, err := w.CreatePart(oh)
		if err != nil {
			return nil, fmt.Errorf("dsn: original part: %w", err)
		}
		if _, err := ow.Write(body); err != nil {
			return nil, err
		}
		ow.Close()
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("dsn: close: %w", err)
	}
	return buf.Bytes(), nil
}

// originalDescription labels the returned original (or its header). It says
// "Undelivered" only when some recipient of the report failed or was delayed: a
// success notice (delivered, relayed) returning an "Undelivered message header"
// would contradict itself.
func originalDescription(rs []Recipient, full bool) string {
	what := "Message"
	for _, r := range rs {
		if r.Action == Failed || r.Action == Delayed {
			what = "Undelivered message"
			break
		}
	}
	if !full {
		what += " header"
	}
	return what
}

func fromHeader(r *Report) string {
	name := r.FromName
	if name == "" {
		name = "Mail Delivery System"
	}
	return name + " <" + r.From + ">"
}

func subject(rs []Recipient) string {
	failed, delayed, succeeded := false, false, false
	for _, r := range rs {
		switch r.Action {
		case Failed:
			failed = true
		case Delayed:
			delayed = true
		case Delivered, Relayed:
			succeeded = true
		}
	}
	switch {
	case failed && !delayed && !succeeded:
		return "Delivery Status Notification (Failure)"
	case delayed && !failed && !succeeded:
		return "Delivery Status Notification (Delay)"
	case succeeded && !failed && !delayed:
		return "Delivery Status Notification (Success)"
	}
	return "Delivery Status Notification"
}

func explanation(r *Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "This report relates to a message you sent with the following header fields:\n\n")
	if r.OrigMessageID != "" {
		fmt.Fprintf(&b, "  Message-id: <%s>\n", strings.Trim(r.OrigMessageID, "<>"))
	}
	if !r.Arrival.IsZero() {
		fmt.Fprintf(&b, "  Received:   %s\n", r.Arrival.Format(time.RFC1123Z))
	}
	if r.QueueID != "" {
		fmt.Fprintf(&b, "  Queue id:   %s\n", r.QueueID)
	}
	b.WriteString("\n")
	for _, rc := range r.Recipients {
		switch rc.Action {
		case Failed:
			fmt.Fprintf(&b, "Your message cannot be delivered to the following recipient:\n\n")
		case Delayed:
			fmt.Fprintf(&b, "Your message has not yet been delivered to the following recipient;\ndelivery will be attempted again:\n\n")
		case Delivered:
			fmt.Fprintf(&b, "Your message was delivered to the following recipient:\n\n")
		case Relayed:
			fmt.Fprintf(&b, "Your message was relayed to the following recipient's mail system, which\ndoes not send delivery notifications; this is the last report about it:\n\n")
		default:
			fmt.Fprintf(&b, "Status of your message for the following recipient (%s):\n\n", rc.Action)
		}
		fmt.Fprintf(&b, "  Recipient address: %s\n", displayAddr(rc))
		if rc.Diagnostic != "" {
			fmt.Fprintf(&b, "  Reason: %s\n", oneLine(rc.Diagnostic))
		}
		if !rc.WillRetryUntil.IsZero() {
			fmt.Fprintf(&b, "  Delivery will be attempted until %s\n", rc.WillRetryUntil.Format(time.RFC1123Z))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func displayAddr(rc Recipient) string {
	if typ, addr, ok := strings.Cut(rc.Original, ";"); ok && strings.EqualFold(typ, "rfc822") && addr != "" {
		return addr
	}
	return rc.Final
}

// statusFields renders the message/delivery-status body: per-message fields, then
// one block per recipient, blocks separated by blank lines (RFC 3464 §2.1).
func statusFields(r *Report) string {
	var b strings.Builder
	field := func(k, v string) {
		if v != "" {
			b.WriteString(k + ": " + oneLine(v) + "\n")
		}
	}
	if r.EnvID != "" {
		field("Original-Envelope-Id", r.EnvID)
	}
	field("Reporting-MTA", "dns; "+r.ReportingMTA)
	if !r.Arrival.IsZero() {
		field("Arrival-Date", r.Arrival.Format(time.RFC1123Z))
	}
	for _, rc := range r.Recipients {
		b.WriteString("\n")
		if rc.Original != "" {
			field("Original-Recipient", addrType(rc.Original))
		}
		field("Final-Recipient", "rfc822; "+rc.Final)
		field("Action", string(rc.Action))
		st := rc.Status
		if st == "" {
			st = defaultStatus(rc.Action)
		}
		field("Status", st)
		if rc.RemoteMTA != "" {
			field("Remote-MTA", "dns; "+rc.RemoteMTA)
		}
		if rc.Diagnostic != "" {
			field("Diagnostic-Code", diagnosticCode(rc.Diagnostic))
		}
		if !rc.LastAttempt.IsZero() {
			field("Last-Attempt-Date", rc.LastAttempt.Format(time.RFC1123Z))
		}
		if !rc.WillRetryUntil.IsZero() {
			field("Will-Retry-Until", rc.WillRetryUntil.Format(time.RFC1123Z))
		}
	}
	return b.String()
}

// addrType renders "rfc822;a@b" as "rfc822; a@b"; a value without a type is
// taken as rfc822 (RFC 3461 requires one, clients forget it).
func addrType(s string) string {
	typ, addr, ok := strings.Cut(s, ";")
	if !ok {
		return "rfc822; " + strings.TrimSpace(s)
	}
	return strings.TrimSpace(typ) + "; " + strings.TrimSpace(addr)
}

// diagnosticCode types a diagnostic (RFC 3464 §2.3.6): one that already carries a
// type ("smtp;550 ...", as channel programs report replies) keeps it, an SMTP reply
// is "smtp", anything else (a local or connection error) is "x-local". An LMTP
// server's reply is an SMTP reply (RFC 2033 uses SMTP's reply codes) and RFC 3464
// registers no "lmtp" type, so "lmtp;..." (what mail.log shows, to tell the
// protocols apart) is typed "smtp".
func diagnosticCode(d string) string {
	d = strings.TrimSpace(d)
	if typ, rest, ok := strings.Cut(d, ";"); ok && typ != "" && !strings.ContainsAny(typ, " \t") {
		typ = strings.ToLower(typ)
		if typ == "lmtp" {
			typ = "smtp"
		}
		return typ + "; " + strings.TrimSpace(rest)
	}
	if len(d) >= 3 && d[0] >= '2' && d[0] <= '5' && d[1] >= '0' && d[1] <= '9' && d[2] >= '0' && d[2] <= '9' {
		return "smtp; " + d
	}
	return "x-local; " + d
}

func defaultStatus(a Action) string {
	switch a {
	case Failed:
		return "5.0.0"
	case Delayed:
		return "4.0.0"
	}
	return "2.0.0"
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)), " ")
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func sanitizeBoundary(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// readHeader returns the original's header block up to (not including) the empty
// line, with CRLF line endings. Malformed lines are kept, so a broken original
// header still ends up in the notice; at most maxHeader bytes are read.
func readHeader(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxHeader))
	if err != nil {
		return nil, err
	}
	return mailheader.WithLineEnds(mailheader.Block(b, 0), "\r\n"), nil
}

// maxHeader bounds how much of a header is returned: a notice must stay small.
const maxHeader = 256 << 10
