package channels

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mtad.dev/mta/internal/lazyfs"
)

// TestMaildirDeliverySurvivesPowerCut: a delivery the Maildir reported done must
// be in new/ after a power cut that forgets everything not fsync'd. The root is
// new, as on the first delivery after installation, so this fails without the
// fsync of the root's parent (the root, and every mailbox, would vanish), of the
// mailbox directory and of the root (the mailbox would), of the file (it would
// come back empty) and of new/ after the rename (the message would be back in
// tmp/ only).
func TestMaildirDeliverySurvivesPowerCut(t *testing.T) {
	fs := lazyfs.MountForTest(t)
	root := filepath.Join(fs.Dir(), "mailboxes")
	md := NewMaildir(root, "mx.test")
	var delivered []string // mailbox/new/name
	for i, rcpts := range [][]string{{"alice@example.com", "bob@example.com"}, {"alice@example.com"}} {
		content := []byte("Subject: durable " + string(rune('1'+i)) + "\r\n\r\nbody\r\n")
		m := &Message{ID: "q1", From: "sender@example.org", Content: bytes.NewReader(content), Size: int64(len(content))}
		for _, r := range rcpts {
			m.Rcpts = append(m.Rcpts, Rcpt{Addr: r, Host: "example.com"})
		}
		for j, res := range md.Deliver(context.Background(), m) {
			if res.Err != nil {
				t.Fatalf("deliver to %s: %v", rcpts[j], res.Err)
			}
			box, _, _ := strings.Cut(rcpts[j], "@")
			delivered = append(delivered, filepath.Join(box, strings.TrimPrefix(res.Reply, "maildir;")))
		}
	}
	loss, err := fs.PowerCut()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("power cut: %v", loss)
	for _, rel := range delivered {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Errorf("%s: reported delivered, lost in a power cut: %v", rel, err)
			continue
		}
		if !bytes.Contains(b, []byte("Subject: durable ")) {
			t.Errorf("%s: content %q after the power cut", rel, b)
		}
	}
}
