package filter

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mtad.dev/mta/intake"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/queue"
)

// fixture is a configuration directory with filter files, a mail.log, and a
// submitter that keeps what it is given.
type fixture struct {
	dir  string
	log  *maillog.Logger
	path string
	mu   sync.Mutex
	subs []*Submission
}

func newFixture(t *testing.T, files map[string]string) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir()}
	for name, text := range files {
		p := filepath.Join(f.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f.path = filepath.Join(t.TempDir(), "mail.log")
	var err error
	if f.log, err = maillog.Open(f.path, maillog.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.log.Close() })
	return f
}

func (f *fixture) deps() Deps {
	return Deps{Scripts: NewCache(nil, -1), MailLog: f.log,
		Now: func() time.Time { return time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC) },
		Submit: func(_ context.Context, s *Submission) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.subs = append(f.subs, s)
			return nil
		}}
}

func (f *fixture) settings() Settings {
	return Settings{Hostname: "mx.example.com", Postmaster: "postmaster@example.com", AddResent: true, Discard: 1, Jettison: 1}
}

// submissions are what was submitted, one line each: "from -> to: Field:",
// the name of the first header field of the content.
func (f *fixture) submissions() []string {
	var out []string
	for _, s := range f.subs {
		from := s.From
		if from == "" {
			from = "<>"
		}
		first, _, _ := strings.Cut(string(s.Content), " ")
		out = append(out, from+" -> "+strings.Join(s.To, ",")+": "+first)
	}
	return out
}

// records are mail.log's lines without date and time.
func (f *fixture) records(t *testing.T) []string {
	t.Helper()
	f.log.Close()
	b, _ := os.ReadFile(f.path)
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if fs := strings.Fields(l); len(fs) > 2 {
			out = append(out, strings.Join(fs[2:], " "))
		}
	}
	return out
}

const bulkMessage = "Received: from x by mx.example.com\r\nFrom: a@example.org\r\nTo: bob@example.com\r\n" +
	"Subject: buy now\r\nPrecedence: bulk\r\nMessage-ID: <m1@example.org>\r\n\r\nHello\r\n"

var (
	bob   = queue.Recipient{Addr: "bob@example.com", Channel: "l"}
	carol = queue.Recipient{Addr: "carol@example.com", Channel: "l"}
	dave  = queue.Recipient{Addr: "dave@remote.example", Channel: "tcp_local"}
)

// summary is a result in one line per recipient: its deliveries as
// channel:address, "+" when the content was edited, and the note.
func summary(res *intake.FilterResult, req *intake.FilterRequest) []string {
	var out []string
	for i, fr := range res.Rcpts {
		s := req.Rcpts[i].Addr + " ->"
		for _, d := range fr.Deliveries {
			ch, addr := d.Channel, d.Addr
			if ch == "" {
				ch = req.Rcpts[i].Channel
			}
			if addr == "" {
				addr = req.Rcpts[i].Addr
			}
			s += " " + ch + ":" + addr
			if d.Notify != "" {
				s += "/" + d.Notify
			}
			if d.Content != nil {
				s += "+"
			}
			if d.Note != "" {
				s += " [" + d.Note + "]"
			}
		}
		out = append(out, s)
	}
	return out
}

func TestSystemFilters(t *testing.T) {
	files := map[string]string{
		"l.filter":          "require \"fileinto\";\nif header :is \"Precedence\" \"bulk\" {\n  fileinto \"Bulk\";\n}\n",
		"tcp.filter":        "require \"fileinto\";\nfileinto \"Elsewhere\";\n",
		"reject.filter":     "require \"reject\";\nreject \"no\r\n  thanks\";\n",
		"broken.filter":     "if true { fileinot \"x\"; }\n",
		"sieve/bob.sieve":   "require \"fileinto\";\nfileinto \"Mine\";\n",
		"sieve/carol.sieve": "keep;\n",
	}
	cases := []struct {
		name     string
		mta      string
		channels map[string]ChannelFilters
		kind     intake.Kind
		rcpts    []queue.Recipient
		park     bool
		want     []string // summary; nil: no result
		refused  string
		records  []string // substrings, one per record, in order
		subs     []string // "from -> to: first line" per submission
	}{
		{name: "no filter", rcpts: []queue.Recipient{bob}},
		{name: "addtag", mta: `if header :contains "Subject" "buy" { addtag "[SPAM]"; }`, rcpts: []queue.Recipient{bob, dave},
			want: []string{`bob@example.com -> l:bob@example.com+ [addtag "[SPAM]"]`, `dave@remote.example -> tcp_local:dave@remote.example+ [addtag "[SPAM]"]`}},
		{name: "destination fileinto through the template", rcpts: []queue.Recipient{bob, dave},
			channels: map[string]ChannelFilters{"l": {Destination: "file:IMTA_TABLE:l.filter", FileInto: "$U+$S@$D"},
				"tcp_local": {Destination: "file:tcp.filter"}},
			want: []string{`bob@example.com -> l:bob+Bulk@example.com [fileinto "Bulk"]`,
				`dave@remote.example -> tcp_local:dave@remote.example [fileinto "Elsewhere"; a keep on channel tcp_local, which has no fileinto template]`}},
		{name: "discard", mta: "discard;", rcpts: []queue.Recipient{bob, dave},
			want:    []string{"bob@example.com ->", "dave@remote.example ->"},
			records: []string{"tcp_local D 1 a@example.org rfc822;bob@example.com bob@example.com - discarded by filter at imta.filter:1", "discarded by filter"}},
		{name: "discard parked", mta: "discard;", rcpts: []queue.Recipient{bob}, park: true,
			want: []string{"bob@example.com -> filter_discard:bob@example.com/NEVER [discarded by filter at imta.filter:1]"}},
		{name: "discard, the user keeps", mta: "discard;", rcpts: []queue.Recipient{bob, carol, dave},
			channels: map[string]ChannelFilters{"l": {User: "ssrd:$A"}},
			want: []string{"bob@example.com -> l:bob@example.com [discarded by filter at imta.filter:1, kept by the user's own filter]",
				"carol@example.com -> l:carol@example.com [discarded by filter at imta.filter:1, kept by the user's own filter]",
				"dave@remote.example ->"},
			records: []string{"dave@remote.example - discarded by filter"}},
		{name: "jettison beats the user's keep", mta: "jettison;", rcpts: []queue.Recipient{bob},
			channels: map[string]ChannelFilters{"l": {User: "ssrd:$A"}},
			want:     []string{"bob@example.com ->"}, records: []string{"jettisoned at imta.filter:1"}},
		{name: "every recipient rejected", rcpts: []queue.Recipient{bob, carol},
			channels: map[string]ChannelFilters{"l": {Destination: "file:reject.filter"}},
			refused:  "550 5.7.1 no thanks",
			records:  []string{"tcp_local l J 1 a@example.org rfc822;bob@example.com bob@example.com - 550 5.7.1 no thanks (filter at reject.filter:2)", " J "}},
		{name: "some recipients rejected", rcpts: []queue.Recipient{bob, dave},
			channels: map[string]ChannelFilters{"tcp_local": {Destination: "file:reject.filter"}},
			want:     []string{"bob@example.com -> l:bob@example.com", "dave@remote.example ->"},
			records:  []string{"tcp_local tcp_local J 1 a@example.org rfc822;dave@remote.example dave@remote.example"},
			subs:     []string{"<> -> a@example.org: Content-Type:"}},
		{name: "redirect :copy", mta: `require "copy"; redirect :copy "archive@example.net";`, rcpts: []queue.Recipient{bob},
			want: []string{`bob@example.com -> l:bob@example.com [redirect :copy "archive@example.net"]`},
			subs: []string{"a@example.org -> archive@example.net: Resent-Date:"}},
		{name: "redirect", mta: `redirect :noresent :resetmailfrom "archive@example.net";`, rcpts: []queue.Recipient{bob},
			want:    []string{"bob@example.com ->"},
			records: []string{"redirected by filter to archive@example.net"},
			subs:    []string{"postmaster@example.com -> archive@example.net: Received:"}},
		{name: "broken channel filter passes", rcpts: []queue.Recipient{bob},
			channels: map[string]ChannelFilters{"l": {Destination: "file:broken.filter"}},
			want:     []string{`bob@example.com -> l:bob@example.com [filter file:broken.filter failed, ignored: broken.filter:1:11: unknown command "fileinot"]`}},
		{name: "hand-back: destination filters only", mta: "discard;", kind: intake.Handback, rcpts: []queue.Recipient{bob},
			channels: map[string]ChannelFilters{"l": {Destination: "file:l.filter", FileInto: "$U+$S@$D"}},
			want:     []string{`bob@example.com -> l:bob+Bulk@example.com [fileinto "Bulk"]`}},
		{name: "hand-back: a rejection is a notice", kind: intake.Handback, rcpts: []queue.Recipient{bob},
			channels: map[string]ChannelFilters{"l": {Destination: "file:reject.filter"}},
			want:     []string{"bob@example.com ->"},
			records:  []string{" J 1 a@example.org rfc822;bob@example.com bob@example.com - 550 5.7.1 no thanks"},
			subs:     []string{"<> -> a@example.org: Content-Type:"}},
		{name: "notices are not filtered", mta: "discard;", kind: intake.Notice, rcpts: []queue.Recipient{bob}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, files)
			s := &System{Deps: f.deps(), Settings: f.settings(), Channels: c.channels, ConfigDir: f.dir}
			if c.park {
				s.Discard, s.DiscardChannel = 2, "filter_discard"
			}
			if c.mta != "" {
				sc, err := Compile("imta.filter", []byte(c.mta), LevelSystem)
				if err != nil {
					t.Fatal(err)
				}
				s.MTA = sc
			}
			s.Users = &Users{Deps: s.Deps, Settings: s.Settings, ConfigDir: f.dir}
			kind := c.kind
			if kind == 0 {
				kind = intake.SMTP
			}
			req := &intake.FilterRequest{Origin: &intake.Origin{Kind: kind, Channel: "tcp_local"}, From: "a@example.org",
				Rcpts: c.rcpts, Content: []byte(bulkMessage)}
			res := s.Filter(context.Background(), req)
			switch {
			case c.want == nil && c.refused == "" && res != nil:
				t.Fatalf("result %+v, want none", res)
			case c.refused != "":
				if res == nil || res.Refused == nil || res.Refused.Error() != c.refused {
					t.Fatalf("refused %v, want %q", res, c.refused)
				}
			case c.want != nil:
				if got := summary(res, req); !slices.Equal(got, c.want) {
					t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
				}
				if res.After != nil {
					res.After(context.Background())
				}
			}
			recs := f.records(t)
			if len(recs) != len(c.records) {
				t.Errorf("records\n%s\nwant %d", strings.Join(recs, "\n"), len(c.records))
			}
			for i := range min(len(recs), len(c.records)) {
				if !strings.Contains(recs[i], c.records[i]) {
					t.Errorf("record %q, want it to contain %q", recs[i], c.records[i])
				}
			}
			if subs := f.submissions(); !slices.Equal(subs, c.subs) {
				t.Errorf("submissions %q, want %q", subs, c.subs)
			}
		})
	}
}

// TestChannelFilterEdits: an edit of a channel filter's file takes effect
// without anything being rebuilt.
func TestChannelFilterEdits(t *testing.T) {
	f := newFixture(t, map[string]string{"l.filter": "keep;\n"})
	s := &System{Deps: f.deps(), Settings: f.settings(), ConfigDir: f.dir,
		Channels: map[string]ChannelFilters{"l": {Destination: "file:l.filter"}}}
	req := &intake.FilterRequest{Origin: &intake.Origin{Kind: intake.SMTP, Channel: "tcp_local"}, From: "a@example.org",
		Rcpts: []queue.Recipient{bob}, Content: []byte(bulkMessage)}
	if got := summary(s.Filter(context.Background(), req), req); got[0] != "bob@example.com -> l:bob@example.com [keep]" {
		t.Fatal(got)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "l.filter"), []byte("discard;\n# now longer\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := summary(s.Filter(context.Background(), req), req); got[0] != "bob@example.com ->" {
		t.Errorf("after the edit: %v", got)
	}
}

// TestLogFilterPositions: with LOG_FILTER every action in a record says the
// script position that took it, a dropped recipient's record included.
func TestLogFilterPositions(t *testing.T) {
	f := newFixture(t, nil)
	s := &System{Deps: f.deps(), Settings: f.settings()}
	s.LogFilter = true
	sc, err := Compile("imta.filter", []byte("addtag \"[X]\";\nif address :is \"to\" \"dave@remote.example\" { discard; }\n"), LevelSystem)
	if err != nil {
		t.Fatal(err)
	}
	s.MTA = sc
	req := &intake.FilterRequest{Origin: &intake.Origin{Kind: intake.SMTP, Channel: "tcp_local"}, From: "a@example.org",
		Rcpts: []queue.Recipient{bob}, Content: []byte(bulkMessage)}
	if got := summary(s.Filter(context.Background(), req), req); got[0] != `bob@example.com -> l:bob@example.com+ [imta.filter:1: addtag "[X]"]` {
		t.Errorf("queued: %s", got[0])
	}
	req.Rcpts = []queue.Recipient{dave}
	req.Content = []byte(strings.Replace(bulkMessage, "To: bob@example.com", "To: dave@remote.example", 1))
	s.Filter(context.Background(), req)
	if recs := f.records(t); len(recs) != 1 || !strings.HasSuffix(recs[0], `discarded by filter at imta.filter:2; imta.filter:1: addtag "[X]"; imta.filter:2: discard`) {
		t.Errorf("records %q", recs)
	}
}
