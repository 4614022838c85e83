package daemon

import (
	"testing"
	"time"

	"mtad.dev/mta/internal/smtptest"
)

// sink is a remote SMTP server on loopback that keeps what it receives.
type sink struct {
	*smtptest.Sink
	port int
}

func newSink(t *testing.T) *sink {
	t.Helper()
	s := smtptest.NewSink(t)
	return &sink{Sink: s, port: s.Port}
}

// wait waits up to 15 s for n messages and returns them.
func (s *sink) wait(t *testing.T, n int) []smtptest.Message {
	t.Helper()
	return s.Wait(t, n, 15*time.Second)
}
