// Package dnsx is the MTA's DNS resolver: MX and address lookups behind the
// Resolver interface, with an in-process cache that honours every record's TTL.
// Client also answers TXT and PTR questions (LookupTXT, LookupAddr) for sender
// authentication (SPF records, DKIM keys, DMARC policies), through the same
// cache.
//
// It owns DNS queries (github.com/miekg/dns), the answer cache and the typing of
// DNS failures (temporary or not). It must not know about channels, routing
// policy (MX ordering, null MX, implicit MX) or SMTP: those belong to the SMTP
// channel. It imports nothing of ours but metrics (Config.Metrics counts cache
// hits and misses; nil: not counted).
//
// How it works:
//   - A query goes to each configured server in turn (those of /etc/resolv.conf
//     unless Config.Servers is set), for Config.Attempts rounds, over UDP with
//     EDNS0; a truncated answer is asked again over TCP. A timeout, a network
//     error, SERVFAIL or REFUSED moves on to the next server; NOERROR and
//     NXDOMAIN are answers and end the search.
//   - CNAME chains are followed (inside the answer when the server gave the
//     chain, else by asking again for the target) up to MaxCNAME links, so a
//     CNAME returned where an MX was asked for (resolvers do give such answers)
//     resolves to the target's MX instead of being mistaken for one.
//   - The cache keeps final answers per (name, type) until the smallest TTL of
//     the records that made the answer, chain included; it never serves an
//     entry at or past its expiry (a cache that ignores TTLs, as nscd does, keeps
//     sending mail to an address the destination left weeks ago, and the queue
//     grows with no visible cause). NXDOMAIN and NODATA are cached per RFC 2308
//     §5 for min(SOA TTL, SOA MINIMUM) and only when the authority section
//     carries the SOA; SERVFAIL and timeouts are never cached.
//   - Errors are *Error: NXDOMAIN is permanent (NotFound), everything else that
//     fails is temporary, so a DNS outage defers mail and never bounces it.
package dnsx
