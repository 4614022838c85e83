package reliability

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/internal/smtptest"
)

// The hostile corpus: testdata/hostile/*.txt, one raw SMTP session per file,
// replayed against an in-process mtad running the built-in configuration (the
// loopback client is tcp_intranet; user@localhost is delivered to the Maildir
// mailboxes/user).
//
// File format, one directive per line:
//
//	# comment
//	C: text          client bytes: text with Go escapes (\r \n \x00 \xff \\),
//	                 then CRLF unless the text ends with \c (no line end)
//	C*N: text        N times, {n} replaced by 1..N
//	S: prefix        the next reply must start with prefix ("S: EOF": the server
//	                 closed the connection)
//	S*N: prefix      N replies, each starting with prefix
//	queued: N        exactly N messages were enqueued (mail.log E entries' ids)
//	mailbox: NAME N  exactly N messages were delivered to NAME
//	contains: text   some delivered message contains text (Go escapes)
//	lacks: text      no delivered message contains text (Go escapes)
//	skip: reason     the session shows a known bug: skipped until it is fixed
//
// Client bytes up to the next S: directive are written in one go (pipelined), by
// a goroutine, so that a large burst cannot deadlock against unread replies.
func TestHostileCorpus(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "hostile", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no hostile sessions: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			t.Parallel()
			steps, checks, skip := parseHostile(t, f)
			if skip != "" {
				t.Skip(skip)
			}
			d, data := startDaemon(t, "")
			replay(t, d.Addr().String(), steps)
			checkQueued(t, data, checks)
		})
	}
}

type hostileStep struct {
	send   string // client bytes
	expect string // reply prefix, "EOF" for a closed connection
	line   int    // in the session file, for messages
	rep    int    // which repetition of an S*N directive
}

type hostileCheck struct{ kind, arg string }

func unescape(t *testing.T, file string, line int, s string) string {
	t.Helper()
	u, err := strconv.Unquote(`"` + strings.ReplaceAll(s, `"`, `\"`) + `"`)
	if err != nil {
		t.Fatalf("%s:%d: bad escape in %q: %v", file, line, s, err)
	}
	return u
}

func parseHostile(t *testing.T, file string) (steps []hostileStep, checks []hostileCheck, skip string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		head, arg, ok := strings.Cut(line, ": ")
		if !ok {
			head, arg = strings.TrimSuffix(line, ":"), ""
		}
		n := 1
		if h, count, ok := strings.Cut(head, "*"); ok {
			head = h
			if n, err = strconv.Atoi(count); err != nil {
				t.Fatalf("%s:%d: bad count %q", file, i+1, count)
			}
		}
		switch head {
		case "C":
			for k := 1; k <= n; k++ {
				s := strings.ReplaceAll(arg, "{n}", strconv.Itoa(k))
				if strings.HasSuffix(s, `\c`) {
					s = unescape(t, file, i+1, strings.TrimSuffix(s, `\c`))
				} else {
					s = unescape(t, file, i+1, s) + "\r\n"
				}
				steps = append(steps, hostileStep{send: s, line: i + 1})
			}
		case "S":
			for k := range n {
				steps = append(steps, hostileStep{expect: arg, line: i + 1, rep: k + 1})
			}
		case "skip":
			skip = arg
		case "queued", "mailbox", "contains", "lacks":
			checks = append(checks, hostileCheck{head, arg})
		default:
			t.Fatalf("%s:%d: unknown directive %q", file, i+1, head)
		}
	}
	return steps, checks, skip
}

func replay(t *testing.T, addr string, steps []hostileStep) {
	t.Helper()
	c := smtptest.Open(t, addr)
	defer c.Conn().Close()
	readReply := c.ReadReply
	if g, err := readReply(); !strings.HasPrefix(g, "220 ") {
		t.Fatalf("greeting %q (%v)", g, err)
	}
	for i := 0; i < len(steps); {
		var burst strings.Builder
		for ; i < len(steps) && steps[i].expect == ""; i++ {
			burst.WriteString(steps[i].send)
		}
		werr := make(chan error, 1)
		go func(b string) {
			_, err := io.WriteString(c.Conn(), b)
			werr <- err
		}(burst.String())
		for ; i < len(steps) && steps[i].expect != ""; i++ {
			got, err := readReply()
			want := steps[i].expect
			if want == "EOF" {
				if err == nil || got != "" {
					t.Fatalf("line %d: want the connection closed, got %q (%v)", steps[i].line, got, err)
				}
				continue
			}
			if err != nil && got == "" {
				t.Fatalf("line %d: want %q, got %v", steps[i].line, want, err)
			}
			if !strings.HasPrefix(got, want) {
				t.Fatalf("line %d (#%d): want a reply starting %q, got %q", steps[i].line, steps[i].rep, want, got)
			}
		}
		// A write may fail once the server has closed on us; that is only an error
		// if a reply was still expected, which the reads above checked.
		<-werr
	}
}

// checkQueued waits for the queue to settle and checks what was enqueued and
// delivered.
func checkQueued(t *testing.T, data string, checks []hostileCheck) {
	t.Helper()
	// Enqueued messages are delivered locally within milliseconds; wait until every
	// enqueued id has its delivery entry, and a little more for stray ones.
	var ids map[string]bool
	var last string
	stable := time.Now()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ids = map[string]bool{}
		pending := map[string]bool{}
		done := map[string]bool{}
		lines := readLog(data)
		for _, l := range lines {
			f := strings.Fields(l)
			id := entryID(f)
			switch {
			case id == "":
			case len(f) > 4 && strings.HasPrefix(f[4], "E"):
				ids[id], pending[id] = true, true
			case f[3] == "D" || f[3] == "R":
				done[id] = true
			}
		}
		for id := range done {
			delete(pending, id)
		}
		// mail.log is written asynchronously: settled means every enqueued id has
		// its final entry and the log has not changed for 300 ms.
		if cur := strings.Join(lines, "\n"); cur != last {
			last, stable = cur, time.Now()
		}
		if len(pending) == 0 && time.Since(stable) > 300*time.Millisecond || time.Now().After(deadline) {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	var delivered []string
	boxes, _ := filepath.Glob(filepath.Join(data, "mailboxes", "*", "new", "*"))
	for _, p := range boxes {
		b, _ := os.ReadFile(p)
		delivered = append(delivered, string(b))
	}
	for _, c := range checks {
		switch c.kind {
		case "queued":
			if want, _ := strconv.Atoi(c.arg); len(ids) != want {
				t.Errorf("queued %d messages, want %d\n%s", len(ids), want, strings.Join(readLog(data), "\n"))
			}
		case "mailbox":
			var name string
			var want int
			fmt.Sscan(c.arg, &name, &want)
			got, _ := filepath.Glob(filepath.Join(data, "mailboxes", name, "new", "*"))
			if len(got) != want {
				t.Errorf("mailbox %s has %d messages, want %d", name, len(got), want)
			}
		case "contains", "lacks":
			// A Maildir holds the LF form of a message (every CRLF written as
			// LF): the text is looked for in that form.
			text := strings.ReplaceAll(unescape(t, "check", 0, c.arg), "\r\n", "\n")
			found := false
			for _, m := range delivered {
				found = found || strings.Contains(m, text)
			}
			if found != (c.kind == "contains") {
				t.Errorf("%s %q: found=%v in %d delivered messages", c.kind, text, found, len(delivered))
			}
		}
	}
}

// entryID is the queue id of a mail.log entry: the field after the recipient,
// which follows the original recipient "rfc822;...".
func entryID(f []string) string {
	for i, x := range f {
		if strings.HasPrefix(x, "rfc822;") && i+2 < len(f) {
			return f[i+2]
		}
	}
	return ""
}
