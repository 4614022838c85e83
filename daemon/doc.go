// Package daemon assembles the running mtad: it loads the compiled image, opens
// mail.log and the queue, builds one delivery program per channel, starts the job
// controller and the SMTP service, and swaps in a new image on reload.
//
// It owns the wiring and the one piece of global mutable state the design allows —
// the current image and what is derived from it, behind atomic pointers that each
// SMTP transaction and each delivery job reads once. It must not implement policy,
// scheduling or delivery itself: accepting a message is intake's, the SMTP
// dialogue smtpserver's, scheduling jobctl's, delivery the programs' in channels
// and reroute. What it does with a control request is to hand it to the package
// that owns the answer.
//
// How it works: Start builds everything from one image; the SMTP server asks for the
// current Policy (derived from the image, with the intake rules inside it) at every
// connection and transaction; local submission (submit.go), the reprocess and hold
// programs and the job controller's notices (intake.go) take the same intake rules.
// The queue's OnCommit hook feeds the job controller, which delivers through the
// programs built here (wiring.go). Reload loads and validates a new image off to the
// side and, only if it is sound, stores it and hands the job controller its new
// limits; on any failure the old image stays in force. watch.go triggers Reload when
// compiled.image is replaced (fsnotify on the directory) and serves the metrics
// endpoint; control.go answers mtactl on DATA/control.sock. maildrop.go picks up
// what sendmail spooled in DATA/maildrop and submits it like a control-socket
// submission, as the file's owner; requeue.go answers qm requeue by streaming the
// selected messages to the job controller's Requeue with package reroute's
// routing; notify.go speaks the service manager's notification protocol.
package daemon
