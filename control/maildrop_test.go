package control

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDropRoundTrip: what WriteDrop writes ReadDrop reads back, owner included,
// without the user the writer claimed; the file is whole under its final name
// and nothing is left under a temporary one.
func TestDropRoundTrip(t *testing.T) {
	dir := t.TempDir()
	sub := &Submission{Sender: "me@x", SenderSet: true, FullName: "Me", User: "root-pretender",
		Recipients: []string{"a@x", "b@y"}, Content: []byte("Subject: hi\r\n\r\nbody\r\n")}
	name, err := WriteDrop(dir, sub)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != name {
		t.Fatalf("maildrop holds %v, want just %s", ents, name)
	}
	if fi, _ := os.Stat(filepath.Join(dir, name)); fi.Mode().Perm() != 0o744 {
		t.Errorf("a written file has mode %v, want 0744 (complete)", fi.Mode().Perm())
	}
	d, err := ReadDrop(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	if d.UID != uint32(os.Geteuid()) || d.Submission.User != "" || d.Submission.Sender != "me@x" || !d.Submission.SenderSet ||
		d.Submission.FullName != "Me" || strings.Join(d.Submission.Recipients, ",") != "a@x,b@y" || !bytes.Equal(d.Submission.Content, sub.Content) {
		t.Errorf("read back %+v", d)
	}
	if _, err := ReadDrop(dir, "gone"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a name taken already: %v", err)
	}
}

// TestDropRefusesHostileFiles: every file that is not what WriteDrop writes is
// refused with a DropError, without following a link or blocking on a FIFO.
func TestDropRefusesHostileFiles(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("MTADROP 1\n{\"size\":0}\n"), 0o600)
	good, err := WriteDrop(dir, &Submission{Recipients: []string{"a@x"}, Content: []byte("x\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	whole, _ := os.ReadFile(filepath.Join(dir, good))
	// Forgeries are marked complete (0744), as a writer would mark them.
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o744); err != nil {
			t.Fatal(err)
		}
	}
	write("truncated", whole[:len(whole)-2])
	write("overlong", append(bytes.Clone(whole), "more"...))
	write("nomagic", []byte("From: x\r\n\r\nbody\r\n"))
	write("noheader", []byte("MTADROP 1\n{\"size\":3}"))
	write("unknownfield", []byte("MTADROP 1\n{\"size\":0,\"user\":\"root\"}\n"))
	big, err := os.Create(filepath.Join(dir, "oversized"))
	if err != nil {
		t.Fatal(err)
	}
	big.Truncate(MaxDropSize + 1)
	big.Chmod(0o744)
	big.Close()
	os.Symlink(secret, filepath.Join(dir, "symlink"))
	os.Link(secret, filepath.Join(dir, "hardlink"))
	syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644)
	os.Mkdir(filepath.Join(dir, "subdir"), 0o755)
	want := map[string]string{
		"truncated":    "truncated or overlong",
		"overlong":     "truncated or overlong",
		"nomagic":      "not a maildrop file",
		"noheader":     "truncated: no header line",
		"unknownfield": "bad header",
		"oversized":    "larger than",
		"symlink":      "symbolic link",
		"hardlink":     "a hard link",
		"fifo":         "FIFO",
		"subdir":       "directory",
	}
	for name, text := range want {
		_, err := ReadDrop(dir, name)
		var de *DropError
		if !errors.As(err, &de) || !strings.Contains(de.Reason, text) {
			t.Errorf("%s: %v, want a refusal saying %q", name, err, text)
		}
	}
	// Not marked complete: being written, not refused (yet).
	os.WriteFile(filepath.Join(dir, "writing"), whole, 0o644)
	if d, err := ReadDrop(dir, "writing"); !errors.Is(err, ErrDropIncomplete) || d == nil || d.UID != uint32(os.Geteuid()) {
		t.Errorf("a file not marked complete: %+v, %v", d, err)
	}
}

// TestMaildropReserve: a twentieth of the file system, between 64 MiB and 1 GiB.
func TestMaildropReserve(t *testing.T) {
	for _, c := range []struct{ total, want uint64 }{
		{100 << 20, 64 << 20}, {10 << 30, 512 << 20}, {1 << 40, 1 << 30},
	} {
		if got := MaildropReserve(c.total); got != c.want {
			t.Errorf("MaildropReserve(%d) = %d, want %d", c.total, got, c.want)
		}
	}
}
