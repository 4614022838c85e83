package filter

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"mime"
	"strings"
	"time"
	"unicode/utf8"

	"mtad.dev/mta/mailheader"
	"mtad.dev/mta/sieve"
	"mtad.dev/mta/status"
)

// edited is the message as a script left it: its header edits (addheader,
// deleteheader) and its Subject tags (addtag). It is content itself when the
// script changed nothing.
func edited(content []byte, res *sieve.Result) []byte {
	out := res.EditedMessage(content)
	if tags := res.Tags(); len(tags) > 0 {
		out = tagSubject(out, tags)
	}
	return out
}

// tagSubject puts the tags before the Subject, in order and separated by a
// space ("Subject: [SPAM] [BULK] hello"), as the product's addtag does; a tag
// the Subject already starts with is not added again, so a message filtered
// twice (a hand-back) is not tagged twice. A message without a Subject gets
// one made of the tags.
func tagSubject(content []byte, tags []string) []byte {
	var subj mailheader.Field
	found := false
	b := mailheader.Walk(content, func(f mailheader.Field) bool {
		if f.Is("Subject") {
			subj, found = f, true
			return false
		}
		return true
	})
	value := ""
	if found {
		value = subj.Value()
	}
	prefix := ""
	for _, t := range tags {
		if t = encodeWord(strings.TrimSpace(t)); t != "" && !strings.HasPrefix(value, t) && !strings.Contains(prefix, t) {
			prefix += t + " "
		}
	}
	if prefix == "" {
		return content
	}
	line := "Subject: " + strings.TrimSpace(prefix+value) + b.EOL
	var out bytes.Buffer
	out.Grow(len(content) + len(prefix) + 16)
	if found {
		out.Write(content[:subj.Start])
		out.WriteString(line)
		out.Write(content[subj.End():])
	} else {
		out.Write(content[:b.End])
		out.WriteString(line)
		out.Write(content[b.End:])
	}
	return out.Bytes()
}

// encodeWord makes header text safe to write: RFC 2047 encoded when it is not
// ASCII.
func encodeWord(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			if !utf8.ValidString(s) {
				s = strings.ToValidUTF8(s, "?")
			}
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	return s
}

// prepend puts header fields ("Name: value", without line end) before the
// message, with the message's own line end.
func prepend(content []byte, fields ...string) []byte {
	eol := mailheader.Walk(content, func(mailheader.Field) bool { return false }).EOL
	var out bytes.Buffer
	for _, f := range fields {
		out.WriteString(f)
		out.WriteString(eol)
	}
	out.Write(content)
	return out.Bytes()
}

// headerValue is the first field called name, "" when none.
func headerValue(content []byte, name string) string {
	v := ""
	mailheader.Walk(content, func(f mailheader.Field) bool {
		if f.Is(name) {
			v = f.Value()
			return false
		}
		return true
	})
	return v
}

// deliveredTo reports whether the message has a Delivered-To: field naming
// addr: it was delivered to (and so forwarded by) addr before.
func deliveredTo(content []byte, addr string) bool {
	found := false
	mailheader.Walk(content, func(f mailheader.Field) bool {
		if f.Is("Delivered-To") && strings.EqualFold(strings.Trim(f.Value(), "<>"), addr) {
			found = true
			return false
		}
		return true
	})
	return found
}

// RejectStatus is the refusal of a reject or ereject action: 550 5.7.1 and the
// script's reason on one line (the product's documentation has no reply of its
// own for it).
func RejectStatus(r *sieve.Reject) *status.Status {
	reason := strings.Join(strings.Fields(strings.ToValidUTF8(r.Reason, "?")), " ")
	if reason == "" {
		reason = "Message rejected by filter"
	}
	const max = 200
	if len(reason) > max {
		reason = strings.ToValidUTF8(reason[:max], "") + "..."
	}
	return status.New(550, "5.7.1", "%s", reason)
}

// newMessageID is a Message-ID for a message a filter makes (an answer, a
// redirected copy's Resent-Message-ID), without angle brackets.
func newMessageID(kind, hostname string, now time.Time) string {
	var r [8]byte
	rand.Read(r[:])
	return kind + "." + now.UTC().Format("20060102150405") + "." + hex.EncodeToString(r[:]) + "@" + hostname
}

// redirectCopy is the message a redirect sends: a Delivered-To: field naming
// the recipient whose filter forwarded it (the loop check of the next filter
// that sees it), and with resent the Resent- fields of RFC 5322 §3.6.6.
func redirectCopy(content []byte, owner, target string, resent bool, now time.Time, hostname string) []byte {
	fields := []string{}
	if owner != "" {
		fields = append(fields, "Delivered-To: "+owner)
	}
	if resent {
		from := owner
		if from == "" {
			from = "postmaster@" + hostname
		}
		fields = append(fields,
			"Resent-Date: "+now.Format(time.RFC1123Z),
			"Resent-From: <"+from+">",
			"Resent-To: <"+target+">",
			"Resent-Message-ID: <"+newMessageID("redirect", hostname, now)+">")
	}
	return prepend(content, fields...)
}
