package auth

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// hash makes a cheap bcrypt hash for fixtures (cost 4: Parse accepts any cost).
func hash(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestParseErrors(t *testing.T) {
	h := hash(t, "pw")
	for _, tc := range []struct {
		name, text, want string
	}{
		{"no colon", "alice " + h + "\n", "passwd:1: bad password entry: no ':'"},
		{"empty user", "! c\n:" + h + "\n", "passwd:2: bad password entry: invalid user name: empty"},
		{"space in user", "al ice:" + h + "\n", `passwd:1: bad password entry: invalid user name: "al ice" contains ' '`},
		{"not bcrypt", "alice:{SHA}abc\n", `passwd:1: bad password entry: user "alice": not a bcrypt hash`},
		{"bcrypt prefix, garbage", "alice:$2a$10$xx\n", `passwd:1: bad password entry: user "alice": not a bcrypt hash`},
		{"empty hash", "alice:\n", `passwd:1: bad password entry: user "alice": not a bcrypt hash`},
		{"duplicate, other case", "alice:" + h + "\n\nALICE:" + h + "\n", `passwd:3: duplicate user "ALICE" (first at passwd:1)`},
		{"long user", strings.Repeat("u", MaxUserLen+1) + ":" + h + "\n", "longer than 256 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.text), "passwd")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "passwd:") {
				t.Errorf("error %q is not FILE:LINE: message", err)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	text := "! users\n# also a comment\n\nalice:" + hash(t, "secret") + "\r\nbob@example.com:" + hash(t, "pässwörd") + "\n"
	s, err := Parse(strings.NewReader(text), "passwd")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, pw string
		ok       bool
	}{
		{"alice", "secret", true},
		{"ALICE", "secret", true}, // ASCII case-insensitive user names
		{"alice", "Secret", false},
		{"alice", "", false},
		{"alice", "secret ", false},
		{"bob@example.com", "pässwörd", true},
		{"Bob@Example.COM", "pässwörd", true},
		{"bob@example.com", "passwort", false},
		{"carol", "secret", false},
		{"", "secret", false},
		{"alice", strings.Repeat("x", 100), false},
	} {
		if got := s.Verify(tc.user, tc.pw); got != tc.ok {
			t.Errorf("Verify(%q, %q) = %v, want %v", tc.user, tc.pw, got, tc.ok)
		}
	}
	if got := s.Users(); !reflect.DeepEqual(got, []string{"alice", "bob@example.com"}) {
		t.Errorf("Users %v", got)
	}
	if s.Len() != 2 || !s.Has("Alice") || s.Has("carol") {
		t.Errorf("Len %d Has", s.Len())
	}
	if w := s.WeakUsers(); len(w) != 2 {
		t.Errorf("WeakUsers %v: cost-4 hashes are weak", w)
	}
}

// TestVerifyUnknownUserCostsAHash checks the timing defence: the dummy hash has the
// users' cost, and verifying an unknown user takes about as long as a wrong password.
func TestVerifyUnknownUserCostsAHash(t *testing.T) {
	t.Parallel()
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), MinCost)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(strings.NewReader("alice:"+string(h)+"\n"), "passwd")
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.dummyHash()
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := bcrypt.Cost(d); c != MinCost {
		t.Fatalf("dummy cost %d, want the users' %d", c, MinCost)
	}
	measure := func(user string) time.Duration {
		best := time.Duration(1 << 62)
		for range 3 {
			t0 := time.Now()
			s.Verify(user, "wrong")
			best = min(best, time.Since(t0))
		}
		return best
	}
	known, unknown := measure("alice"), measure("nobody")
	if unknown < known/2 {
		t.Errorf("unknown user verified in %v, known user in %v: existence leaks through timing", unknown, known)
	}
}

func TestLoadMissingIsEmpty(t *testing.T) {
	t.Parallel()
	s, err := Load(filepath.Join(t.TempDir(), "passwd"))
	if err != nil || s.Len() != 0 || s.Verify("alice", "x") {
		t.Fatalf("%v %v", s, err)
	}
	dir := t.TempDir()
	if _, err := Load(dir); err == nil {
		t.Error("loading a directory succeeded")
	}
}

func TestSetDeleteWriteFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, DefaultFileName)
	orig := "! managed by mtactl passwd\nbob:" + hash(t, "b") + "\n"
	if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if existed, err := s.Set("alice", "first", MinCost); err != nil || existed {
		t.Fatalf("Set new: %v %v", existed, err)
	}
	if existed, err := s.Set("ALICE", "second", MinCost); err != nil || !existed {
		t.Fatalf("Set existing: %v %v", existed, err)
	}
	for _, bad := range []struct {
		user, pw string
		cost     int
	}{
		{"a:b", "x", MinCost}, {"", "x", MinCost}, {"a b", "x", MinCost},
		{"c", "", MinCost}, {"c", strings.Repeat("x", 73), MinCost}, {"c", "x", 9}, {"c", "x", 32},
	} {
		if _, err := s.Set(bad.user, bad.pw, bad.cost); err == nil {
			t.Errorf("Set(%q, %d-byte password, cost %d) succeeded", bad.user, len(bad.pw), bad.cost)
		}
	}
	if _, err := s.Set("a:b", "x", 0); !errors.Is(err, ErrBadUser) {
		t.Errorf("bad user error %v is not ErrBadUser", err)
	}
	if err := s.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v, want 0600", st.Mode(), err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	// Each Verify at MinCost is a fraction of a second: check only what matters.
	if !back.Verify("alice", "second") || !back.Verify("bob", "b") {
		t.Error("passwords after rewrite")
	}
	if got := back.Users(); !reflect.DeepEqual(got, []string{"bob", "alice"}) {
		t.Errorf("users %v: order not kept", got)
	}
	b, _ := os.ReadFile(path)
	if !bytes.HasPrefix(b, []byte("! managed by mtactl passwd\nbob:")) {
		t.Errorf("comment or order lost: %q", b)
	}
	if !back.Delete("BOB") || back.Delete("bob") || back.Has("bob") || !back.Has("alice") {
		t.Error("Delete")
	}
	if back.Verify("bob", "b") {
		t.Error("deleted user verified")
	}
	if got := back.Users(); !reflect.DeepEqual(got, []string{"alice"}) {
		t.Errorf("users after Delete: %v", got)
	}
}

func TestWriteFileFailsCleanly(t *testing.T) {
	s, err := Parse(strings.NewReader(""), "passwd")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteFile(filepath.Join(t.TempDir(), "missing", "passwd")); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

// FuzzParse: the parser takes a file anyone with access to the data directory
// may have edited; it must not panic, and what it accepts must survive a rewrite.
func FuzzParse(f *testing.F) {
	h := hash(f, "pw")
	f.Add("alice:" + h + "\n")
	f.Add("! comment\n\nbob:" + h + "\r\nALICE:" + h)
	f.Add("x:$2a$04$")
	f.Add(":\n:::\n")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := Parse(strings.NewReader(text), "passwd")
		if err != nil {
			return
		}
		again, err := Parse(bytes.NewReader(s.Bytes()), "passwd")
		if err != nil {
			t.Fatalf("rewrite of an accepted file fails: %v\n%q", err, s.Bytes())
		}
		if !reflect.DeepEqual(again.Users(), s.Users()) {
			t.Fatalf("users %v became %v", s.Users(), again.Users())
		}
	})
}
