package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/compiler"
	"mtad.dev/mta/control"
	"mtad.dev/mta/intake"
	"mtad.dev/mta/queue"
	"mtad.dev/mta/reroute"
)

// fakeEnqueuer records what the reprocess program queues; failFrom makes the
// copies for that sender fail.
type fakeEnqueuer struct {
	mu       sync.Mutex
	envs     []*queue.Envelope
	contents [][]byte
	failFrom string
}

func (f *fakeEnqueuer) Enqueue(_ context.Context, env *queue.Envelope, content []byte) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failFrom != "" && env.From == f.failFrom {
		return "", errors.New("disk full")
	}
	e := *env
	e.ID = fmt.Sprintf("N%d", len(f.envs)+1)
	e.Rcpts = slices.Clone(env.Rcpts)
	f.envs = append(f.envs, &e)
	f.contents = append(f.contents, bytes.Clone(content))
	return e.ID, nil
}

const reprocessRules = `localhost        $U%localhost@localhost
blocked.test     $?No mail for blocked hosts
loop.test        $U%loop.test@reprocess-daemon
.                $U%$H@tcp-daemon

l
localhost

reprocess
reprocess-daemon

hold
hold-daemon

tcp_local smtp nomx single_sys holdlimit 3
tcp-daemon
`

const reprocessAliases = `big: a@localhost, b@localhost, c@localhost
team: d@remote.test, e@localhost
owner-team: boss@localhost
huge: r1@remote.test, r2@remote.test, r3@remote.test, r4@remote.test
`

// rulesOf gives a reroute program the intake rules of an image, none for nil.
func rulesOf(img *compiler.Image) func() *intake.Rules {
	return func() *intake.Rules {
		if img == nil {
			return nil
		}
		return newIntakeRules(img)
	}
}

// TestReprocessProgram: each recipient is resolved again and queued with the same
// content and envelope fields; failures are per recipient.
func TestReprocessProgram(t *testing.T) {
	img := buildImage(t, map[string]string{"imta.cnf": reprocessRules, "aliases": reprocessAliases, "option.dat": "HELD_SNDOPR=1\n"})
	content := []byte("Received: from x by y; Mon, 23 Nov 2026 18:00:00 +0000\r\nMessage-ID: <rp@test>\r\nSubject: r\r\n\r\nbody \xc3\xa9\r\n.line\r\n")
	arrival := time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC)
	type copyWant struct {
		from  string
		rcpts []string // "channel addr"
		held  string   // HeldReason prefix
	}
	cases := []struct {
		name     string
		rcpts    []string
		noImage  bool
		failFrom string
		results  []string // per recipient: "ok", or the status prefix
		copies   []copyWant
		warn     bool
	}{
		{
			name: "deferred alias expanded", rcpts: []string{"big@localhost"}, results: []string{"ok"},
			copies: []copyWant{{from: "poster@example.org", rcpts: []string{"l a@localhost", "l b@localhost", "l c@localhost"}}},
		},
		{
			name: "owner becomes the sender of the list's copy", rcpts: []string{"team@localhost", "solo@localhost"}, results: []string{"ok", "ok"},
			copies: []copyWant{
				{from: "owner-team@localhost", rcpts: []string{"tcp_local d@remote.test", "l e@localhost"}},
				{from: "poster@example.org", rcpts: []string{"l solo@localhost"}},
			},
		},
		{
			name: "unroutable recipient returned, the other handed off", rcpts: []string{"x@blocked.test", "big@localhost"},
			results: []string{"550 5.1.2 No mail for blocked hosts", "ok"},
			copies:  []copyWant{{from: "poster@example.org", rcpts: []string{"l a@localhost", "l b@localhost", "l c@localhost"}}},
		},
		{
			name: "routed back to reprocess: loop returned", rcpts: []string{"u@loop.test"}, results: []string{"554 5.4.6"},
		},
		{
			name: "holdlimit: held, WARN with HELD_SNDOPR", rcpts: []string{"huge@localhost"}, results: []string{"ok"}, warn: true,
			copies: []copyWant{{from: "poster@example.org", rcpts: []string{"tcp_local r1@remote.test", "tcp_local r2@remote.test",
				"tcp_local r3@remote.test", "tcp_local r4@remote.test"}, held: "holdlimit: 4 recipients for channel tcp_local (holdlimit 3)"}},
		},
		{
			name: "no image: temporary", rcpts: []string{"big@localhost"}, noImage: true, results: []string{"451 4.3.0"},
		},
		{
			name: "one copy not durable: its originals requeued, the other handed off", rcpts: []string{"team@localhost", "solo@localhost"},
			failFrom: "owner-team@localhost", results: []string{"451 4.3.0", "ok"},
			copies: []copyWant{{from: "poster@example.org", rcpts: []string{"l solo@localhost"}}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := &fakeEnqueuer{failFrom: c.failFrom}
			logs := &syncBuffer{}
			cur := img
			if c.noImage {
				cur = nil
			}
			p := reroute.New("reprocess", false, rulesOf(cur), &intake.Intake{Queue: q, Log: slog.New(slog.NewTextHandler(logs, nil))}, nil)
			m := &channels.Message{ID: "ORIG", From: "poster@example.org", Content: bytes.NewReader(content), Size: int64(len(content)),
				EightBit: true, RET: "HDRS", EnvID: "env-1", Arrival: arrival, Source: "tcp_local"}
			for _, r := range c.rcpts {
				m.Rcpts = append(m.Rcpts, channels.Rcpt{Addr: r, ORCPT: "rfc822;" + r, Notify: "SUCCESS,FAILURE", Host: r[strings.IndexByte(r, '@')+1:]})
			}
			res := p.Deliver(context.Background(), m)
			if len(res) != len(c.rcpts) {
				t.Fatalf("%d results for %d recipients", len(res), len(c.rcpts))
			}
			for i, want := range c.results {
				switch {
				case want == "ok" && res[i].Err != nil:
					t.Errorf("recipient %d: %v, want handed off", i, res[i].Err)
				case want == "ok" && !strings.HasPrefix(res[i].Reply, "reprocessed as N"):
					t.Errorf("recipient %d: reply %q", i, res[i].Reply)
				case want != "ok" && (res[i].Err == nil || !strings.HasPrefix(res[i].Err.Error(), want)):
					t.Errorf("recipient %d: %v, want %q", i, res[i].Err, want)
				}
			}
			if len(q.envs) != len(c.copies) {
				t.Fatalf("%d copies queued, want %d", len(q.envs), len(c.copies))
			}
			for i, w := range c.copies {
				e := q.envs[i]
				var got []string
				for _, r := range e.Rcpts {
					got = append(got, r.Channel+" "+r.Addr)
					if r.Notify != "SUCCESS,FAILURE" || !strings.HasPrefix(r.ORCPT, "rfc822;") || r.ORCPT != "rfc822;"+r.Orig {
						t.Errorf("copy %d: recipient %s lost NOTIFY/ORCPT: %+v", i, r.Addr, r)
					}
				}
				if e.From != w.from || !slices.Equal(got, w.rcpts) {
					t.Errorf("copy %d: from %q rcpts %q, want %q %q", i, e.From, got, w.from, w.rcpts)
				}
				if e.Held != (w.held != "") || !strings.HasPrefix(e.HeldReason, w.held) {
					t.Errorf("copy %d: held %v %q, want %q", i, e.Held, e.HeldReason, w.held)
				}
				if e.RET != "HDRS" || e.EnvID != "env-1" || !e.Body8Bit || !e.Arrival.Equal(arrival) ||
					e.Source != "reprocess" || e.MessageID != "<rp@test>" {
					t.Errorf("copy %d: envelope fields not kept: %+v", i, e)
				}
				if !bytes.Equal(q.contents[i], content) {
					t.Errorf("copy %d: content differs:\n got %q\nwant %q", i, q.contents[i], content)
				}
			}
			warned := strings.Contains(logs.String(), `level=WARN msg="message forced .HELD"`)
			if warned != c.warn {
				t.Errorf("WARN %v, want %v:\n%s", warned, c.warn, logs.String())
			}
		})
	}
}

// TestHoldProgramFreshAndReleased: fresh mail becomes a .HELD copy on the hold
// channel; a released copy (Source = the hold channel) is routed by the rules.
func TestHoldProgramFreshAndReleased(t *testing.T) {
	holdRules := strings.Replace(reprocessRules, "loop.test        $U%loop.test@reprocess-daemon",
		"held.test        $U%held.test@hold-daemon", 1)
	img := buildImage(t, map[string]string{"imta.cnf": holdRules, "aliases": reprocessAliases})
	content := []byte("Subject: h\r\n\r\nheld body\r\n")
	cases := []struct {
		name   string
		source string
		rcpts  []string
		want   []string // "channel addr"
		held   string
		reply  string
	}{
		{name: "fresh: held on the hold channel", source: "tcp_local", rcpts: []string{"u@held.test", "v@held.test"},
			want: []string{"hold u@held.test", "hold v@held.test"}, held: intake.HoldChannelReason, reply: "held as N1"},
		{name: "released, rules still hold it: held again", source: "hold", rcpts: []string{"u@held.test"},
			want: []string{"hold u@held.test"}, held: intake.HoldChannelReason, reply: "reprocessed as N1"},
		{name: "released, rules route it elsewhere", source: "hold", rcpts: []string{"big@localhost"},
			want: []string{"l a@localhost", "l b@localhost", "l c@localhost"}, reply: "reprocessed as N1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := &fakeEnqueuer{}
			p := reroute.New("hold", true, rulesOf(img), &intake.Intake{Queue: q}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			m := &channels.Message{ID: "ORIG", From: "poster@example.org", Content: bytes.NewReader(content), Size: int64(len(content)), Source: c.source}
			for _, r := range c.rcpts {
				m.Rcpts = append(m.Rcpts, channels.Rcpt{Addr: r, Host: r[strings.IndexByte(r, '@')+1:]})
			}
			res := p.Deliver(context.Background(), m)
			for i, r := range res {
				if r.Err != nil || r.Reply != c.reply {
					t.Errorf("recipient %d: %v %q, want %q", i, r.Err, r.Reply, c.reply)
				}
			}
			if len(q.envs) != 1 {
				t.Fatalf("%d copies, want 1", len(q.envs))
			}
			e := q.envs[0]
			var got []string
			for _, r := range e.Rcpts {
				got = append(got, r.Channel+" "+r.Addr)
			}
			if !slices.Equal(got, c.want) || e.Source != "hold" || e.Held != (c.held != "") || e.HeldReason != c.held {
				t.Errorf("copy: %q source %q held %v %q; want %q held %q", got, e.Source, e.Held, e.HeldReason, c.want, c.held)
			}
			if !bytes.Equal(q.contents[0], content) {
				t.Errorf("content differs: %q", q.contents[0])
			}
		})
	}
}

// expandConfig: tcp_local (the SMTP source) defers aliases of more than two
// members to reprocess; everything not local goes to a loopback SMTP server.
func expandConfig(t *testing.T, port int) string {
	t.Helper()
	dir := t.TempDir()
	writeConfig(t, dir, map[string]string{
		"imta.cnf": fmt.Sprintf(`localhost        $U%%localhost@localhost
.                $U%%$H@tcp-daemon

l
localhost

reprocess
reprocess-daemon

tcp_local smtp nomx single_sys expandlimit 2 daemon 127.0.0.1 port %d
tcp-daemon
`, port),
		"aliases": `crowd: m1@localhost, m2@localhost, m3@localhost
team: gone@remote.example, kept@localhost
owner-team: listowner@localhost
`,
	})
	return dir
}

// TestDeferredExpansionE2E: an alias with more members than the source channel's
// expandlimit is accepted, queued once to reprocess (E record), and the reprocess
// channel's master delivers it to every member, byte-exact.
func TestDeferredExpansionE2E(t *testing.T) {
	remote := newScripted(t, "127.0.0.1:0", func(string, int) error { return nil })
	data := t.TempDir()
	d := startDaemonAt(t, expandConfig(t, remote.port), data)
	body := []byte("Subject: to the crowd\r\nMessage-ID: <crowd@test>\r\n\r\n.dot line\r\nbody\r\n")
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	id := queueID(c.Send("poster@remote.example", []string{"crowd@localhost"}, body))
	c.Cmd("QUIT", "221")

	log := waitLogMatch(t, data, 15*time.Second,
		`tcp_local reprocess EE? \d+ poster@remote.example rfc822;crowd@localhost crowd@localhost `+id,
		`reprocess D .* crowd@localhost `+id)
	var first []byte
	for _, mb := range []string{"m1", "m2", "m3"} {
		got := waitMaildir(t, data, mb, 1)[0]
		if !bytes.HasSuffix(got, lfForm(body)) || bytes.Count(got, []byte("Received:")) != 1 {
			t.Errorf("%s: content %q", mb, got)
		}
		rest := got[bytes.Index(got, []byte("Received:")):]
		if first == nil {
			first = rest
		} else if !bytes.Equal(rest, first) {
			t.Errorf("%s: content differs from m1's", mb)
		}
	}
	if !strings.Contains(log, "reprocess l E") {
		t.Errorf("mail.log lacks the reprocess channel's E records:\n%s", log)
	}
}

// TestOwnerBounceE2E: a bounce for a list member goes to the list's owner, not to
// the poster; the member that exists receives the message with the owner as
// envelope sender.
func TestOwnerBounceE2E(t *testing.T) {
	remote := newScripted(t, "127.0.0.1:0", func(to string, _ int) error {
		if strings.HasPrefix(to, "gone@") {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
		}
		return nil
	})
	data := t.TempDir()
	d := startDaemonAt(t, expandConfig(t, remote.port), data)
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	reply := c.Send("poster@localhost", []string{"team@localhost"}, []byte("Subject: team\r\n\r\nhello team\r\n"))
	c.Cmd("QUIT", "221")
	if n := len(strings.Fields(reply[strings.Index(reply, "queued as")+len("queued as"):])); n != 1 {
		t.Errorf("reply %q: want one id (every member has the owner as sender)", reply)
	}
	kept := waitMaildir(t, data, "kept", 1)[0]
	if !bytes.HasPrefix(kept, lfForm([]byte("Return-Path: <owner-team@localhost>\r\n"))) {
		t.Errorf("member's copy: %q", kept[:min(len(kept), 80)])
	}
	dsn := string(waitMaildir(t, data, "listowner", 1)[0])
	for _, want := range []string{"Return-Path: <>", "Action: failed", "gone@remote.example", "no such mailbox"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("owner's notice lacks %q:\n%s", want, dsn)
		}
	}
	// The poster gets nothing: once the job controller has returned gone@ and
	// delivered what that queued, a wrong notice would be in the mailbox.
	waitLogMatch(t, data, 10*time.Second, ` tcp_local R .*gone@remote.example`)
	channelsIdle(t, d, "l", "tcp_local") // the R's notice was queued before R was logged
	if ents, _ := os.ReadDir(filepath.Join(data, "mailboxes", "poster", "new")); len(ents) != 0 {
		t.Errorf("the poster got %d messages", len(ents))
	}
}

// TestPrepareSubmissionOwnersAndHoldLimit: local submission queues list members
// with the list's owner as sender (one copy per sender) and honours holdlimit.
func TestPrepareSubmissionOwnersAndHoldLimit(t *testing.T) {
	cases := []struct {
		name     string
		rcpts    []string
		holdL    int // holdlimit of channel l
		copies   []string
		held     string
		forceHld bool
	}{
		{name: "list with owner and a direct recipient", rcpts: []string{"carol@siroe.com", "staff@example.com"},
			copies: []string{
				"u@mail.example.com: tcp_siroe carol@siroe.com",
				"owner-staff@example.com: l alice@mail.example.com, l bob@mail.example.com, tcp_siroe dave@host1.siroe.com",
			}},
		{name: "holdlimit exceeded", rcpts: []string{"alice", "bob@example.com"}, holdL: 1,
			copies: []string{"u@mail.example.com: l alice@mail.example.com, l bob@example.com"},
			held:   "holdlimit: 2 recipients for channel l (holdlimit 1)", forceHld: true},
		{name: "holdlimit not exceeded", rcpts: []string{"alice", "bob@example.com"}, holdL: 2,
			copies: []string{"u@mail.example.com: l alice@mail.example.com, l bob@example.com"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := siteImage(t)
			img.LocalChannel().HoldLimit = c.holdL
			p, res := prepareSubmission(testIntake(nil), newIntakeRules(img), img, &control.Submission{User: "u", Recipients: c.rcpts, Content: []byte("Subject: s\r\n\r\nx\r\n")}, submitNow)
			if p == nil {
				t.Fatalf("refused: %v", res.Status)
			}
			r := acceptPrepared(t, p, &res)
			var got []string
			for _, cp := range r.Copies {
				e := cp.Envelope
				var rc []string
				for _, r := range e.Rcpts {
					rc = append(rc, r.Channel+" "+r.Addr)
				}
				got = append(got, e.From+": "+strings.Join(rc, ", "))
				if e.Held != (c.held != "") || e.HeldReason != c.held {
					t.Errorf("copy from %s: held %v %q, want %q", e.From, e.Held, e.HeldReason, c.held)
				}
			}
			if !slices.Equal(got, c.copies) {
				t.Errorf("copies\n %q\nwant\n %q", got, c.copies)
			}
			if r.Forced != c.forceHld || res.Held != c.held {
				t.Errorf("forced %v held %q", r.Forced, res.Held)
			}
		})
	}
}
