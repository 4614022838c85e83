package channels

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// trickyContent has what a byte-exact store must keep: CRLF and a bare LF,
// 8-bit and NUL bytes, a line of 998 octets, dots at line starts, no final CRLF.
func trickyContent() []byte {
	var b bytes.Buffer
	b.WriteString("Received: from x by y; Mon, 23 Nov 2026 10:00:00 +0000\r\n")
	b.WriteString("Subject: caf\xc3\xa9\r\n\r\n")
	b.WriteString(".\r\n")
	b.WriteString("..two dots\r\n")
	b.WriteString(".single dot line\r\n")
	b.WriteString(strings.Repeat("x", 998) + "\r\n")
	b.WriteString("bare lf\nbinary \x00\x01\xff\xfe\r\n")
	b.WriteString("\r\n.\r\nlast line without CRLF")
	return b.Bytes()
}

func msgOf(content []byte, from string, rcpts ...string) *Message {
	m := &Message{ID: "q1", From: from, Content: bytes.NewReader(content), Size: int64(len(content))}
	for _, r := range rcpts {
		host := r[strings.LastIndexByte(r, '@')+1:]
		m.Rcpts = append(m.Rcpts, Rcpt{Addr: r, Host: host})
	}
	return m
}

var maildirName = regexp.MustCompile(`^new/(\d+)\.M(\d+)P(\d+)Q(\d+)\.mx\\072test,S=(\d+)$`)

func TestMaildirByteExact(t *testing.T) {
	root := t.TempDir()
	md := NewMaildir(root, "mx:test")
	content := trickyContent()
	m := msgOf(content, "sender@example.org", "Alice+news@example.com", "alice@example.com", "bob@example.com")
	res := md.Deliver(context.Background(), m)
	if len(res) != 3 {
		t.Fatalf("%d results, want 3", len(res))
	}
	names := map[string]bool{}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("rcpt %d: %v", i, r.Err)
		}
		rel, ok := strings.CutPrefix(r.Reply, "maildir;")
		if !ok {
			t.Fatalf("Reply %q lacks maildir;", r.Reply)
		}
		sm := maildirName.FindStringSubmatch(rel)
		if sm == nil {
			t.Fatalf("name %q does not match %v", rel, maildirName)
		}
		if names[rel] {
			t.Errorf("name %q used twice", rel)
		}
		names[rel] = true
		mbox := "alice"
		if i == 2 {
			mbox = "bob"
		}
		got, err := os.ReadFile(filepath.Join(root, mbox, rel))
		if err != nil {
			t.Fatal(err)
		}
		// The Maildir holds the LF form of the stored message (maildirlf.go).
		want := lfForm("Return-Path: <sender@example.org>\r\nDelivered-To: " + m.Rcpts[i].Addr + "\r\n" + string(content))
		if string(got) != want {
			t.Errorf("rcpt %d: content differs:\n got %q\nwant %q", i, got, want)
		}
		if size, _ := strconv.Atoi(sm[5]); size != len(got) {
			t.Errorf("S=%d, file has %d bytes", size, len(got))
		}
	}
	for _, mbox := range []string{"alice", "bob"} {
		for _, sub := range []string{"tmp", "new", "cur"} {
			fi, err := os.Stat(filepath.Join(root, mbox, sub))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o700 {
				t.Errorf("%s/%s mode %v, want 0700", mbox, sub, fi.Mode().Perm())
			}
		}
		if ents, _ := os.ReadDir(filepath.Join(root, mbox, "tmp")); len(ents) != 0 {
			t.Errorf("%s/tmp not empty: %v", mbox, ents)
		}
	}
}

func TestMaildirNullSender(t *testing.T) {
	root := t.TempDir()
	res := NewMaildir(root, "h").Deliver(context.Background(), msgOf([]byte("x\r\n"), "", "u@d"))
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	got, _ := os.ReadFile(filepath.Join(root, "u", strings.TrimPrefix(res[0].Reply, "maildir;")))
	if !bytes.HasPrefix(got, []byte(lfForm("Return-Path: <>\r\n"))) {
		t.Errorf("got %q", got)
	}
}

func TestMaildirUnsafeNames(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"../etc@example.com", false},
		{"a/b@example.com", false},
		{".hidden@example.com", false},
		{"a..b@example.com", false},
		{"+only@example.com", false},
		{`"a\b"@example.com`, false},
		{"x\x01y@example.com", false},
		{`"John.Doe"@example.com`, true},
		{"John.Doe+tag@example.com", true},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			root := t.TempDir()
			res := NewMaildir(root, "h").Deliver(context.Background(), msgOf([]byte("x\r\n"), "s@d", tt.addr))
			if tt.ok {
				if res[0].Err != nil {
					t.Fatalf("got %v, want delivery", res[0].Err)
				}
				if _, err := os.Stat(filepath.Join(root, "john.doe", "new")); err != nil {
					t.Fatal(err)
				}
				return
			}
			st := res[0].Err
			if st == nil || st.Temporary() || st.Enhanced != "5.1.1" {
				t.Fatalf("got %v, want permanent 5.1.1", st)
			}
			if ents, _ := os.ReadDir(root); len(ents) != 0 {
				t.Errorf("root not empty: %v", ents)
			}
		})
	}
}

// Regression: an unwritable mailbox must defer, never bounce.
func TestMaildirUnwritableIsTemporary(t *testing.T) {
	root := t.TempDir()
	if err := os.Chmod(root, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(root, 0o700) })
	if f, err := os.Create(filepath.Join(root, "probe")); err == nil {
		f.Close()
		t.Skip("running with privileges that ignore directory permissions")
	}
	res := NewMaildir(root, "h").Deliver(context.Background(), msgOf([]byte("x\r\n"), "s@d", "u@d"))
	st := res[0].Err
	if st == nil || !st.Temporary() || st.Enhanced != "4.2.0" {
		t.Fatalf("got %v, want temporary 4.2.0", st)
	}
}

// Works as root too: a root that is not a directory cannot be fixed by
// permissions, and must still defer.
func TestMaildirRootNotADirectoryIsTemporary(t *testing.T) {
	root := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(root, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	res := NewMaildir(root, "h").Deliver(context.Background(), msgOf([]byte("x\r\n"), "s@d", "u@d"))
	if st := res[0].Err; st == nil || !st.Temporary() || st.Enhanced != "4.3.0" {
		t.Fatalf("got %v, want temporary 4.3.0", st)
	}
}

func TestMaildirShortContentIsTemporary(t *testing.T) {
	root := t.TempDir()
	m := msgOf([]byte("short\r\n"), "s@d", "u@d")
	m.Size = 100
	res := NewMaildir(root, "h").Deliver(context.Background(), m)
	if st := res[0].Err; st == nil || !st.Temporary() {
		t.Fatalf("got %v, want temporary", st)
	}
	for _, sub := range []string{"tmp", "new"} {
		if ents, _ := os.ReadDir(filepath.Join(root, "u", sub)); len(ents) != 0 {
			t.Errorf("%s not empty after failure: %v", sub, ents)
		}
	}
}

func TestMaildirCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := NewMaildir(t.TempDir(), "h").Deliver(ctx, msgOf([]byte("x\r\n"), "s@d", "u@d"))
	if st := res[0].Err; st == nil || !st.Temporary() {
		t.Fatalf("got %v, want temporary", st)
	}
}

// gateReader blocks its first read until released, to observe a delivery midway.
type gateReader struct {
	r       *bytes.Reader
	reading chan struct{}
	release chan struct{}
	once    bool
}

func (g *gateReader) ReadAt(p []byte, off int64) (int, error) {
	if !g.once {
		g.once = true
		close(g.reading)
		<-g.release
	}
	return g.r.ReadAt(p, off)
}

// The message is visible in new/ only once complete: while it is being written
// it lives in tmp/.
func TestMaildirTmpThenNew(t *testing.T) {
	root := t.TempDir()
	content := []byte("Subject: x\r\n\r\nbody\r\n")
	g := &gateReader{r: bytes.NewReader(content), reading: make(chan struct{}), release: make(chan struct{})}
	m := msgOf(nil, "s@d", "u@d")
	m.Content, m.Size = g, int64(len(content))
	done := make(chan []Result)
	go func() { done <- NewMaildir(root, "h").Deliver(context.Background(), m) }()
	select {
	case <-g.reading:
	case <-time.After(5 * time.Second):
		t.Fatal("delivery never read the content")
	}
	tmp, _ := os.ReadDir(filepath.Join(root, "u", "tmp"))
	nw, _ := os.ReadDir(filepath.Join(root, "u", "new"))
	if len(tmp) != 1 || len(nw) != 0 {
		t.Errorf("midway: tmp has %d, new has %d; want 1 and 0", len(tmp), len(nw))
	}
	close(g.release)
	res := <-done
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	tmp, _ = os.ReadDir(filepath.Join(root, "u", "tmp"))
	nw, _ = os.ReadDir(filepath.Join(root, "u", "new"))
	if len(tmp) != 0 || len(nw) != 1 {
		t.Errorf("after: tmp has %d, new has %d; want 0 and 1", len(tmp), len(nw))
	}
}

func TestBitbucket(t *testing.T) {
	res := Bitbucket{}.Deliver(context.Background(), msgOf([]byte("x"), "s@d", "a@b", "c@d"))
	if len(res) != 2 || res[0].Err != nil || res[1].Reply != "bitbucket;discarded" {
		t.Fatalf("got %+v", res)
	}
}

func FuzzMailboxOf(f *testing.F) {
	for _, s := range []string{"a@b", "../x@y", "A+b@c", `"q"@d`, ".x", "a/b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		mbox, st := MailboxOf(addr)
		if st != nil {
			if st.Temporary() {
				t.Fatalf("unsafe name gave temporary %v", st)
			}
			return
		}
		if mbox == "" || mbox[0] == '.' || strings.ContainsAny(mbox, "/\\\x00+") || strings.Contains(mbox, "..") {
			t.Fatalf("MailboxOf(%q) = %q: unsafe", addr, mbox)
		}
		if filepath.Base(mbox) != mbox {
			t.Fatalf("MailboxOf(%q) = %q is not a single path element", addr, mbox)
		}
	})
}

func BenchmarkMaildir(b *testing.B) {
	root := b.TempDir()
	md := NewMaildir(root, "bench")
	content := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"), 64)
	m := msgOf(content, "s@d", "u@d")
	b.SetBytes(int64(len(content)))
	for b.Loop() {
		if res := md.Deliver(context.Background(), m); res[0].Err != nil {
			b.Fatal(res[0].Err)
		}
	}
}
