package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// filterConfig is a configuration with every kind of filter: imta.filter, a
// destination filter on the outbound channel, users' filters (ssrd:, so
// sieve/<user>.sieve) and the fileinto template on the local channel, and the
// filter_discard channel. Everything not local goes to the sink.
func filterConfig(t *testing.T, sinkPort int, option string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sieve"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"imta.cnf": fmt.Sprintf(`localhost        $U%%$D@localhost
.                $U%%$H@tcp-daemon

l filter ssrd:$A fileinto $U+$S@$D
localhost

tcp_local smtp nomx single_sys daemon 127.0.0.1 port %d destinationfilter file:IMTA_TABLE:out.filter
tcp-daemon

filter_discard notices 1
filter_discard-daemon
`, sinkPort),
		"option.dat": option,
		"imta.filter": `require ["fileinto", "reject"];
if header :contains "Subject" "reject me" { reject "Not here."; }
elsif header :is "Precedence" "bulk" { fileinto "Bulk"; }
if header :contains "Subject" "drop me" { discard; }
`,
		"out.filter":       `addheader "X-Outbound: yes";` + "\n",
		"sieve/bob.sieve":  "require [\"fileinto\", \"imap4flags\"];\nif header :contains \"Subject\" \"lunch\" {\n  fileinto :flags \"\\\\Seen\" \"Lunch\";\n}\n",
		"sieve/vic.sieve":  "require \"vacation\";\nvacation :days 1 :subject \"Away\" \"I am away.\";\n",
		"sieve/fwd.sieve":  "require \"copy\";\nredirect :copy \"target@remote.example\";\n",
		"sieve/rej.sieve":  "require \"reject\";\nreject \"no thanks\";\n",
		"sieve/loop.sieve": "redirect \"loop@localhost\";\n",
	}
	writeConfig(t, dir, files)
	return dir
}

// waitFolder waits for n messages in a folder ("" INBOX, ".Bulk" ...) of a
// mailbox, in new/ or cur/, and returns their names and contents.
func waitFolder(t *testing.T, data, mailbox, folder, sub string, n int) (names []string, contents [][]byte) {
	t.Helper()
	dir := filepath.Join(data, "mailboxes", mailbox, folder, sub)
	deadline := time.Now().Add(15 * time.Second)
	for {
		ents, _ := os.ReadDir(dir)
		if len(ents) >= n {
			for _, e := range ents {
				b, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				names, contents = append(names, e.Name()), append(contents, b)
			}
			return names, contents
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d messages after 15 s, want %d", dir, len(ents), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLog waits until mail.log has a line containing every one of parts.
func waitLogLine(t *testing.T, d *Daemon, data string, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		d.mlog.Sync(context.Background())
		b, _ := os.ReadFile(filepath.Join(data, "mail.log"))
		for _, line := range strings.Split(string(b), "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail.log line with %q:\n%s", parts, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func filterMsg(subject string, extra ...string) []byte {
	h := "From: Sender <sender@remote.example>\r\nTo: someone@localhost\r\nSubject: " + subject + "\r\nMessage-ID: <" +
		strings.ReplaceAll(subject, " ", ".") + "@remote.example>\r\n"
	for _, e := range extra {
		h += e + "\r\n"
	}
	return []byte(h + "\r\nbody\r\n")
}

// TestFilterEndToEnd: SMTP in, filters applied, the outcome observed where it
// lands: a Maildir++ folder with flags, a refusal in the SMTP dialogue, a
// discard in mail.log, a destination filter's edit at the remote server, a
// redirected copy, a vacation answer once per sender, a user's rejection as a
// notice to the sender.
func TestFilterEndToEnd(t *testing.T) {
	sink := newSink(t)
	d, data := startDaemon(t, filterConfig(t, sink.port, ""))
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")

	// imta.filter's fileinto, through the fileinto template, and bob's own.
	c.Send("sender@remote.example", []string{"bob@localhost"}, filterMsg("news", "Precedence: bulk"))
	c.Send("sender@remote.example", []string{"bob@localhost"}, filterMsg("lunch today"))
	_, bulk := waitFolder(t, data, "bob", ".Bulk", "new", 1)
	if !bytes.Contains(bulk[0], []byte("Delivered-To: bob+Bulk@localhost\n")) { // a Maildir stores LF
		t.Errorf("bulk: %q", bulk[0][:120])
	}
	names, _ := waitFolder(t, data, "bob", ".Lunch", "cur", 1)
	if !strings.HasSuffix(names[0], ":2,S") {
		t.Errorf("lunch stored as %s, want the Seen flag", names[0])
	}
	waitLogLine(t, d, data, " l E", "bob+Bulk@localhost", `fileinto "Bulk"`)

	// A rejection before the 250 is the reply to DATA; a discard is logged.
	if r := c.Attempt("sender@remote.example", []string{"bob@localhost"}, filterMsg("reject me please")); !strings.HasPrefix(r, "550 5.7.1 Not here.") {
		t.Errorf("reject: DATA reply %q", r)
	}
	waitLogLine(t, d, data, " J ", "bob@localhost", "550 5.7.1 Not here. (filter at imta.filter:2)")
	c.Send("sender@remote.example", []string{"bob@localhost"}, filterMsg("drop me"))
	waitLogLine(t, d, data, "tcp_local D ", "bob@localhost", "discarded by filter at imta.filter:4")

	// The outbound channel's destination filter edits what the remote gets.
	c.Send("sender@remote.example", []string{"out@remote.example"}, filterMsg("outbound"))
	// A user's redirect: kept (:copy) and forwarded, through the outbound channel.
	c.Send("sender@remote.example", []string{"fwd@localhost"}, filterMsg("please forward"))
	waitFolder(t, data, "fwd", "", "new", 1)
	// Vacation: one answer for two messages of one sender.
	c.Send("sender@remote.example", []string{"vic@localhost"}, filterMsg("first", "To: vic@localhost"))
	c.Send("sender@remote.example", []string{"vic@localhost"}, filterMsg("second", "To: vic@localhost"))
	waitFolder(t, data, "vic", "", "new", 2)
	// A user's rejection after the 250: a notice to the sender.
	c.Send("sender@remote.example", []string{"rej@localhost"}, filterMsg("to rej"))
	c.Cmd("QUIT", "221")

	byTo := map[string][]string{}
	for _, m := range sink.wait(t, 4) {
		byTo[strings.Join(m.To, ",")] = append(byTo[strings.Join(m.To, ",")], m.From+"\n"+string(m.Data))
	}
	check := func(to string, n int, parts ...string) {
		t.Helper()
		if len(byTo[to]) != n {
			t.Errorf("%d messages to %s, want %d: %q", len(byTo[to]), to, n, byTo[to])
			return
		}
		for _, p := range parts {
			if !strings.Contains(byTo[to][0], p) {
				t.Errorf("message to %s lacks %q:\n%s", to, p, byTo[to][0])
			}
		}
	}
	check("out@remote.example", 1, "X-Outbound: yes\r\n")
	check("target@remote.example", 1, "sender@remote.example\n", "Delivered-To: fwd@localhost\r\n", "Resent-To: <target@remote.example>\r\n")
	// sender@remote.example gets the vacation answer and the notice of rej's rejection.
	answers := strings.Join(byTo["sender@remote.example"], "\n----\n")
	for _, p := range []string{"Auto-Submitted: auto-replied (vacation)", "Subject: Away", "I am away.", "550 5.7.1 no thanks"} {
		if !strings.Contains(answers, p) {
			t.Errorf("messages to the sender lack %q:\n%s", p, answers)
		}
	}
	if n := strings.Count(answers, "auto-replied (vacation)"); n != 1 {
		t.Errorf("%d vacation answers, want 1", n)
	}
	waitLogLine(t, d, data, " l D ", "vic@localhost", "vacation not sent: sender@remote.example was answered less than 1 day(s) ago")
}

// TestFilterRedirectLoop: two users forwarding to each other get each message
// once in their mailboxes, and the loop is said in mail.log.
func TestFilterRedirectLoop(t *testing.T) {
	sink := newSink(t)
	dir := filterConfig(t, sink.port, "")
	writeConfig(t, dir, map[string]string{"sieve/ping.sieve": "redirect \"pong@localhost\";\n", "sieve/pong.sieve": "redirect \"ping@localhost\";\n"})
	d, data := startDaemon(t, dir)
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	c.Send("sender@remote.example", []string{"ping@localhost"}, filterMsg("round and round"))
	c.Cmd("QUIT", "221")
	// ping forwards to pong, pong back to ping, which finds itself in
	// Delivered-To: and keeps the message.
	waitFolder(t, data, "ping", "", "new", 1)
	waitLogLine(t, d, data, " l D ", "ping@localhost", "refused: mail loop")
	time.Sleep(200 * time.Millisecond)
	if ents, _ := os.ReadDir(filepath.Join(data, "mailboxes", "pong", "new")); len(ents) != 0 {
		t.Errorf("pong kept %d messages, want none (it forwards)", len(ents))
	}
}

// TestFilterDiscardParked: with FILTER_DISCARD=2 a discarded message waits on
// the filter_discard channel, which has no program, and is returned without
// a notice at its last notices age.
func TestFilterDiscardParked(t *testing.T) {
	sink := newSink(t)
	data := t.TempDir()
	// notices 1 on filter_discard: one unit, a second here.
	d, err := Start(context.Background(), Options{ConfigDir: filterConfig(t, sink.port, "FILTER_DISCARD=2\n"), DataDir: data,
		Listen: "127.0.0.1:0", NoticeUnit: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d.Shutdown(ctx)
	})
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	c.Send("sender@remote.example", []string{"bob@localhost"}, filterMsg("drop me"))
	c.Cmd("QUIT", "221")
	waitLogLine(t, d, data, " filter_discard E", "bob@localhost", "discarded by filter at imta.filter:4")
	// Parked until its last notices age, then dropped without a notice (K).
	waitLogLine(t, d, data, "filter_discard K ", "bob@localhost")
	time.Sleep(300 * time.Millisecond)
	if n := sink.Count(); n != 0 {
		t.Errorf("%d messages left for the sender; a parked discard sends no notice", n)
	}
}

// TestVacationSurvivesRestart: the once-per-sender memory is on disk.
func TestVacationSurvivesRestart(t *testing.T) {
	sink := newSink(t)
	dir, data := filterConfig(t, sink.port, ""), t.TempDir()
	start := func() *Daemon {
		d, err := Start(context.Background(), Options{ConfigDir: dir, DataDir: data, Listen: "127.0.0.1:0",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for i, subject := range []string{"before", "after"} {
		d := start()
		c := dial(t, d.Addr().String())
		c.Cmd("EHLO client.test", "250")
		c.Send("sender@remote.example", []string{"vic@localhost"}, filterMsg(subject, "To: vic@localhost"))
		c.Cmd("QUIT", "221")
		waitFolder(t, data, "vic", "", "new", i+1)
		if i == 0 {
			sink.wait(t, 1) // the answer left before the restart
		} else {
			waitLogLine(t, d, data, " l D ", "vic@localhost", "vacation not sent: sender@remote.example was answered")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := d.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	if n := len(sink.Messages()); n != 1 {
		t.Errorf("%d vacation answers across a restart, want 1", n)
	}
}

// TestUserFilterChangedAtRunTime: a user's script edited while mtad runs is
// compiled again; a broken one keeps the mail in INBOX and says so in mail.log.
func TestUserFilterChangedAtRunTime(t *testing.T) {
	sink := newSink(t)
	dir := filterConfig(t, sink.port, "")
	d, data := startDaemon(t, dir)
	send := func(subject string) {
		c := dial(t, d.Addr().String())
		c.Cmd("EHLO client.test", "250")
		c.Send("sender@remote.example", []string{"bob@localhost"}, filterMsg(subject))
		c.Cmd("QUIT", "221")
	}
	send("lunch one")
	waitFolder(t, data, "bob", ".Lunch", "cur", 1)
	// The cache looks at a file again after filter.DefaultRecheck.
	writeConfig(t, dir, map[string]string{"sieve/bob.sieve": "require \"fileinto\";\nif header :contains \"Subject\" \"lunch\" { fileinot \"Lunch\"; }\n"})
	time.Sleep(1100 * time.Millisecond)
	send("lunch two")
	waitFolder(t, data, "bob", "", "new", 1)
	waitLogLine(t, d, data, " l D ", "bob@localhost", `filter sieve/bob.sieve failed, message kept: sieve/bob.sieve:2:41: unknown command "fileinot"`)
}

// TestSiteFilters: examples/site's filters do what its comments say: bulk
// mail lands in the recipient's Bulk folder (bulk.filter through the fileinto
// template), and jdoe's own filter answers a personal message once, but not
// bulk mail.
func TestSiteFilters(t *testing.T) {
	d, data := startDaemon(t, filepath.Join("..", "examples", "site"))
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	c.Send("ann@example.com", []string{"jdoe@example.com"}, []byte("From: ann@example.com\r\nTo: jdoe@example.com\r\nSubject: offers\r\nPrecedence: bulk\r\n\r\nx\r\n"))
	c.Send("ann@example.com", []string{"jdoe@example.com"}, []byte("From: ann@example.com\r\nTo: jdoe@example.com\r\nSubject: lunch\r\n\r\nx\r\n"))
	c.Cmd("QUIT", "221")
	waitFolder(t, data, "jdoe", ".Bulk", "new", 1)
	waitFolder(t, data, "jdoe", "", "new", 1)
	waitLogLine(t, d, data, " l D ", "jdoe+Bulk@example.com", "vacation not sent: message is bulk or list mail")
	waitLogLine(t, d, data, " l D ", "jdoe@example.com", "vacation answer sent to ann@example.com")
	waitLogLine(t, d, data, "l l E", "<> rfc822;ann@example.com ann@example.com")
}
