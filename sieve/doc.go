// Package sieve is the Sieve mail filtering language (RFC 5228 and its
// extensions) for the MTA: it parses a script, checks it, compiles it, and
// evaluates it against a message, reporting the actions the script takes.
//
// # What it owns, and what it must not touch
//
// The package owns the language: the syntax, which commands and tests exist and
// what arguments they take, the extensions a script must require, and what a
// script decides for a given message. It is used for every kind of filter the
// MTA runs: the MTA-wide filter, channel filters, users' own filters, and the
// small scriptlets that act on spam and virus verdicts.
//
// It never acts. It reads no file, opens no connection, touches no queue and
// keeps nothing between evaluations: the message, the envelope, the time, the
// scanners' verdicts are all passed in, and the result is a list of actions for
// the MTA to carry out (deliver into a folder, forward, refuse, answer...). The
// once-per-sender memory of vacation, where a folder is on disk, what a
// rejected message's bounce looks like: all the MTA's.
//
// # Using it
//
// Compile once, evaluate many times:
//
//	s, err := sieve.Compile("imta.filter", src, sieve.Options{})
//	// err is an ErrorList: every problem at file:line:column
//	res, err := s.Evaluate(ctx, msg, sieve.Env{Envelope: ..., Now: time.Now()})
//	// on a runtime error res is NoFilter(): deliver as if there were no filter
//
// A Script is immutable and safe for concurrent use. Env.Trace reports each
// test and action with its position, for the product's test command. Limits
// bound the script's size, nesting, number of commands and strings at compile
// time, and redirects and total work at run time.
//
// Options.Extensions limits what a script may require, and Options.Implicit
// grants capabilities without a require: the MTA gives its administrator's
// scripts the product's own extensions that way, as the product's documented
// scriptlets (data:,addtag "[SPAM]";) have no require.
//
// The product's own extensions keep the product's names: jettison (a discard
// that overrides any keep), addheader "Name: value" (told apart from RFC
// 5293's two-argument addheader by its single argument), addtag, spamadjust
// (which needs "spamtest"), and redirect's :resent, :noresent, :resetmailfrom,
// :keepmailfrom and :notify. The action types document what each asks of the
// MTA.
//
// # How it works
//
// Parsing (lexer.go, grammar.go): a hand-written lexer cuts the source into
// tokens (multi-line strings and escapes are decoded there, and the nesting and
// string-length limits enforced) and a participle grammar builds the syntax
// tree of ast.go, where every command, test and argument carries its position.
//
// Checking (check.go, specs.go): a table gives each command and test its shape
// (extension, tags and their groups, positional arguments, tests). The checker
// matches each command against it, collects every error, and builds compiled
// nodes: keys already lower-cased and :matches patterns already compiled when
// they hold no variables, header field names given a slot.
//
// Evaluating (eval.go and one file per family of commands): an evaluation cuts
// the header into fields once and lists the fields of each slot, so a hundred
// tests of "Subject" find it without scanning the header again; decoded and
// lower-cased values and parsed addresses are computed on first use and kept
// for the next test. The body is walked with go-message only when a body test
// runs. :matches uses a matcher without backtracking (match.go), so its cost is
// at most the value's length times the pattern's; all work is counted against
// Limits.MaxWork. Actions are collected in order, with the rules of the implicit
// keep and the incompatibilities between actions (reject with delivery,
// vacation with reject) applied as they are taken.
package sieve
