package smtpserver

import (
	"strconv"
	"strings"
)

// enhancedCode is an RFC 3463 enhanced status code, class.subject.detail. The
// zero value means "none given": the reply then carries class.0.0 (RFC 2034 asks
// for an enhanced code on every 2xx, 4xx and 5xx reply after the greeting).
type enhancedCode [3]int

// noEnhancedCode marks the replies that carry no enhanced code at all: the
// banner, the EHLO list, 334 challenges and 354.
var noEnhancedCode = enhancedCode{-1, -1, -1}

// smtpReply is one reply we send: code, enhanced code, text. Every reply the
// server writes is one of these, built here or by the session, so the bytes on
// the wire are decided in this package alone. A Message with LF in it is a
// multi-line reply (the EHLO list); the enhanced code goes on the last line.
type smtpReply struct {
	Code         int
	EnhancedCode enhancedCode
	Message      string
}

// newReply builds a reply with an enhanced code.
func newReply(code int, class, subject, detail int, text string) *smtpReply {
	return &smtpReply{Code: code, EnhancedCode: enhancedCode{class, subject, detail}, Message: text}
}

// Replies with a fixed text.
var (
	replyNotImplemented  = newReply(502, 5, 5, 1, "Error: command not implemented")
	replyLineTooLong     = newReply(500, 5, 5, 2, "Line too long")
	replyBadCommandBytes = newReply(501, 5, 5, 2, "Syntax error: NUL or bare CR in command")
	replyBadSyntax       = newReply(500, 5, 5, 2, "Error: bad syntax")
	replyUnknownCommand  = newReply(500, 5, 5, 2, "Error: command not recognized")
	replyNoBDAT          = newReply(500, 5, 5, 1, "Error: BDAT not supported")
	replyNeedHelo        = newReply(503, 5, 5, 1, "Error: send HELO/EHLO first")
	replyNeedMail        = newReply(503, 5, 5, 1, "Error: need MAIL command")
	replyNeedRcpt        = newReply(503, 5, 5, 1, "Error: need RCPT command")
	replyNestedMail      = newReply(503, 5, 5, 1, "Error: nested MAIL command")
	replyHeloSyntax      = newReply(501, 5, 5, 2, "Domain/address argument required for HELO")
	replyMailSyntax      = newReply(501, 5, 5, 2, "Was expecting MAIL arg syntax of FROM:<address>")
	replyRcptSyntax      = newReply(501, 5, 5, 2, "Was expecting RCPT arg syntax of TO:<address>")
	replyDataArgs        = newReply(501, 5, 5, 4, "DATA command should not have any arguments")
	replyBadSender       = newReply(501, 5, 1, 7, "Bad sender address syntax")
	replyBadRecipient    = newReply(501, 5, 1, 3, "Bad recipient address syntax")
	replyNoConfig        = newReply(451, 4, 3, 0, "Configuration not available, try again later")
	replyReadFailed      = newReply(421, 4, 4, 2, "Error reading message")
	replyMailOK          = newReply(250, 2, 1, 0, "Ok")
	replyRcptOK          = newReply(250, 2, 1, 5, "Ok")
	replyReset           = newReply(250, 2, 0, 0, "Session reset")
	replyNoop            = newReply(250, 2, 0, 0, "I have successfully done nothing")
	replyVrfy            = newReply(252, 2, 5, 0, "Cannot VRFY user, but will accept message")
	replyBye             = newReply(221, 2, 0, 0, "Bye")
	replyStartData       = &smtpReply{Code: 354, EnhancedCode: noEnhancedCode, Message: "Go ahead. End your data with <CR><LF>.<CR><LF>"}
	replyInternalError   = newReply(421, 4, 0, 0, "Internal server error")

	replyStartTLSSyntax = newReply(501, 5, 5, 4, "Syntax: STARTTLS")
	replyTLSActive      = newReply(503, 5, 5, 1, "Error: TLS already active")
	replyTLSReady       = newReply(220, 2, 0, 0, "Ready to start TLS")
)

// Replies about the server's state; the host name is the connection policy's.
func replyShuttingDown(host string) *smtpReply {
	return newReply(421, 4, 3, 2, host+" Service shutting down")
}

func replyTimeout(host string) *smtpReply {
	return newReply(421, 4, 4, 2, host+" Error: timeout exceeded")
}

func replyTooManyErrors(host string) *smtpReply {
	return newReply(421, 4, 7, 0, host+" Error: too many errors")
}

// replyTooMany ends a session over one of its channel's disconnect* limits; what
// is "transactions", "recipients" or "rejected recipients".
func replyTooMany(host, what string) *smtpReply {
	return newReply(421, 4, 7, 0, host+" Error: too many "+what+", closing connection")
}

// replyQueued is the DATA reply of an accepted message.
func replyQueued(ids string) *smtpReply {
	return newReply(250, 2, 0, 0, "Ok: queued as "+ids)
}

// protocolError tells whether the reply answers a syntax or sequence error
// (5xx, 5.5.x), which counts toward the session's bad command limit. 5.5.3
// (too many recipients: recipientcutoff) is a policy refusal and does not.
func (r *smtpReply) protocolError() bool {
	e := r.EnhancedCode
	return r.Code >= 500 && r.Code < 600 && e[0] == 5 && e[1] == 5 && e[2] != 3
}

// enhanced is the enhanced code written with the reply; ok is false when none is.
func (r *smtpReply) enhanced() (e enhancedCode, ok bool) {
	switch {
	case r.EnhancedCode == noEnhancedCode:
		return e, false
	case r.EnhancedCode != enhancedCode{}:
		return r.EnhancedCode, true
	}
	switch class := r.Code / 100; class {
	case 2, 4, 5:
		return enhancedCode{class, 0, 0}, true
	}
	return e, false
}

// appendTo appends the reply as it goes on the wire, every line ending in CRLF.
func (r *smtpReply) appendTo(b []byte) []byte {
	text := r.Message
	for {
		line, rest, more := strings.Cut(text, "\n")
		b = strconv.AppendInt(b, int64(r.Code), 10)
		if more {
			b = append(b, '-')
			b = append(b, line...)
			b = append(b, '\r', '\n')
			text = rest
			continue
		}
		b = append(b, ' ')
		if e, ok := r.enhanced(); ok {
			b = strconv.AppendInt(b, int64(e[0]), 10)
			b = append(b, '.')
			b = strconv.AppendInt(b, int64(e[1]), 10)
			b = append(b, '.')
			b = strconv.AppendInt(b, int64(e[2]), 10)
			b = append(b, ' ')
		}
		b = append(b, line...)
		return append(b, '\r', '\n')
	}
}

// String is the reply's last line without CRLF, as mail.log records and the
// connection's closing reason quote it.
func (r *smtpReply) String() string {
	b := r.appendTo(nil)
	b = b[:len(b)-2]
	if i := strings.LastIndexByte(string(b), '\n'); i >= 0 {
		b = b[i+1:]
	}
	return string(b)
}
