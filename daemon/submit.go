package daemon

// Local submission (mtactl sendmail): the message arrives over the control socket,
// is completed (Date:, Message-ID:, From:, our Received:), its recipients are
// rewritten with the local channel as source, as the product's local submission
// does, and it is enqueued durably with one E line per recipient in mail.log.
//
// Decisions where the reference is silent [inf]:
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
	"log/slog"
	"net/mail"
	"slices"
	"strings"
	"time"

	"mtad.dev/mta/compiler"
	"mtad.dev/mta/control"
	"mtad.dev/mta/engine"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/mappings"
	"mtad.dev/mta/queue"
	"mtad.dev/mta/smtpserver"
	"mtad.dev/mta/status"
)

// localSource is the source channel of local submission.
const localSource = "l"

// submitTimeout bounds the durable enqueue of one submission.
const submitTimeout = 30 * time.Second

// submitMessage handles control.CmdSubmitMessage.
func (d *Daemon) submitMessage(ctx context.Context, sub *control.Submission) control.SubmitResult {
	img := d.image.Load()
	p, res := prepareSubmission(img, sub, time.Now())
	if p == nil {
		return res
	}
	// Refusals are logged like the SMTP server's: J, no queue id.
	if refused, _ := res.Refused(); refused {
		for _, rc := range res.Recipients {
			if rc.Status != nil {
				d.mlog.Log(maillog.Record{Source: localSource, Code: "J", Size: int64(len(p.content)), From: p.env.From,
					To: rc.Addr, Diag: rc.Status.Error()})
			}
		}
		return res
	}
	if len(p.env.Rcpts) == 0 {
		return res // discarded or sent to the bitbucket by the access tables
	}
	ctx, cancel := context.WithTimeout(ctx, submitTimeout)
	defer cancel()
	// One copy per envelope sender: list members whose list has an owner get the
	// owner as sender (their bounces go to the owner, not to the poster).
	var ids []string
	for _, env := range p.copies() {
		id, err := d.queue.Enqueue(ctx, env, p.content)
		if err != nil {
			// Unknown errors are temporary: the caller gets EX_TEMPFAIL and may
			// retry. Copies already queued are delivered, so a retry may duplicate
			// them; it never loses any.
			res.Status = status.From(fmt.Errorf("enqueue: %w", err))
			d.log.Warn("local submission: enqueue failed", "user", sub.User, "from", env.From, "queued", ids, "err", err)
			return res
		}
		ids = append(ids, id)
		for _, rc := range env.Rcpts {
			d.mlog.Log(maillog.Record{Source: localSource, Dest: rc.Channel, Code: "E", Size: int64(len(p.content)),
				From: env.From, To: rc.Addr, ID: id, MessageID: env.MessageID})
		}
		if p.forced {
			lvl := slog.LevelInfo
			if heldSndopr(img) {
				lvl = slog.LevelWarn
			}
			d.log.Log(ctx, lvl, "message forced .HELD", "id", id, "reason", env.HeldReason, "from", env.From, "user", sub.User)
		}
	}
	res.ID = strings.Join(ids, " ")
	d.log.Debug("local submission queued", "ids", ids, "user", sub.User, "rcpts", len(p.env.Rcpts), "size", len(p.content))
	return res
}

// prepared is a submission ready to enqueue.
type prepared struct {
	env     *queue.Envelope
	senders []string // senders[i]: envelope sender of env.Rcpts[i]'s copy; "" is env.From
	forced  bool     // held by the Received: count or a holdlimit (HELD_SNDOPR)
	content []byte
}

// copies splits the envelope by sender, in the order of first recipients.
func (p *prepared) copies() []*queue.Envelope { return queue.SplitBySender(p.env, p.senders) }

// prepareSubmission completes and routes a submission against an image. It is
// pure (the clock is given) so that tests and the fuzz target can run it without a
// daemon. A nil *prepared means the message as a whole was refused (res.Status).
func prepareSubmission(img *compiler.Image, sub *control.Submission, now time.Time) (*prepared, control.SubmitResult) {
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
		rcpts = hdr.addresses("To", "Cc", "Bcc")
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
	hdr.remove("Bcc")

	// The fields a user agent should have written.
	if !hdr.has("Date") {
		hdr.add("Date", now.Format(time.RFC1123Z))
	}
	if !hdr.has("Message-ID") {
		hdr.add("Message-ID", "<"+newMessageID(now)+"@"+host+">")
	}
	if !hdr.has("From") {
		from := sender
		if from == "" {
			from = qualify(user, host) // a notice-like message still names who sent it
		}
		if sub.FullName != "" {
			from = (&mail.Address{Name: sub.FullName, Address: from}).String()
		}
		hdr.add("From", from)
	}
	messageID := strings.TrimSpace(hdr.get("Message-ID"))
	res.MessageID = messageID

	env := &queue.Envelope{From: sender, Source: localSource, MessageID: messageID,
		Client: "localhost (local submission by " + user + ")"}
	// An SMTP client asks BODY=8BITMIME for what was submitted so; local input
	// says nothing, so the bytes decide.
	env.Body8Bit = slices.ContainsFunc(body, func(c byte) bool { return c >= 0x80 })
	forced := false
	// Our own Received: line, added below, counts in both totals.
	if r := smtpserver.LoopReason(hdr.count("Received")+1, hdr.receivedBy(host)+1,
		img.Options.MaxReceivedLines, img.Options.MaxLocalReceivedLines, host); r != "" {
		env.Held, env.HeldReason, forced = true, r, true
	}
	var senders []string

	seen := map[string]bool{}
	discard := false
	for _, addr := range rcpts {
		rc := control.SubmitRecipient{Addr: addr}
		queued, owners, st, eff := route(img, sender, qualify(strings.TrimSpace(addr), host))
		rc.Status = st
		if st == nil {
			for _, a := range eff {
				discard = discard || a.Discard
				if a.Hold && !env.Held {
					env.Held, env.HeldReason = true, "access: held by "+orString(a.Src, "access mapping")
				}
			}
			for k, q := range queued {
				rc.Queued = append(rc.Queued, control.QueuedRcpt{Addr: q.Addr, Channel: q.Channel})
				key := strings.ToLower(q.Channel + "\x00" + q.Addr)
				if seen[key] {
					continue
				}
				seen[key] = true
				q.Orig = addr
				env.Rcpts = append(env.Rcpts, q)
				senders = append(senders, owners[k])
			}
		}
		res.Recipients = append(res.Recipients, rc)
	}
	if discard {
		env.Rcpts, senders = nil, nil
	}
	if !env.Held {
		if r := holdLimit(img, env.Rcpts); r != "" {
			env.Held, env.HeldReason, forced = true, r, true
		}
	}
	if env.Held {
		res.Held = env.HeldReason
	}

	var content bytes.Buffer
	content.WriteString("Received: (from " + qualify(user, host) + ")\r\n\tby " + host +
		" (mtad) with local submission;\r\n\t" + now.Format(time.RFC1123Z) + "\r\n")
	hdr.writeTo(&content)
	content.WriteString("\r\n")
	content.Write(body)
	return &prepared{env: env, senders: senders, forced: forced, content: content.Bytes()}, res
}

// route rewrites one recipient as the local channel would and runs the recipient
// access tables; it returns the queue recipients with their envelope senders
// (owner-NAME of their list, "" for the message's own), a refusal, or the effects
// of the access entries that matched without refusing.
func route(img *compiler.Image, sender, addr string) ([]queue.Recipient, []string, *status.Status, []mappings.Access) {
	if badAddr(addr) || addr == "" {
		return nil, nil, status.New(553, "5.1.3", "Bad recipient address syntax"), nil
	}
	if img.Rules == nil {
		return nil, nil, status.New(451, "4.3.0", "Routing not available, try again later"), nil
	}
	res := img.Rules.Resolve(engine.Request{Address: addr, Kind: engine.EnvelopeTo, SourceChannel: localSource})
	if res.Err != nil {
		return nil, nil, res.Err, nil
	}
	if len(res.Recipients) == 0 {
		return nil, nil, status.New(550, "5.1.1", "No such user %s", addr), nil
	}
	var effects []mappings.Access
	access := func(table, dst, to string) *status.Status {
		if img.Mappings == nil || !img.Mappings.Has(table) {
			return nil
		}
		r, ok := img.Mappings.Map(table, localSource+"|"+sender+"|"+dst+"|"+to, 0, &mappings.Env{})
		if !ok || !r.Matched {
			return nil
		}
		a := mappings.DecodeAccess(r)
		if a.Reject {
			enh := a.Enhanced
			if enh == "" || (enh[0] != '4' && enh[0] != '5') {
				enh = "5.7.1"
			}
			return status.FromEnhanced(enh, orString(a.Text, "Access denied")+" "+to)
		}
		effects = append(effects, a)
		return nil
	}
	if st := access("ORIG_SEND_ACCESS", res.Rewrite.Channel, res.Rewrite.Address); st != nil {
		return nil, nil, st, nil
	}
	var out []queue.Recipient
	var owners []string
	var first *status.Status
	for _, r := range res.Recipients {
		n := len(effects)
		if st := access("SEND_ACCESS", r.Channel, r.Address); st != nil {
			if first == nil {
				first = st
			}
			continue
		}
		drop := false
		for _, a := range effects[n:] {
			drop = drop || a.Bitbucket
		}
		if !drop {
			out = append(out, queue.Recipient{Addr: r.Address, Channel: r.Channel, Host: strings.ToLower(r.Host)})
			owners = append(owners, r.Sender)
		}
	}
	// As for SMTP: a refused expansion is dropped; the address is refused only
	// when nothing is left of it.
	if len(out) == 0 && first != nil {
		return nil, nil, first, nil
	}
	if _, ok := img.Channel(res.ExpandChannel); ok && res.Deferred && len(out) > 0 {
		// expandlimit (never on l today, but an image may give the local source
		// one): the alias goes unexpanded to the reprocess channel.
		out = []queue.Recipient{{Addr: res.Rewrite.Address, Channel: res.ExpandChannel, Host: strings.ToLower(res.Rewrite.Host)}}
		owners = []string{""}
	}
	return out, owners, nil, effects
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

func orString(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// newMessageID is unique without coordination: the time and 64 random bits.
func newMessageID(now time.Time) string {
	var b [8]byte
	rand.Read(b[:])
	return now.UTC().Format("20060102150405") + "." + hex.EncodeToString(b[:])
}

// header is a message's header block, field by field, kept as written (folding
// included) so that what we do not touch goes out byte for byte.
type header struct {
	fields []field
}

type field struct {
	name string // as written
	raw  string // the whole field, continuation lines included, with its CRLFs
}

// value is the field's body unfolded.
func (f field) value() string {
	v := f.raw[len(f.name)+1:]
	v = strings.ReplaceAll(v, "\r\n", "")
	return strings.TrimSpace(v)
}

// splitHeader cuts content into the header fields and the body. The header ends
// at the first empty line, or at the first line that is neither a field nor a
// continuation (that line starts the body). A leading mbox "From " line is dropped.
func splitHeader(content []byte) (header, []byte) {
	var h header
	rest := content
	if bytes.HasPrefix(rest, []byte("From ")) {
		if i := bytes.Index(rest, []byte("\r\n")); i >= 0 {
			rest = rest[i+2:]
		} else {
			rest = nil
		}
	}
	for len(rest) > 0 {
		line := rest
		next := []byte(nil)
		if i := bytes.Index(rest, []byte("\r\n")); i >= 0 {
			line, next = rest[:i+2], rest[i+2:]
		}
		switch {
		case bytes.Equal(line, []byte("\r\n")):
			return h, next // the blank line is written again after the header
		case (line[0] == ' ' || line[0] == '\t') && len(h.fields) > 0:
			h.fields[len(h.fields)-1].raw += string(line)
		default:
			name, ok := fieldName(line)
			if !ok {
				return h, rest
			}
			if !bytes.HasSuffix(line, []byte("\r\n")) {
				line = append(line[:len(line):len(line)], '\r', '\n')
			}
			h.fields = append(h.fields, field{name: name, raw: string(line)})
		}
		rest = next
	}
	return h, nil
}

// fieldName returns the name of a header field line (RFC 5322 ftext: printable
// ASCII but ':' and space).
func fieldName(line []byte) (string, bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return "", false
	}
	for _, c := range line[:i] {
		if c < 33 || c > 126 {
			return "", false
		}
	}
	return string(line[:i]), true
}

func (h *header) has(name string) bool { return h.count(name) > 0 }

func (h *header) count(name string) int {
	n := 0
	for _, f := range h.fields {
		if strings.EqualFold(f.name, name) {
			n++
		}
	}
	return n
}

// receivedBy counts the Received: fields whose "by" clause names host.
func (h *header) receivedBy(host string) int {
	n := 0
	for _, f := range h.fields {
		if strings.EqualFold(f.name, "Received") && smtpserver.ReceivedBy(f.value(), host) {
			n++
		}
	}
	return n
}

func (h *header) get(name string) string {
	for _, f := range h.fields {
		if strings.EqualFold(f.name, name) {
			return f.value()
		}
	}
	return ""
}

func (h *header) add(name, value string) {
	h.fields = append(h.fields, field{name: name, raw: name + ": " + value + "\r\n"})
}

func (h *header) remove(name string) {
	out := h.fields[:0]
	for _, f := range h.fields {
		if !strings.EqualFold(f.name, name) {
			out = append(out, f)
		}
	}
	h.fields = out
}

func (h *header) writeTo(b *bytes.Buffer) {
	for _, f := range h.fields {
		b.WriteString(f.raw)
	}
}

// addresses lists the addresses of the named fields, in order. A field that
// net/mail cannot parse is split leniently (commas, angle brackets), the way
// sendmail copes with what scripts write.
func (h *header) addresses(names ...string) []string {
	var out []string
	for _, f := range h.fields {
		for _, n := range names {
			if !strings.EqualFold(f.name, n) {
				continue
			}
			v := f.value()
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
