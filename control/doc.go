// Package control is the control socket between mtactl and a running mtad: the
// wire protocol, the listener that mtad serves (Listen, Serve), the client that
// mtactl uses (Call, Stream), and the queue reports that both sides compute the
// same way (Directory, Summarize, SummarizeDomains, View), so that mtactl shows the
// same text whether it asks mtad or reads the queue on disk itself.
//
// It owns DATA/control.sock and the format of the files in DATA/maildrop, and
// nothing else on disk. It must not schedule,
// deliver or change the queue itself: the handler mtad plugs in (daemon/control.go)
// does that through the queue and the job controller. It imports queue and jobctl
// (for their types), maillog (sizes in blocks, counted as mail.log counts them)
// and status (the refusal of a local submission), never daemon, smtpserver or
// channels.
//
// # How it works
//
// One connection carries one request: the client writes one JSON Request and
// reads JSON Responses until one has Final set. Every command but run answers
// with a single final Response; run streams one Response (Event) per outcome the
// job controller reports for the channel, in mail.log's layout, and per line of
// the SMTP transcripts of the connections it opens (indented by two spaces),
// before the final one. Both sides send Version; a server refuses a
// request whose major version differs, so an mtactl and an mtad of different
// releases fail with a clear message instead of misreading each other.
//
// submit-message (mtactl sendmail) carries a whole message (Submission, content
// base64 in JSON, at most MaxSubmitContent bytes); its SubmitResult tells the queue
// id or what was refused, so that the client can choose sendmail's exit status.
// Because the socket is mode 0600, only mtad's user (and root) can submit that
// way; everyone else, and everyone while mtad is down, goes through the maildrop
// (maildrop.go): the same Submission written as a file in DATA/maildrop by
// WriteDrop, read and checked by mtad with ReadDrop. requeue (qm requeue) streams
// progress lines and ends with a RequeueResult; Filter.Select is its selection.
//
// The socket is created under a temporary name, set to mode 0600 and renamed into
// place, so no client ever sees it with wider permissions. Listen removes a stale
// socket (nobody answers a dial) and refuses a live one: a second mtad on the same
// data directory is an error, not a takeover.
//
// Decisions where the product's documentation is silent (docs/operations.md describes
// them for the operator):
//   - -older/-younger compare the message's arrival with now; -domain matches the
//     destination host of a pending recipient exactly (case-insensitive), or any
//     subdomain with a leading "." ("-domain=.example.com").
//   - PAT in -from/-to is a shell wildcard (path.Match) matched case-insensitively
//     against the whole address; "<>" matches the empty sender.
//   - summarize -by=domain sorts by oldest message first: the question it answers
//     is "which destination is stuck and since when". Its last error is the one of
//     the recipient with the most attempts (the latest next attempt breaking ties);
//     mtad replaces it with the job controller's last error for that host when it
//     has one.
package control
