package smtpserver

import (
	"iter"
	"math"
	"strconv"
	"strings"

	"mtad.dev/mta/mailaddr"
)

// The arguments of MAIL and RCPT: the path (RFC 5321 §4.1.2) and the parameters
// of the extensions EHLO announces: SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8
// (RFC 6531), RET, ENVID, NOTIFY and ORCPT (DSN, RFC 3461), AUTH (RFC 4954 §5).

// bodyType is the BODY= parameter of MAIL, upper-cased.
type bodyType string

const (
	body7Bit     bodyType = "7BIT"
	body8BitMIME bodyType = "8BITMIME"
)

// dsnNotify is one value of RCPT's NOTIFY= parameter, upper-cased.
type dsnNotify string

const (
	notifyNever   dsnNotify = "NEVER"
	notifySuccess dsnNotify = "SUCCESS"
	notifyFailure dsnNotify = "FAILURE"
	notifyDelay   dsnNotify = "DELAY"
)

// mailOptions are the parameters of one MAIL command.
type mailOptions struct {
	Size       int64    // SIZE=, 0 when absent; a larger number than int64 holds counts as the largest
	Body       bodyType // BODY=, "" when absent
	UTF8       bool     // SMTPUTF8
	Return     string   // RET=: "FULL" or "HDRS", "" when absent
	EnvelopeID string   // ENVID=, xtext decoded
}

// rcptOptions are the parameters of one RCPT command.
type rcptOptions struct {
	Notify                []dsnNotify // NOTIFY=, nil when absent
	OriginalRecipientType string      // ORCPT= address type: "RFC822" or "UTF-8"
	OriginalRecipient     string      // ORCPT= address, decoded
}

// Replies to malformed arguments. Parameters we know but do not offer get 504,
// unknown ones 500, malformed values 501 (all 5.5.4, counted as protocol errors).
var (
	replyMailParams     = newReply(501, 5, 5, 4, "Unable to parse MAIL ESMTP parameters")
	replyRcptParams     = newReply(501, 5, 5, 4, "Unable to parse RCPT ESMTP parameters")
	replyBadSize        = newReply(501, 5, 5, 4, "Unable to parse SIZE as an integer")
	replyBadBody        = newReply(501, 5, 5, 4, "Unknown BODY value")
	replyBadRet         = newReply(501, 5, 5, 4, "Unknown RET value")
	replyBadEnvID       = newReply(501, 5, 5, 4, "Malformed ENVID parameter value")
	replyBadAuthParam   = newReply(500, 5, 5, 4, "Malformed AUTH parameter value")
	replyBadAuthMailbox = newReply(500, 5, 5, 4, "Malformed AUTH parameter mailbox")
	replyUnknownMailArg = newReply(500, 5, 5, 4, "Unknown MAIL FROM argument")
	replyBadNotify      = newReply(501, 5, 5, 4, "Malformed NOTIFY parameter value")
	replyBadORCPT       = newReply(501, 5, 5, 4, "Malformed ORCPT parameter value")
	replyUnknownRcptArg = newReply(500, 5, 5, 4, "Unknown RCPT TO argument")
)

// notOffered are parameters of extensions we do not announce, by command.
var notOffered = map[string]*smtpReply{
	"MAIL REQUIRETLS":  newReply(504, 5, 5, 4, "REQUIRETLS is not implemented"),
	"MAIL BINARYMIME":  newReply(504, 5, 5, 4, "BINARYMIME is not implemented"), // a BODY= value
	"RCPT RRVS":        newReply(504, 5, 5, 4, "RRVS is not implemented"),
	"RCPT BY":          newReply(504, 5, 5, 4, "DELIVERBY is not implemented"),
	"RCPT MT-PRIORITY": newReply(504, 5, 5, 4, "MT-PRIORITY is not implemented"),
}

// parseMail parses what follows "MAIL ": FROM:reverse-path [parameters]. The
// address comes back without the angle brackets and a source route, its local
// part in canonical form (canonicalLocal); "" is the null path <>.
func parseMail(arg string) (from string, opts mailOptions, rep *smtpReply) {
	from, params, rep := splitPath(arg, "FROM:", replyMailSyntax, replyMailParams)
	if rep != nil {
		return "", opts, rep
	}
	for key, value := range paramsSeq(params) {
		if rep := opts.set(key, value); rep != nil {
			return "", opts, rep
		}
	}
	return from, opts, nil
}

func (o *mailOptions) set(key, value string) *smtpReply {
	switch key {
	case "SIZE":
		n, ok := parseSize(value)
		if !ok {
			return replyBadSize
		}
		o.Size = n
	case "SMTPUTF8":
		o.UTF8 = true
	case "BODY":
		switch b := bodyType(strings.ToUpper(value)); b {
		case body7Bit, body8BitMIME:
			o.Body = b
		case "BINARYMIME":
			return notOffered["MAIL BINARYMIME"]
		default:
			return replyBadBody
		}
	case "RET":
		switch r := strings.ToUpper(value); r {
		case "FULL", "HDRS":
			o.Return = r
		default:
			return replyBadRet
		}
	case "ENVID":
		id, ok := decodeXtext(value)
		if !ok || id == "" || !printableASCII(id) {
			return replyBadEnvID
		}
		o.EnvelopeID = id
	case "AUTH":
		// Checked, not used: the session's identity is the one AUTH verified,
		// never one the client names here.
		who, ok := decodeXtext(value)
		if !ok || who == "" {
			return replyBadAuthParam
		}
		if who != "<>" {
			if _, rest, ok := parseMailbox(who); !ok || rest != "" {
				return replyBadAuthMailbox
			}
		}
	default:
		if rep, ok := notOffered["MAIL "+key]; ok {
			return rep
		}
		return replyUnknownMailArg
	}
	return nil
}

// parseRcpt parses what follows "RCPT ": TO:forward-path [parameters].
func parseRcpt(arg string) (to string, opts rcptOptions, rep *smtpReply) {
	to, params, rep := splitPath(arg, "TO:", replyRcptSyntax, replyRcptParams)
	if rep != nil {
		return "", opts, rep
	}
	for key, value := range paramsSeq(params) {
		if rep := opts.set(key, value); rep != nil {
			return "", opts, rep
		}
	}
	return to, opts, nil
}

func (o *rcptOptions) set(key, value string) *smtpReply {
	switch key {
	case "NOTIFY":
		notify, ok := parseNotify(value)
		if !ok {
			return replyBadNotify
		}
		o.Notify = notify
	case "ORCPT":
		typ, addr, ok := decodeTypedAddress(value)
		if !ok || addr == "" {
			return replyBadORCPT
		}
		o.OriginalRecipientType, o.OriginalRecipient = typ, addr
	default:
		if rep, ok := notOffered["RCPT "+key]; ok {
			return rep
		}
		return replyUnknownRcptArg
	}
	return nil
}

// splitPath reads "FROM:" or "TO:" (prefix, in any case) and the path after it
// (a reverse-path for FROM:), and returns the address and the parameters after
// the path. Parameters are "keyword" or "keyword=value" with no second "=";
// syntax and params are the replies to a bad path and to bad parameters.
func splitPath(arg, prefix string, syntax, params *smtpReply) (addr, rest string, rep *smtpReply) {
	rest, ok := cutPrefixFold(strings.TrimSpace(arg), prefix)
	if !ok {
		return "", "", syntax
	}
	addr, rest, ok = parsePath(strings.TrimSpace(rest), prefix == "FROM:")
	if !ok {
		return "", "", syntax
	}
	for p := range strings.FieldsSeq(rest) {
		if _, v, _ := strings.Cut(p, "="); strings.IndexByte(v, '=') >= 0 {
			return "", "", params
		}
	}
	return addr, rest, nil
}

// paramsSeq yields the parameters of s (checked by splitPath): the keyword
// upper-cased, and the value.
func paramsSeq(s string) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for p := range strings.FieldsSeq(s) {
			key, value, _ := strings.Cut(p, "=")
			if !yield(strings.ToUpper(key), value) {
				return
			}
		}
	}
}

// parseSize reads SIZE=: 1 to 20 digits (RFC 1870 §4). A number over what an
// int64 holds is the largest int64: it is over any limit, so MAIL gets 552, not a
// syntax error.
func parseSize(v string) (int64, bool) {
	if v == "" || len(v) > 20 {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return math.MaxInt64, true // digits only: out of range
	}
	return n, true
}

// parseNotify reads NOTIFY=: NEVER alone, or a set of SUCCESS, FAILURE, DELAY.
func parseNotify(v string) ([]dsnNotify, bool) {
	var out []dsnNotify
	for s := range strings.SplitSeq(v, ",") {
		n := dsnNotify(strings.ToUpper(s))
		switch n {
		case notifyNever, notifySuccess, notifyFailure, notifyDelay:
		default:
			return nil, false
		}
		for _, seen := range out {
			if seen == n {
				return nil, false
			}
		}
		out = append(out, n)
	}
	for _, n := range out {
		if n == notifyNever && len(out) > 1 {
			return nil, false
		}
	}
	return out, len(out) > 0
}

// cutPrefixFold is strings.CutPrefix, ignoring ASCII case.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}

// parsePath reads a path at the start of s: an optional "<", an optional source
// route "@a,@b:" (dropped: RFC 5321 §4.1.1.3 says to ignore it), a mailbox, and
// the ">" when "<" opened it. With reverse, "<>" is the null path "". rest is
// what follows the path.
func parsePath(s string, reverse bool) (addr, rest string, ok bool) {
	if reverse && strings.HasPrefix(s, "<>") {
		return "", s[2:], true
	}
	bracket := strings.HasPrefix(s, "<")
	if bracket {
		s = s[1:]
	}
	if strings.HasPrefix(s, "@") {
		i := strings.IndexByte(s, ':')
		if i < 0 {
			return "", "", false
		}
		s = s[i+1:]
	}
	addr, s, ok = parseMailbox(s)
	if !ok {
		return "", "", false
	}
	if bracket {
		if !strings.HasPrefix(s, ">") {
			return "", "", false
		}
		s = s[1:]
	}
	return addr, s, true
}

// parseMailbox reads local-part "@" domain at the start of s. The local part is a
// dot-string (any byte but specials and blanks) or a quoted string; the domain
// runs to the first blank or ">" (the rewrite engine checks it). The mailbox comes
// back in its canonical form (canonicalLocal), usually exactly as written.
func parseMailbox(s string) (mbox, rest string, ok bool) {
	i, quoted := 0, strings.HasPrefix(s, `"`)
	if quoted {
		for i = 1; ; i++ {
			if i >= len(s) {
				return "", "", false // unterminated
			}
			if s[i] == '\\' {
				i++
				if i >= len(s) {
					return "", "", false
				}
				continue
			}
			if s[i] == '"' {
				i++
				break
			}
		}
		if i == 2 {
			return "", "", false // "" is an empty local part
		}
	} else {
		for ; i < len(s) && s[i] != '@'; i++ {
			if strings.IndexByte("()<>[]:;\\,\" \t", s[i]) >= 0 {
				return "", "", false
			}
		}
		if i == 0 {
			return "", "", false
		}
	}
	if i >= len(s) || s[i] != '@' {
		return "", "", false
	}
	j := i + 1
	for j < len(s) && s[j] != ' ' && s[j] != '\t' && s[j] != '>' {
		j++
	}
	if j == i+1 {
		return "", "", false // empty domain
	}
	if local := canonicalLocal(s[:i], quoted); local != s[:i] {
		return local + s[i:j], s[j:], true
	}
	return s[:j], s[j:], true
}

// canonicalLocal writes a local part as RFC 5321 §4.1.2 prefers it: as a
// Dot-string when it is one, else as a Quoted-string escaping only '"' and '\\'.
// The quotes are syntax, not part of the mailbox: "user%host"@example.org and
// user%host@example.org are the same mailbox and must route the same way, and a
// local part such as a..b, which is no Dot-string, is passed on quoted, so the
// next hop gets valid syntax. A quoted "john doe" stays quoted.
func canonicalLocal(local string, quoted bool) string {
	if !quoted {
		if mailaddr.IsDotString(local) {
			return local
		}
		return strings.TrimSuffix(mailaddr.Quote(local+"@"), "@")
	}
	var content strings.Builder
	for i := 1; i < len(local)-1; i++ {
		if local[i] == '\\' {
			i++ // quoted-pair: the next byte stands for itself
		}
		content.WriteByte(local[i])
	}
	// mailaddr.Quote splits at the last "@": the one added here.
	return strings.TrimSuffix(mailaddr.Quote(content.String()+"@"), "@")
}

// decodeXtext decodes RFC 3461 §4 xtext: "+" and two upper-case hex digits stand
// for one character; only ASCII may be encoded.
func decodeXtext(s string) (string, bool) {
	if strings.IndexByte(s, '+') < 0 {
		return s, true
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '+' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		hi, lo := upperHex(s[i+1]), upperHex(s[i+2])
		if hi < 0 || lo < 0 || hi > 7 {
			return "", false
		}
		b.WriteByte(byte(hi<<4 | lo))
		i += 2
	}
	return b.String(), true
}

// upperHex is the value of an upper-case hex digit, -1 for any other byte.
func upperHex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// decodeTypedAddress reads ORCPT's "type;address": rfc822 with an xtext
// printable-ASCII address, or utf-8 (RFC 6533) with utf-8-addr-xtext or
// utf-8-addr-unitext. The type comes back upper-cased.
func decodeTypedAddress(v string) (typ, addr string, ok bool) {
	typ, addr, found := strings.Cut(v, ";")
	if !found || typ == "" || addr == "" {
		return "", "", false
	}
	typ = strings.ToUpper(typ)
	switch typ {
	case "RFC822":
		addr, ok = decodeXtext(addr)
		ok = ok && printableASCII(addr)
	case "UTF-8":
		addr, ok = decodeUTF8AddrXtext(addr)
	}
	if !ok {
		return "", "", false
	}
	return typ, addr, true
}

// decodeUTF8AddrXtext decodes RFC 6533 §3's utf-8-addr-xtext and
// utf-8-addr-unitext: "\x{HEX}" (upper-case hex, shortest form) stands for one
// code point; control characters, blanks, "\", "+" and "=" may appear only so
// encoded; other bytes, UTF-8 included, stand for themselves.
func decodeUTF8AddrXtext(s string) (string, bool) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c == '\\' && strings.HasPrefix(s[i:], `\x{`) {
			j := i + 3
			for j < len(s) && upperHex(s[j]) >= 0 {
				j++
			}
			if j > i+3 && j < len(s) && s[j] == '}' {
				r, ok := embeddedCodePoint(s[i+3 : j])
				if !ok {
					return "", false
				}
				b.WriteRune(r)
				i = j + 1
				continue
			}
		}
		if c < 0x20 || c == 0x7f || c == ' ' || c == '\\' || c == '+' || c == '=' {
			return "", false
		}
		b.WriteByte(c)
		i++
	}
	return b.String(), true
}

// embeddedCodePoint checks the hex digits of one "\x{HEX}": as many digits as the
// code point needs (two for the characters that must be encoded and for
// U+0080..U+00FF), never a surrogate.
func embeddedCodePoint(hex string) (rune, bool) {
	v, err := strconv.ParseUint(hex, 16, 21)
	if err != nil {
		return 0, false
	}
	ok := false
	switch len(hex) {
	case 2:
		ok = v >= 0x01 && v <= 0x09 || v >= 0x10 && v <= 0x19 || v == 0x20 || v == 0x2B ||
			v == 0x3D || v == 0x5C || v == 0x7F || v >= 0x80 && v <= 0xFF
	case 3:
		ok = v >= 0x100 && v <= 0xFFF
	case 4:
		ok = v >= 0x1000 && v <= 0xD7FF || v >= 0xE000 && v <= 0xFFFF
	case 5:
		ok = v >= 0x10000 && v <= 0xFFFFF
	case 6:
		ok = v >= 0x100000 && v <= 0x10FFFF
	}
	return rune(v), ok
}
