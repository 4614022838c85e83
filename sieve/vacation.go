package sieve

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Vacation asks the MTA to answer the sender (RFC 5230). The script decides
// what to answer; the MTA decides whether to send it: it checks Suppressed,
// and its once-per-sender memory (keyed by Handle and ReplyTo, for Days).
type Vacation struct {
	Pos
	// Reason is the answer's body; with Mime it is a MIME entity (header and body).
	Reason string
	Mime   bool
	// Subject of the answer: :subject, or "Auto: " and the original subject.
	Subject string
	// From is :from, or "" for the recipient's own address.
	From string
	// Addresses are the recipient's addresses: the envelope recipients and
	// :addresses. A message sent to none of them is not answered.
	Addresses []string
	// Handle names this vacation for the once-per-sender memory: :handle, or a
	// digest of reason, subject, from and :mime (RFC 5230 §4.2).
	Handle string
	// Days between two answers to one sender: :days, at least 1, default 7.
	Days int
	// ReplyTo is where the answer goes: the envelope sender.
	ReplyTo string
	// InReplyTo and References are the original's Message-ID and References,
	// for the answer's threading fields (RFC 5230 §5.8).
	InReplyTo  string
	References string
	// Suppressed, when not empty, says why no answer may be sent at all (RFC
	// 5230 §4.5, §5): null sender, automatic or list mail, a message not
	// addressed to the user, a sender who is the user.
	Suppressed string
}

func (a *Vacation) String() string {
	s := fmt.Sprintf("vacation :days %d :subject %q", a.Days, a.Subject)
	if a.Suppressed != "" {
		s += " (no answer: " + a.Suppressed + ")"
	}
	return s
}

type cmdVacation struct {
	node
	reason, subject, from, handle  str
	hasSubject, hasFrom, hasHandle bool
	addresses                      []str
	mime                           bool
	days                           int
}

func buildVacation(c *checker, a *callArgs, n node) command {
	v := &cmdVacation{node: n, reason: c.str(a.pos[0]), mime: a.has("mime"), days: 7}
	if arg, ok := a.tags["days"]; ok {
		v.days = int(min(arg.Number, 1<<16))
		if v.days < 1 {
			v.days = 1
		}
	}
	if arg, ok := a.tags["subject"]; ok {
		v.subject, v.hasSubject = c.str(arg), true
	}
	if arg, ok := a.tags["from"]; ok {
		v.from, v.hasFrom = c.str(arg), true
	}
	if arg, ok := a.tags["handle"]; ok {
		v.handle, v.hasHandle = c.str(arg), true
	}
	if arg, ok := a.tags["addresses"]; ok {
		v.addresses = c.strs(arg)
	}
	return v
}

func (c *cmdVacation) run(e *eval) error {
	for _, a := range e.actions {
		switch a.(type) {
		case *Vacation:
			return &Error{Pos: c.pos, Msg: "vacation can only be used once, already at " + a.Position().Short()}
		}
	}
	if err := e.conflictsWithReject(c.pos, "vacation"); err != nil {
		return err
	}
	v := &Vacation{Pos: c.pos, Reason: e.expand(c.reason), Mime: c.mime, Days: c.days,
		ReplyTo: strings.Trim(e.env.Envelope.From, "<>")}
	v.Subject = "Auto: " + e.firstValue("subject")
	if c.hasSubject {
		v.Subject = e.expand(c.subject)
	}
	if c.hasFrom {
		v.From = e.expand(c.from)
	}
	v.Addresses = append(append([]string(nil), e.env.Envelope.To...), e.expandList(c.addresses)...)
	v.Handle = e.expand(c.handle)
	if !c.hasHandle {
		sum := sha256.Sum256([]byte(fmt.Sprintf("%q %q %q %v", v.Reason, e.expand(c.subject), v.From, v.Mime)))
		v.Handle = "vacation-" + hex.EncodeToString(sum[:12])
	}
	v.InReplyTo = e.firstValue("message-id")
	v.References = strings.TrimSpace(e.firstValue("references") + " " + v.InReplyTo)
	v.Suppressed = e.vacationSuppressed(v)
	e.addAction(v)
	return nil
}

// firstValue is the decoded value of the first field of that name, "" if none.
func (e *eval) firstValue(name string) string {
	for i := range e.fields {
		if e.fields[i].f.Is(name) {
			return e.decoded(i).s
		}
	}
	return ""
}

// vacationSuppressed applies the rules of RFC 5230 §4.5 and §5 that say a
// message must never be answered.
func (e *eval) vacationSuppressed(v *Vacation) string {
	sender := strings.ToLower(v.ReplyTo)
	local := sender
	if at := strings.LastIndexByte(sender, '@'); at >= 0 {
		local = sender[:at]
	}
	switch {
	case sender == "":
		return "null envelope sender"
	case local == "mailer-daemon" || local == "listserv" || local == "majordomo" ||
		strings.HasPrefix(local, "owner-") || strings.HasSuffix(local, "-request"):
		return "sender is a mailing list or a mailer"
	}
	if as := strings.ToLower(e.firstValue("auto-submitted")); as != "" && as != "no" {
		return "message is auto-submitted"
	}
	switch strings.ToLower(e.firstValue("precedence")) {
	case "bulk", "list", "junk":
		return "message is bulk or list mail"
	}
	for i := range e.fields {
		// RFC 5230 §4.5 names List-Id; any List-* field of RFC 2369 and RFC
		// 2919 (List-Unsubscribe, List-Post ...) marks list mail as surely.
		if hasPrefixFold(e.fields[i].f.Raw, "list-") {
			return "message is list mail"
		}
	}
	for _, a := range v.Addresses {
		if strings.EqualFold(a, sender) {
			return "sender is the recipient"
		}
	}
	if !e.addressedTo(v.Addresses) {
		return "recipient is not in To, Cc or Bcc"
	}
	return ""
}

// addressedTo says whether one of the addresses is in a To, Cc, Bcc or
// Resent- field (RFC 5230 §4.5).
func (e *eval) addressedTo(addrs []string) bool {
	for i := range e.fields {
		f := e.fields[i].f
		if !(f.Is("to") || f.Is("cc") || f.Is("bcc") || f.Is("resent-to") || f.Is("resent-cc") || f.Is("resent-bcc")) {
			continue
		}
		for _, have := range e.addresses(i) {
			for _, a := range addrs {
				a = strings.Trim(a, "<>")
				if strings.EqualFold(a, have) || strings.EqualFold(withoutDetail(a, e.sep), have) {
					return true
				}
			}
		}
	}
	return false
}

// withoutDetail is an address without its subaddress (RFC 5233): mail to
// "bob+lists@example.com" was sent to the "bob@example.com" its To: names.
func withoutDetail(addr, sep string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	if i := strings.Index(addr[:at], sep); i >= 0 {
		return addr[:i] + addr[at:]
	}
	return addr
}

// hasPrefixFold reports whether raw starts with prefix, ASCII case-insensitively;
// prefix is lower case.
func hasPrefixFold(raw []byte, prefix string) bool {
	if len(raw) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := raw[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}
