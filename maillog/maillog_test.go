package maillog

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestFormat(t *testing.T) {
	ts := time.Date(2024, 3, 4, 8, 55, 1, 200_000_000, time.UTC)
	tests := []struct {
		name  string
		msgid bool
		r     Record
		want  string
	}{
		{"enqueue", false, Record{Time: ts, Source: "tcp_intranet", Dest: "tcp_local", Code: "EE", Size: 4000,
			From: "alice@example.org", To: "bob@example.net", ID: "0a1b2c"},
			"04-Mar-2024 08:55:01.20 tcp_intranet tcp_local EE 4 alice@example.org rfc822;bob@example.net bob@example.net 0a1b2c\n"},
		{"dequeue with diag and message id", true, Record{Time: ts, Source: "tcp_local", Code: "Q", Size: 1,
			From: "", ORCPT: "rfc822;Bob@Example.NET", To: "bob@example.net", ID: "0a1b2c", MessageID: "<a1@x>",
			Diag: "TCP active open: Failed connect()\r\n Error: Connection refused"},
			"04-Mar-2024 08:55:01.20 tcp_local Q 1 <> rfc822;Bob@Example.NET bob@example.net 0a1b2c <a1@x> TCP active open: Failed connect()  Error: Connection refused\n"},
		{"reject has no id", false, Record{Time: ts, Source: "tcp_local", Dest: "tcp_local", Code: "J", From: "a b@x", To: "c@y", Diag: "550 5.7.1 Relaying denied"},
			"04-Mar-2024 08:55:01.20 tcp_local tcp_local J 0 a_b@x rfc822;c@y c@y - 550 5.7.1 Relaying denied\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &Logger{logMessageID: tt.msgid}
			if got := string(l.format(tt.r)); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestWriteReopenClose(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "mail.log")
	l, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.Log(Record{Source: "tcp_local", Dest: "l", Code: "E", To: "a@b", ID: "1"})
	// logrotate moves the file away, then asks for a reopen
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	l.flush()
	for i := 0; i < 100 && fileSize(p+".1") == 0; i++ {
		time.Sleep(10 * time.Millisecond)
		l.flush()
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Log(Record{Source: "l", Code: "D", To: "a@b", ID: "1"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(p + ".1")
	cur, _ := os.ReadFile(p)
	if !strings.Contains(string(old), " E ") || strings.Contains(string(old), " D ") {
		t.Errorf("rotated file = %q", old)
	}
	if !strings.Contains(string(cur), " l D 0 ") {
		t.Errorf("new file = %q", cur)
	}
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// TestSyncWritesWhatWasLogged: Sync returns only once the records logged before it
// are in the file, without waiting for the writer's periodic flush; after Close it
// returns at once; a cancelled context ends it.
func TestSyncWritesWhatWasLogged(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mail.log")
	l, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := range 3 {
		l.Log(Record{Source: "tcp_local", Code: CodeDelivered, To: "a@b", ID: strconv.Itoa(i)})
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); strings.Count(string(b), " tcp_local D ") != i+1 {
			t.Fatalf("after Sync %d: %q", i, b)
		}
	}
	done, stop := context.WithCancel(context.Background())
	stop()
	l.Log(Record{Source: "tcp_local", Code: CodeRequeued, To: "a@b", ID: "q"})
	if err := l.Sync(done); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Sync with a cancelled context: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(ctx); err != nil {
		t.Errorf("Sync after Close: %v", err)
	}
	if err := Discard().Sync(ctx); err != nil {
		t.Errorf("Sync of Discard: %v", err)
	}
	var nilLog *Logger
	if err := nilLog.Sync(ctx); err != nil {
		t.Errorf("Sync of nil: %v", err)
	}
}

// TestLineIsTheFileLine: Line gives the line Log writes, without its end, with
// the logger's LOG_MESSAGE_ID setting.
func TestLineIsTheFileLine(t *testing.T) {
	ts := time.Date(2024, 3, 4, 8, 55, 1, 200_000_000, time.UTC)
	r := Record{Time: ts, Source: "tcp_local", Code: CodeRequeued, Size: 1, To: "bob@example.net", ID: "0a1b2c",
		MessageID: "<a1@x>", Diag: "smtp;451 4.3.0 later"}
	for _, msgid := range []bool{false, true} {
		l := &Logger{logMessageID: msgid}
		if got, want := l.Line(r)+"\n", string(l.format(r)); got != want {
			t.Errorf("LogMessageID=%v: Line %q, file %q", msgid, got, want)
		}
	}
	var nilLog *Logger
	if got := nilLog.Line(r); strings.Contains(got, "<a1@x>") || !strings.HasSuffix(got, " 0a1b2c smtp;451 4.3.0 later") {
		t.Errorf("nil Logger's line: %q", got)
	}
}

func TestReturnCode(t *testing.T) {
	if ReturnCode(true) != "R" || ReturnCode(false) != "K" {
		t.Errorf("ReturnCode: %q %q", ReturnCode(true), ReturnCode(false))
	}
}
