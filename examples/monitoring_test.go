package examples_test

import (
	"os/exec"
	"testing"
)

// TestMonitoringRules runs promtool (Debian's prometheus package) on the
// shipped alert rules: they parse, and their unit tests (mtad.rules.test.yml)
// pass. CI installs promtool; elsewhere the test says it is missing.
func TestMonitoringRules(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Skip("promtool is not installed (apt-get install prometheus)")
	}
	for _, args := range [][]string{
		{"check", "rules", "mtad.rules.yml"},
		{"test", "rules", "mtad.rules.test.yml"},
	} {
		cmd := exec.Command("promtool", args...)
		cmd.Dir = "monitoring"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
