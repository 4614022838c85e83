package daemon

import (
	"fmt"
	"strings"
	"testing"

	"mtad.dev/mta/control"
	"mtad.dev/mta/intake"
)

// TestPrepareSubmissionLocalLoop: MAX_LOCAL_RECEIVED_LINES applies to local
// submission as it does to SMTP; the submission's own Received: line names the
// local host (mail.example.com in examples/site) and counts.
func TestPrepareSubmissionLocalLoop(t *testing.T) {
	img := siteImage(t)
	tests := []struct {
		name   string
		max    int // 0: the default
		byUs   int
		others int
		reason string
	}{
		{"at the limit", 3, 2, 4, ""},
		{"over the limit", 3, 3, 0, "loop: 4 Received: lines by mail.example.com"},
		{"case and folding", 2, 2, 0, "loop: 3 Received: lines by mail.example.com"},
		{"default over the limit", 0, intake.DefaultMaxLocalReceivedLines, 0,
			fmt.Sprintf("loop: %d Received: lines by mail.example.com", intake.DefaultMaxLocalReceivedLines+1)},
		{"other hosts do not count", 1, 0, 10, ""},
	}
	for _, tt := range tests {
		img.Options.MaxLocalReceivedLines = tt.max
		content := strings.Repeat("Received: from x\r\n\tby Mail.Example.COM (mtad); date\r\n", tt.byUs) +
			strings.Repeat("Received: from x by relay.example.net; date\r\n", tt.others) + "Subject: s\r\n\r\nx\r\n"
		p, res := prepare(img, &control.Submission{User: "u", Recipients: []string{"alice"}, Content: []byte(content)})
		if p == nil {
			t.Fatalf("%s: refused: %+v", tt.name, res.Status)
		}
		r := acceptPrepared(t, p, &res)
		env := firstCopy(t, r)
		if res.Held != tt.reason || env.Held != (tt.reason != "") || r.Forced != (tt.reason != "") {
			t.Errorf("%s: held %v %q forced %v, want %q", tt.name, env.Held, res.Held, r.Forced, tt.reason)
		}
	}
}
