// Package mailaddr owns the wire form of an envelope address (RFC 5321 §4.1.2):
// when a local part must be a quoted string and how it is quoted.
//
// Why it exists: go-smtp, which receives our mail, hands over a mailbox whose
// local part was quoted with the quotes removed ("john doe"@example.com arrives as
// john doe@example.com). The SMTP service quotes such a local part again before
// rewriting, and the SMTP client writes every address through Quote, so a
// mailbox keeps its identity from one hop to the next.
//
// It must not parse domains, rewrite or route addresses: that is the engine's.
// It imports nothing of this module, so every package may use it.
package mailaddr
