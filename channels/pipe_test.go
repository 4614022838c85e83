package channels

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPipe(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	dir := t.TempDir()
	content := crlfContent()[:2000]
	tests := []struct {
		name     string
		script   string
		timeout  time.Duration
		wantEnh  string // "" delivered
		wantTemp bool
		wantText string
	}{
		{"delivered", `cat > "$0"`, 0, "", false, ""},
		{"EX_TEMPFAIL", `cat >/dev/null; exit 75`, 0, "4.3.0", true, "exited 75"},
		{"EX_NOUSER with stderr", `echo "no such user" >&2; echo two >&2; echo three >&2; echo four >&2; exit 67`, 0, "5.1.1", false, "no such user; two; three"},
		{"EX_CONFIG", `exit 78`, 0, "5.3.5", false, "exited 78"},
		{"unknown exit defers", `exit 1`, 0, "4.3.0", true, "exited 1"},
		{"killed by signal defers", `kill -9 $$`, 0, "4.3.0", true, ""},
		{"timeout kills the group", `sleep 30 & sleep 30`, 300 * time.Millisecond, "4.4.7", true, "timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			p := NewPipe(PipeOptions{Command: []string{"/bin/sh", "-c", tt.script, out + ".${user}"}, Timeout: tt.timeout})
			start := time.Now()
			res := p.Deliver(testCtx(t), msgOf(content, "s@d", "Bob@example.com"))[0]
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
			if tt.wantEnh == "" {
				if res.Err != nil {
					t.Fatalf("got %v", res.Err)
				}
				got, err := os.ReadFile(out + ".Bob")
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != string(content) {
					t.Errorf("stdin differs")
				}
				return
			}
			st := res.Err
			if st == nil || st.Enhanced != tt.wantEnh || st.Temporary() != tt.wantTemp || !strings.Contains(st.Text, tt.wantText) {
				t.Fatalf("got %v, want %s temporary=%v containing %q", st, tt.wantEnh, tt.wantTemp, tt.wantText)
			}
			if strings.Contains(st.Text, "four") {
				t.Errorf("more than 3 stderr lines kept: %q", st.Text)
			}
		})
	}
}

func TestPipeMissingProgramDefers(t *testing.T) {
	res := NewPipe(PipeOptions{Command: []string{"/nonexistent/prog"}}).Deliver(context.Background(), msgOf([]byte("x"), "s@d", "a@d"))
	if st := res[0].Err; st == nil || !st.Temporary() {
		t.Fatalf("got %v", st)
	}
}

// argvDump is a program (sh reading its positional parameters, which no shell
// ever re-parses) that writes each argument NUL-terminated to $0, then the
// environment variables the pipe channel sets, then stdin's length.
const argvDump = `{ for a in "$@"; do printf '%s\0' "$a"; done; printf 'RECIPIENT=%s\0RECIPIENTS=%s\0SENDER=%s\0' "$RECIPIENT" "$RECIPIENTS" "$SENDER"; wc -c | tr -d ' \n'; } > "$0"`

func needSh(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
}

// Addresses full of shell metacharacters reach the program byte for byte, as
// arguments and in the environment, and nothing in them is ever run.
func TestPipeShellMetacharactersLiteral(t *testing.T) {
	needSh(t)
	dir := t.TempDir()
	nasty := []string{
		`"$(touch pwned1)"@example.com`,
		"\"`touch pwned2`;touch pwned3\"@example.com",
		`"a'b\"c * ; | & > pwned4 $HOME"@example.com`,
	}
	sender := `"$(touch pwned5)*"@example.org`
	content := []byte("Subject: x\r\n\r\n$(touch pwned6) `touch pwned7`\r\n")
	for i, rcpt := range nasty {
		out := filepath.Join(dir, "argv"+string(rune('0'+i)))
		p := NewPipe(PipeOptions{Dir: dir, Command: []string{"/bin/sh", "-c", argvDump, out,
			"${recipient}", "${user}", "${domain}", "--from=${sender}", "*", ";", "$(touch pwned8)"}})
		m := msgOf(content, sender, rcpt)
		m.Rcpts[0].Host = "example.com"
		if res := p.Deliver(testCtx(t), m); res[0].Err != nil {
			t.Fatalf("%s: %v", rcpt, res[0].Err)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		user := rcpt[:strings.LastIndexByte(rcpt, '@')]
		want := strings.Join([]string{rcpt, user, "example.com", "--from=" + sender, "*", ";", "$(touch pwned8)",
			"RECIPIENT=" + rcpt, "RECIPIENTS=", "SENDER=" + sender}, "\x00") + "\x00" + strconv.Itoa(len(content))
		if string(got) != want {
			t.Errorf("%s: argv/env differ\n got %q\nwant %q", rcpt, got, want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "pwned") {
			t.Errorf("a shell ran something from the envelope: %s exists", e.Name())
		}
	}
}

// A program that writes megabytes to stderr: the run ends, the diagnostic keeps
// its first lines (each bounded), and what we hold of stderr stays bounded.
func TestPipeStderrFlood(t *testing.T) {
	needSh(t)
	const flood = 16 << 20
	tests := []struct {
		name   string
		script string
	}{
		// Three short lines first, then 16 MiB of one endless line.
		{"lines then flood", `printf 'first\nsecond\nthird\n' >&2; head -c 16777216 /dev/zero | tr '\0' x >&2; exit 67`},
		// 16 MiB of many lines: only the first three survive.
		{"many lines", `yes 'line of noise' | head -c 16777216 >&2; exit 67`},
		// One 16 MiB line: the diagnostic keeps a bounded prefix of it.
		{"one endless line", `head -c 16777216 /dev/zero | tr '\0' x >&2; exit 67`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPipe(PipeOptions{Command: []string{"/bin/sh", "-c", tt.script}, Timeout: 60 * time.Second})
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			res := p.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d"))[0]
			runtime.ReadMemStats(&after)
			st := res.Err
			if st == nil || st.Temporary() || st.Enhanced != "5.1.1" {
				t.Fatalf("got %v, want the 67 mapping (5.1.1)", st)
			}
			if len(st.Text) > 3*(diagLineLimit+8)+200 {
				t.Errorf("diagnostic is %d bytes: %.200q...", len(st.Text), st.Text)
			}
			if tt.name == "lines then flood" && !strings.Contains(st.Text, "first; second; third") {
				t.Errorf("diagnostic lost the first lines: %.300q", st.Text)
			}
			if tt.name == "many lines" && strings.Count(st.Text, "line of noise") != 3 {
				t.Errorf("diagnostic does not keep exactly the first 3 lines: %.300q", st.Text)
			}
			if tt.name == "one endless line" && !strings.Contains(st.Text, strings.Repeat("x", diagLineLimit)+"...") {
				t.Errorf("diagnostic lacks the truncated line: %.300q", st.Text)
			}
			// Allocation while the program ran, not timing: reading 16 MiB into
			// memory would allocate at least that much.
			grew := after.TotalAlloc - before.TotalAlloc
			if grew > flood/8 {
				t.Errorf("allocated %d bytes while the program wrote %d to stderr", grew, flood)
			}
			t.Logf("program wrote %d bytes to stderr; allocated %d; diagnostic %d bytes", flood, grew, len(st.Text))
		})
	}
}

// PIPE_MODE=message: one run for every recipient, ${recipients} expands to one
// argument each, RECIPIENTS lists them, and the one status applies to all.
func TestPipePerMessage(t *testing.T) {
	needSh(t)
	dir := t.TempDir()
	rcpts := []string{"a@example.com", "b b@example.com", "c@example.net"}
	tests := []struct {
		name     string
		script   string
		command  []string // after the script and $0
		wantErr  string   // enhanced code; "" delivered
		wantRuns int
	}{
		{"delivered once", argvDump, []string{"--", "${recipients}", "${queueid}"}, "", 1},
		{"temporary for all", `echo "$@" >> "$0"; exit 75`, []string{"${recipients}"}, "4.3.0", 1},
		{"permanent for all", `echo "$@" >> "$0"; exit 67`, []string{"${recipients}"}, "5.1.1", 1},
		{"per-recipient name defers", argvDump, []string{"${recipient}"}, "4.3.5", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			cmd := append([]string{"/bin/sh", "-c", tt.script, out}, tt.command...)
			p := NewPipe(PipeOptions{Command: cmd, PerMessage: true})
			res := p.Deliver(testCtx(t), msgOf([]byte("body\r\n"), "s@d", rcpts...))
			if len(res) != len(rcpts) {
				t.Fatalf("%d results for %d recipients", len(res), len(rcpts))
			}
			for i, r := range res {
				if got := ""; r.Err != nil {
					got = r.Err.Enhanced
					if got != tt.wantErr {
						t.Errorf("recipient %d: %v, want %q", i, r.Err, tt.wantErr)
					}
				} else if tt.wantErr != "" {
					t.Errorf("recipient %d delivered, want %s", i, tt.wantErr)
				}
				if r.Reply != res[0].Reply {
					t.Errorf("recipient %d reply %q differs from %q", i, r.Reply, res[0].Reply)
				}
			}
			got, err := os.ReadFile(out)
			if tt.wantRuns == 0 {
				if err == nil {
					t.Errorf("program ran: %q", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			switch tt.name {
			case "delivered once":
				want := strings.Join([]string{"--", rcpts[0], rcpts[1], rcpts[2], "q1", "RECIPIENT=",
					"RECIPIENTS=" + strings.Join(rcpts, ","), "SENDER=s@d"}, "\x00") + "\x00" + "6"
				if string(got) != want {
					t.Errorf("argv/env\n got %q\nwant %q", got, want)
				}
			default:
				if n := bytes.Count(got, []byte("\n")); n != tt.wantRuns {
					t.Errorf("%d runs, want %d: %q", n, tt.wantRuns, got)
				}
			}
		})
	}
}

// PIPE_TEMPORARY_EXITS / PIPE_PERMANENT_EXITS override the sysexits mapping for
// the statuses they list and leave the others alone.
func TestPipeExitOverrides(t *testing.T) {
	needSh(t)
	tests := []struct {
		name      string
		code      string
		temp, per []int
		wantEnh   string
		wantTemp  bool
	}{
		{"67 default permanent", "67", nil, nil, "5.1.1", false},
		{"67 made temporary", "67", []int{67, 69}, nil, "4.3.0", true},
		{"69 made temporary", "69", []int{67, 69}, nil, "4.3.0", true},
		{"1 default temporary", "1", nil, nil, "4.3.0", true},
		{"1 made permanent", "1", nil, []int{1}, "5.3.0", false},
		{"75 made permanent", "75", nil, []int{75}, "5.3.0", false},
		{"68 listed permanent keeps its code", "68", nil, []int{68}, "5.1.2", false},
		{"unlisted 78 unchanged", "78", []int{67}, []int{1}, "5.3.5", false},
		{"in both lists: temporary wins", "3", []int{3}, []int{3}, "4.3.0", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPipe(PipeOptions{Command: []string{"/bin/sh", "-c", "exit " + tt.code}, TemporaryExits: tt.temp, PermanentExits: tt.per})
			st := p.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d"))[0].Err
			if st == nil || st.Enhanced != tt.wantEnh || st.Temporary() != tt.wantTemp {
				t.Fatalf("exit %s: got %v, want %s temporary=%v", tt.code, st, tt.wantEnh, tt.wantTemp)
			}
			if !strings.Contains(st.Text, "exited "+tt.code) {
				t.Errorf("diagnostic lacks the exit status: %q", st.Text)
			}
		})
	}
}
