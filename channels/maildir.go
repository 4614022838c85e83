package channels

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"mtad.dev/mta/status"
)

// Maildir delivers to local mailboxes in Maildir format under one root:
// root/<mailbox>/{tmp,new,cur}, and the mailbox's folders in the Maildir++
// layout, root/<mailbox>/.<folder>/ (maildirfolders.go). It is safe for
// concurrent use.
type Maildir struct {
	root     string
	hostname string // already escaped for use in a file name
	pid      int
	counter  atomic.Uint64 // Q<n> in the unique name: unique within this process
	now      func() time.Time
	opts     MaildirOptions
}

// NewMaildir returns a Maildir delivering under root; hostname goes into the
// unique file names.
func NewMaildir(root, hostname string) *Maildir {
	return &Maildir{
		root:     root,
		hostname: escapeHostname(hostname),
		pid:      os.Getpid(),
		now:      time.Now,
	}
}

// escapeHostname applies the Maildir spec's escapes: "/" and ":" would break the
// file name or its info suffix.
func escapeHostname(h string) string {
	if h == "" {
		h = "localhost"
	}
	return strings.NewReplacer("/", `\057`, ":", `\072`).Replace(h)
}

// MailboxOf returns the mailbox a recipient address delivers to: its local part,
// lower-cased, without "+detail"; a quoted local part is unquoted. It returns a
// permanent 5.1.1 status for a name that is not safe as a directory name.
func MailboxOf(addr string) (string, *status.Status) {
	local := addr
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		local = addr[:i]
	}
	if len(local) >= 2 && local[0] == '"' && local[len(local)-1] == '"' {
		local = local[1 : len(local)-1]
	}
	if i := strings.IndexByte(local, '+'); i >= 0 {
		local = local[:i]
	}
	local = strings.ToLower(local)
	if local == "" || local[0] == '.' || strings.Contains(local, "..") ||
		strings.ContainsAny(local, "/\\\x00") || !printable(local) {
		return "", status.New(550, "5.1.1", "unsafe or empty mailbox name %q", local)
	}
	return local, nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// Deliver implements Program: one copy per recipient, each with its own
// Delivered-To header. No server takes part, so every temporary failure (a full
// disk, a mailbox that cannot be written) has ConnFailed: the store as a whole
// is what failed, as when a remote host is down.
func (md *Maildir) Deliver(ctx context.Context, m *Message) []Result {
	out := make([]Result, len(m.Rcpts))
	for i, r := range m.Rcpts {
		if err := ctx.Err(); err != nil {
			st := status.New(451, "4.4.7", "delivery cancelled: %v", err)
			out[i] = Result{Err: st, Reply: "maildir;cancelled", ConnFailed: failedAtConnection(st, "")}
			continue
		}
		if md.opts.Filter != nil || md.opts.FolderFromDetail {
			out[i] = md.deliverFiled(ctx, m, r)
			continue
		}
		name, st := md.deliverOne(m, r, filing{})
		if st != nil {
			out[i] = Result{Err: st, Reply: "maildir;" + st.Error(), ConnFailed: failedAtConnection(st, "")}
			continue
		}
		out[i] = Result{Reply: "maildir;" + name, Handoff: DeliveredHere}
	}
	return out
}

// deliverOne stores one copy for one recipient where to says (the mailbox's
// INBOX for the zero filing) and returns its name relative to the mailbox.
func (md *Maildir) deliverOne(m *Message, r Rcpt, to filing) (string, *status.Status) {
	mbox, st := MailboxOf(r.Addr)
	if st != nil {
		return "", st
	}
	dir := filepath.Join(md.root, mbox, to.dir)
	if err := md.ensureFolder(filepath.Join(md.root, mbox), to.dir); err != nil {
		return "", fsStatus("creating maildir "+filepath.Join(mbox, to.dir), err)
	}

	// The file holds the LF form of the message (copyLF): what Maildir readers
	// expect. Its size, for S= in the final name, is known once it is written.
	from := m.From
	head := "Return-Path: <" + from + ">\nDelivered-To: " + r.Addr + "\n"

	now := md.now()
	base := fmt.Sprintf("%d.M%dP%dQ%d.%s", now.Unix(), now.Nanosecond()/1000, md.pid, md.counter.Add(1), md.hostname)
	tmp := filepath.Join(dir, "tmp", base)

	// O_EXCL: the name is unique by construction; if it is not, never overwrite.
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fsStatus("creating "+filepath.Join(mbox, "tmp", base), err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := io.WriteString(f, head); err != nil {
		return "", fsStatus("writing "+mbox, err)
	}
	n, written, err := copyLF(f, io.NewSectionReader(m.Content, 0, m.Size))
	if err != nil {
		return "", fsStatus("writing "+mbox, err)
	}
	if n != m.Size {
		return "", status.New(451, "4.3.0", "message content is %d bytes, expected %d", n, m.Size)
	}
	name := base + ",S=" + strconv.FormatInt(int64(len(head))+written, 10)
	// The file must be on disk before its name appears in new/, else a crash
	// could leave an empty or partial message that the user then sees.
	if err := f.Sync(); err != nil {
		return "", fsStatus("syncing "+mbox, err)
	}
	if err := f.Close(); err != nil {
		return "", fsStatus("closing "+mbox, err)
	}
	final := to.final(name)
	if err := os.Rename(tmp, filepath.Join(dir, final)); err != nil {
		return "", fsStatus("renaming into "+filepath.Join(mbox, to.dir, to.sub()), err)
	}
	ok = true
	// The rename is durable only once the directory is synced; until then the
	// queue must keep the message, so a failure here is temporary (a duplicate is
	// better than a loss).
	if err := syncDir(filepath.Join(dir, to.sub())); err != nil {
		return "", fsStatus("syncing "+filepath.Join(mbox, to.dir, to.sub()), err)
	}
	return filepath.ToSlash(filepath.Join(to.dir, final)), nil
}

// ensure creates dir/{tmp,new,cur} on first delivery.
func (md *Maildir) ensure(dir string) error {
	if fi, err := os.Stat(filepath.Join(dir, "new")); err == nil && fi.IsDir() {
		if fi, err := os.Stat(filepath.Join(dir, "tmp")); err == nil && fi.IsDir() {
			return nil
		}
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return err
		}
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return err
	}
	// The root itself may be new too (the first delivery after installation):
	// its entry in its parent must be durable, or a power cut takes every Maildir
	// with it after mail.log said delivered (the power-loss test found it).
	return syncDir(filepath.Dir(md.root))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// fsStatus maps a file-system error to a temporary status: a mailbox that cannot
// be written today (permissions, full disk, quota) may be writable tomorrow, and
// the postmaster must fix it rather than the sender be bounced.
func fsStatus(what string, err error) *status.Status {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return status.New(452, "4.3.1", "%s: %v", what, err)
	case errors.Is(err, os.ErrPermission), errors.Is(err, syscall.EROFS):
		return status.New(450, "4.2.0", "%s: %v", what, err)
	}
	return status.New(451, "4.3.0", "%s: %v", what, err)
}

// Bitbucket accepts and discards every recipient.
type Bitbucket struct{}

// Deliver implements Program.
func (Bitbucket) Deliver(ctx context.Context, m *Message) []Result {
	out := make([]Result, len(m.Rcpts))
	for i := range out {
		out[i] = Result{Reply: "bitbucket;discarded", Handoff: DeliveredHere}
	}
	return out
}
