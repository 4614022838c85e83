// Package channels holds the delivery programs: local Maildir, SMTP client, LMTP,
// pipe, bitbucket, hold. Each implements Program: deliver one message to some
// recipients and report one result per recipient.
//
// It must not schedule, retry, or touch the queue: the job controller does that.
package channels
