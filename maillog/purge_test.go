package maillog

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestPurge(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	// name -> age
	files := map[string]time.Duration{
		"tcp_local_master.log-A": 1 * time.Hour,
		"tcp_local_master.log-B": 2 * time.Hour,
		"tcp_local_master.log-C": 30 * time.Hour,
		"tcp_local_master.log-D": 50 * time.Hour,
		"tcp_local_slave.log-E":  3 * time.Hour,
		"tcp_local_slave.log-F":  72 * time.Hour,
		"l_slave.log-G":          100 * time.Hour,
		"mail.log":               1000 * time.Hour, // never a transcript
		"notes.txt":              1000 * time.Hour,
	}
	for _, tt := range []struct {
		name string
		opts PurgeOptions
		want []string
	}{
		{"keep 2 of each", PurgeOptions{Keep: 2}, []string{"tcp_local_master.log-C", "tcp_local_master.log-D"}},
		{"keep 1 of each", PurgeOptions{Keep: 1}, []string{"tcp_local_master.log-B", "tcp_local_master.log-C", "tcp_local_master.log-D", "tcp_local_slave.log-F"}},
		{"default keeps 5", PurgeOptions{}, nil},
		{"older than a day", PurgeOptions{MaxAge: 24 * time.Hour}, []string{"l_slave.log-G", "tcp_local_master.log-C", "tcp_local_master.log-D", "tcp_local_slave.log-F"}},
		{"pattern", PurgeOptions{Pattern: "*_slave.log", MaxAge: 24 * time.Hour}, []string{"l_slave.log-G", "tcp_local_slave.log-F"}},
		{"exact base", PurgeOptions{Pattern: "tcp_local_master.log", Keep: 3}, []string{"tcp_local_master.log-D"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, age := range files {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, []byte("x"), 0o640); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
					t.Fatal(err)
				}
			}
			tt.opts.Now = now
			removed, err := Purge(dir, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range removed {
				got = append(got, filepath.Base(p))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("removed %v, want %v", got, tt.want)
			}
			for name := range files {
				_, err := os.Stat(filepath.Join(dir, name))
				if gone := slices.Contains(tt.want, name); gone != os.IsNotExist(err) {
					t.Errorf("%s: removed=%t but stat says %v", name, gone, err)
				}
			}
		})
	}
	if _, err := Purge(t.TempDir(), PurgeOptions{Pattern: "["}); err == nil {
		t.Error("a malformed pattern was accepted")
	}
	if got, err := Purge(filepath.Join(t.TempDir(), "none"), PurgeOptions{}); err != nil || got != nil {
		t.Errorf("missing directory: %v %v", got, err)
	}
}
