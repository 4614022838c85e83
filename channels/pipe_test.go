package channels

import (
	"context"
	"os"
	"path/filepath"
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
