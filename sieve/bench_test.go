package sieve

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// benchScript is a filter of 100 rules of the shapes users write: subject
// contains, sender address or domain, envelope recipient. None matches the
// benchmark message, so every test runs.
func benchScript() string {
	var b strings.Builder
	b.WriteString(`require ["fileinto", "envelope"];` + "\n")
	for i := 0; i < 100; i++ {
		switch i % 4 {
		case 0, 1:
			fmt.Fprintf(&b, "if header :contains \"subject\" \"topic %d\" { fileinto \"Folder%d\"; }\n", i, i)
		case 2:
			fmt.Fprintf(&b, "if address :domain :is \"from\" \"list%d.example\" { fileinto \"List%d\"; }\n", i, i)
		default:
			fmt.Fprintf(&b, "if envelope :is \"to\" \"alias%d@example.com\" { fileinto \"Alias%d\"; }\n", i, i)
		}
	}
	return b.String()
}

// benchMessage is a message of about 4 KiB: a header of usual fields and a
// plain text body.
func benchMessage() []byte {
	var b strings.Builder
	b.WriteString("Received: from mx.example.net (mx.example.net [192.0.2.1])\r\n\tby mail.example.com with ESMTPS id 4AbC; Tue, 1 Dec 2026 10:00:00 +0000\r\n")
	b.WriteString("Received: from client.example.net by mx.example.net; Tue, 1 Dec 2026 09:59:58 +0000\r\n")
	b.WriteString("From: \"Alice Example\" <alice@example.net>\r\nTo: Bob <bob@example.com>, carol@example.com\r\n")
	b.WriteString("Cc: team@example.com\r\nSubject: Quarterly report and the minutes of Monday's meeting\r\n")
	b.WriteString("Date: Tue, 1 Dec 2026 09:59:50 +0000\r\nMessage-ID: <20261201095950.1234@example.net>\r\n")
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nX-Mailer: Example Mail 1.0\r\n\r\n")
	for b.Len() < 4096 {
		b.WriteString("The quarterly figures are attached in the usual place; nothing unusual to report.\r\n")
	}
	return []byte(b.String())
}

func BenchmarkEvaluate100Rules(b *testing.B) {
	s, err := Compile("bench.sieve", []byte(benchScript()), Options{})
	if err != nil {
		b.Fatal(err)
	}
	msg := benchMessage()
	env := Env{Envelope: Envelope{From: "alice@example.net", To: []string{"bob@example.com"}},
		Now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := s.Evaluate(ctx, msg, env)
		if err != nil || !r.ImplicitKeep {
			b.Fatal(err, r)
		}
	}
}
