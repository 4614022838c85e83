package smtptest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"testing"
)

// Account is a system user a test created to run a program as someone else.
type Account struct {
	Name     string
	UID, GID uint32 // the user and its primary group
	// GroupID is the gid of the group asked for (NewAccount's group).
	GroupID uint32
}

// NewAccount creates a system user (with a primary group of its own) and, when
// the system has no such group, group, which the user is not a member of; both
// are removed when the test ends. It skips the test unless it runs as root with
// useradd and groupadd: tests that need a second user say so instead of failing.
func NewAccount(tb testing.TB, group string) Account {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: creates a user and a group for the test")
	}
	for _, tool := range []string{"useradd", "userdel", "groupadd", "groupdel"} {
		if _, err := exec.LookPath(tool); err != nil {
			tb.Skipf("needs %s: %v", tool, err)
		}
	}
	if _, err := user.LookupGroup(group); err != nil {
		if out, err := exec.Command("groupadd", "--system", group).CombinedOutput(); err != nil {
			tb.Fatalf("groupadd %s: %v\n%s", group, err, out)
		}
		tb.Cleanup(func() { exec.Command("groupdel", group).Run() })
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		tb.Fatal(err)
	}
	name := fmt.Sprintf("mtadt%d", rand.IntN(1000000))
	if out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		tb.Fatalf("useradd: %v\n%s", err, out)
	}
	tb.Cleanup(func() { exec.Command("userdel", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		tb.Fatal(err)
	}
	return Account{Name: name, UID: atou(tb, u.Uid), GID: atou(tb, u.Gid), GroupID: atou(tb, g.Gid)}
}

func atou(tb testing.TB, s string) uint32 {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		tb.Fatalf("id %q: %v", s, err)
	}
	return uint32(n)
}
