package smtpserver

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// panicCatcher is a slog handler that remembers any record mentioning a panic:
// go-smtp recovers panics in command handlers and only logs them.
type panicCatcher struct {
	mu   sync.Mutex
	msgs []string
}

func (p *panicCatcher) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicCatcher) Handle(_ context.Context, r slog.Record) error {
	text := r.Message
	r.Attrs(func(a slog.Attr) bool { text += " " + a.String(); return true })
	if strings.Contains(text, "panic") {
		p.mu.Lock()
		p.msgs = append(p.msgs, text)
		p.mu.Unlock()
	}
	return nil
}
func (p *panicCatcher) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *panicCatcher) WithGroup(string) slog.Handler      { return p }

// FuzzSession feeds arbitrary bytes as a client over net.Pipe: the server must not
// panic, must not hang, and whatever it queues must be a clean message.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"EHLO a\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
		"EHLO a\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nx\n.\nMAIL FROM:<e@f.example>\r\nRCPT TO:<g@h.example>\r\nDATA\r\ny\r\n.\r\n",
		"HELO a\r\nMAIL FROM:<> BODY=8BITMIME SIZE=10\r\nRCPT TO:<list@local.test> NOTIFY=NEVER ORCPT=rfc822;x+2By@z\r\nDATA\r\n.\r\n",
		"EHLO a\r\nSTARTTLS\r\nBDAT 5 LAST\r\nhello",
		"EHLO " + strings.Repeat("a", 600) + "\r\nNOOP\r\n",
		"\x00\r\n\r\n\n\n\r\rRSET\r\nVRFY x\r\nAUTH PLAIN\r\n",
		"EHLO a\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<nouser@local.test>\r\nRCPT TO:<x@y.invalid>\r\nDATA\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		q := &fakeQueue{}
		pc := &panicCatcher{}
		pol := basePolicy(&fakeRules{}, &fakeAccess{})
		pol.MaxMessageBytes = 4096
		pol.Timeouts = Timeouts{Greeting: time.Second, Command: time.Second, DataBlock: time.Second}
		srv := New(Config{Policy: func() *Policy { return pol }, Queue: q, Logger: slog.New(pc)})
		srv.start()
		client, server := net.Pipe()
		go srv.admit(server)
		go io.Copy(io.Discard, client)
		client.SetWriteDeadline(time.Now().Add(3 * time.Second))
		client.Write(in)
		client.Close()

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("session did not end: %v", err)
		}
		pc.mu.Lock()
		defer pc.mu.Unlock()
		if len(pc.msgs) > 0 {
			t.Fatalf("panic: %s", pc.msgs)
		}
		for i := 0; i < q.count(); i++ {
			_, m := q.get(i)
			if !bytes.HasPrefix(m, []byte("Received: from ")) || bareLineEnd(m) {
				t.Fatalf("queued %q", m)
			}
		}
	})
}
