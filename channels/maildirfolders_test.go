package channels

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"mtad.dev/mta/status"
)

func TestMaildirFolderNames(t *testing.T) {
	good := map[string]string{
		"":              "",
		"INBOX":         "",
		"inbox":         "",
		"Junk":          ".Junk",
		"INBOX.Junk":    ".Junk",
		"INBOX/Junk":    ".Junk",
		"Lists/Go":      ".Lists.Go",
		"Lists.Go":      ".Lists.Go",
		"Tom & Jerry":   ".Tom &- Jerry",
		"Entwürfe":      ".Entw&APw-rfe",
		"台北":            ".&U,BTFw-",
		"~peter/mail":   ".~peter.mail",
		"Inbox2":        ".Inbox2",
		"INBOXES.stuff": ".INBOXES.stuff",
	}
	for in, want := range good {
		got, err := MaildirFolder(in)
		if err != nil || got != want {
			t.Errorf("MaildirFolder(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"..", "a/../b", ".hidden", "a//b", "a.", "/abs", "tab\there", "\xff", strings.Repeat("x", 300)} {
		if got, err := MaildirFolder(bad); err == nil {
			t.Errorf("MaildirFolder(%q) = %q, want an error", bad, got)
		}
	}
}

func TestMaildirInfo(t *testing.T) {
	cases := map[string]string{
		"":                         "",
		`\Seen`:                    ":2,S",
		`\Flagged \Seen \Answered`: ":2,FRS",
		`\Deleted \Draft \seen`:    ":2,DST",
		`$Junk`:                    "",
		`\Seen \Seen`:              ":2,S",
	}
	for in, want := range cases {
		if got := maildirInfo(strings.Fields(in)); got != want {
			t.Errorf("maildirInfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// planFilter returns a fixed plan and records the request.
type planFilter struct {
	plan FilterPlan
	req  *FilterRequest
}

func (p *planFilter) FilterMailbox(_ context.Context, req *FilterRequest) FilterPlan {
	p.req = req
	return p.plan
}

var filedName = regexp.MustCompile(`^(\.[^/]+/)?(new|cur)/\d+\.M\d+P\d+Q\d+\.mx,S=\d+(:2,[A-Z]+)?$`)

// TestMaildirFilterPlans: the filter's filings become files in the right
// folders with the right flags and content; a rejection is the recipient's
// result; nothing stored for an empty plan.
func TestMaildirFilterPlans(t *testing.T) {
	content := []byte("Subject: hi\r\n\r\nbody\r\n")
	cases := []struct {
		name  string
		plan  FilterPlan
		files []string // relative to root/bob, after the name pattern check
		reply string   // the Reply with the file names replaced by NAME
	}{
		{"keep", FilterPlan{Filings: []Filing{{}}}, []string{"new/"}, "maildir;new/NAME"},
		{"fileinto with flags", FilterPlan{Filings: []Filing{{Folder: "Lists/Go", Flags: []string{`\Seen`, `\Flagged`}}}, Note: "filed"},
			[]string{".Lists.Go/cur/"}, "maildir;.Lists.Go/cur/NAME (filed)"},
		{"two copies, edited", FilterPlan{Filings: []Filing{{}, {Folder: "Junk"}}, Content: []byte("Subject: [SPAM] hi\r\n\r\nbody\r\n")},
			[]string{"new/", ".Junk/new/"}, "maildir;new/NAME .Junk/new/NAME"},
		{"unsafe folder kept in INBOX", FilterPlan{Filings: []Filing{{Folder: "../x"}}}, []string{"new/"},
			`maildir;new/NAME (folder "../x" kept in INBOX: folder name has an empty level)`},
		{"discarded", FilterPlan{Note: "discarded by filter"}, nil, "maildir;discarded by filter"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			pf := &planFilter{plan: c.plan}
			md := NewMaildirWithOptions(root, "mx", MaildirOptions{Filter: pf})
			res := md.Deliver(context.Background(), msgOf(content, "s@example.org", "Bob+x@example.com"))
			if res[0].Err != nil {
				t.Fatal(res[0].Err)
			}
			if pf.req.Mailbox != "bob" || pf.req.Folder != "" || string(pf.req.Content) != string(content) {
				t.Errorf("request: mailbox %q folder %q content %q", pf.req.Mailbox, pf.req.Folder, pf.req.Content)
			}
			reply := res[0].Reply
			names := strings.Fields(strings.SplitN(strings.TrimPrefix(reply, "maildir;"), " (", 2)[0])
			if len(c.files) == 0 {
				names = nil
			}
			for i, n := range names {
				if !filedName.MatchString(n) || !strings.HasPrefix(n, c.files[i]) {
					t.Errorf("file %q, want one under %q", n, c.files[i])
					continue
				}
				b, err := os.ReadFile(filepath.Join(root, "bob", n))
				want := string(content)
				if c.plan.Content != nil {
					want = string(c.plan.Content)
				}
				want = strings.ReplaceAll(want, "\r\n", "\n") // a Maildir stores LF
				if err != nil || !strings.HasSuffix(string(b), want) {
					t.Errorf("%s: %q, %v", n, b, err)
				}
				reply = strings.Replace(reply, n[strings.LastIndex(n, "/")+1:], "NAME", 1)
			}
			if reply != c.reply {
				t.Errorf("reply %q, want %q", reply, c.reply)
			}
			if c.plan.Filings != nil && c.plan.Filings[0].Folder == "Lists/Go" {
				if _, err := os.Stat(filepath.Join(root, "bob", ".Lists.Go", "maildirfolder")); err != nil {
					t.Error(err)
				}
				if !strings.HasSuffix(names[0], ":2,FS") {
					t.Errorf("flags: %s", names[0])
				}
			}
		})
	}
	t.Run("rejected", func(t *testing.T) {
		md := NewMaildirWithOptions(t.TempDir(), "mx", MaildirOptions{Filter: &planFilter{plan: FilterPlan{Err: status.New(550, "5.7.1", "go away")}}})
		res := md.Deliver(context.Background(), msgOf(content, "s@example.org", "bob@example.com"))
		if res[0].Err == nil || res[0].Err.Temporary() || res[0].ConnFailed {
			t.Errorf("result %+v", res[0])
		}
	})
}

// TestMaildirFolderFromDetail: with a fileinto template on the channel, the
// subaddress names the folder; without a filter the folder is created on demand.
func TestMaildirFolderFromDetail(t *testing.T) {
	root := t.TempDir()
	md := NewMaildirWithOptions(root, "mx", MaildirOptions{FolderFromDetail: true})
	res := md.Deliver(context.Background(), msgOf([]byte("x\r\n"), "", "bob+Junk@example.com", "bob@example.com"))
	if !strings.HasPrefix(res[0].Reply, "maildir;.Junk/new/") || !strings.HasPrefix(res[1].Reply, "maildir;new/") {
		t.Errorf("replies %q %q", res[0].Reply, res[1].Reply)
	}
	pf := &planFilter{plan: FilterPlan{Filings: []Filing{{Folder: "Other"}}}}
	md = NewMaildirWithOptions(root, "mx", MaildirOptions{FolderFromDetail: true, Filter: pf})
	md.Deliver(context.Background(), msgOf([]byte("x\r\n"), "", "bob+Junk@example.com"))
	if pf.req.Folder != "Junk" {
		t.Errorf("the filter was told folder %q", pf.req.Folder)
	}
}
