package control

// The maildrop: local submission that does not need mtad to be running, nor the
// permission to use the control socket. mtactl sendmail writes the submission
// into DATA/maildrop, a directory only mtad's user and the group MaildropGroup
// may write into (mode 1730: the group may create files there, but neither list
// nor read the directory, nor remove another's file), with the group's
// permission lent by a setgid-MaildropGroup mtactl, as Postfix's postdrop does.
// mtad picks each file up, submits it as the user who owns it (the kernel's
// word, never the file's content) and removes it once the message is queued.
//
// A file is created under its final name with mode 0644, written, fsynced, and
// marked complete by setting its owner's execute bit (0744), then fsynced again,
// as Postfix's postdrop does: the writer may not open the directory to fsync it
// (the group has no read permission), and fsync of a new file writes its name
// too on the usual Linux file systems (ext4, XFS); the directory is fsynced as
// well when the writer can open it (mtad's user, root). mtad takes only files
// marked complete. It still trusts nothing in a file: ReadDrop refuses, with a
// DropError, anything that is not a regular file with a single link, or that is
// larger than MaxDropSize, or whose length or header is not what WriteDrop
// writes.
//
// Format: the line "MTADROP 1", a line of JSON (dropHeader), then the content,
// exactly Size bytes.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// MaildropName is the maildrop's directory in the data directory, and
	// MaildropRefused where mtad moves the files it refuses.
	MaildropName    = "maildrop"
	MaildropRefused = "maildrop.refused"
	// MaildropGroup is the group that may write into the maildrop: mtactl is
	// installed setgid to it.
	MaildropGroup = "mtadrop"
	// MaildropMode is the maildrop's mode: sticky, owner rwx, group -wx.
	MaildropMode = fs.ModeSticky | 0o730
	// MaxDropSize bounds one maildrop file: the largest submission and its header.
	MaxDropSize = MaxSubmitContent + 1<<20
	// dropComplete is the mode bit that marks a file whole.
	dropComplete = 0o100

	dropMagic = "MTADROP 1\n"
)

// MaildropReserve is the free space WriteDrop leaves on the maildrop's file
// system: a twentieth of it, at least 64 MiB and at most 1 GiB. A user cannot
// fill the disk the queue needs by spooling while mtad is down; while it runs,
// mtad takes every file as it arrives.
func MaildropReserve(total uint64) uint64 {
	return min(max(total/20, 64<<20), 1<<30)
}

// dropHeader is a maildrop file's envelope: Submission without the user, whom
// mtad takes from the file's owner, and without the content, which follows.
type dropHeader struct {
	Sender      string   `json:"sender,omitempty"`
	SenderSet   bool     `json:"sender_set,omitempty"`
	FullName    string   `json:"full_name,omitempty"`
	Recipients  []string `json:"recipients,omitempty"`
	FromHeaders bool     `json:"from_headers,omitempty"`
	Size        int      `json:"size"`
}

// ErrMaildropFull is WriteDrop's refusal when the file system is down to
// MaildropReserve.
var ErrMaildropFull = errors.New("the maildrop's file system is full")

// WriteDrop writes sub into the maildrop dir and returns the file's name. The
// file is durable (fsynced, and its directory) when it returns without error.
// sub.User is not written: mtad takes the user from the file's owner.
func WriteDrop(dir string, sub *Submission) (string, error) {
	if len(sub.Content) > MaxSubmitContent {
		return "", fmt.Errorf("message larger than %d bytes", MaxSubmitContent)
	}
	hdr, err := json.Marshal(dropHeader{Sender: sub.Sender, SenderSet: sub.SenderSet, FullName: sub.FullName,
		Recipients: sub.Recipients, FromHeaders: sub.FromHeaders, Size: len(sub.Content)})
	if err != nil {
		return "", err
	}
	size := uint64(len(dropMagic) + len(hdr) + 1 + len(sub.Content))
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "", &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	if avail, total := st.Bavail*uint64(st.Bsize), st.Blocks*uint64(st.Bsize); avail < size+MaildropReserve(total) {
		return "", fmt.Errorf("%w (%d MiB free, %d MiB kept free)", ErrMaildropFull, avail>>20, MaildropReserve(total)>>20)
	}
	name := dropName()
	path := filepath.Join(dir, name)
	// 0644: mtad reads it as "other" when it is neither the owner nor in the
	// group; nobody else can reach it, as only mtad's user and the group may
	// search the directory.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", err
	}
	w := bufio.NewWriterSize(f, 256<<10)
	w.WriteString(dropMagic)
	w.Write(hdr)
	w.WriteByte('\n')
	w.Write(sub.Content)
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = f.Chmod(0o644 | dropComplete)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", err
	}
	syncDirIfReadable(dir)
	return name, nil
}

// dropName is unique without listing the directory (which the writer may not):
// the time, the process and 64 random bits.
func dropName() string {
	var b [8]byte
	rand.Read(b[:])
	return strconv.FormatInt(time.Now().UnixNano(), 10) + "." + strconv.Itoa(os.Getpid()) + "." + hex.EncodeToString(b[:])
}

// syncDirIfReadable fsyncs dir when this process may open it; a user writing
// through the setgid group may not, and relies on the file's own fsync.
func syncDirIfReadable(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Drop is one maildrop file as mtad read it.
type Drop struct {
	Name string
	// UID owns the file: the user who wrote it, as the kernel says.
	UID        uint32
	Submission Submission // User empty: the caller names UID's user
	ModTime    time.Time
}

// ErrDropIncomplete is ReadDrop's answer for a file not marked complete: it is
// being written (or its writer died; the caller decides by its age).
var ErrDropIncomplete = errors.New("maildrop: file not complete yet")

// DropError is a maildrop file refused for what it is; the caller moves it
// aside. Other errors of ReadDrop are the file system's.
type DropError struct{ Reason string }

func (e *DropError) Error() string { return e.Reason }

func refuse(format string, args ...any) error {
	return &DropError{Reason: fmt.Sprintf(format, args...)}
}

// ReadDrop reads and checks the maildrop file dir/name. It follows no symbolic
// link, does not block on a FIFO, and refuses anything but a whole regular file
// with one link (a hard link could name a file its owner may not read) of at
// most MaxDropSize bytes. A name that does not exist (taken already) is an
// fs.ErrNotExist error; a file not marked complete is ErrDropIncomplete, with
// the Drop's Name, UID and ModTime set.
func ReadDrop(dir, name string) (*Drop, error) {
	path := filepath.Join(dir, name)
	li, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !li.Mode().IsRegular() {
		return nil, refuse("not a regular file (%s)", fileKind(li.Mode()))
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, refuse("not a regular file (symbolic link)")
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !ok:
		return nil, errors.New("maildrop: no owner information")
	case !fi.Mode().IsRegular() || !os.SameFile(li, fi):
		return nil, refuse("replaced while being read")
	case st.Nlink != 1:
		return nil, refuse("has %d links: a hard link", st.Nlink)
	case fi.Size() > MaxDropSize:
		return nil, refuse("larger than %d bytes (%d)", MaxDropSize, fi.Size())
	case fi.Mode().Perm()&dropComplete == 0:
		return &Drop{Name: name, UID: st.Uid, ModTime: fi.ModTime()}, ErrDropIncomplete
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxDropSize+1))
	if err != nil {
		return nil, err
	}
	sub, err := parseDrop(b)
	if err != nil {
		return nil, err
	}
	return &Drop{Name: name, UID: st.Uid, Submission: *sub, ModTime: fi.ModTime()}, nil
}

// parseDrop checks a file's bytes against the format WriteDrop writes.
func parseDrop(b []byte) (*Submission, error) {
	rest, ok := bytes.CutPrefix(b, []byte(dropMagic))
	if !ok {
		return nil, refuse("not a maildrop file (no %q line)", strings.TrimSpace(dropMagic))
	}
	line, content, ok := bytes.Cut(rest, []byte("\n"))
	if !ok {
		return nil, refuse("truncated: no header line")
	}
	var h dropHeader
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return nil, refuse("bad header: %v", err)
	}
	if h.Size != len(content) {
		return nil, refuse("truncated or overlong: %d content bytes, the header says %d", len(content), h.Size)
	}
	return &Submission{Sender: h.Sender, SenderSet: h.SenderSet, FullName: h.FullName, Recipients: h.Recipients,
		FromHeaders: h.FromHeaders, Content: content}, nil
}

// fileKind names what a non-regular file is, for the log.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return m.Type().String()
}
