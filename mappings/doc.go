// Package mappings owns the mapping-table language of the MTA: compiling the
// patterns and templates of the mappings file into an immutable Set, running a
// table on a probe string (Map), decoding the *_ACCESS flag conventions
// (DecodeAccess), and the compiled alias table (Aliases).
//
// It must not touch anything outside the image it is given: no files, no network,
// no global mutable state. Parsing the mappings/aliases files is the job of cnf;
// expanding aliases (recursion, loops, MAX_ALIAS_LEVELS) is the job of engine.
// Everything here is a pure function of the compiled data plus the Env the caller
// passes in (general database, random source).
//
// # How it works
//
// Patterns compile to a flat slice of items (literal runs, wildcards, globs, IP
// matchers, back-matches). Matching is whole-string and case-insensitive (ASCII
// folding, so byte offsets of the lower-cased probe equal those of the original and
// captures are cut from the original text). The matcher is a backtracking search in
// the documented binding order (greedy stars, earliest first; $_ makes one star
// minimal). To keep hostile pattern/input pairs from going exponential it switches
// on a failure memo keyed by (item, position) after a few hundred steps; that memo is
// exact when the pattern has no back-matches. Every match also has a hard step
// budget (maxMatchSteps): beyond it the pattern simply does not match.
//
// Templates compile to a flat op list. Sub-expressions (${key}, $|table;arg|) are
// bracketed by a push op that opens a new output buffer, and the closing op pops it,
// so the op list stays flat and serialises without recursion.
//
// A table keeps its entries in file order and an index that never changes which
// entry wins: all-literal patterns live in an open-addressing hash table keyed by
// their lower-cased text; patterns with a literal prefix in maps keyed by that
// prefix (cut to at most prefixKeyMax bytes, one map per key length); patterns
// with no literal prefix but a literal suffix likewise by suffix; the rest (literal
// at neither end) in a plain list with a contiguous quick-reject record each
// (input-flag tests, minimum length, bytes its literals need). Each bucket holds
// ascending entry numbers; a lookup merges the few buckets that apply to the probe
// and tries candidates in entry order, so the first match is the one a linear scan
// would find (TestIndexMatchesLinearScan checks exactly that).
//
// Map follows the product's documented process control: $C continues with the next
// entry on the new string, $L also asks for one more pass when the table runs out, $R
// restarts at the top, $E (or no control flag) stops; the last of C/L/R/E written in a
// template decides. Passes that restart from the top go through the loop guard (a
// string as long as or longer than the previous one bumps a counter, a shorter one
// resets it, above 10 the request is ignored). A failing entry (${..} miss, $|..|
// without $Y, $?x? losing) is skipped if a $C/$L/$R was read before the failure point,
// else the whole mapping ends unmatched with the original input as output and no
// flags.
//
// Decisions on points the product's documentation leaves open (docs/configuration.md
// repeats the ones an administrator can see):
//   - $@ items get no capture number; IP matchers are saved and numbered like
//     globs; a back-match $n* is not itself numbered.
//   - Case-insensitivity is ASCII folding (offsets stay valid for captures).
//   - A $:x / $;x test that fails makes the entry not apply (scanning continues);
//     it is not an entry failure. The tests are checked before the pattern.
//   - $nA / $nX (current-address parts) do not apply to mapping tables: "$0A" is
//     capture 0 followed by "A". $+1E is supported; $], $[, $}, $# are errors.
//   - $|table;arg|: the table is resolved at run time (a missing table fails the
//     entry); nesting is limited to maxNestDepth and one Map's passes plus nested
//     calls to maxWork, so hostile tables terminate.
//   - The loop guard counts only restarts from the top ($R, $L at end of table);
//     $C only moves forward and cannot loop.
//   - The flags a chain of entries sets accumulate, control letters included.
//   - Pattern/template length limits are the MS 6.3 ones (256 / 1024).
//   - Duplicate table names are an error here too ("duplicate mapping name found").
//
// The binary form (MarshalBinary) stores compiled items and ops, never source text
// to re-parse, plus what finishing a pattern would otherwise recompute from every
// literal byte (minimum length, byte set). Items hold no pointers, only offsets
// into their pattern's data string, so a table's items (and metas) are one
// pointer-free array each that the garbage collector never scans. DecodeSet (what
// image loading uses) slices every string out of the image string itself, no
// copy; UnmarshalBinary copies its []byte once first. A table's entries are
// encoded in chunks behind a small chunk table, so a big table is decoded by
// several goroutines at once, each into its own part of the backing arrays. Only
// the indexes are rebuilt on decode.
package mappings
