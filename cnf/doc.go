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
// a routing host has a channel): that is the compiler's job. It imports nothing of ours.
package cnf
