package daemon

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestLogsAndHookMetrics: with LOG_CONNECTION=3, slave_debug on tcp_local and
// master_debug on tcp_a, sending mail writes connection records both ways, both
// transcripts, and the hook metrics a scrape then shows.
func TestLogsAndHookMetrics(t *testing.T) {
	s := newSink(t)
	cfg := t.TempDir()
	files := metricsConfig(s.port, 3, "127.0.0.1:0")
	files["option.dat"] += "LOG_CONNECTION=3\n"
	files["imta.cnf"] = strings.Replace(files["imta.cnf"], "tcp_local smtp nomx single_sys", "tcp_local smtp nomx single_sys slave_debug", 1)
	files["imta.cnf"] = strings.Replace(files["imta.cnf"], "tcp_a smtp nomx single_sys", "tcp_a smtp nomx single_sys master_debug", 1)
	installImage(t, cfg, buildImage(t, files))
	data := t.TempDir()
	d, _ := startWith(t, Options{ConfigDir: cfg, DataDir: data, Listen: "127.0.0.1:0", ReloadDebounce: 20 * time.Millisecond})

	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	c.Send("me@localhost", []string{"a@held.test"}, msg("held-1"))
	c.Send("me@localhost", []string{"x@route.test", "y@route.test"}, msg("relayed"))
	c.Cmd("QUIT", "221")
	s.wait(t, 1)

	var m map[string]float64
	waitFor(t, "the hook metrics", func() bool {
		m = scrape(t, d.MetricsAddr())
		return m[`mtad_smtp_messages_total{result="accepted"}`] == 2 && m["mtad_smtp_sessions_open"] == 0
	})
	for series, want := range map[string]float64{
		"mtad_queue_commit_duration_seconds_count":   2,
		"mtad_queue_commit_batch_messages_sum":       2,
		"mtad_engine_rewrite_duration_seconds_count": 3,
	} {
		if m[series] != want {
			t.Errorf("%s = %v, want %v", series, m[series], want)
		}
	}

	waitFor(t, "transcripts", func() bool {
		m, _ := filepath.Glob(filepath.Join(data, "log", "tcp_a_master.log-*"))
		return len(m) == 1
	})
	slave, _ := filepath.Glob(filepath.Join(data, "log", "tcp_local_slave.log-*"))
	if len(slave) != 1 {
		t.Fatalf("slave transcripts: %v", slave)
	}
	b, _ := os.ReadFile(slave[0])
	if !strings.Contains(string(b), "C: RCPT TO:<y@route.test>") {
		t.Errorf("slave transcript:\n%s", b)
	}
	if err := d.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	log, _ := os.ReadFile(filepath.Join(data, "mail.log"))
	for _, re := range []string{
		`(?m) tcp_local \+ O TCP\|127\.0\.0\.1\|\d+\|127\.0\.0\.1\|\d+ SMTP/- 0$`,
		`(?m) tcp_local \+ C TCP\|\S+ SMTP/client\.test 2 QUIT$`,
		`(?m) tcp_local tcp_a E\S* .* client\.test \(\[127\.0\.0\.1\]\)$`,
		`(?m) tcp_a - O TCP\|\S+ SMTP/\S+ 0$`,
	} {
		if !regexp.MustCompile(re).Match(log) {
			t.Errorf("mail.log lacks %s:\n%s", re, log)
		}
	}
}
