//go:build fsyncfault

package queue

import "os"

// skipFsync leaves out the fsync named point when the environment variable
// MTAD_FSYNC_FAULT names it. It exists only in a binary built with the build tag
// fsyncfault, which the reliability suite builds to prove that its power-loss test
// fails when an fsync is missing; a normal build has the constant false of
// fsyncfault_off.go instead, so no setting of a production binary can skip one.
func skipFsync(point string) bool { return os.Getenv("MTAD_FSYNC_FAULT") == point }
