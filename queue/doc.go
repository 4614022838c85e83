// Package queue is the durable message queue: envelopes in a bbolt index, contents in
// an append-only store, committed together by a group committer so that one fsync
// covers many concurrent enqueues. A message acknowledged with 250 was returned from
// Enqueue, so it is on disk and survives kill -9.
//
// It owns the files under the queue directory and nothing else. It must not schedule
// (that is jobctl), rewrite addresses or talk SMTP.
package queue
