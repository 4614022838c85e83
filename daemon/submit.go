package daemon

// Local submission (mtactl sendmail): the message arrives over the control socket,
// is completed (Date:, Message-ID:, From:, our Received:), its recipients are
// rewritten with the local channel as source, as the product's local submission
// does, and it is enqueued durably with one E line per recipient in mail.log.
//
// Decisions where the product's documentation is silent:
//   - All or nothing: when any recipient is refused (unroutable, access denied)
//     nothing is queued, so that a script that fixes the address and runs again
//     sends no duplicate. Each refusal is logged J, as the SMTP server does.
//   - -t takes the recipients from To:, Cc: and Bcc: and ignores the command-line
//     ones (classic sendmail). Bcc: is removed whether or not -t is given: a Bcc
//     line must never reach a recipient.
//   - Unqualified addresses (no "@") are qualified with the local channel's
//     official host, for the sender and the recipients alike.
//   - A leading mbox "From " line is dropped; input that does not begin with a
//     header field is all body (the added fields and a blank line go before it).
//   - The access tables ORIG_SEND_ACCESS and SEND_ACCESS apply with source channel
//     l (probe "l|sender|dest-channel|recipient"), as for an SMTP recipient; the
//     MAIL_ACCESS tables need an SMTP session's port and HELO and do not apply.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"mtad.dev/mta/compiler"
	"mtad.dev/mta/control"
	"mtad.dev/mta/intake"
	"mtad.dev/mta/mailheader"
	"mtad.dev/mta/smtpserver"
	"mtad.dev/mta/status"
)

// localSource is the source channel of local submission.
const localSource = "l"

// submitTimeout bounds the durable enqueue of one submission.
const submitTimeout = 30 * time.Second

// submitMessage handles control.CmdSubmitMessage.
func (d *Daemon) submitMessage(ctx context.Context, sub *control.Submission) control.SubmitResult {
	p, res := prepareSubmission(d.intake, d.policy.Load().Intake, d.image.Load(), sub, time.Now())
	if p == nil {
		return res
	}
	if refused, _ := res.Refused(); refused {
		return res // each refusal was logged J by intake
	}
	ctx, cancel := context.WithTimeout(ctx, submitTimeout)
	defer cancel()
	if _, err := p.accept(ctx, &res); err != nil {
		// Unknown errors are temporary: the caller gets EX_TEMPFAIL and may
		// retry. Copies already queued are delivered, so a retry may duplicate
		// them; it never loses any.
		res.Status = status.From(fmt.Errorf("enqueue: %w", err))
		return res
	}
	d.log.Debug("local submission queued", "ids", res.ID, "user", sub.User, "rcpts", p.tx.Len(), "size", len(p.msg.Content))
	return res
}

// prepared is a submission ready to accept: its recipients gathered in an
// intake transaction, its content completed.
type prepared struct {
	tx  *intake.Transaction
	msg intake.Message
}

// accept queues the submission and fills in the result's queue ids and .HELD
// reason.
func (p *prepared) accept(ctx context.Context, res *control.SubmitResult) (*intake.Result, error) {
	r, err := p.tx.Accept(ctx, p.msg)
	res.ID = strings.Join(r.IDs(), " ")
	res.Held = r.Held
	return r, err
}

// prepareSubmission completes a submission and gathers its recipients in an
// intake transaction against the rules given. Nothing is queued yet (see
// prepared.accept); a refused recipient is logged J. A nil *prepared means the
// message as a whole was refused (res.Status).
func prepareSubmission(in *intake.Intake, rules *intake.Rules, img *compiler.Image, sub *control.Submission, now time.Time) (*prepared, control.SubmitResult) {
	var res control.SubmitResult
	host := hostname(img)
	if max := submitMaxBytes(img); int64(len(sub.Content)) > max {
		res.Status = status.New(552, "5.3.4", "Message size exceeds fixed maximum message size (%d bytes)", max)
		return nil, res
	}
	user := sub.User
	if user == "" || !plausibleLocalPart(user) {
		user = "unknown"
	}
	sender := qualify(user, host)
	if sub.SenderSet {
		sender = qualify(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(sub.Sender), "<"), ">"), host)
	}
	if badAddr(sender) {
		res.Status = status.New(553, "5.1.7", "Bad sender address syntax: %q", sub.Sender)
		return nil, res
	}
	res.Sender = sender

	hdr, body := splitHeader(sub.Content)
	rcpts := sub.Recipients
	if sub.FromHeaders {
		rcpts = addresses(hdr, "To", "Cc", "Bcc")
		if len(rcpts) == 0 {
			// sendmail's text; the client maps 5.5.x to EX_USAGE.
			res.Status = status.New(554, "5.5.1", "No recipient addresses found in header")
			return nil, res
		}
	}
	if len(rcpts) == 0 {
		res.Status = status.New(554, "5.5.1", "Recipient names must be specified")
		return nil, res
	}
	from := sender
	if from == "" {
		from = qualify(user, host) // a notice-like message still names who sent it
	}
	completeHeader(hdr, sub, from, host, now)
	res.MessageID = hdr.Get("Message-ID")

	origin := intake.Origin{Kind: intake.Local, Channel: localSource,
		Description: "localhost (local submission by " + user + ")"}
	tx, _ := in.Begin(rules, origin, sender) // FROM_ACCESS is for SMTP clients only
	for _, addr := range rcpts {
		res.Recipients = append(res.Recipients, addRecipient(in, tx, origin, addr, qualify(strings.TrimSpace(addr), host)))
	}

	received := tx.ReceivedLocal(qualify(user, host), now)
	var content bytes.Buffer
	content.WriteString(received)
	hdr.WriteTo(&content)
	content.WriteString("\r\n")
	content.Write(body)
	return &prepared{tx: tx, msg: intake.Message{
		Content:     content.Bytes(),
		ReceivedLen: len(received),
		// An SMTP client asks BODY=8BITMIME for what was submitted so; local
		// input says nothing, so the bytes decide.
		Body8Bit: slices.ContainsFunc(body, func(c byte) bool { return c >= 0x80 }),
		LogAttrs: []any{"user", user},
	}}, res
}

// addRecipient adds one recipient of a submission (given as written, addr
// qualified) to the transaction and reports what became of it.
func addRecipient(in *intake.Intake, tx *intake.Transaction, origin intake.Origin, given, addr string) control.SubmitRecipient {
	rc := control.SubmitRecipient{Addr: given}
	if badAddr(addr) || addr == "" {
		rc.Status = status.New(553, "5.1.3", "Bad recipient address syntax")
		in.LogRefused(origin, tx.From(), "", given, "", 0, rc.Status)
		return rc
	}
	out := tx.AddRecipient(intake.Recipient{Addr: addr})
	rc.Status = out.Refused
	for _, r := range out.Routed {
		rc.Queued = append(rc.Queued, control.QueuedRcpt{Addr: r.Addr, Channel: r.Channel})
	}
	return rc
}

// completeHeader adds the fields a user agent should have written (Date:,
// Message-ID:, From: naming from) and removes Bcc:, whether or not -t was
// given: a Bcc line must never reach a recipient.
func completeHeader(hdr *mailheader.Header, sub *control.Submission, from, host string, now time.Time) {
	hdr.Del("Bcc")
	if !hdr.Has("Date") {
		hdr.Add("Date", now.Format(time.RFC1123Z))
	}
	if !hdr.Has("Message-ID") {
		hdr.Add("Message-ID", "<"+newMessageID(now)+"@"+host+">")
	}
	if !hdr.Has("From") {
		if sub.FullName != "" {
			from = (&mail.Address{Name: sub.FullName, Address: from}).String()
		}
		hdr.Add("From", from)
	}
}

func submitMaxBytes(img *compiler.Image) int64 {
	bs := int64(img.Options.BlockSize)
	if bs <= 0 {
		bs = smtpserver.DefaultBlockSize
	}
	max := int64(smtpserver.DefaultMaxMessageBytes)
	if img.Options.BlockLimit > 0 {
		max = int64(img.Options.BlockLimit) * bs
	}
	if l := img.LocalChannel(); l != nil && l.SourceBlockLimit > 0 && int64(l.SourceBlockLimit)*bs < max {
		max = int64(l.SourceBlockLimit) * bs
	}
	return max
}

// qualify adds the local host to an address without a domain; "" stays "" (<>).
func qualify(addr, host string) string {
	if addr == "" || strings.Contains(addr, "@") {
		return addr
	}
	return addr + "@" + host
}

// badAddr refuses what cannot be an envelope address: control characters, spaces
// outside quotes would break mail.log's fields and the SMTP client's commands.
func badAddr(a string) bool {
	return strings.ContainsFunc(a, func(r rune) bool { return r < 0x21 || r == 0x7f || r == '<' || r == '>' })
}

func plausibleLocalPart(s string) bool {
	return len(s) <= 64 && !badAddr(s) && !strings.ContainsAny(s, "@,;:\"\\()[]")
}

// newMessageID is unique without coordination: the time and 64 random bits.
func newMessageID(now time.Time) string {
	var b [8]byte
	rand.Read(b[:])
	return now.UTC().Format("20060102150405") + "." + hex.EncodeToString(b[:])
}

// splitHeader cuts submitted content into the header and the body. The header
// ends at the first empty line, or at the first line that is neither a field nor
// a continuation: that line starts the body, the way sendmail treats input that
// does not begin with a header. A leading mbox "From " line is dropped. Every
// field ends in CRLF, so that the fields added after it stay fields.
func splitHeader(content []byte) (*mailheader.Header, []byte) {
	if bytes.HasPrefix(content, []byte("From ")) {
		if i := bytes.Index(content, []byte("\r\n")); i >= 0 {
			content = content[i+2:]
		} else {
			content = nil
		}
	}
	h := mailheader.Parse(content)
	body := content[h.Body:]
	for i, f := range h.Fields {
		if f.Name() == "" {
			body = content[f.Start:]
			h.Fields = h.Fields[:i]
			break
		}
	}
	if n := len(h.Fields); n > 0 && !bytes.HasSuffix(h.Fields[n-1].Raw, []byte("\r\n")) {
		last := &h.Fields[n-1]
		last.Raw = append(bytes.TrimRight(append([]byte(nil), last.Raw...), "\r\n"), '\r', '\n')
	}
	return h, body
}

// addresses lists the addresses of the named fields, in order. A field that
// net/mail cannot parse is split leniently (commas, angle brackets), the way
// sendmail copes with what scripts write.
func addresses(h *mailheader.Header, names ...string) []string {
	var out []string
	for _, f := range h.Fields {
		for _, n := range names {
			if !f.Is(n) {
				continue
			}
			v := f.Value()
			if v == "" {
				continue
			}
			if list, err := mail.ParseAddressList(v); err == nil {
				for _, a := range list {
					out = append(out, a.Address)
				}
				continue
			}
			out = append(out, lenientAddresses(v)...)
		}
	}
	return out
}

// lenientAddresses splits a header value on commas outside quotes and takes the
// part in angle brackets, or the whole part, of each.
func lenientAddresses(v string) []string {
	var out []string
	var parts []string
	quoted, depth, start := false, 0, 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"':
			quoted = !quoted
		case c == '(' && !quoted:
			depth++
		case c == ')' && !quoted && depth > 0:
			depth--
		case c == ',' && !quoted && depth == 0:
			parts = append(parts, v[start:i])
			start = i + 1
		}
	}
	parts = append(parts, v[start:])
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if i := strings.LastIndexByte(p, '<'); i >= 0 {
			if j := strings.IndexByte(p[i:], '>'); j > 0 {
				p = p[i+1 : i+j]
			}
		} else if i := strings.IndexByte(p, '('); i >= 0 {
			p = strings.TrimSpace(p[:i]) // "addr (comment)"
		}
		if p = strings.TrimSpace(p); p != "" && !strings.HasSuffix(p, ":;") {
			out = append(out, p)
		}
	}
	return out
}
