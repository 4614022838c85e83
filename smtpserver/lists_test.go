package smtpserver

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"mtad.dev/mta/engine"
	"mtad.dev/mta/intake"
	"mtad.dev/mta/mappings"
	"mtad.dev/mta/status"
)

// listRules wraps fakeRules with two aliases: team@local.test (owner
// owner-team@local.test, two members) and big@local.test, whose expansion the
// source channel's expandlimit defers to the reprocess channel.
type listRules struct{ fakeRules }

func (l *listRules) Resolve(req engine.Request) engine.Resolution {
	r := l.fakeRules.Resolve(req)
	switch r.Rewrite.Mailbox {
	case "team":
		r.Recipients = []engine.Recipient{
			{Address: "ann@local.test", Channel: "l", Mailbox: "ann", Host: "local.test", Via: []string{"team"}, Sender: "owner-team@local.test"},
			{Address: "bob@elsewhere.org", Channel: "tcp_local", Mailbox: "bob", Host: "elsewhere.org", Via: []string{"team"}, Sender: "owner-team@local.test"},
		}
	case "big":
		r.Recipients = []engine.Recipient{
			{Address: "m1@local.test", Channel: "l", Host: "local.test", Via: []string{"big"}},
			{Address: "m2@local.test", Channel: "l", Host: "local.test", Via: []string{"big"}},
			{Address: "m3@refused.test", Channel: "tcp_local", Host: "refused.test", Via: []string{"big"}},
		}
		r.Deferred, r.ExpandChannel = true, "reprocess"
	case "bigrefused":
		r.Recipients = []engine.Recipient{{Address: "x@refused.test", Channel: "tcp_local", Host: "refused.test", Via: []string{"bigrefused"}}}
		r.Deferred, r.ExpandChannel = true, "reprocess"
	}
	return r
}

// TestListsOwnersDeferralHoldLimit: owner-NAME senders split the message into one
// envelope per sender, a deferred expansion queues the alias itself to the
// reprocess channel, and holdlimit holds a message with too many recipients.
func TestListsOwnersDeferralHoldLimit(t *testing.T) {
	type env struct {
		from   string
		rcpts  []string // "channel addr"
		held   string   // HeldReason prefix, "" not held
		orcpts []string
	}
	cases := []struct {
		name     string
		rcpts    []string
		rcptCode []string // per RCPT; "" means 250
		holdLim  int      // holdlimit of tcp_local
		sndopr   bool
		noRepro  bool // no reprocess channel in the configuration
		want     []env
		warn     bool // a WARN "message forced .HELD" line
	}{
		{
			name:  "owner gets its own envelope",
			rcpts: []string{"carl@local.test", "team@local.test"},
			want: []env{
				{from: "poster@example.org", rcpts: []string{"l carl@local.test"}},
				{from: "owner-team@local.test", rcpts: []string{"l ann@local.test", "tcp_local bob@elsewhere.org"}},
			},
		},
		{
			name:  "deferred expansion: the alias goes to reprocess once, ORCPT kept",
			rcpts: []string{"big@local.test"},
			want:  []env{{from: "poster@example.org", rcpts: []string{"reprocess big@local.test"}, orcpts: []string{"rfc822;big@local.test"}}},
		},
		{
			name:    "deferred expansion without a reprocess channel: expanded online",
			rcpts:   []string{"big@local.test"},
			noRepro: true,
			want:    []env{{from: "poster@example.org", rcpts: []string{"l m1@local.test", "l m2@local.test"}}},
		},
		{
			name:     "deferred expansion whose every member is refused: RCPT refused",
			rcpts:    []string{"bigrefused@local.test", "carl@local.test"},
			rcptCode: []string{"550", ""},
			want:     []env{{from: "poster@example.org", rcpts: []string{"l carl@local.test"}}},
		},
		{
			name:    "holdlimit exceeded: held, no notice without HELD_SNDOPR",
			rcpts:   []string{"a@x.org", "b@x.org", "c@x.org"},
			holdLim: 2,
			want:    []env{{from: "poster@example.org", rcpts: []string{"tcp_local a@x.org", "tcp_local b@x.org", "tcp_local c@x.org"}, held: "holdlimit: 3 recipients for channel tcp_local"}},
		},
		{
			name:    "holdlimit exceeded with HELD_SNDOPR=1: WARN",
			rcpts:   []string{"a@x.org", "b@x.org", "c@x.org"},
			holdLim: 2,
			sndopr:  true,
			want:    []env{{from: "poster@example.org", rcpts: []string{"tcp_local a@x.org", "tcp_local b@x.org", "tcp_local c@x.org"}, held: "holdlimit"}},
			warn:    true,
		},
		{
			name:    "holdlimit reached, not exceeded",
			rcpts:   []string{"a@x.org", "b@x.org"},
			holdLim: 2,
			sndopr:  true,
			want:    []env{{from: "poster@example.org", rcpts: []string{"tcp_local a@x.org", "tcp_local b@x.org"}}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs syncBuf
			rules := &listRules{}
			e := startServer(t, func(p *Policy, cfg *Config) {
				p.Intake.Resolver = rules
				p.Intake.HeldSndopr = c.sndopr
				if !c.noRepro {
					p.Channels["reprocess"] = ChannelPolicy{Name: "reprocess"}
				}
				p.Intake.Channels = map[string]intake.Channel{"tcp_local": {HoldLimit: c.holdLim}}
				cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			})
			e.access.setDecide(func(table, probe string) (mappings.Access, bool) {
				if table == "SEND_ACCESS" && strings.HasSuffix(probe, "@refused.test") {
					return mappings.Access{Reject: true, Text: "refused"}, true
				}
				return mappings.Access{}, false
			})
			r := dialRaw(t, e.addr)
			r.hello()
			r.cmd("MAIL FROM:<poster@example.org>", "250")
			for i, rc := range c.rcpts {
				code := "250"
				if i < len(c.rcptCode) && c.rcptCode[i] != "" {
					code = c.rcptCode[i]
				}
				r.cmd("RCPT TO:<"+rc+"> ORCPT=rfc822;"+rc, code)
			}
			r.cmd("DATA", "354")
			body := "Subject: lists\r\n\r\nbody\r\n"
			reply := r.cmd(body+".", "250")
			if e.q.count() != len(c.want) {
				t.Fatalf("%d envelopes, want %d", e.q.count(), len(c.want))
			}
			var ids []string
			var first []byte
			// Copies are enqueued concurrently: match them by sender.
			bySender := map[string]int{}
			for i := range c.want {
				got, _ := e.q.get(i)
				bySender[got.From] = i
			}
			for i, w := range c.want {
				got, content := e.q.get(bySender[w.from])
				ids = append(ids, got.ID)
				if i == 0 {
					first = content
				} else if !bytes.Equal(content, first) {
					t.Errorf("envelope %d content differs from the first", i)
				}
				var rc []string
				var orcpts []string
				for _, x := range got.Rcpts {
					rc = append(rc, x.Channel+" "+x.Addr)
					orcpts = append(orcpts, x.ORCPT)
				}
				if got.From != w.from || !slices.Equal(rc, w.rcpts) {
					t.Errorf("envelope %d: from %q rcpts %q, want %q %q", i, got.From, rc, w.from, w.rcpts)
				}
				if w.orcpts != nil && !slices.Equal(orcpts, w.orcpts) {
					t.Errorf("envelope %d: ORCPT %q, want %q", i, orcpts, w.orcpts)
				}
				if got.Held != (w.held != "") || !strings.HasPrefix(got.HeldReason, w.held) {
					t.Errorf("envelope %d: held %v %q, want %q", i, got.Held, got.HeldReason, w.held)
				}
			}
			if want := "queued as " + strings.Join(ids, " "); !strings.Contains(reply, want) {
				t.Errorf("reply %q lacks %q", reply, want)
			}
			r.cmd("QUIT", "221")
			log := e.mailLog(t)
			for i, w := range c.want {
				for _, rc := range w.rcpts {
					addr := rc[strings.IndexByte(rc, ' ')+1:]
					if !strings.Contains(log, w.from+" ") || !strings.Contains(log, addr+" "+ids[i]) {
						t.Errorf("mail.log lacks the E record of %s from %s as %s:\n%s", addr, w.from, ids[i], log)
					}
				}
			}
			warned := strings.Contains(logs.String(), `level=WARN msg="message forced .HELD"`)
			if warned != c.warn {
				t.Errorf("WARN line %v, want %v:\n%s", warned, c.warn, logs.String())
			}
			if c.warn && !strings.Contains(logs.String(), "id="+ids[0]) {
				t.Errorf("WARN line lacks the id:\n%s", logs.String())
			}
		})
	}
}

// TestDataEnqueueFailureWithOwners: when the copies cannot be queued the client
// gets the temporary failure (nothing acknowledged that is not on disk).
func TestDataEnqueueFailureWithOwners(t *testing.T) {
	rules := &listRules{}
	e := startServer(t, func(p *Policy, cfg *Config) { p.Intake.Resolver = rules })
	e.q.err = status.New(452, "4.3.1", "Insufficient system storage")
	r := dialRaw(t, e.addr)
	r.hello()
	r.cmd("MAIL FROM:<poster@example.org>", "250")
	r.cmd("RCPT TO:<carl@local.test>", "250")
	r.cmd("RCPT TO:<team@local.test>", "250")
	r.cmd("DATA", "354")
	r.cmd("Subject: x\r\n\r\nbody\r\n.", "452 4.3.1")
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
