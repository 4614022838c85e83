// Package queue is the durable message queue: contents and envelopes journaled in
// append-only segments, envelopes indexed in bbolt, committed by a group committer so
// that one fsync covers many concurrent enqueues. A message acknowledged with 250 was
// returned from Enqueue, so it is on disk and survives kill -9.
//
// It owns the files under the queue directory and nothing else. It must not schedule
// (that is jobctl), rewrite addresses or talk SMTP. It imports only status.
//
// # How it works
//
// Layout under the queue directory:
//
//	queue.db            bbolt: bucket "msgs" (id -> envelope), bucket "quarantine"
//	segments/NNNNNN.seg append-only content files, "MTASEG1\n" then records
//
// A content record is a 36-byte header (magic, id, length, CRC32C of the content,
// CRC32C of the header) followed by the content; an envelope record (12-byte header,
// then the envelope) follows it. The envelope is a compact versioned binary encoding
// with its own CRC32C, and carries the content's segment, offset, length and CRC. Ids are 16 characters of Crockford base32 (48-bit milliseconds,
// 16-bit counter, 16 random bits): unique, sortable by time, safe in logs and paths.
//
// Every change goes through a two-goroutine pipeline (commit.go). The committer takes
// all requests waiting (up to MaxBatch / MaxBatchBytes), appends their content and
// envelope records to the current segment with one write burst and ONE fsync, and
// acknowledges the enqueues: the segment is the journal. It then hands the batch to
// the indexer, which applies every envelope change (enqueues, delivery updates, hold,
// release, delete) in ONE bbolt transaction together with the journal mark, wakes
// the other waiters and feeds OnCommit. While the indexer commits batch N the
// committer already writes batch N+1, so batches grow by themselves with load, and
// an SMTP client waits for one fsync instead of three. A crash between the two
// stages loses nothing: recovery replays the envelope records past the journal mark
// (journal.go). Reads (Get, Walk, Stats) wait for the index to hold what was
// acknowledged before them, so callers see their own enqueues. A write or fsync
// error fails every enqueue of the batch with 452 4.3.1, cuts the batch back out of
// the segment and abandons it (its state can no longer be trusted); the next batch
// starts a new one, so the queue works again as soon as space returns. An index
// commit that fails after the fsync fails nobody's enqueue: the messages stay in the
// journal and go into the next commit, or the next start's replay.
//
// Segments are reference-counted in memory (number of live messages, counted from the
// moment their content is written). A segment is deleted when the count drops to zero
// and it is no longer the one being appended to; a new one is started past 64 MiB.
// Space cost: one long-deferred message keeps its whole segment (up to 64 MiB) on disk
// until it leaves the queue. There is no compaction yet; with a few-day maximum queue
// life the worst case is bounded by the arrival volume of those days.
//
// Open recovers before returning: bbolt's own consistency check (a damaged index
// fails Open: it cannot be repaired message by message), then the journal past the
// mark is replayed into the index, then every envelope is
// decoded and its content record checked (header, length, and unless QuickRecovery
// the content CRC). Damaged messages (bad
// envelope checksum, bad record, truncated or missing segment) are moved to the
// quarantine bucket with the reason and reported by Quarantined; they are never
// delivered. Reference counts are rebuilt and unreferenced segments removed. Recovery
// does not call OnCommit: the job controller Walks the queue at start-up.
//
// Memory: no envelope is kept in memory beyond a request in flight; bbolt is the
// store and Walk streams it in chunks of short read transactions. Enqueue
// transactions split pages at 90% (ids only grow, so inserts append at the right
// edge; the default 50% left every page half empty): a million queued envelopes
// take ~230 MB of queue.db instead of ~440 MB, and recovery and Walk touch (map into
// the process) half as many pages. Recovery streams
// too: ids, segment numbers and offsets all grow with time, so one pass in key order
// reads each segment sequentially and keeps nothing per message.
//
// Delivery results may be recorded without waiting (UpdateAsync, with a callback
// run after the commit). Those requests go to a list the committer takes with each
// batch, not through its channel, so a delivery job never waits for the batch in
// progress. A batch made only of those lingers up to 10 ms for company, so delivered messages share the index commit of the next enqueue batch
// instead of costing one each. Content reads a message up to 1 MiB with one pread
// through a read handle shared per segment (closed with the segment), verifies it in
// memory and serves it from there; larger ones stream from their own handle.
//
// OnCommit is called from its own goroutine in commit order, so a slow callback never
// stalls commits and the callback may call back into the queue.
//
// Durability: a 250 rests on the fsync of the batch's segment, on the fsync of the
// segments directory when the batch started a new segment, and on the fsyncs Open
// makes of the queue directory and of its parent (the entries of queue.db,
// segments/ and the queue directory itself, new on a first start). The
// reliability suite's power-loss test checks them on a filesystem that forgets
// what was not fsync'd. A binary built with the build tag fsyncfault (tests only)
// leaves out the fsync MTAD_FSYNC_FAULT names ("segment" or "queue-dir"), so that
// the test can show it fails without it; other builds have no such switch.
package queue
