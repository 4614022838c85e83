// Package mailaddr owns the wire form of an envelope address (RFC 5321 §4.1.2):
// when a local part must be a quoted string and how it is quoted.
//
// Why it exists: one mailbox has several spellings ("john"@x and john@x are the
// same; "john doe"@x needs its quotes). The SMTP service's command parser turns
// what a client wrote into one canonical form with it (unquoted when the local
// part is a dot-string, else quoted with only '"' and '\' escaped), so that the
// rewrite rules and the access tables see one spelling; the SMTP client writes
// every address through Quote, so a mailbox keeps its identity from one hop to
// the next.
//
// It must not parse domains, rewrite or route addresses: that is the engine's.
// It imports nothing of this module, so every package may use it.
package mailaddr
