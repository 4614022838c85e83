package filter

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/channels"
)

const personalMessage = "Received: from x by mx.example.com\r\nFrom: Ann <ann@example.org>\r\nTo: bob@example.com\r\n" +
	"Subject: lunch?\r\nMessage-ID: <m2@example.org>\r\n\r\nTomorrow?\r\n"

func mailboxRequest(from, rcpt, folder, content string) *channels.FilterRequest {
	mbox, _ := channels.MailboxOf(rcpt)
	return &channels.FilterRequest{Message: &channels.Message{ID: "q1", From: from}, Rcpt: channels.Rcpt{Addr: rcpt},
		Mailbox: mbox, Folder: folder, Content: []byte(content)}
}

// plan is a FilterPlan in one line: the filings (folder and flags), "edited"
// when the content changed, the error and the note.
func planString(p channels.FilterPlan) string {
	var parts []string
	for _, f := range p.Filings {
		parts = append(parts, fmt.Sprintf("%q%v", f.Folder, f.Flags))
	}
	s := strings.Join(parts, " ")
	if p.Content != nil {
		s += " edited"
	}
	if p.Err != nil {
		s += " err=" + p.Err.Error()
	}
	if p.Note != "" {
		s += " note=" + p.Note
	}
	return strings.TrimSpace(s)
}

func TestUserFilters(t *testing.T) {
	cases := []struct {
		name, script, from, folder, content string
		want                                string
		subs                                []string
	}{
		{name: "no script", want: `""[]`},
		{name: "implicit keep into the subaddress folder", script: "if false { discard; }", folder: "Lists", want: `"Lists"[]`},
		{name: "fileinto with flags", script: `require ["fileinto", "imap4flags"]; fileinto :flags "\\Seen" "Lunch"; addflag "\\Flagged"; keep;`,
			want: `"Lunch"[\Seen] ""[\Flagged] note=fileinto "Lunch" :flags "\\Seen"; keep :flags "\\Flagged"`},
		{name: "same folder once", script: `require "fileinto"; fileinto "INBOX"; keep;`, want: `"INBOX"[] note=fileinto "INBOX"; keep`},
		{name: "discard", script: "discard;", want: "note=discarded by filter at sieve/bob.sieve:1"},
		{name: "reject", script: `require "reject"; reject "I don't eat lunch";`,
			want: "err=550 5.7.1 I don't eat lunch note=rejected by filter at sieve/bob.sieve:1"},
		{name: "addheader", script: `require "editheader"; addheader "X-Seen-By" "sieve";`, want: `""[] edited note=addheader "X-Seen-By" "sieve"`},
		{name: "redirect", script: `redirect "bob@elsewhere.example";`, want: "note=redirected to bob@elsewhere.example",
			subs: []string{"ann@example.org -> bob@elsewhere.example: Delivered-To:"}},
		{name: "redirect loop", script: `redirect "bob@elsewhere.example";`,
			content: "Delivered-To: bob@example.com\r\n" + personalMessage,
			want:    `""[] note=redirect to bob@elsewhere.example at sieve/bob.sieve:1 refused: mail loop (delivered to bob@example.com before); kept`},
		{name: "redirect to self", script: `redirect "Bob@example.com";`,
			want: `""[] note=redirect to Bob@example.com at sieve/bob.sieve:1 refused: mail loop (delivered to bob@example.com before); kept`},
		{name: "vacation", script: `require "vacation"; vacation :days 3 "Out until Monday.";`,
			want: `""[] note=vacation answer sent to ann@example.org`,
			subs: []string{"<> -> ann@example.org: Date:"}},
		{name: "vacation not to lists", script: `require "vacation"; vacation "Out.";`,
			content: "List-Id: <l.example.org>\r\n" + personalMessage,
			want:    `""[] note=vacation not sent: message is list mail`},
		{name: "vacation not to <>", script: `require "vacation"; vacation "Out.";`, from: "<>",
			want: `""[] note=vacation not sent: null envelope sender`},
		{name: "vacation not to ourselves", script: `require "vacation"; vacation "Out.";`, from: "postmaster@example.com",
			want: `""[] note=vacation not sent: the sender is this MTA`},
		{name: "broken script keeps", script: "if true { fileinot \"x\"; }", folder: "Lists",
			want: `"Lists"[] note=filter sieve/bob.sieve failed, message kept: sieve/bob.sieve:1:11: unknown command "fileinot"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := map[string]string{}
			if c.script != "" {
				files["sieve/bob.sieve"] = c.script
			}
			f := newFixture(t, files)
			u := &Users{Deps: f.deps(), Settings: f.settings(), ConfigDir: f.dir,
				Vacations: NewVacationStore(filepath.Join(t.TempDir(), "vacation"))}
			from := c.from
			switch from {
			case "":
				from = "ann@example.org"
			case "<>":
				from = ""
			}
			content := c.content
			if content == "" {
				content = personalMessage
			}
			got := planString(u.ForChannel("ssrd:$A").FilterMailbox(context.Background(), mailboxRequest(from, "bob@example.com", c.folder, content)))
			if got != c.want {
				t.Errorf("plan\n%s\nwant\n%s", got, c.want)
			}
			if subs := f.submissions(); strings.Join(subs, "\n") != strings.Join(c.subs, "\n") {
				t.Errorf("submissions %q, want %q", subs, c.subs)
			}
		})
	}
}

// TestVacationOncePerSender: one answer per sender per :days, remembered by a
// new store on the same directory (a restart), and again after the days.
func TestVacationOncePerSender(t *testing.T) {
	f := newFixture(t, map[string]string{"sieve/bob.sieve": `require "vacation"; vacation :days 2 :subject "Away" "Out.";`})
	dir := filepath.Join(t.TempDir(), "vacation")
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	run := func(store *VacationStore, from string) string {
		d := f.deps()
		d.Now = func() time.Time { return now }
		u := &Users{Deps: d, Settings: f.settings(), ConfigDir: f.dir, Vacations: store}
		return u.ForChannel("ssrd:$A").FilterMailbox(context.Background(), mailboxRequest(from, "bob@example.com", "", personalMessage)).Note
	}
	steps := []struct {
		store *VacationStore
		from  string
		after time.Duration
		want  string
	}{
		{NewVacationStore(dir), "ann@example.org", 0, "vacation answer sent to ann@example.org"},
		{nil, "ann@example.org", time.Hour, "vacation not sent: ann@example.org was answered less than 2 day(s) ago"},
		{NewVacationStore(dir), "ANN@example.org", 24 * time.Hour, "vacation not sent: ANN@example.org was answered less than 2 day(s) ago"},
		{nil, "cy@example.org", 0, "vacation answer sent to cy@example.org"},
		{nil, "ann@example.org", 25 * time.Hour, "vacation answer sent to ann@example.org"},
	}
	var store *VacationStore
	for i, s := range steps {
		if s.store != nil {
			store = s.store
		}
		now = now.Add(s.after)
		if got := run(store, s.from); got != s.want {
			t.Errorf("step %d: %q, want %q", i, got, s.want)
		}
	}
	if len(f.subs) != 3 {
		t.Fatalf("%d answers sent, want 3", len(f.subs))
	}
	a := string(f.subs[0].Content)
	for _, want := range []string{"From: <bob@example.com>\r\n", "To: <ann@example.org>\r\n", "Subject: Away\r\n",
		"In-Reply-To: <m2@example.org>\r\n", "Auto-Submitted: auto-replied (vacation)\r\n", "\r\n\r\nOut.\r\n"} {
		if !strings.Contains(a, want) {
			t.Errorf("answer lacks %q:\n%s", want, a)
		}
	}
	if f.subs[0].From != "" || !f.subs[0].Notice {
		t.Errorf("an answer goes from <> as a notice: %+v", f.subs[0])
	}
}
