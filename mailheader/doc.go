// Package mailheader reads and edits the header section of an Internet message
// (RFC 5322 §2.2): the one header scanner of the module. The SMTP service counts
// Received: fields with it, local submission completes a user's header, the 8-bit
// downgrade rewrites Content-Transfer-Encoding, delivery notices and `mtactl qm`
// copy the header block out.
//
// It owns the syntax of a header section and nothing else: it never decides which
// fields a message must have, and imports nothing of ours.
//
// # How it works
//
// Walk cuts the header into fields without allocating, for the hot path (every
// message the SMTP service accepts is scanned once); Parse keeps the fields in a
// Header that can be edited and written back. Both work on the message's bytes in
// place: a field's Raw is the slice of the message that holds it, name, colon,
// value, folding and line ends included, so what nobody edits goes out byte for
// byte. Lines may end in CRLF or in a bare LF (the 8-bit downgrade sees parts of
// either kind).
//
// The header ends at the first empty line. A line that is neither a field nor the
// continuation of one is kept as a Field with an empty Name, so that a caller can
// choose: the SMTP service ignores it, local submission starts the body there (the
// way sendmail treats input that is not a header), the 8-bit downgrade keeps it.
//
// go-message's textproto reads headers too, but refuses a line without a colon
// and copies every field into a map; here the scan must tolerate whatever a client
// sent and cost nothing per field on the hot path, so the scanner is our own.
package mailheader
