// Package engine owns address rewriting and routing: parsing RFC 5321/822
// addresses (source routes, % and ! hosts, domain literals), the imta.cnf rewrite
// rules, channel selection through the channel host table, alias expansion for
// the local channel, and the -debug trace that explains every step.
//
// It must not touch the configuration files or the compiler (it receives an
// already-parsed Config), the queue, the job controller or the network: every
// function here is a pure function of the compiled RuleSet and the request. It
// calls the mappings package only for ${table,arg} and alias lookups.
//
// How it works. Compile turns every rule template into a list of ops once and
// indexes rules by their lower-cased pattern (tag included), keeping file order
// among identical patterns. Rewrite parses the address, then repeatedly extracts a
// host specification (source route, right of @, right of the last single %, left
// of the first !) and probes it: the $* rule (first pass only), the exact rule,
// the channel table, then the generalisation loop ("*.b.c", ".b.c", ... ".").
// Each candidate's template is expanded; a failing condition or lookup makes the
// candidate fall through to the next one. An A%B template restarts the probe on
// the new spec (bounded by MaxRewritePasses). The routing host then selects the
// channel; a local or routelocal channel with more specs left in the address
// discards the result and moves to the next spec, which is how redundant routes
// through this host disappear.
//
// The probe path allocates nothing per probe: the spec is lower-cased once into a
// reusable buffer, probes are built in place, and map lookups use the
// string(bytes) conversion the compiler does not allocate for. Tracing is guarded
// by a flag so the formatting cost is paid only with Request.Trace.
package engine

// Decisions on points the product's documentation leaves open (docs/configuration.md
// repeats them):
//
//   - Pattern matching and channel host names are case-insensitive; output keeps
//     the address's case.
//   - $D keeps the leading dot of a ".suffix" or "*.suffix" pattern (".siroe.com"),
//     so $U%$H$D rebuilds the host; $nD keeps it too ($1D of ".siroe.com" is
//     ".com"). A "*" pattern matches exactly as many labels as it has stars.
//   - Domain literals: $L is the part right of the matched prefix ("2.3" for
//     [10.1.] on [10.1.2.3]), the whole content for [] and [*.*.*.*]; $D is the
//     whole literal, $H empty. IPv6 literals have no dots: [..], [], [*], ".".
//     A literal that nothing matches (not even ".") is dropped when the address
//     has further specs, else it is the routing host (and fails).
//   - The channel table is consulted whatever the current tag (tags prefix rule
//     patterns, host names are not patterns); "." is never tried for a channel
//     host because the channel-table probe has already routed it.
//   - Identical patterns: earlier rule first; a failing condition or lookup falls
//     through to the next rule of the same pattern, then to the next probe.
//   - A % or ! host that nothing rewrites (no rule, no "." or it failed) tries
//     $% / $!, else the address goes whole to the local host ("A%B@localhost").
//   - %% is literal; a run of % longer than one never separates.
//   - $A and $X without a number are the location conditions; the substitutions
//     need their number ($0A, $2X). $nA counts characters from 0.
//   - Argument of $M $N $Q $C $T: up to @, %, whitespace or the next
//     $N $M $Q $C $T $? (or $1M $1N $1~ $nnnnnnn?), so "$Nverify$U%..." names the
//     channel "verify$U" as the product's documentation warns. $? text runs to the
//     next such control or the end of the template and may contain spaces, @ and %.
//   - $nnnnnnn? needs exactly seven digits; x00y00z gives x.y.z, SMTP 450 for 4,
//     550 otherwise. Without digits: 550 5.1.2.
//   - $1M/$1N: internal reprocessing channels are reprocess, process, conversion,
//     defragment. norules on the source channel disables $M $N $1M $1N; on the
//     destination channel $Q $C.
//   - $1~ with failing channel checks ends the template successfully at that point
//     and forgets those checks.
//   - $= is accepted and does nothing (no LDAP filters in rules); $[..], $]..[,
//     $V, $Z and $. are compile errors; $(..) inside a general-database value is
//     literal text (values are not rescanned for $(..)).
//   - ${table,arg}: the result must have matched and set $Y; its output is parsed
//     and expanded as template text (nesting bounded).
//   - A%B loop guard: more than MaxRewritePasses (default 20) passes for one spec
//     gives 451 4.4.6 "rewrite loop: ..." (a configuration fault: temporary). An
//     address with more than 4*MaxRewritePasses host specs routed through local
//     channels gives 554 5.4.6 "routing loop: ..." (the address's fault).
//   - A template result with % after @ or more than three @ fails the candidate;
//     a static template with no separator, or more than three @, is a compile
//     error. A%B@C@D inserts route C and routes to D.
//   - A source-route hop that is rewritten keeps its place in the route; the
//     template's A becomes the local part. An inserted route is prepended.
//   - A host line's proper name replaces the host of envelope To addresses only.
//   - Aliases: "mailbox@host" is looked up before "mailbox", then the mailbox
//     without its subaddress; names are case-insensitive. A target naming its own
//     alias is kept as a mailbox; a name already higher in the chain is a loop
//     (550 5.4.6); more than MaxAliasLevels nested levels is also 5.4.6. A target
//     that fails fails the whole resolution with that target's error (temporary
//     stays temporary), rather than dropping it silently.
//   - Unsafe local mailbox names ("", leading ".", "/", NUL, or the routing
//     characters @ % ! of a quoted local part) are 550 5.1.1.
//   - Aliases: "owner-NAME" sets Recipient.Sender for NAME's copies; expandlimit is
//     the source channel's (see Resolve).
