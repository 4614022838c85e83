package queue

// The fsyncs a test build may leave out (see fsyncfault_on.go).
const (
	faultSegment  = "segment"   // the fsync of a batch appended to a segment, before its 250s
	faultQueueDir = "queue-dir" // the fsync that makes the queue directory's entry durable
)
