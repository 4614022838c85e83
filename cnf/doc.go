// Package cnf reads every configuration file of the MTA into an AST whose nodes keep
// their file:line: imta.cnf (rewrite rules, then channel blocks), mappings, aliases,
// option.dat, job_controller.cnf, dispatcher.cnf, general.txt and the channel option
// files (<channel>_option).
//
// It owns the physical-line rules shared by those files (column-1 "!" comments,
// "<file" includes up to three deep, "\" continuation, the 252-byte line limit) and
// reports every syntax error it finds, not only the first, each as FILE:LINE: message.
//
// It must not validate across files or interpret meaning (which keywords exist, whether
// a routing host has a channel, duplicate host names): that is the compiler's job. It
// imports nothing of ours.
//
// # How it works
//
// Two layers. The line reader (read.go) is plain Go: it splits a file into physical
// lines, drops comments, splices includes in (each line keeps its own file:line),
// joins "\" continuations into logical lines and checks line lengths. Blank lines are
// kept as items, because they carry structure in imta.cnf (the first one ends the
// rules; others separate blocks) and in mappings (one ends a table).
//
// Each file's parser then walks the logical lines as a small state machine and hands
// each line to the grammar of its kind (grammar.go: rule, words, option, section
// header, mapping entry, alias). The grammars are written for participle; because a
// participle parse costs tens of microseconds, each common line shape also has a
// hand-written fast path that tests and a fuzz target hold to the grammar's result.
//
// # Decisions on points the product's documentation leaves open
//
//   - Include depth: the top file is level 0; three nested includes are allowed, a
//     fourth is an error. Cycles are reported with the chain of files.
//   - Relative include paths are relative to the configuration directory (not to the
//     including file). Absolute paths are allowed by ParseDir only.
//   - A "\" followed only by blanks still continues the line. The next physical line is
//     appended as written (leading blanks kept), so a token can be split. A comment
//     line inside a continuation is skipped; a blank line ends it and still counts.
//   - A quoted word loses its quotes; pieces written together (a"b c") form one word.
//   - Rule template = the rest of the line after the first run of blanks, trailing
//     blanks trimmed; leading blanks before a pattern are ignored.
//   - Lines 3+ of a block whose first name is over 128 octets: "host name is too long".
//   - Mappings: any non-blank column-1 text names a table; more than one blank line
//     after a name is tolerated; a mapping entry with an unquoted blank after its
//     template is an error (the blank should be "$ "); text after a table name is an
//     error; empty tables are a warning. Table name limit 32 characters.
//   - Aliases: ":include:file" is accepted like "<file"; <addr> targets lose their
//     brackets; list files take no includes.
//   - option.dat/<channel>_option: ";" and "#" comments; physical lines 252 bytes,
//     values up to 1024 characters through continuations. job_controller.cnf and
//     dispatcher.cnf: "!" comments only. general.txt: 1024-byte lines, key without value
//     allowed (empty value).
//   - Errors about a file as a whole (imta.cnf missing) have line 0.
package cnf
