// Package senderauth is sender authentication: who may send mail for a domain
// (SPF, RFC 7208), whether a message's signatures hold (DKIM, RFC 6376, 8301,
// 8463), what the author's domain asks of mail that fails both (DMARC, RFC
// 7489 with RFC 9091's np=), the Authentication-Results: field that records it
// (RFC 8601), and the Sender Rewriting Scheme of mail we forward (SRS).
//
// It owns the checks and their results, and the SRS address forms. It must not
// speak SMTP, queue, or decide when a check runs: intake calls it at the
// moments a transaction reaches (MAIL FROM, the first valid RCPT, the end of
// DATA) through the interfaces intake declares, and the daemon builds a Policy
// from the compiled configuration. All DNS goes through a Resolver (dnsx's
// Client, with its TTL-honouring cache); `mtactl test -auth` wraps it in a
// Recorder to show every question and answer.
//
// # How it works
//
//   - SPF (spf.go) is blitiri.com.ar/go/spf driven by our resolver
//     (resolver.go's libResolver): the product's SPF_LOCAL table answers the
//     checked domain's record, SPF_MAX_* bound the evaluation, and
//     SPF_SMTP_STATUS_* turn a result into an accept, a 4xx or a 5xx (Reply).
//     The pyspf project's RFC 7208 test suite runs through this integration
//     (rfc7208_test.go).
//   - DKIM (dkim.go) is github.com/emersion/go-msgauth's verifier, keys
//     looked up through our resolver, at most DKIM_MAX_SIGNATURES signatures.
//   - DMARC (dmarc.go): the author domains of From:, the record at
//     _dmarc.<domain> or at its organisational domain (public suffix list of
//     golang.org/x/net), alignment, p=/sp=/np=, then pct= and the
//     DMARC_OVERRIDE table (checker.go). Several From: domains are each
//     evaluated and the strictest outcome applies. The verdict (dmarc-pass,
//     dmarc-none, dmarc-quarantine, dmarc-reject) is handed to intake for
//     filters; until filters can act on it, reject refuses the message and
//     quarantine holds it .HELD.
//   - Authentication-Results: (authres.go): one field per message with our
//     authserv-id, built with go-msgauth's authres; fields claiming our id are
//     removed from mail of untrusted source channels (StripForged).
//   - SRS (srs.go): SRS0/SRS1 addresses under srs_domain, keyed with
//     srs_secrets, valid srs_maxage days.
//
// Policy.Begin gives a Transaction per SMTP transaction: Sender (MAIL FROM),
// Recipient (first valid RCPT, spfrcptto), ProbeField (ACCESS_SPF), Message
// (end of DATA).
package senderauth
