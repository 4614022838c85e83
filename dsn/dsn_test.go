package dsn

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

const original = "Received: from ws17.example.org ([192.0.2.17])\r\n" +
	"From: Alice <alice@example.org>\r\n" +
	"To: bob@example.net, carol@example.net\r\n" +
	"Subject: lunch\r\n" +
	"Message-ID: <a1b2@example.org>\r\n" +
	"\r\n" +
	"See you at noon.\r\n"

func fixedReport(full bool) *Report {
	t0 := time.Date(2024, 3, 4, 8, 55, 1, 0, time.UTC)
	return &Report{
		ReportingMTA:  "mx1.example.com",
		From:          "postmaster@mx1.example.com",
		To:            "alice@example.org",
		Date:          t0.Add(72 * time.Hour),
		MessageID:     "dsn.0a1b2c.1@mx1.example.com",
		QueueID:       "0a1b2c",
		EnvID:         "env-42",
		Arrival:       t0,
		OrigMessageID: "<a1b2@example.org>",
		Recipients: []Recipient{
			{Original: "rfc822;Bob@Example.NET", Final: "bob@example.net", Action: Failed, Status: "5.1.1",
				RemoteMTA: "mx.example.net", Diagnostic: "550 5.1.1 <bob@example.net> no such user",
				LastAttempt: t0.Add(time.Hour)},
			{Final: "carol@example.net", Action: Delayed, Status: "4.4.1",
				Diagnostic:     "TCP active open: Failed connect() Error: Connection refused",
				WillRetryUntil: t0.Add(12 * 24 * time.Hour)},
		},
		Original: strings.NewReader(original),
		Full:     full,
	}
}

func TestBuildGolden(t *testing.T) {
	for _, tt := range []struct {
		name string
		full bool
	}{{"hdrs", false}, {"full", true}} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Build(fixedReport(tt.full))
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "dsn_"+tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Build output differs from %s:\n%s", golden, got)
			}
		})
	}
}

// TestBuildStructure parses the notice back with go-message and checks the RFC 3464
// structure field by field, independently of the golden bytes.
func TestBuildStructure(t *testing.T) {
	for _, full := range []bool{false, true} {
		raw, err := Build(fixedReport(full))
		if err != nil {
			t.Fatal(err)
		}
		e, err := message.Read(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		mt, params, _ := e.Header.ContentType()
		if mt != "multipart/report" || params["report-type"] != "delivery-status" {
			t.Fatalf("content-type %q %v", mt, params)
		}
		if got := e.Header.Get("Subject"); got != "Delivery Status Notification" {
			t.Errorf("subject %q", got)
		}
		if got := e.Header.Get("Auto-Submitted"); got != "auto-replied" {
			t.Errorf("Auto-Submitted %q", got)
		}
		mr := e.MultipartReader()
		var types []string
		var parts [][]byte
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			ct, _, _ := p.Header.ContentType()
			types = append(types, ct)
			b, _ := io.ReadAll(p.Body)
			parts = append(parts, b)
		}
		wantThird := "text/rfc822-headers"
		if full {
			wantThird = "message/rfc822"
		}
		if strings.Join(types, ",") != "text/plain,message/delivery-status,"+wantThird {
			t.Fatalf("parts %v", types)
		}
		// The delivery-status body is a series of header-like blocks.
		br := bufio.NewReader(bytes.NewReader(parts[1]))
		var blocks []textproto.Header
		for {
			h, err := textproto.ReadHeader(br)
			if err != nil {
				t.Fatal(err)
			}
			blocks = append(blocks, h)
			if _, err := br.Peek(1); err != nil {
				break
			}
		}
		if len(blocks) != 3 {
			t.Fatalf("%d status blocks, want 3:\n%s", len(blocks), parts[1])
		}
		checks := []struct {
			block      int
			key, value string
		}{
			{0, "Reporting-MTA", "dns; mx1.example.com"},
			{0, "Original-Envelope-Id", "env-42"},
			{0, "Arrival-Date", "Mon, 04 Mar 2024 08:55:01 +0000"},
			{1, "Original-Recipient", "rfc822; Bob@Example.NET"},
			{1, "Final-Recipient", "rfc822; bob@example.net"},
			{1, "Action", "failed"},
			{1, "Status", "5.1.1"},
			{1, "Remote-MTA", "dns; mx.example.net"},
			{1, "Diagnostic-Code", "smtp; 550 5.1.1 <bob@example.net> no such user"},
			{2, "Final-Recipient", "rfc822; carol@example.net"},
			{2, "Action", "delayed"},
			{2, "Status", "4.4.1"},
			{2, "Will-Retry-Until", "Sat, 16 Mar 2024 08:55:01 +0000"},
			{2, "Original-Recipient", ""},
		}
		for _, c := range checks {
			if got := blocks[c.block].Get(c.key); got != c.value {
				t.Errorf("block %d %s = %q, want %q", c.block, c.key, got, c.value)
			}
		}
		if full && !bytes.Contains(parts[2], []byte("See you at noon.")) {
			t.Errorf("RET=FULL lost the body")
		}
		if !full && bytes.Contains(parts[2], []byte("See you at noon.")) {
			t.Errorf("headers-only notice contains the body")
		}
		if !bytes.Contains(parts[2], []byte("Subject: lunch")) {
			t.Errorf("original header missing: %q", parts[2])
		}
	}
}

func TestBuildErrors(t *testing.T) {
	r := fixedReport(false)
	r.Recipients = nil
	if _, err := Build(r); err == nil {
		t.Error("no recipients: want error")
	}
	r = fixedReport(false)
	r.To = ""
	if _, err := Build(r); err == nil {
		t.Error("no notice recipient: want error")
	}
}

func TestSubject(t *testing.T) {
	tests := []struct {
		actions []Action
		want    string
	}{
		{[]Action{Failed}, "Delivery Status Notification (Failure)"},
		{[]Action{Delayed, Delayed}, "Delivery Status Notification (Delay)"},
		{[]Action{Failed, Delayed}, "Delivery Status Notification"},
		{[]Action{Delivered, Relayed}, "Delivery Status Notification (Success)"},
		{[]Action{Failed, Delivered}, "Delivery Status Notification"},
	}
	for _, tt := range tests {
		var rs []Recipient
		for _, a := range tt.actions {
			rs = append(rs, Recipient{Action: a})
		}
		if got := subject(rs); got != tt.want {
			t.Errorf("subject(%v) = %q, want %q", tt.actions, got, tt.want)
		}
	}
}

func TestWants(t *testing.T) {
	tests := []struct {
		notify string
		ev     Event
		want   bool
	}{
		{"", EventFailure, true},
		{"", EventDelay, true},
		{"", EventSuccess, false},
		{"NEVER", EventFailure, false},
		{"NEVER", EventDelay, false},
		{"SUCCESS", EventFailure, false},
		{"SUCCESS,FAILURE", EventFailure, true},
		{"SUCCESS,FAILURE", EventDelay, false},
		{"failure, delay", EventDelay, true},
		{"DELAY", EventFailure, false},
		{"SUCCESS", EventSuccess, true},
	}
	for _, tt := range tests {
		if got := Wants(tt.notify, tt.ev); got != tt.want {
			t.Errorf("Wants(%q, %d) = %v, want %v", tt.notify, tt.ev, got, tt.want)
		}
	}
}

func TestDiagnosticCode(t *testing.T) {
	tests := []struct{ in, want string }{
		{"550 5.1.1 no such user", "smtp; 550 5.1.1 no such user"},
		{"smtp;250 2.0.0 ok", "smtp; 250 2.0.0 ok"},
		{"SMTP; 451 later", "smtp; 451 later"},
		{"lmtp;550 5.1.1 no mailbox", "smtp; 550 5.1.1 no mailbox"},
		{"TCP active open: Failed connect(); refused", "x-local; TCP active open: Failed connect(); refused"},
	}
	for _, tt := range tests {
		if got := diagnosticCode(tt.in); got != tt.want {
			t.Errorf("diagnosticCode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestReadHeader(t *testing.T) {
	tests := []struct{ in, want string }{
		{"A: b\r\nC: d\r\n\r\nbody\r\n", "A: b\r\nC: d\r\n"},
		{"A: b\nC: d\n\nbody\n", "A: b\r\nC: d\r\n"},
		{"A: b\r\n", "A: b\r\n"},
		{"A: b", "A: b\r\n"},
		{"", ""},
		{"not a header at all\r\n\r\n", "not a header at all\r\n"},
	}
	for _, tt := range tests {
		got, err := readHeader(strings.NewReader(tt.in))
		if err != nil {
			t.Fatalf("readHeader(%q): %v", tt.in, err)
		}
		if string(got) != tt.want {
			t.Errorf("readHeader(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzBuild feeds arbitrary originals (outside input: whatever a client sent) and
// diagnostics: Build must succeed and its output must parse as a 3-part report.
func FuzzBuild(f *testing.F) {
	f.Add(original, "550 5.1.1 no such user", false)
	f.Add("garbage\x00\xff\r\n\r\n", "line1\r\nline2", true)
	f.Add("", "", false)
	f.Fuzz(func(t *testing.T, orig, diag string, full bool) {
		r := fixedReport(full)
		r.Original = strings.NewReader(orig)
		r.Recipients[0].Diagnostic = diag
		raw, err := Build(r)
		if err != nil {
			t.Fatal(err)
		}
		e, err := message.Read(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		mr := e.MultipartReader()
		if mr == nil {
			t.Fatal("not multipart")
		}
		n := 0
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				// A full original may contain our boundary only if it is adversarial;
				// the boundary derives from our Message-ID, which clients do not know.
				if strings.Contains(orig, "=_dsn_") {
					return
				}
				t.Fatal(err)
			}
			io.Copy(io.Discard, p.Body)
			n++
		}
		if n != 3 {
			t.Fatalf("%d parts", n)
		}
	})
}

// TestOriginalDescription: the part returning the original says "Undelivered"
// only when the report has a recipient that failed or was delayed. A success
// notice (found by the interop suite: mtad's delivered and relayed notices, read
// through Postfix, said "Undelivered message header") describes it neutrally.
func TestOriginalDescription(t *testing.T) {
	for _, tt := range []struct {
		actions []Action
		full    bool
		want    string
	}{
		{[]Action{Delivered}, false, "Message header"},
		{[]Action{Relayed}, true, "Message"},
		{[]Action{Delivered, Relayed}, false, "Message header"},
		{[]Action{Failed}, false, "Undelivered message header"},
		{[]Action{Delayed}, true, "Undelivered message"},
		{[]Action{Delivered, Failed}, false, "Undelivered message header"},
	} {
		r := fixedReport(tt.full)
		r.Recipients = nil
		for i, a := range tt.actions {
			r.Recipients = append(r.Recipients, Recipient{Final: fmt.Sprintf("r%d@example.net", i), Action: a})
		}
		raw, err := Build(r)
		if err != nil {
			t.Fatal(err)
		}
		// the original's part is the last one, the only one with a message type
		i := bytes.LastIndex(raw, []byte("Content-Description: "))
		got, _, _ := strings.Cut(string(raw[i+len("Content-Description: "):]), "\r\n")
		if got != tt.want || !bytes.Contains(raw[i:], []byte("rfc822")) {
			t.Errorf("%v full=%v: original described as %q, want %q", tt.actions, tt.full, got, tt.want)
		}
	}
}
