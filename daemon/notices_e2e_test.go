package daemon

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// A destination that keeps answering 4xx: the sender gets a delay notice at the
// first notices age and the message is returned at the last one (a destination that
// never takes the message; the notice unit is shortened to a second so that it runs
// here).
func TestJobsDelayNoticeThenReturn(t *testing.T) {
	remote := newScripted(t, "127.0.0.1:0", func(to string, attempt int) error {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later-plugh"}
	})
	data := t.TempDir()
	d, err := Start(context.Background(), Options{
		ConfigDir:  jobsRelayConfig(t, remote.port, `backoff "pt1s" notices 2 4`),
		DataDir:    data,
		Listen:     "127.0.0.1:0",
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		NoticeUnit: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopDaemon(t, d) })
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	id := queueID(c.Send("sender@localhost", []string{"slow@remote.example"},
		[]byte("Subject: patience\r\nMessage-ID: <n1@test>\r\n\r\nbody\r\n")))
	c.Cmd("QUIT", "221")

	notices := waitMaildir(t, data, "sender", 2)
	var delayed, failed string
	for _, n := range notices {
		switch s := string(n); {
		case strings.Contains(s, "Action: delayed"):
			delayed = s
		case strings.Contains(s, "Action: failed"):
			failed = s
		}
	}
	if delayed == "" || failed == "" {
		t.Fatalf("want one delay notice and one return, got:\n%s", notices)
	}
	for _, n := range []string{delayed, failed} {
		for _, want := range []string{"Return-Path: <>", "slow@remote.example", "try later-plugh"} {
			if !strings.Contains(n, want) {
				t.Errorf("notice lacks %q:\n%s", want, n)
			}
		}
	}
	if !strings.Contains(delayed, "Will-Retry-Until:") {
		t.Errorf("delay notice lacks Will-Retry-Until:\n%s", delayed)
	}
	waitLogMatch(t, data, 5*time.Second, ` tcp_local W .*`+id, ` tcp_local R .*`+id)
	if remote.Count() != 0 {
		t.Errorf("remote accepted %d messages", remote.Count())
	}
}
