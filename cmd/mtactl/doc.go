// Command mtactl is the administration tool of the MTA, the counterpart of
// imsimta: it compiles the configuration (cnbuild), tests rewriting, mappings and
// patterns (test -rewrite / -mapping / -match) and reports versions. Options are
// single-dash long flags read by the standard library's flag package.
//
// It owns the command line and the text it prints; everything it shows comes from
// the compiler's image and the engine and mappings packages. It must not implement
// rewriting or matching itself.
//
// main.go is a small dispatcher: global flags, then one command looked up in
// commands(). Each command group lives in its own file: cnbuild.go, test.go,
// version.go, qm.go (with qm_print.go, the text forms of its reports, and
// qm_requeue.go), admin.go (reload, log -reopen, counters, process, cache),
// purge.go, passwd.go and sendmail.go (with setgid.go: mtactl may be installed
// setgid mtadrop for sendmail's maildrop, and every other command gives the group
// up). A new group adds a file and one line to commands().
//
// Commands:
//
//	mtactl [-config DIR] [-data DIR] cnbuild [-check] [-show]
//	mtactl [-config DIR] test -rewrite [-debug] [-json] [-from=ADDR] [-source_channel=CH]
//	       [-destination_channel=CH] [-noimage] [ADDRESS...]
//	mtactl [-config DIR] test -rewrite -compare OTHER.image -corpus FILE
//	mtactl [-config DIR] test -mapping [-table=NAME] [-flags=CHARS] [-noimage] [STRING...]
//	mtactl test -match [PATTERN TARGET]
//	mtactl [-config DIR] [-data DIR] version
//	mtactl [-data DIR] qm directory|summarize|counters|jobs|view|hold|release|delete|return|requeue|run|submit|stop|start ...
//	mtactl [-data DIR] reload | log -reopen | counters | process | cache -flush
//	mtactl [-data DIR] purge [-num=N | -day=D -hour=H] [PATTERN]
//	mtactl [-data DIR] passwd [-stdin] [-delete] [-list] USER
//	mtactl [-data DIR] sendmail [-t] [-f ADDR] [-F NAME] [-i|-oi] [RECIPIENT...]   (also as "sendmail")
//
// The commands that act on a running mtad talk to it over DATA/control.sock (package
// control); qm's reports and stop/start also work on the files when mtad is down.
//
// Without -config the configuration built into the binary (examples/default) is used.
// The test commands read DIR/compiled.image when it exists (so that text edits are
// inert until the next cnbuild, as in the product) and the text files otherwise or
// with -noimage. Decisions where the product's documentation is silent: test
// -rewrite's default source channel is l and its default sender RETURN_ADDRESS, else
// postmaster@<local host>; -compare calls the current configuration "old" and the
// -compare image "new" and exits 1 when any address changed.
package main
