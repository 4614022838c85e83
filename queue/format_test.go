package queue

import (
	"bytes"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// TestOnDiskFormatStable guards the stored formats: queues outlive binaries, so the
// bytes an envelope (v1) and a record header encode to must not change by accident.
// A deliberate change needs a new version (and decoding of the old one), then -update.
func TestOnDiskFormatStable(t *testing.T) {
	at := time.Date(2026, 11, 23, 17, 53, 4, 5, time.UTC)
	env := &Envelope{
		ID: "06H0K3B440000Z41", From: "a@siroe.com", Source: "tcp_local", Arrival: at, Size: 5,
		RET: "FULL", EnvID: "E1", Body8Bit: true, MessageID: "<m@siroe.com>", Client: "c ([192.0.2.1])",
		Priority: 1, Held: true, HeldReason: "loop", Notices: 2,
		Rcpts: []Recipient{{Addr: "b@example.com", Orig: "B@example.com", ORCPT: "rfc822;B@example.com",
			Notify: "FAILURE", Channel: "tcp_intranet", Host: "example.com", State: Pending, Attempts: 3,
			NextAttempt: at.Add(time.Hour), LastError: "451 4.4.1 later"}},
	}
	var out strings.Builder
	out.WriteString("envelope v1:\n")
	out.WriteString(hex.Dump(encodeEnvelope(nil, env, contentLoc{Seg: 7, Off: 1234, Len: 5, CRC: 0x01020304})))
	out.WriteString("record header:\n")
	out.WriteString(hex.Dump(appendRecHeader(nil, env.ID, []byte("hello"), 0x01020304)))

	golden := filepath.Join("testdata", "format.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(want, []byte(out.String())) {
		t.Errorf("on-disk format changed:\n got:\n%s\nwant:\n%s", out.String(), want)
	}
}
