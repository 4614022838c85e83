// Package filter runs Sieve filters in the MTA: it finds scripts by URL,
// keeps them compiled, evaluates them with package sieve, and turns what they
// decide into what the MTA does.
//
// # What it owns, and what it must not touch
//
// It owns where scripts come from (file:, data: and ssrd: URLs, the filter
// URL-pattern's substitutions, the fileinto template), when a changed file is
// compiled again, the order in which the filters of a message run and how
// their decisions combine, and the meaning of every action for the MTA:
// which recipients are queued where, what is refused, what is forwarded or
// answered, and what mail.log says of it. The language itself is package
// sieve's; queueing is intake's (a filter's redirects and answers are handed
// to a Submitter the daemon gives, which queues them through intake); storing
// in a mailbox is the Maildir program's (channels).
//
// # Where filters run
//
// At acceptance (System, intake's Filter): the MTA-wide filter (imta.filter,
// compiled into the image by cnbuild), then the source channel's sourcefilter
// on the whole message, then each destination channel's destinationfilter on
// its recipients. Their decisions combine per recipient as one run would: a
// jettison drops it, a reject refuses it (the whole message in the SMTP
// dialogue when every recipient is refused, else a notice to the sender), a
// fileinto becomes the channel's fileinto template address ($U+$S@$D), a
// discard drops it unless the user's own filter keeps it explicitly. Dropped
// mail is written in mail.log as D "discarded by filter" (or "jettisoned"),
// or parked on the filter_discard channel (FILTER_DISCARD=2).
//
// At delivery (Users, the local channel's MailboxFilter): the recipient's own
// script, found through the channel's filter URL-pattern, decides the folders
// and flags, answers (vacation, once per sender per :days, remembered in
// VacationStore), forwards (redirect, refused when the message was delivered
// to the user before: its Delivered-To: names them), discards, or rejects
// (a notice to the sender).
//
// # How it works
//
// Cache compiles each script once; a file is looked at again (a stat) at most
// once a second and compiled again when its size, time or inode changed, so an
// edit takes effect without cnbuild. A script that does not compile is logged
// once and, at every message, acts as if it did not exist. Evaluation hands
// sieve the message's bytes as queued and an Env built from the envelope; the
// edited header (addheader, deleteheader, addtag) becomes a per-recipient
// content for intake, so recipients of one destination filter share one
// queued copy.
package filter
