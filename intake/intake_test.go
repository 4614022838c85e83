package intake

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mtad.dev/mta/engine"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/mappings"
	"mtad.dev/mta/queue"
	"mtad.dev/mta/status"
)

// routes is a scripted resolver. Addresses @local.test go to l, @remote.test to
// tcp_local; list@local.test expands to two members through a list whose owner
// is owner-list@local.test; big@local.test expands beyond an expandlimit;
// loop@local.test routes to reprocess; nobody@local.test is unknown.
type routes struct{}

func (routes) Rewrite(req engine.Request) engine.Result {
	local, domain, _ := strings.Cut(strings.ToLower(req.Address), "@")
	r := engine.Result{Address: strings.ToLower(req.Address), Mailbox: local, Host: domain, Channel: "tcp_local"}
	switch domain {
	case "local.test":
		r.Channel = "l"
	case "bad.test":
		r.Err = status.New(550, "5.1.2", "No mail for bad.test")
	}
	return r
}

func (rt routes) Resolve(req engine.Request) engine.Resolution {
	rw := rt.Rewrite(req)
	res := engine.Resolution{Rewrite: rw, Err: rw.Err}
	if rw.Err != nil {
		return res
	}
	member := func(addr, owner string) engine.Recipient {
		r := rt.Rewrite(engine.Request{Address: addr})
		return engine.Recipient{Address: r.Address, Channel: r.Channel, Host: r.Host, Sender: owner}
	}
	switch rw.Address {
	case "nobody@local.test":
	case "list@local.test":
		res.Recipients = []engine.Recipient{member("ann@local.test", "owner-list@local.test"), member("bob@remote.test", "owner-list@local.test")}
	case "big@local.test":
		res.Recipients = []engine.Recipient{member("a@local.test", ""), member("b@local.test", "")}
		res.Deferred, res.ExpandChannel = true, "reprocess"
	case "loop@local.test":
		res.Recipients = []engine.Recipient{{Address: rw.Address, Channel: "reprocess", Host: rw.Host}}
	case "held@local.test":
		res.Recipients = []engine.Recipient{{Address: rw.Address, Channel: "hold", Host: rw.Host}}
	default:
		res.Recipients = []engine.Recipient{member(rw.Address, "")}
	}
	return res
}

// tables answers from a list of (table, probe substring) rules and records every
// probe it is asked.
type tables struct {
	mu     sync.Mutex
	rules  []tableRule
	probes []string
}

type tableRule struct {
	table, contains string
	a               mappings.Access
}

func (t *tables) Access(table, probe string, in mappings.Flags) (mappings.Access, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.probes = append(t.probes, table+" "+probe)
	for _, r := range t.rules {
		if r.table == table && strings.Contains(probe, r.contains) {
			return r.a, true
		}
	}
	return mappings.Access{}, false
}

// memQueue keeps what is enqueued; the copies for failFrom fail.
type memQueue struct {
	mu       sync.Mutex
	envs     []*queue.Envelope
	failFrom string
}

func (q *memQueue) Enqueue(_ context.Context, env *queue.Envelope, _ []byte) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failFrom != "" && env.From == q.failFrom {
		return "", status.New(452, "4.3.1", "disk full")
	}
	e := *env
	e.ID = "Q" + string(rune('0'+len(q.envs)))
	q.envs = append(q.envs, &e)
	return e.ID, nil
}

type harness struct {
	in    *Intake
	rules *Rules
	q     *memQueue
	tab   *tables
	log   string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{q: &memQueue{}, tab: &tables{}, log: filepath.Join(t.TempDir(), "mail.log")}
	lg, err := maillog.Open(h.log, maillog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	h.in = &Intake{Queue: h.q, MailLog: lg}
	h.rules = &Rules{Resolver: routes{}, Access: h.tab, Hostname: "mx.test",
		Channels: map[string]Channel{"l": {}, "tcp_local": {}, "reprocess": {}, "hold": {}}}
	return h
}

// records are mail.log's lines without their date and time.
func (h *harness) records(t *testing.T) []string {
	t.Helper()
	h.in.MailLog.Close()
	b, err := os.ReadFile(h.log)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(l); len(f) > 2 {
			out = append(out, strings.Join(f[2:], " "))
		}
	}
	return out
}

var smtpOrigin = Origin{Kind: SMTP, Channel: "tcp_local", Client: &SMTPClient{Port: "TCP|127.0.0.1|25|192.0.2.7|4000", Helo: "client.test"},
	Description: "client.test ([192.0.2.7])", EnqueueCode: "EE"}

// TestProbes: each table is asked in its format, in the documented order, and
// only the tables of the origin's kind are asked.
func TestProbes(t *testing.T) {
	tests := []struct {
		name   string
		origin Origin
		orcpt  int
		want   []string
	}{
		{"SMTP", smtpOrigin, 0, []string{
			"FROM_ACCESS TCP|127.0.0.1|25|192.0.2.7|4000|SMTP/client.test|MAIL|tcp_local|s@remote.test|",
			"ORIG_SEND_ACCESS tcp_local|s@remote.test|l|x@local.test",
			"ORIG_MAIL_ACCESS TCP|127.0.0.1|25|192.0.2.7|4000|SMTP/client.test|MAIL|tcp_local|s@remote.test|l|x@local.test",
			"SEND_ACCESS tcp_local|s@remote.test|l|x@local.test",
			"MAIL_ACCESS TCP|127.0.0.1|25|192.0.2.7|4000|SMTP/client.test|MAIL|tcp_local|s@remote.test|l|x@local.test",
		}},
		{"SMTP with ACCESS_ORCPT=1", smtpOrigin, 1, []string{
			"FROM_ACCESS TCP|127.0.0.1|25|192.0.2.7|4000|SMTP/client.test|MAIL|tcp_local|s@remote.test|",
			"ORIG_SEND_ACCESS tcp_local|s@remote.test|l|x@local.test|rfc822;X@local.test",
			"ORIG_MAIL_ACCESS TCP|127.0.0.1|25|192.0.2.7|4000|SMTP/client.test|MAIL|tcp_local|s@remote.test|l|x@local.test|rfc822;X@local.test",
			"SEND_ACCESS tcp_local|s@remote.test|l|x@local.test|rfc822;X@local.test",
			"MAIL_ACCESS TCP|127.0.0.1|25|192.0.2.7|4000|SMTP/client.test|MAIL|tcp_local|s@remote.test|l|x@local.test|rfc822;X@local.test",
		}},
		{"ACCESS_ORCPT for SEND_ACCESS alone (bit 2)", Origin{Kind: Local, Channel: "l"}, 4, []string{
			"ORIG_SEND_ACCESS l|s@remote.test|l|x@local.test",
			"SEND_ACCESS l|s@remote.test|l|x@local.test|rfc822;X@local.test",
		}},
		{"hand-back: no table", Origin{Kind: Handback, Channel: "reprocess"}, 0, nil},
		{"notice: no table", Origin{Kind: Notice, Channel: "l"}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.rules.AccessORCPT = tt.orcpt
			tx, st := h.in.Begin(h.rules, tt.origin, "s@remote.test")
			if st != nil {
				t.Fatal(st)
			}
			if out := tx.AddRecipient(Recipient{Addr: "X@local.test"}); out.Refused != nil {
				t.Fatal(out.Refused)
			}
			if !slices.Equal(h.tab.probes, tt.want) {
				t.Errorf("probes\n%s\nwant\n%s", strings.Join(h.tab.probes, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestRecipientOutcomes: what one address becomes, and what is logged J.
func TestRecipientOutcomes(t *testing.T) {
	refuse := func(table, contains, text string) tableRule {
		return tableRule{table, contains, mappings.Access{Reject: true, Text: text}}
	}
	tests := []struct {
		name    string
		rules   []tableRule
		addr    string
		refused string   // the status, "" when accepted
		queued  []string // "channel addr" after the call
		logs    []string
	}{
		{name: "plain", addr: "x@remote.test", queued: []string{"tcp_local x@remote.test"}},
		{name: "unknown user", addr: "nobody@local.test", refused: "550 5.1.1 No such user nobody@local.test",
			logs: []string{"tcp_local l J 0 s@remote.test rfc822;nobody@local.test nobody@local.test - client.test ([192.0.2.7]) 550 5.1.1 No such user nobody@local.test"}},
		{name: "unroutable", addr: "x@bad.test", refused: "550 5.1.2 No mail for bad.test",
			logs: []string{"tcp_local tcp_local J 0 s@remote.test rfc822;x@bad.test x@bad.test - client.test ([192.0.2.7]) 550 5.1.2 No mail for bad.test"}},
		{name: "ORIG_SEND refuses", rules: []tableRule{refuse("ORIG_SEND_ACCESS", "|x@remote.test", "Relaying denied")},
			addr: "x@remote.test", refused: "550 5.7.1 Relaying denied x@remote.test",
			logs: []string{"tcp_local tcp_local J 0 s@remote.test rfc822;x@remote.test x@remote.test - client.test ([192.0.2.7]) 550 5.7.1 Relaying denied x@remote.test"}},
		{name: "one member refused, the other queued", rules: []tableRule{refuse("SEND_ACCESS", "|bob@remote.test", "No")},
			addr: "list@local.test", queued: []string{"l ann@local.test"},
			logs: []string{"tcp_local tcp_local J 0 s@remote.test rfc822;bob@remote.test bob@remote.test - client.test ([192.0.2.7]) 550 5.7.1 No bob@remote.test"}},
		{name: "every member refused: the address refused", rules: []tableRule{refuse("MAIL_ACCESS", "@", "No")},
			addr: "list@local.test", refused: "550 5.7.1 No ann@local.test",
			logs: []string{
				"tcp_local l J 0 s@remote.test rfc822;ann@local.test ann@local.test - client.test ([192.0.2.7]) 550 5.7.1 No ann@local.test",
				"tcp_local tcp_local J 0 s@remote.test rfc822;bob@remote.test bob@remote.test - client.test ([192.0.2.7]) 550 5.7.1 No bob@remote.test"}},
		{name: "temporary refusal by $X", rules: []tableRule{{"ORIG_SEND_ACCESS", "x@", mappings.Access{Reject: true, Enhanced: "4.2.1", Text: "Later"}}},
			addr: "x@remote.test", refused: "450 4.2.1 Later x@remote.test",
			logs: []string{"tcp_local tcp_local J 0 s@remote.test rfc822;x@remote.test x@remote.test - client.test ([192.0.2.7]) 450 4.2.1 Later x@remote.test"}},
		{name: "ORIG $B: accepted, nothing queued", rules: []tableRule{{"ORIG_SEND_ACCESS", "list@", mappings.Access{Bitbucket: true}}},
			addr: "list@local.test"},
		{name: "SEND $B drops one member", rules: []tableRule{{"SEND_ACCESS", "ann@", mappings.Access{Bitbucket: true}}},
			addr: "list@local.test", queued: []string{"tcp_local bob@remote.test"}},
		{name: "expandlimit: the alias to reprocess", addr: "big@local.test", queued: []string{"reprocess big@local.test"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.tab.rules = tt.rules
			tx, _ := h.in.Begin(h.rules, Origin{LogDescription: true, Kind: smtpOrigin.Kind, Channel: smtpOrigin.Channel,
				Client: smtpOrigin.Client, Description: smtpOrigin.Description}, "s@remote.test")
			out := tx.AddRecipient(Recipient{Addr: tt.addr})
			got := ""
			if out.Refused != nil {
				got = out.Refused.Error()
			}
			if got != tt.refused {
				t.Errorf("refused %q, want %q", got, tt.refused)
			}
			var queued []string
			for _, rc := range tx.Recipients() {
				queued = append(queued, rc.Channel+" "+rc.Addr)
			}
			if !slices.Equal(queued, tt.queued) {
				t.Errorf("queued %q, want %q", queued, tt.queued)
			}
			if logs := h.records(t); !slices.Equal(logs, tt.logs) && (len(logs) > 0 || len(tt.logs) > 0) {
				t.Errorf("mail.log\n%s\nwant\n%s", strings.Join(logs, "\n"), strings.Join(tt.logs, "\n"))
			}
		})
	}
}

// TestAccept: holds, copies, discards and E records of whole messages.
func TestAccept(t *testing.T) {
	msg := "Message-ID: <m@test>\r\nSubject: s\r\n\r\nbody\r\n"
	loop := strings.Repeat("Received: from a by mx.test; d\r\n", 10) + msg
	tests := []struct {
		name     string
		origin   Origin
		rules    []tableRule
		holdL    int // holdlimit of l
		rcpts    []string
		content  string
		failFrom string
		copies   []string // "from held-reason: channel addr, ..."
		held     string
		forced   bool
		discard  bool
		err      bool
		logs     []string
	}{
		{name: "one copy, E records with the SMTP code", origin: smtpOrigin, rcpts: []string{"a@local.test", "b@remote.test"}, content: msg,
			copies: []string{"s@remote.test : l a@local.test, tcp_local b@remote.test"},
			logs: []string{"tcp_local l EE 1 s@remote.test rfc822;a@local.test a@local.test Q0",
				"tcp_local tcp_local EE 1 s@remote.test rfc822;b@remote.test b@remote.test Q0"}},
		{name: "duplicates queued once", origin: smtpOrigin, rcpts: []string{"A@local.test", "a@local.test", "list@local.test", "ann@local.test"}, content: msg,
			copies: []string{"s@remote.test : l a@local.test", "owner-list@local.test : l ann@local.test, tcp_local bob@remote.test"}},
		{name: "access hold", origin: smtpOrigin, rules: []tableRule{{"SEND_ACCESS", "a@", mappings.Access{Hold: true, Src: "mappings:3"}}},
			rcpts: []string{"a@local.test"}, content: msg, held: "access: held by mappings:3",
			copies: []string{"s@remote.test access: held by mappings:3: l a@local.test"}},
		{name: "discard", origin: smtpOrigin, rules: []tableRule{{"ORIG_SEND_ACCESS", "a@", mappings.Access{Discard: true}}},
			rcpts: []string{"a@local.test", "b@remote.test"}, content: msg, discard: true},
		{name: "loop: held, ours counts", origin: smtpOrigin, rcpts: []string{"a@local.test"},
			content: "Received: from c by mx.test; d\r\n" + loop, held: "loop: 11 Received: lines by mx.test", forced: true,
			copies: []string{"s@remote.test loop: 11 Received: lines by mx.test: l a@local.test"}},
		{name: "holdlimit", origin: smtpOrigin, holdL: 1, rcpts: []string{"a@local.test", "b@local.test"}, content: msg,
			held: "holdlimit: 2 recipients for channel l (holdlimit 1)", forced: true,
			copies: []string{"s@remote.test holdlimit: 2 recipients for channel l (holdlimit 1): l a@local.test, l b@local.test"}},
		{name: "one copy fails: J for it, E for the other", origin: smtpOrigin, rcpts: []string{"b@remote.test", "list@local.test"},
			content: msg, failFrom: "owner-list@local.test", err: true,
			copies: []string{"s@remote.test : tcp_local b@remote.test"},
			logs: []string{"tcp_local tcp_local EE 1 s@remote.test rfc822;b@remote.test b@remote.test Q0",
				"tcp_local l J 1 owner-list@local.test rfc822;ann@local.test ann@local.test - 452 4.3.1 disk full",
				"tcp_local tcp_local J 1 owner-list@local.test rfc822;bob@remote.test bob@remote.test - 452 4.3.1 disk full"}},
		{name: "notice: NOTIFY=NEVER, code E", origin: Origin{Kind: Notice, Channel: "l"}, rcpts: []string{"a@local.test"}, content: msg,
			copies: []string{"s@remote.test : l a@local.test"},
			logs:   []string{"l l E 1 s@remote.test rfc822;a@local.test a@local.test Q0"}},
		{name: "hold channel keeps what its rules still send it", origin: Origin{Kind: Handback, Channel: "hold", SelfRoute: SelfHold},
			rcpts: []string{"held@local.test", "a@local.test"}, content: msg,
			copies: []string{"s@remote.test hold channel: hold held@local.test", "s@remote.test : l a@local.test"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.tab.rules = tt.rules
			h.q.failFrom = tt.failFrom
			h.rules.Channels["l"] = Channel{HoldLimit: tt.holdL}
			tx, _ := h.in.Begin(h.rules, tt.origin, "s@remote.test")
			for _, a := range tt.rcpts {
				if out := tx.AddRecipient(Recipient{Addr: a}); out.Refused != nil {
					t.Fatal(out.Refused)
				}
			}
			res, err := tx.Accept(context.Background(), Message{Content: []byte(tt.content)})
			if (err != nil) != tt.err {
				t.Fatalf("err %v", err)
			}
			if res.Discarded != tt.discard || res.Held != tt.held || res.Forced != tt.forced {
				t.Errorf("discarded %v held %q forced %v", res.Discarded, res.Held, res.Forced)
			}
			var copies []string
			for _, e := range h.q.envs {
				var rc []string
				for _, r := range e.Rcpts {
					rc = append(rc, r.Channel+" "+r.Addr)
					if tt.origin.Kind == Notice && r.Notify != "NEVER" {
						t.Errorf("notice recipient %s: NOTIFY %q", r.Addr, r.Notify)
					}
				}
				if e.MessageID != "<m@test>" || e.Source != tt.origin.Channel {
					t.Errorf("envelope fields: %+v", e)
				}
				copies = append(copies, e.From+" "+e.HeldReason+": "+strings.Join(rc, ", "))
			}
			slices.Sort(copies) // SMTP copies are enqueued concurrently
			if want := slices.Sorted(slices.Values(tt.copies)); !slices.Equal(copies, want) {
				t.Errorf("copies\n%s\nwant\n%s", strings.Join(copies, "\n"), strings.Join(tt.copies, "\n"))
			}
			if tt.logs != nil {
				logs := h.records(t)
				for i := range logs { // drop the Message-ID column, present when the log asks for it
					logs[i] = strings.Replace(logs[i], " <m@test>", "", 1)
				}
				slices.Sort(logs)
				want := slices.Sorted(slices.Values(tt.logs))
				if !slices.Equal(logs, want) {
					t.Errorf("mail.log\n%s\nwant\n%s", strings.Join(logs, "\n"), strings.Join(want, "\n"))
				}
			}
		})
	}
}

// TestHandbackLoopAndOrigins: a reprocess channel refuses what its rules send
// back to it, and each copy names the original recipients it came from.
func TestHandbackLoopAndOrigins(t *testing.T) {
	h := newHarness(t)
	tx, _ := h.in.Begin(h.rules, Origin{Kind: Handback, Channel: "reprocess"}, "s@remote.test")
	outs := []Outcome{
		tx.AddRecipient(Recipient{Addr: "list@local.test", Notify: "SUCCESS", ORCPT: "rfc822;list@local.test"}),
		tx.AddRecipient(Recipient{Addr: "loop@local.test"}),
		tx.AddRecipient(Recipient{Addr: "ann@local.test"}),
	}
	if outs[1].Refused == nil || outs[1].Refused.Enhanced != "5.4.6" {
		t.Fatalf("routed back to itself: %v", outs[1].Refused)
	}
	res, err := tx.Accept(context.Background(), Message{Content: []byte("\r\nx\r\n"), Arrival: time.Unix(1e9, 0)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Copies {
		if !c.Envelope.Arrival.Equal(time.Unix(1e9, 0)) {
			t.Errorf("arrival not kept: %v", c.Envelope.Arrival)
		}
	}
	// ann@local.test came from call 0 (through the list, with the owner as sender)
	// and from call 2: one recipient, both origins, the first sender; then
	// bob@remote.test from call 0.
	if len(res.Copies) != 1 || !slices.Equal(res.Copies[0].Origins, []int{0, 2, 0}) ||
		res.Copies[0].Envelope.From != "owner-list@local.test" {
		for _, c := range res.Copies {
			t.Logf("copy from %s origins %v rcpts %+v", c.Envelope.From, c.Origins, c.Envelope.Rcpts)
		}
		t.Fatal("wrong copies")
	}
	if r := res.Copies[0].Envelope.Rcpts[0]; r.Notify != "SUCCESS" || r.ORCPT != "rfc822;list@local.test" || r.Orig != "list@local.test" {
		t.Errorf("NOTIFY/ORCPT/Orig not kept: %+v", r)
	}
}

// TestBeginFromAccess: FROM_ACCESS refuses an SMTP sender, logged J, and its
// $H holds the message.
func TestBeginFromAccess(t *testing.T) {
	h := newHarness(t)
	h.tab.rules = []tableRule{
		{"FROM_ACCESS", "|bad@remote.test|", mappings.Access{Reject: true, Text: "Go away"}},
		{"FROM_ACCESS", "|hold@remote.test|", mappings.Access{Hold: true}},
	}
	if _, st := h.in.Begin(h.rules, smtpOrigin, "bad@remote.test"); st == nil || st.Error() != "550 5.7.1 Go away bad@remote.test" {
		t.Errorf("refusal %v", st)
	}
	tx, st := h.in.Begin(h.rules, smtpOrigin, "hold@remote.test")
	if st != nil {
		t.Fatal(st)
	}
	tx.AddRecipient(Recipient{Addr: "a@local.test"})
	res, err := tx.Accept(context.Background(), Message{Content: []byte("\r\n")})
	if err != nil || res.Held != "access: held by access mapping" {
		t.Errorf("held %q, err %v", res.Held, err)
	}
	if l := h.records(t); len(l) != 2 || !strings.Contains(l[0], "J 0 bad@remote.test") {
		t.Errorf("mail.log %q", l)
	}
	if _, st := h.in.Begin(h.rules, Origin{Kind: Local, Channel: "l"}, "bad@remote.test"); st != nil {
		t.Errorf("FROM_ACCESS asked for a local submission: %v", st)
	}
}

// TestNoResolver: routing unavailable is a temporary refusal, never a bounce.
func TestNoResolver(t *testing.T) {
	h := newHarness(t)
	h.rules.Resolver = nil
	tx, _ := h.in.Begin(h.rules, smtpOrigin, "")
	out := tx.AddRecipient(Recipient{Addr: "a@local.test"})
	if out.Refused == nil || !out.Refused.Temporary() {
		t.Errorf("%v", out.Refused)
	}
}
