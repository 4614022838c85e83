package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/control"
	"mtad.dev/mta/status"
)

// sendmailCmd runs "mtactl -data DATA sendmail ARGS" with stdin.
func sendmailCmd(t *testing.T, data, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	rc := runIO(append([]string{"-data", data, "sendmail"}, args...), strings.NewReader(stdin), false, &out, &errb, time.Now)
	return out.String(), errb.String(), rc
}

// maildirFiles returns the messages in a Maildir's new/ in the form the queue
// held them, CRLF: the Maildir stores the LF form (every CRLF written as LF), and
// what sendmail queues has no bare LF or CR, so turning each LF back into CRLF
// gives the queued bytes exactly. (sendmail's own conversion of line ends is
// pinned by TestReadMessage.)
func maildirFiles(t *testing.T, data, mailbox string) []string {
	t.Helper()
	dir := filepath.Join(data, "mailboxes", mailbox, "new")
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.ReplaceAll(string(b), "\n", "\r\n"))
	}
	return out
}

// unroutableConfig routes *.invalid nowhere ($?) and everything else but
// localhost to a closed loopback port: no test reaches DNS or the Internet.
func unroutableConfig(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfg, "imta.cnf"), []byte(fmt.Sprintf(`.invalid         $?No mail for .invalid hosts
.                $U%%$H@tcp-daemon

l
localhost

tcp_local smtp nomx single_sys daemon 127.0.0.1 port %d
tcp-daemon
`, port)), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestSendmailDelivers: a script's message (LF line ends, no Date/Message-ID/From)
// is queued with CRLF and the added fields and reaches the Maildir; mail.log has E
// then D lines.
func TestSendmailDelivers(t *testing.T) {
	data := dataDir(t)
	startMTAD(t, data, "")
	out, errs, rc := sendmailCmd(t, data, "Subject: backup report\nTo: alice@localhost\n\nall good\n..leading dots stay\nlast line without LF",
		"-oi", "-oem", "-f", "backup@localhost", "-F", "Backup Job", "alice@localhost")
	if rc != 0 || out != "" || errs != "" {
		t.Fatalf("sendmail: exit %d, stdout %q, stderr %q", rc, out, errs)
	}
	var msgs []string
	waitFor(t, "delivery to alice", func() bool { msgs = maildirFiles(t, data, "alice"); return len(msgs) == 1 })
	m := msgs[0]
	for _, want := range []string{
		"Return-Path: <backup@localhost>\r\n",
		"Received: (from ",
		"Subject: backup report\r\nTo: alice@localhost\r\nDate: ",
		"\r\nMessage-ID: <",
		"\r\nFrom: \"Backup Job\" <backup@localhost>\r\n\r\nall good\r\n..leading dots stay\r\nlast line without LF\r\n",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("delivered message lacks %q:\n%s", want, m)
		}
	}
	if strings.Contains(strings.ReplaceAll(m, "\r\n", ""), "\n") {
		t.Errorf("bare LF in the stored message:\n%q", m)
	}
	waitFor(t, "E and D lines", func() bool {
		l := mailLog(data)
		return strings.Contains(l, " l l E ") && strings.Contains(l, " l D ")
	})
	e := regexp.MustCompile(`(?m)^\S+ \S+ l l E \d+ backup@localhost rfc822;alice@localhost alice@localhost (\S+)`).FindStringSubmatch(mailLog(data))
	if e == nil {
		t.Fatalf("no E line for the submission:\n%s", mailLog(data))
	}
	if !regexp.MustCompile(`(?m)^\S+ \S+ l D \d+ backup@localhost rfc822;alice@localhost alice@localhost ` + e[1] + ` `).MatchString(mailLog(data)) {
		t.Errorf("no D line for %s:\n%s", e[1], mailLog(data))
	}

	// -v tells the queue id and the route.
	out, _, rc = sendmailCmd(t, data, "Subject: v\n\nx\n", "-v", "bob")
	if rc != 0 || !regexp.MustCompile(`^queued as \S+ \(sender <\S+@localhost>, <\S+@localhost>\)\nbob\.\.\. queued to l as bob@localhost\n$`).MatchString(out) {
		t.Errorf("-v: exit %d\n%s", rc, out)
	}
}

// TestSendmailHeaders: -t takes To/Cc/Bcc, ignores the command line and removes
// Bcc from every copy.
func TestSendmailHeaders(t *testing.T) {
	data := dataDir(t)
	startMTAD(t, data, "")
	msg := "From: Ops <ops@localhost>\nTo: Alice <alice@localhost>,\n bob@localhost\nCc: carol@localhost\nBcc: dave@localhost\nSubject: -t\n\nbody\n"
	if out, errs, rc := sendmailCmd(t, data, msg, "-t", "-i", "erin@localhost"); rc != 0 {
		t.Fatalf("sendmail -t: exit %d %q %q", rc, out, errs)
	}
	for _, mb := range []string{"alice", "bob", "carol", "dave"} {
		var msgs []string
		waitFor(t, "delivery to "+mb, func() bool { msgs = maildirFiles(t, data, mb); return len(msgs) == 1 })
		if strings.Contains(msgs[0], "Bcc") || strings.Contains(msgs[0], "dave@") && mb != "dave" {
			t.Errorf("%s's copy shows the Bcc:\n%s", mb, msgs[0])
		}
		if !strings.Contains(msgs[0], "To: Alice <alice@localhost>,\r\n bob@localhost\r\nCc: carol@localhost\r\n") {
			t.Errorf("%s's copy: header changed:\n%s", mb, msgs[0])
		}
	}
	if n := countMaildir(data, "erin"); n != 0 {
		t.Errorf("the command-line recipient got %d copies with -t", n)
	}
	// -t without any recipient field: usage.
	if _, errs, rc := sendmailCmd(t, data, "Subject: nobody\n\nx\n", "-t"); rc != exUsage || !strings.Contains(errs, "No recipient addresses found in header") {
		t.Errorf("-t without recipients: exit %d %q", rc, errs)
	}
}

// TestSendmailDots: a lone "." ends the input unless -i/-oi.
func TestSendmailDots(t *testing.T) {
	data := dataDir(t)
	startMTAD(t, data, "")
	in := "Subject: dots\n\nbefore\n.\nafter\n"
	for _, c := range []struct {
		mailbox string
		args    []string
		body    string
	}{
		{"plain", nil, "\r\n\r\nbefore\r\n"},
		{"oi", []string{"-oi"}, "\r\n\r\nbefore\r\n.\r\nafter\r\n"},
		{"i", []string{"-i"}, "\r\n\r\nbefore\r\n.\r\nafter\r\n"},
	} {
		if _, errs, rc := sendmailCmd(t, data, in, append(c.args, c.mailbox)...); rc != 0 {
			t.Fatalf("%v: exit %d %q", c.args, rc, errs)
		}
		var msgs []string
		waitFor(t, "delivery to "+c.mailbox, func() bool { msgs = maildirFiles(t, data, c.mailbox); return len(msgs) == 1 })
		if !strings.HasSuffix(msgs[0], c.body) {
			t.Errorf("%v: message ends %q, want suffix %q", c.args, msgs[0][max(0, len(msgs[0])-40):], c.body)
		}
	}
}

func TestReadMessage(t *testing.T) {
	cases := []struct {
		in         string
		ignoreDots bool
		want       string
	}{
		{"a\nb\n", false, "a\r\nb\r\n"},
		{"a\r\nb\r\n", false, "a\r\nb\r\n"},
		{"a\nb", false, "a\r\nb\r\n"},
		{"a\n.\nb\n", false, "a\r\n"},
		{"a\n.\r\nb\n", false, "a\r\n"},
		{"a\n.\nb\n", true, "a\r\n.\r\nb\r\n"},
		{".\n", false, ""},
		{"a\n..\nb\n", false, "a\r\n..\r\nb\r\n"},
		{"a\n. \nb\n", false, "a\r\n. \r\nb\r\n"},
		{"", false, ""},
		{"\n\n", false, "\r\n\r\n"},
		{"x.\n", false, "x.\r\n"},
	}
	for _, c := range cases {
		got, err := readMessage(strings.NewReader(c.in), c.ignoreDots, 1<<20)
		if err != nil || string(got) != c.want {
			t.Errorf("readMessage(%q, %v) = %q, %v; want %q", c.in, c.ignoreDots, got, err, c.want)
		}
	}
	if _, err := readMessage(strings.NewReader(strings.Repeat("x", 101)), true, 100); err != errTooLarge {
		t.Errorf("over the limit: %v", err)
	}
	if got, err := readMessage(strings.NewReader(strings.Repeat("x", 98)), true, 100); err != nil || len(got) != 100 {
		t.Errorf("at the limit: %d bytes, %v", len(got), err)
	}
}

// FuzzReadMessage: the result has CRLF line ends only and, without -i, no lone "." line.
func FuzzReadMessage(f *testing.F) {
	for _, s := range []string{"a\n.\nb", "a\r\n.\r\n", "\r\r\n\n", ".", "..\n."} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, in []byte, ignoreDots bool) {
		got, err := readMessage(bytes.NewReader(in), ignoreDots, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > 0 && !bytes.HasSuffix(got, []byte("\r\n")) {
			t.Errorf("no final CRLF: %q", got)
		}
		if bytes.Contains(bytes.ReplaceAll(got, []byte("\r\n"), nil), []byte("\n")) {
			t.Errorf("bare LF: %q", got)
		}
		if !ignoreDots && (bytes.HasPrefix(got, []byte(".\r\n")) || bytes.Contains(got, []byte("\r\n.\r\n"))) {
			t.Errorf("a lone dot did not end the input: %q", got)
		}
	})
}

// TestSendmailUnroutable: one unroutable recipient refuses the message whole:
// EX_NOUSER, nothing queued, a J line.
func TestSendmailUnroutable(t *testing.T) {
	data := dataDir(t)
	startMTAD(t, data, unroutableConfig(t))
	out, errs, rc := sendmailCmd(t, data, "Subject: x\n\nx\n", "alice@localhost", "someone@nowhere.invalid")
	if rc != exNoUser || out != "" ||
		!strings.Contains(errs, "sendmail: someone@nowhere.invalid... 5") || !strings.Contains(errs, "No mail for .invalid hosts") ||
		!strings.Contains(errs, "nothing was queued") {
		t.Errorf("exit %d, stdout %q, stderr %q", rc, out, errs)
	}
	if ids := queuedIDs(t, data); len(ids) != 0 {
		t.Errorf("queued %v", ids)
	}
	waitFor(t, "a J line", func() bool { return strings.Contains(mailLog(data), " l J ") })
	if l := mailLog(data); !regexp.MustCompile(`(?m) l J \d+ \S+ rfc822;someone@nowhere.invalid someone@nowhere.invalid .*No mail for .invalid hosts`).MatchString(l) || strings.Contains(l, " E ") {
		t.Errorf("mail.log:\n%s", l)
	}
	time.Sleep(200 * time.Millisecond)
	if n := countMaildir(data, "alice"); n != 0 {
		t.Errorf("alice got %d copies of a refused message", n)
	}
	// A message for an outside destination is accepted and queued (its delivery fails later).
	if _, errs, rc := sendmailCmd(t, data, "Subject: y\n\ny\n", "-f", "me@localhost", "you@remote.example"); rc != 0 {
		t.Errorf("routable: exit %d %q", rc, errs)
	}
	waitFor(t, "an E line to tcp_local", func() bool { return strings.Contains(mailLog(data), " l tcp_local E ") })
}

// TestSendmailNotRunning: mtad down is EX_TEMPFAIL with a clear message, so that a
// cron job can retry; usage errors are EX_USAGE without touching mtad.
func TestSendmailNotRunning(t *testing.T) {
	data := dataDir(t)
	_, errs, rc := sendmailCmd(t, data, "Subject: x\n\nx\n", "alice@localhost")
	if rc != exTempFail || !strings.Contains(errs, "mtad is not running") || !strings.Contains(errs, "message not sent; try again later") {
		t.Errorf("mtad down: exit %d %q", rc, errs)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "Recipient names must be specified"},
		{[]string{"-x", "a"}, "unknown option -x"},
		{[]string{"-bp"}, "option -bp is not supported"},
		{[]string{"-q"}, "option -q is not supported"},
		{[]string{"a", "-f"}, "option -f requires an argument"},
	} {
		if _, errs, rc := sendmailCmd(t, data, "", c.args...); rc != exUsage || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d %q, want %d %q", c.args, rc, errs, exUsage, c.want)
		}
	}
}

func TestParseSendmailArgs(t *testing.T) {
	cases := []struct {
		args []string
		want sendmailOpts
	}{
		{[]string{"a", "b"}, sendmailOpts{rcpts: []string{"a", "b"}}},
		{[]string{"-t", "-oi", "-odi", "-oem", "-B8BITMIME", "-N", "never", "-v"}, sendmailOpts{fromHeaders: true, ignoreDots: true, verbose: true}},
		{[]string{"-fme@x", "-F", "Me Myself", "a"}, sendmailOpts{sender: "me@x", senderSet: true, fullName: "Me Myself", rcpts: []string{"a"}}},
		{[]string{"-r", "<>", "-i", "--", "-notanoption"}, sendmailOpts{senderSet: true, sender: "<>", ignoreDots: true, rcpts: []string{"-notanoption"}}},
		{[]string{"-bm", "-h", "5", "a"}, sendmailOpts{rcpts: []string{"a"}}},
	}
	for _, c := range cases {
		got, err := parseSendmailArgs(c.args)
		if err != nil || got.fromHeaders != c.want.fromHeaders || got.ignoreDots != c.want.ignoreDots || got.verbose != c.want.verbose ||
			got.sender != c.want.sender || got.senderSet != c.want.senderSet || got.fullName != c.want.fullName || !slices.Equal(got.rcpts, c.want.rcpts) {
			t.Errorf("parseSendmailArgs(%q) = %+v, %v; want %+v", c.args, got, err, c.want)
		}
	}
}

func TestProgramArgs(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "MTAD_DATA" {
				return v
			}
			return ""
		}
	}
	cases := []struct {
		argv0 string
		args  []string
		data  string
		want  []string
	}{
		{"/usr/sbin/sendmail", []string{"-t", "-i"}, "/var/mta", []string{"-data", "/var/mta", "sendmail", "-t", "-i"}},
		{"sendmail", []string{"a"}, "", []string{"sendmail", "a"}},
		{"/usr/bin/mtactl", []string{"qm", "summarize"}, "/var/mta", []string{"qm", "summarize"}},
		{"./sendmail.sh", []string{"x"}, "", []string{"x"}},
	}
	for _, c := range cases {
		if got := programArgs(c.argv0, c.args, env(c.data)); !slices.Equal(got, c.want) {
			t.Errorf("programArgs(%q, %q) = %q, want %q", c.argv0, c.args, got, c.want)
		}
	}
}

// TestSendmailExitStatus: mtad's answer becomes sendmail's exit status.
func TestSendmailExitStatus(t *testing.T) {
	st := func(code int, enh string) *status.Status { return status.New(code, enh, "text") }
	cases := []struct {
		name string
		res  control.SubmitResult
		want int
	}{
		{"queued", control.SubmitResult{ID: "X", Recipients: []control.SubmitRecipient{{Addr: "a"}}}, exOK},
		{"discarded", control.SubmitResult{Recipients: []control.SubmitRecipient{{Addr: "a"}}}, exOK},
		{"too large", control.SubmitResult{Status: st(552, "5.3.4")}, exDataErr},
		{"no recipients", control.SubmitResult{Status: st(554, "5.5.1")}, exUsage},
		{"bad sender", control.SubmitResult{Status: st(553, "5.1.7")}, exNoUser},
		{"queue failure", control.SubmitResult{Status: st(451, "4.3.0")}, exTempFail},
		{"unroutable", control.SubmitResult{Recipients: []control.SubmitRecipient{{Addr: "a"}, {Addr: "b", Status: st(550, "5.1.2")}}}, exNoUser},
		{"temporary refusal", control.SubmitResult{Recipients: []control.SubmitRecipient{{Addr: "b", Status: st(450, "4.2.1")}}}, exTempFail},
		{"mixed refusals", control.SubmitResult{Recipients: []control.SubmitRecipient{{Addr: "a", Status: st(450, "4.2.1")}, {Addr: "b", Status: st(550, "5.7.1")}}}, exNoUser},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		a := &app{stdout: &out, stderr: &errb}
		if got := a.sendmailResult(sendmailOpts{}, &c.res); got != c.want {
			t.Errorf("%s: exit %d, want %d (%s)", c.name, got, c.want, errb.String())
		}
		if out.Len() != 0 {
			t.Errorf("%s: printed %q without -v", c.name, out.String())
		}
	}
}
