package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mtad.dev/mta/auth"
)

// TestPasswdWritesVerifiableFile checks what the goldens cannot see: the file
// mtactl passwd writes holds a hash that verifies, keeps the other lines, and is
// private.
func TestPasswdWritesVerifiableFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, auth.DefaultFileName)
	if err := os.WriteFile(path, []byte("! users\nbob:$2a$04$ah1mcQOU9ZEiOthdZ4WoPu2luvuGGHYFtfX21cE/IsWcK7.UVdo8K\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	passwd := func(stdin string, tty bool, args ...string) (int, string) {
		var out bytes.Buffer
		rc := runIO(append([]string{"-data", dir, "passwd"}, args...), strings.NewReader(stdin), tty, &out, &out, fixedNow)
		return rc, out.String()
	}
	if rc, out := passwd("first\n", false, "-stdin", "-cost", "10", "alice"); rc != 0 {
		t.Fatalf("add: %d %s", rc, out)
	}
	if rc, out := passwd("second\r\n", false, "-stdin", "-cost", "10", "Alice"); rc != 0 {
		t.Fatalf("change: %d %s", rc, out)
	}
	// A terminal that is not a file cannot have its echo turned off: refuse
	// rather than show the password.
	if rc, out := passwd("x\nx\n", true, "carol"); rc != 1 || !strings.Contains(out, "cannot turn terminal echo off") {
		t.Errorf("tty without echo control: %d %s", rc, out)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v, want 0600", st.Mode(), err)
	}
	s, err := auth.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Verify("alice", "second") || s.Verify("alice", "first") || !s.Verify("bob", "old") || s.Has("carol") {
		t.Errorf("users %v: passwords not as set", s.Users())
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "! users\nbob:") {
		t.Errorf("comment or order lost: %q", b)
	}
	if rc, out := passwd("", false, "-delete", "BOB"); rc != 0 {
		t.Fatalf("delete: %d %s", rc, out)
	}
	if s, err = auth.Load(path); err != nil || s.Has("bob") || !s.Has("alice") {
		t.Errorf("after delete: %v %v", s.Users(), err)
	}
}
