package daemon

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/compiler"
	"mtad.dev/mta/control"
	"mtad.dev/mta/intake"
	"mtad.dev/mta/queue"
)

func siteImage(t testing.TB) *compiler.Image {
	t.Helper()
	img, err := compiler.BuildDir(filepath.Join("..", "examples", "site"))
	if err != nil {
		t.Fatalf("build examples/site: %v", err)
	}
	return img
}

var submitNow = time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC)

// testIntake is an intake writing to q (an in-memory queue when nil).
func testIntake(q intake.Enqueuer) *intake.Intake {
	if q == nil {
		q = &fakeEnqueuer{}
	}
	return &intake.Intake{Queue: q}
}

// prepare runs prepareSubmission against the image as the daemon would.
func prepare(img *compiler.Image, sub *control.Submission) (*prepared, control.SubmitResult) {
	return prepareSubmission(testIntake(nil), newIntakeRules(img), img, sub, submitNow)
}

// acceptPrepared queues a prepared submission into its in-memory queue, as
// submitMessage does, and fills in res.
func acceptPrepared(t testing.TB, p *prepared, res *control.SubmitResult) *intake.Result {
	t.Helper()
	r, err := p.accept(context.Background(), res)
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	return r
}

// firstCopy is the envelope of the message's first copy.
func firstCopy(t testing.TB, r *intake.Result) *queue.Envelope {
	t.Helper()
	if len(r.Copies) == 0 {
		t.Fatal("nothing queued")
	}
	return r.Copies[0].Envelope
}

// TestPrepareSubmission: header completion, -t, Bcc removal and routing with
// source channel l against examples/site (local host mail.example.com).
func TestPrepareSubmission(t *testing.T) {
	img := siteImage(t)
	cases := []struct {
		name    string
		sub     control.Submission
		status  string   // whole message refused: the status's prefix
		refused []string // recipients refused
		rcpts   []string // queued "channel addr", sorted
		sender  string
		has     []string // in the content
		hasNot  []string
	}{
		{
			name:   "defaults added, sender from the user",
			sub:    control.Submission{User: "cron", Recipients: []string{"alice"}, Content: []byte("Subject: nightly\r\n\r\nok\r\n")},
			sender: "cron@mail.example.com",
			rcpts:  []string{"l alice@mail.example.com"},
			has: []string{"Received: (from cron@mail.example.com)\r\n\tby mail.example.com (mtad) with local submission;\r\n\tMon, 23 Nov 2026 18:00:00 +0000\r\nSubject: nightly\r\n",
				"Date: Mon, 23 Nov 2026 18:00:00 +0000\r\n", "Message-ID: <20261123180000.", "@mail.example.com>\r\n", "From: cron@mail.example.com\r\n\r\nok\r\n"},
		},
		{
			name: "fields given are kept, -f and -F",
			sub: control.Submission{User: "root", Sender: "reports@example.com", SenderSet: true, FullName: "Report Robot",
				Recipients: []string{"bob@example.com"}, Content: []byte("From: Boss <boss@example.com>\r\nDate: Sun, 1 Nov 2026 00:00:00 +0000\r\nMessage-ID: <x@y>\r\n\r\nb\r\n")},
			sender: "reports@example.com",
			rcpts:  []string{"l bob@example.com"},
			has:    []string{"From: Boss <boss@example.com>\r\n", "Message-ID: <x@y>\r\n"},
			hasNot: []string{"Report Robot", "Date: Mon"},
		},
		{
			name:   "-F names an added From",
			sub:    control.Submission{User: "root", FullName: "Cron Daemon", Recipients: []string{"alice@example.com"}, Content: []byte("\r\nbody\r\n")},
			sender: "root@mail.example.com",
			rcpts:  []string{"l alice@example.com"},
			has:    []string{"From: \"Cron Daemon\" <root@mail.example.com>\r\n\r\nbody\r\n"},
		},
		{
			name: "-t: To, Cc, Bcc (folded, lists, groups); command line ignored; Bcc removed",
			sub: control.Submission{User: "u", FromHeaders: true, Recipients: []string{"ignored@example.com"},
				Content: []byte("To: Alice <alice@example.com>,\r\n  bob@example.com\r\nCc: undisclosed-recipients:;\r\nBcc: carol@siroe.com\r\nSubject: t\r\n\r\nhi\r\n")},
			sender: "u@mail.example.com",
			rcpts:  []string{"l alice@example.com", "l bob@example.com", "tcp_siroe carol@siroe.com"},
			has:    []string{"To: Alice <alice@example.com>,\r\n  bob@example.com\r\nCc: undisclosed-recipients:;\r\nSubject: t\r\n"},
			hasNot: []string{"Bcc", "ignored"},
		},
		{
			name:   "Bcc removed without -t too",
			sub:    control.Submission{User: "u", Recipients: []string{"alice@example.com"}, Content: []byte("Bcc: secret@example.com\r\nSubject: s\r\n\r\nx\r\n")},
			sender: "u@mail.example.com",
			rcpts:  []string{"l alice@example.com"},
			hasNot: []string{"Bcc", "secret"},
		},
		{
			name:   "-t with an unparsable list is split leniently",
			sub:    control.Submission{User: "u", FromHeaders: true, Content: []byte("To: alice@example.com (Alice A.), Bob <bob@example.com>, [bad\r\n\r\n")},
			sender: "u@mail.example.com",
			rcpts:  []string{"l alice@mail.example.com", "l bob@example.com"},
			// "[bad" is not an address: it is refused by name
			refused: []string{"[bad"},
		},
		{
			name:   "an alias expands; duplicates are queued once",
			sub:    control.Submission{User: "u", Recipients: []string{"ops@example.com", "alice"}, Content: []byte("\r\n")},
			sender: "u@mail.example.com",
			rcpts:  []string{"l alice@mail.example.com", "l bob@example.com", "tcp_siroe carol@siroe.com"},
		},
		{
			name:    "unroutable: nothing queued",
			sub:     control.Submission{User: "u", Recipients: []string{"alice@example.com", "x@host.invalid"}, Content: []byte("\r\n")},
			sender:  "u@mail.example.com",
			refused: []string{"x@host.invalid"},
		},
		{
			name:   "no header: all body",
			sub:    control.Submission{User: "u", Recipients: []string{"alice@example.com"}, Content: []byte("just text: no header\r\nmore\r\n")},
			sender: "u@mail.example.com",
			rcpts:  []string{"l alice@example.com"},
			has:    []string{"From: u@mail.example.com\r\n\r\njust text: no header\r\nmore\r\n"},
		},
		{
			name:   "mbox From line dropped, empty sender",
			sub:    control.Submission{User: "u", SenderSet: true, Sender: "<>", Recipients: []string{"alice@example.com"}, Content: []byte("From someone Mon Nov 23 2026\r\nSubject: s\r\n\r\n")},
			sender: "",
			rcpts:  []string{"l alice@example.com"},
			has:    []string{"Subject: s\r\n", "From: u@mail.example.com\r\n"},
			hasNot: []string{"From someone"},
		},
		{name: "-t without recipients", sub: control.Submission{User: "u", FromHeaders: true, Content: []byte("Subject: x\r\n\r\n")}, status: "554 5.5.1 No recipient addresses found in header"},
		{name: "no recipients", sub: control.Submission{User: "u", Content: []byte("\r\n")}, status: "554 5.5.1 Recipient names must be specified"},
		{name: "bad sender", sub: control.Submission{User: "u", SenderSet: true, Sender: "a b@c", Recipients: []string{"alice"}}, status: "553 5.1.7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, res := prepare(img, &c.sub)
			if c.status != "" {
				if p != nil || res.Status == nil || !strings.HasPrefix(res.Status.Error(), c.status) {
					t.Fatalf("status = %v, want %q", res.Status, c.status)
				}
				return
			}
			if p == nil {
				t.Fatalf("refused: %v", res.Status)
			}
			var refused []string
			for _, rc := range res.Recipients {
				if rc.Status != nil {
					refused = append(refused, rc.Addr)
				}
			}
			if !slices.Equal(refused, c.refused) {
				t.Errorf("refused %v, want %v (%+v)", refused, c.refused, res.Recipients)
			}
			if res.Sender != c.sender || p.tx.From() != c.sender {
				t.Errorf("sender %q / %q, want %q", res.Sender, p.tx.From(), c.sender)
			}
			if len(c.refused) > 0 {
				return
			}
			var got []string
			for _, r := range p.tx.Recipients() {
				got = append(got, r.Channel+" "+r.Addr)
			}
			slices.Sort(got)
			if !slices.Equal(got, c.rcpts) {
				t.Errorf("queued %v, want %v", got, c.rcpts)
			}
			content := string(p.msg.Content)
			for _, s := range c.has {
				if !strings.Contains(content, s) {
					t.Errorf("content lacks %q:\n%s", s, content)
				}
			}
			for _, s := range c.hasNot {
				if strings.Contains(content, s) {
					t.Errorf("content has %q:\n%s", s, content)
				}
			}
			env := firstCopy(t, acceptPrepared(t, p, &res))
			if env.Source != "l" || env.MessageID == "" || env.MessageID != res.MessageID {
				t.Errorf("envelope source %q message-id %q/%q", env.Source, env.MessageID, res.MessageID)
			}
		})
	}
}

// TestPrepareSubmission8Bit: 8-bit content is flagged for BODY=8BITMIME.
func TestPrepareSubmission8Bit(t *testing.T) {
	img := siteImage(t)
	for _, c := range []struct {
		body string
		want bool
	}{{"plain\r\n", false}, {"caf\xc3\xa9\r\n", true}} {
		p, _ := prepare(img, &control.Submission{User: "u", Recipients: []string{"alice"}, Content: []byte("Subject: s\r\n\r\n" + c.body)})
		if p == nil || p.msg.Body8Bit != c.want {
			t.Errorf("%q: Body8Bit = %v, want %v", c.body, p != nil && p.msg.Body8Bit, c.want)
		}
	}
}

// TestPrepareSubmissionLoop: too many Received: fields queue the message held.
func TestPrepareSubmissionLoop(t *testing.T) {
	img := siteImage(t)
	content := strings.Repeat("Received: from a by b\r\n", 50) + "\r\nx\r\n"
	p, res := prepare(img, &control.Submission{User: "u", Recipients: []string{"alice"}, Content: []byte(content)})
	if p == nil || !firstCopy(t, acceptPrepared(t, p, &res)).Held || !strings.Contains(res.Held, "51 Received") {
		t.Fatalf("not held: %+v", res)
	}
}

// FuzzPrepareSubmission: any content and addresses give a result, never a panic,
// and a queued message's header ends with exactly one blank line before the body.
func FuzzPrepareSubmission(f *testing.F) {
	img := siteImage(f)
	f.Add([]byte("To: a@example.com\r\nBcc: b\r\n\r\nx\r\n"), "alice", true)
	f.Add([]byte("From x\r\n: bad\r\n \r\n"), "ops@example.com", false)
	f.Add([]byte("To: \"a,b\" <c@d>, (e, f) g@h, i:j,k;\r\n"), "", true)
	f.Add([]byte("\r\n"), "<>", false)
	f.Fuzz(func(t *testing.T, content []byte, rcpt string, fromHeaders bool) {
		sub := &control.Submission{User: "u", Recipients: []string{rcpt}, FromHeaders: fromHeaders, Content: content}
		p, res := prepare(img, sub)
		if p == nil {
			if res.Status == nil {
				t.Fatal("refused without a status")
			}
			return
		}
		h, _ := splitHeader(p.msg.Content)
		if h.Has("Bcc") {
			t.Errorf("Bcc left in %q", p.msg.Content)
		}
		for _, n := range []string{"Date", "Message-ID", "From", "Received"} {
			if !h.Has(n) {
				t.Errorf("no %s in %q", n, p.msg.Content)
			}
		}
	})
}

// TestPrepareSubmissionTooLarge: the configuration's size limit refuses the
// message as a whole (the client maps it to EX_DATAERR).
func TestPrepareSubmissionTooLarge(t *testing.T) {
	img := siteImage(t)
	img.Options.BlockLimit = 2 // 2 blocks of BLOCK_SIZE=1024
	sub := &control.Submission{User: "u", Recipients: []string{"alice"}}
	sub.Content = []byte("Subject: s\r\n\r\n" + strings.Repeat("x", 2048))
	if p, res := prepare(img, sub); p != nil || res.Status == nil || res.Status.Code != 552 || res.Status.Enhanced != "5.3.4" {
		t.Fatalf("over the limit: %+v", res.Status)
	}
	sub.Content = []byte("Subject: s\r\n\r\nsmall\r\n")
	if p, res := prepare(img, sub); p == nil {
		t.Fatalf("under the limit refused: %v", res.Status)
	}
}
