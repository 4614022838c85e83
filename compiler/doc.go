// Package compiler turns a parsed configuration (cnf.Config) into one immutable
// Image: it validates across files, interprets channel keywords, job_controller.cnf,
// dispatcher.cnf, option.dat and the channel option files, compiles the rewrite
// rules (engine) and mapping tables and aliases (mappings), and reads and writes the
// image file that `mtactl cnbuild` produces and mtad loads.
//
// It owns the channel keyword table, the meaning of every option, the
// cross-file checks (duplicate host names, pools, routing hosts without a channel),
// the settings each subsystem runs with, and the image file format. It also
// compiles every Sieve filter the configuration names (filters.go): imta.filter,
// which the image carries, and the channels' filter files, each error at the
// script's own file and line. It must not
// parse text (cnf does), rewrite addresses (engine does) or run anything: an Image
// is data.
//
// How it works. Check runs every check and collects all errors and warnings, each
// "FILE:LINE: message", sorted by position; Build is Check that fails on any error.
// Each channel keyword is declared once, in keywordtable.go: its argument shape
// (which groups the words of the channel-name line into keywords), its setter, and
// when it has no effect, why (cnbuild's warning and the documentation's table). A
// defaults line is a list of keywords prepended to every later block, so "later
// wins" is simply applying keywords in order. subsystems.go turns the image into
// each subsystem's settings (the SMTP client's, the pipe's, the SMTP server's
// channel policy, the job controller's channel), all comparable with ==, so that a
// reload tells a changed channel from an unchanged one. The rule engine is
// only run on a sound channel table, so that a stray blank line among the rules gives
// the product's "duplicate host in channel table" and a note at that blank line
// instead of a cascade of template errors.
//
// Image file layout (all integers big-endian):
//
//	"MTAIMAGE" | uint32 FormatVersion | uint32 len | gob(Header) | uint64 len | gob(payload) | SHA-256 of all before
//
// The version is checked before anything else is decoded, so an image written by
// another release gives "compiled configuration version mismatch ... run mtactl
// cnbuild"; any other defect is "corrupt image". Write is atomic (temp file, fsync,
// rename, fsync of the directory).
//
// Decisions where the product's documentation is silent or unclear (docs/configuration.md
// repeats them):
//   - Contradictory keywords: the later wins; defaults lines are prepended to each
//     block, so a block's own keyword beats a default.
//   - Plain smtp accepts CRLF or bare LF; notices accept blanks or commas
//     ("2,4,6,8"); the second defaulthost domain is taken only if it has a dot and
//     is not a keyword; daemon with no dot means the official host name.
//   - backoff arguments are the quoted words, or words starting "p" + digit or "t",
//     after it; in periods a year is 365 days and a month 30 days.
//   - Delivery windows "HH:MM-HH:MM": end before start wraps midnight, equal ends
//     mean all day, 24:00 is allowed as an end. Of several [CHANNEL=] sections the
//     exact name wins, then the wildcard with the most literal text.
//   - No job_controller.cnf: one pool DEFAULT, job_limit 10 (also the JOB_LIMIT of a
//     pool that gives none and has no global value). No dispatcher.cnf: no services.
//   - Defaults: MAX_RECEIVED_LINES and MAX_INTERNAL_RECEIVED_LINES 50,
//     MAX_REWRITE_PASSES 20 (our option), SMTP server option times 10 minutes except
//     DATA_RECEIVE_TIME 60, and our MIN_DATA_RECEIVE_RATE 500 bytes/s,
//     MAX_SESSION_TIME 60 minutes and BANNER_DELAY 1 second (whole seconds), SMTP
//     client times unset (the client's RFC 5321 defaults;
//     ChannelOptions.ClientTimeouts), MAX_CLIENT_THREADS 20, logging on.
//   - The SMTP server's keys of a channel option file apply to sessions whose
//     source channel is that channel, from admission or a later switch; a key
//     the file does not set is the arrival channel's (tcp_local, else the first
//     smtp channel), except BANNER_DELAY. BANNER_HOST and BANNER_ADDITION are the
//     arrival channel's only. A server key where it cannot take effect warns
//     (serveroptions.go).
//     Time options are whole minutes (DNS_TIMEOUT: seconds) or, as our extension, a
//     value with a unit (30s, 1500ms, 2m).
//   - nodns gives the SMTP client no resolver at all: IP literals and a literal
//     daemon only. interfaceaddress takes an IP address, not a name.
//   - Unknown option names are warnings; malformed values are errors. Known keys
//     that nothing acts on warn as well, unless harmless (optnoeffect.go).
//   - A rule whose literal routing host no channel owns is an error; templates
//     without "@" (A%B, $?text) or whose routing host is built by a substitution are
//     not checked.
//   - When cnf reports syntax errors the cross-file checks still run (all problems
//     at once), except the routing-host check, which a dropped line would mislead.
package compiler
