package senderauth

import (
	"context"
	"testing"
	"time"

	"mtad.dev/mta/dnsx"
	"mtad.dev/mta/internal/dnstest"
)

// zone serves records (zone-file syntax) from an in-process DNS server and
// returns a resolver asking it, with a fresh cache.
func zone(t testing.TB, records ...string) (*dnsx.Client, *dnstest.Server) {
	t.Helper()
	srv := dnstest.Start(t)
	srv.Add(t, records...)
	c, err := dnsx.New(dnsx.Config{Servers: []string{srv.Addr}, Timeout: 200 * time.Millisecond, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return c, srv
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// crlf turns the LF line ends of a test's text into CRLF.
func crlf(s string) []byte {
	out := make([]byte, 0, len(s)+len(s)/20)
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' && (i == 0 || s[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, s[i])
	}
	return out
}
