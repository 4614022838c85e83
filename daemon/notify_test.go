package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/internal/smtptest"
)

// TestNotifyProtocol: with a notification socket (a path, and an abstract
// name), mtad says READY=1 with a STATUS line once it accepts mail,
// RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a reload, pings the
// watchdog, and says STOPPING=1 when it stops.
func TestNotifyProtocol(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), fmt.Sprintf("@mtad-test-%d", time.Now().UnixNano())} {
		t.Run(strings.TrimPrefix(filepath.Base(name), "@"), func(t *testing.T) {
			ch := smtptest.NotifyListener(t, name)
			d, err := Start(context.Background(), Options{DataDir: t.TempDir(), Listen: "127.0.0.1:0",
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NotifySocket: name, WatchdogInterval: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			ready := smtptest.NextNotify(t, ch, "READY=1")
			if !strings.Contains(ready, "STATUS=queue: 0 messages, 0 recipients") {
				t.Errorf("READY without the queue's STATUS: %q", ready)
			}
			if c, err := net.Dial("tcp", d.Addr().String()); err != nil {
				t.Errorf("READY=1 sent before the listener accepts: %v", err)
			} else {
				c.Close()
			}
			smtptest.NextNotify(t, ch, "WATCHDOG=1")
			if err := d.Reload(); err != nil {
				t.Fatal(err)
			}
			if m := smtptest.NextNotify(t, ch, "RELOADING=1"); !strings.Contains(m, "MONOTONIC_USEC=") {
				t.Errorf("RELOADING without MONOTONIC_USEC: %q", m)
			}
			smtptest.NextNotify(t, ch, "READY=1")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := d.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			smtptest.NextNotify(t, ch, "STOPPING=1")
		})
	}
}
