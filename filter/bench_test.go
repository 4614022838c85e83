package filter

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mtad.dev/mta/intake"
	"mtad.dev/mta/queue"
)

// BenchmarkChannelFilter100Rules is a destination channel filter of 100 rules
// (subject, sender domain, envelope recipient; none matches) run the way intake
// runs it on a 4 KiB message: found through its file: URL in the cache,
// evaluated, its decisions turned into deliveries. The budget is 20 µs
// of CPU per message.
func BenchmarkChannelFilter100Rules(b *testing.B) {
	var rules strings.Builder
	rules.WriteString("require [\"fileinto\", \"envelope\"];\n")
	for i := range 100 {
		test := [...]string{
			fmt.Sprintf(`header :contains "subject" "topic %d"`, i),
			fmt.Sprintf(`address :domain :is "from" "list%d.example"`, i),
			fmt.Sprintf(`envelope :is "to" "alias%d@example.com"`, i),
		}[i%3]
		fmt.Fprintf(&rules, "if %s { fileinto \"Folder%d\"; }\n", test, i)
	}
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tcp_local.filter"), []byte(rules.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	var msg strings.Builder
	msg.WriteString("Received: from mx.example.net ([192.0.2.1])\r\n\tby mail.example.com (mtad) with ESMTP id 1; Tue, 1 Dec 2026 10:00:00 +0000\r\n")
	msg.WriteString("From: \"Alice Example\" <alice@example.net>\r\nTo: Bob <bob@example.com>\r\nSubject: Quarterly report\r\n")
	msg.WriteString("Date: Tue, 1 Dec 2026 09:59:50 +0000\r\nMessage-ID: <20261201095950.1234@example.net>\r\n\r\n")
	for msg.Len() < 4096 {
		msg.WriteString("The quarterly figures are attached in the usual place; nothing unusual to report.\r\n")
	}
	s := &System{Deps: Deps{Scripts: NewCache(nil, 0)}, ConfigDir: dir,
		Channels: map[string]ChannelFilters{"tcp_local": {Destination: "file:IMTA_TABLE:tcp_local.filter"}}}
	req := &intake.FilterRequest{Origin: &intake.Origin{Kind: intake.SMTP, Channel: "tcp_intranet"}, From: "alice@example.net",
		Rcpts: []queue.Recipient{{Addr: "bob@remote.example", Channel: "tcp_local"}}, Content: []byte(msg.String())}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(req.Content)))
	for b.Loop() {
		res := s.Filter(ctx, req)
		if len(res.Rcpts[0].Deliveries) != 1 {
			b.Fatal(summary(res, req))
		}
	}
}
