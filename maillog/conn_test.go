package maillog

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestConnGolden holds the layout of connection records and of an E line with
// LOG_CONNECTION bit 1 to testdata/conn.golden (go test -update to regenerate).
func TestConnGolden(t *testing.T) {
	ts := time.Date(2024, 3, 4, 8, 55, 1, 200_000_000, time.UTC)
	const tr = "TCP|192.0.2.1|25|192.0.2.17|40511"
	var out bytes.Buffer
	for _, r := range []ConnRecord{
		{Time: ts, Channel: "tcp_intranet", Code: "O", Transport: tr},
		{Time: ts, Channel: "tcp_intranet", Code: "C", Transport: tr, Peer: "ws17.example.org", Messages: 3, Diag: "QUIT"},
		{Time: ts, Channel: "tcp_local", Code: "C", Transport: tr, Peer: "bad host\r\n", Diag: "timeout\r\nafter 300s"},
		{Time: ts, Channel: "tcp_local", Code: "X", Transport: tr, Diag: "PORT_ACCESS: 554 go away"},
		{Time: ts, Channel: "tcp_local", Code: "X", Transport: tr, Diag: "421 4.3.2 Too many connections, try again later"},
		{Time: ts, Channel: "tcp_local", Outbound: true, Code: "O", Transport: "TCP|192.0.2.1|40000|198.51.100.25|25", Peer: "mx.example.net"},
		{Time: ts, Channel: "tcp_local", Outbound: true, Code: "C", Transport: "TCP|192.0.2.1|40000|198.51.100.25|25", Peer: "mx.example.net", Messages: 2, Diag: "QUIT"},
		{Time: ts, Channel: "tcp_local", Outbound: true, Code: "Y", Transport: "TCP||0|198.51.100.25|25", Peer: "mx.example.net", Diag: "connect: connection refused"},
		{Time: ts},
	} {
		out.Write(formatConn(r))
	}
	l := &Logger{logMessageID: true}
	out.Write(l.format(Record{Time: ts, Source: "tcp_intranet", Dest: "tcp_local", Code: "EE", Size: 4000,
		From: "alice@example.org", To: "bob@example.net", ID: "0a1b2c", MessageID: "<a1b2@example.org>",
		Conn: "ws17.example.org ([192.0.2.17])"}))
	out.Write(l.format(Record{Time: ts, Source: "tcp_intranet", Dest: "tcp_local", Code: "J",
		From: "alice@example.org", To: "bob@example.net", Conn: "ws17.example.org ([192.0.2.17])", Diag: "550 5.7.1 Relaying denied"}))

	golden := filepath.Join("testdata", "conn.golden")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != string(want) {
		t.Errorf("conn records differ from %s:\n got:\n%s\nwant:\n%s", golden, got, want)
	}
	for i, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")[:9] {
		// DATE TIME CHANNEL DIR CODE TRANSPORT APP MESSAGES: eight fixed columns
		if f := strings.Fields(line); len(f) < 8 {
			t.Errorf("line %d has %d fields: %q", i, len(f), line)
		}
	}
}

func TestLogConnWrites(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mail.log")
	l, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.LogConn(ConnRecord{Channel: "tcp_local", Code: "O", Transport: "TCP|127.0.0.1|25|127.0.0.1|1"})
	var nilLog *Logger
	nilLog.LogConn(ConnRecord{Code: "O"}) // must not panic
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if !strings.Contains(string(b), " tcp_local + O TCP|127.0.0.1|25|127.0.0.1|1 SMTP/- 0\n") {
		t.Errorf("mail.log = %q", b)
	}
}

func TestDebugLog(t *testing.T) {
	ts := time.Date(2024, 3, 4, 8, 55, 1, 0, time.UTC)
	tests := []struct {
		name   string
		limit  int64
		feed   func(d *DebugLog)
		want   []string // lines, in order
		absent []string
	}{
		{"dialogue split across reads", 0, func(d *DebugLog) {
			d.Note("session %s", "x")
			d.FromServer([]byte("220 mx ESMTP\r\n"))
			d.FromClient([]byte("EHLO cl"))
			d.FromClient([]byte("ient\r\nMAIL FROM:<a@b>\r\n"))
			d.FromServer([]byte("250-mx\r\n250 SIZE 10\r\n"))
		}, []string{"08:55:01.000 # session x", "S: 220 mx ESMTP", "C: EHLO client", "C: MAIL FROM:<a@b>", "S: 250-mx", "S: 250 SIZE 10"}, nil},
		{"AUTH PLAIN initial response masked", 0, func(d *DebugLog) {
			d.FromClient([]byte("AUTH PLAIN AGpvZQBzZWNyZXQ=\r\n"))
			d.FromServer([]byte("235 2.7.0 ok\r\n"))
			d.FromClient([]byte("MAIL FROM:<a@b>\r\n"))
		}, []string{"C: AUTH PLAIN ****", "S: 235 2.7.0 ok", "C: MAIL FROM:<a@b>"}, []string{"AGpvZQBzZWNyZXQ="}},
		{"AUTH LOGIN responses masked, blind one too", 0, func(d *DebugLog) {
			d.FromClient([]byte("AUTH LOGIN\r\nam9l\r\n"))
			d.FromServer([]byte("334 VXNlcm5hbWU6\r\n"))
			d.FromClient([]byte("am9lMg==\r\n"))
			d.FromServer([]byte("334 UGFzc3dvcmQ6\r\n"))
			d.FromClient([]byte("c2VjcmV0\r\n"))
			d.FromServer([]byte("535 5.7.8 no\r\n"))
			d.FromClient([]byte("QUIT\r\n"))
		}, []string{"C: AUTH LOGIN", "C: ****", "S: 334 VXNlcm5hbWU6", "C: ****", "S: 535 5.7.8 no", "C: QUIT"},
			[]string{"am9l", "c2VjcmV0"}},
		{"bounded", 200, func(d *DebugLog) {
			for range 20 {
				d.FromClient([]byte("NOOP\r\n"))
			}
		}, []string{"C: NOOP", "limit of 200 bytes reached"}, nil},
		{"partial line written at close", 0, func(d *DebugLog) {
			d.FromClient([]byte("QUI"))
		}, []string{"C: QUI"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			d, err := OpenDebug(dir, "tcp_local", "slave", "ABC", DebugOptions{Limit: tt.limit, Now: func() time.Time { return ts }})
			if err != nil {
				t.Fatal(err)
			}
			tt.feed(d)
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dir, "tcp_local_slave.log-ABC"))
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			at := 0
			for _, w := range tt.want {
				i := strings.Index(s[at:], w)
				if i < 0 {
					t.Fatalf("missing (in order) %q in:\n%s", w, s)
				}
				at += i + len(w)
			}
			for _, a := range tt.absent {
				if strings.Contains(s, a) {
					t.Errorf("%q must not appear in:\n%s", a, s)
				}
			}
			if tt.limit > 0 && int64(len(b)) > tt.limit+200 {
				t.Errorf("file is %d bytes, limit %d", len(b), tt.limit)
			}
			// ids are unique: never append to an existing transcript
			if _, err := OpenDebug(dir, "tcp_local", "slave", "ABC", DebugOptions{}); err == nil {
				t.Error("second OpenDebug with the same id succeeded")
			}
		})
	}
	var nilDbg *DebugLog
	nilDbg.FromClient([]byte("x\n"))
	nilDbg.Note("x")
	if err := nilDbg.Close(); err != nil {
		t.Error(err)
	}
}

func TestLogAfterCloseDropped(t *testing.T) {
	l, err := Open(filepath.Join(t.TempDir(), "mail.log"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l.Log(Record{Code: "D"}) // must not panic (send on a closed channel)
	l.LogConn(ConnRecord{Code: "C"})
}
