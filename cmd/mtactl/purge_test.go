package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPurgeCommand(t *testing.T) {
	data := t.TempDir()
	logDir := filepath.Join(data, "log")
	if err := os.MkdirAll(logDir, 0o750); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, age := range []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour, 50 * time.Hour} {
		p := filepath.Join(logDir, "tcp_local_slave.log-"+string(rune('A'+i)))
		os.WriteFile(p, []byte("S: 220\n"), 0o640)
		os.Chtimes(p, now.Add(-age), now.Add(-age))
	}
	out, errs, rc := mtactl(t, data, now, "purge", "-num=2")
	if rc != 0 || errs != "" {
		t.Fatalf("rc %d, stderr %q", rc, errs)
	}
	for _, want := range []string{"deleted " + filepath.Join(logDir, "tcp_local_slave.log-C"), "2 transcripts deleted from " + logDir} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(logDir, "tcp_local_slave.log-B")); err != nil {
		t.Errorf("the second newest version was deleted: %v", err)
	}
	out, _, rc = mtactl(t, data, now, "purge", "-hour=1", "tcp_*")
	if rc != 0 || !strings.Contains(out, "1 transcript deleted") {
		t.Errorf("purge -hour=1: rc %d\n%s", rc, out)
	}
	if _, errs, rc := mtactl(t, data, now, "purge", "-num=0"); rc != 2 || !strings.Contains(errs, "usage: mtactl purge") {
		t.Errorf("purge -num=0: rc %d, stderr %q", rc, errs)
	}
}
