package channels

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"mtad.dev/mta/status"
)

// Folders, flags and users' own filters of the Maildir program.
//
// A folder is stored the Maildir++ way that Dovecot and Courier read: folder
// "Lists/Go" of mailbox bob is root/bob/.Lists.Go/{tmp,new,cur}, with an empty
// "maildirfolder" file, names outside printable ASCII in IMAP's modified UTF-7
// (RFC 3501 §5.1.3). A message stored with IMAP flags goes to cur/ with the
// Maildir info suffix ":2,FLAGS" (\Seen is S, \Answered R, \Flagged F, \Deleted
// T, \Draft D); one without flags goes to new/ as before.

// MaildirOptions are the local channel's settings beyond its mailbox root.
type MaildirOptions struct {
	// FolderFromDetail files a recipient's subaddress into the folder of that
	// name: the channel has a fileinto template ($U+$S@$D), through which a
	// system filter's fileinto reaches the mailbox as a subaddress.
	FolderFromDetail bool
	// Filter runs each recipient's own filter before anything is stored; nil:
	// none.
	Filter MailboxFilter
}

// NewMaildirWithOptions is NewMaildir with folders and users' filters.
func NewMaildirWithOptions(root, hostname string, o MaildirOptions) *Maildir {
	md := NewMaildir(root, hostname)
	md.opts = o
	return md
}

// MailboxFilter is a user's own filter: it decides where in the mailbox a
// message goes, and does what else the user's script asks (answer, forward)
// itself. The Maildir program stores what it is told.
type MailboxFilter interface {
	FilterMailbox(ctx context.Context, req *FilterRequest) FilterPlan
}

// FilterRequest is one recipient's message as its filter sees it.
type FilterRequest struct {
	Message *Message
	Rcpt    Rcpt
	Mailbox string // the mailbox the recipient delivers to (MailboxOf)
	// Folder is where the message goes without a filter: "" for INBOX, or the
	// subaddress's folder (FolderFromDetail).
	Folder  string
	Content []byte // the message as queued, whole
}

// FilterPlan is what a filter decided for one recipient.
type FilterPlan struct {
	// Filings are the copies to store; none stores nothing (a discard, or
	// the message was only forwarded).
	Filings []Filing
	// Content is what to store; nil: the message as queued.
	Content []byte
	// Err, when set, is the recipient's result instead of a delivery: a
	// rejection (permanent: the sender gets a notice) or a failure to retry.
	Err *status.Status
	// Note says what the filter did, for the delivery's mail.log record.
	Note string
}

// Filing is one copy to store: the folder ("" or "INBOX" for the main one) and
// the IMAP flags to set.
type Filing struct {
	Folder string
	Flags  []string
}

// filing is where deliverOne stores a copy: the folder's directory relative to
// the mailbox ("" for INBOX) and the Maildir info suffix (":2,FS"; "" none).
type filing struct {
	dir  string
	info string
}

// sub is the directory the finished copy goes to: cur/ when it has flags.
func (f filing) sub() string {
	if f.info != "" {
		return "cur"
	}
	return "new"
}

// final is the copy's path relative to the folder's directory.
func (f filing) final(name string) string { return f.sub() + "/" + name + f.info }

// deliverFiled delivers to one recipient through its filter (or its
// subaddress's folder): one copy per filing.
func (md *Maildir) deliverFiled(ctx context.Context, m *Message, r Rcpt) Result {
	mbox, st := MailboxOf(r.Addr)
	if st != nil {
		return Result{Err: st, Reply: "maildir;" + st.Error()}
	}
	folder := ""
	if md.opts.FolderFromDetail {
		folder = detailOf(r.Addr)
	}
	plan := FilterPlan{Filings: []Filing{{Folder: folder}}}
	if md.opts.Filter != nil {
		content, err := io.ReadAll(io.NewSectionReader(m.Content, 0, m.Size))
		if err != nil {
			st := status.New(451, "4.3.0", "reading message: %v", err)
			return Result{Err: st, Reply: "maildir;" + st.Error(), ConnFailed: true}
		}
		plan = md.opts.Filter.FilterMailbox(ctx, &FilterRequest{Message: m, Rcpt: r, Mailbox: mbox, Folder: folder, Content: content})
	}
	if plan.Err != nil {
		return Result{Err: plan.Err, Reply: withNote("maildir;"+plan.Err.Error(), plan.Note), ConnFailed: failedAtConnection(plan.Err, "")}
	}
	stored := m
	if plan.Content != nil {
		cp := *m
		cp.Content, cp.Size = bytes.NewReader(plan.Content), int64(len(plan.Content))
		stored = &cp
	}
	var names []string
	for _, f := range plan.Filings {
		to, note := filingOf(f)
		name, st := md.deliverOne(stored, r, to)
		if st != nil {
			return Result{Err: st, Reply: "maildir;" + st.Error(), ConnFailed: failedAtConnection(st, "")}
		}
		names = append(names, name)
		if note != "" {
			plan.Note = strings.TrimPrefix(plan.Note+"; "+note, "; ")
		}
	}
	return Result{Reply: withNote("maildir;"+strings.Join(names, " "), plan.Note)}
}

func withNote(reply, note string) string {
	if note == "" {
		return reply
	}
	if strings.HasSuffix(reply, ";") {
		return reply + note
	}
	return reply + " (" + note + ")"
}

// filingOf turns a filing into directories; a folder name that cannot be
// stored goes to INBOX instead, with a note saying so: mail is never lost to a
// folder name.
func filingOf(f Filing) (filing, string) {
	to := filing{info: maildirInfo(f.Flags)}
	dir, err := MaildirFolder(f.Folder)
	if err != nil {
		return to, "folder " + quote(f.Folder) + " kept in INBOX: " + err.Error()
	}
	to.dir = dir
	return to, ""
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

// detailOf is the subaddress of an address ("" when none): what follows the
// first "+" of the local part.
func detailOf(addr string) string {
	local := addr
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		local = addr[:i]
	}
	local = strings.Trim(local, `"`)
	if _, detail, ok := strings.Cut(local, "+"); ok {
		return detail
	}
	return ""
}

// maxFolderLen bounds a folder's directory name; file systems allow 255 bytes.
const maxFolderLen = 200

// MaildirFolder is the Maildir++ directory of a folder, relative to its
// mailbox: "" for INBOX (the main folder, also when name is empty), else "."
// and the folder's levels joined by "." (both "/" and "." separate levels, as
// IMAP clients of Dovecot's and Courier's Maildir++ see them), each level in
// modified UTF-7. A leading "INBOX." or "INBOX/" is dropped, so that scripts
// written for servers whose folders live under INBOX file into the same
// folder. A name with an empty level, "." or ".." levels, or control
// characters is refused.
func MaildirFolder(name string) (string, error) {
	if name == "" || strings.EqualFold(name, "INBOX") {
		return "", nil
	}
	if len(name) > 6 && strings.EqualFold(name[:5], "INBOX") && (name[5] == '.' || name[5] == '/') {
		name = name[6:]
	}
	if !utf8.ValidString(name) {
		return "", errors.New("folder name is not UTF-8")
	}
	var b strings.Builder
	for _, level := range strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '.' }) {
		if strings.ContainsFunc(level, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return "", errors.New("folder name has control characters")
		}
		b.WriteByte('.')
		b.WriteString(encodeMUTF7(level))
	}
	dir := b.String()
	if dir == "" || strings.Contains(name, "//") || strings.Contains(name, "..") ||
		strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") {
		return "", errors.New("folder name has an empty level")
	}
	if len(dir) > maxFolderLen {
		return "", errors.New("folder name is too long")
	}
	return dir, nil
}

// encodeMUTF7 writes a name in IMAP's modified UTF-7 (RFC 3501 §5.1.3):
// printable ASCII as itself ("&" as "&-"), anything else as "&" + modified
// base64 of its UTF-16 + "-".
func encodeMUTF7(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"
	var b strings.Builder
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		units := utf16.Encode(run)
		buf := make([]byte, 0, 2*len(units))
		for _, u := range units {
			buf = append(buf, byte(u>>8), byte(u))
		}
		b.WriteByte('&')
		var acc, bits uint
		for _, c := range buf {
			acc, bits = acc<<8|uint(c), bits+8
			for bits >= 6 {
				bits -= 6
				b.WriteByte(alphabet[(acc>>bits)&0x3f])
			}
		}
		if bits > 0 {
			b.WriteByte(alphabet[(acc<<(6-bits))&0x3f])
		}
		b.WriteByte('-')
		run = run[:0]
	}
	for _, r := range s {
		if r >= 0x20 && r <= 0x7e {
			flush()
			if r == '&' {
				b.WriteString("&-")
			} else {
				b.WriteRune(r)
			}
			continue
		}
		run = append(run, r)
	}
	flush()
	return b.String()
}

// maildirInfo is the Maildir info suffix of IMAP flags: ":2," and the letters
// of the system flags, in ASCII order as the Maildir convention asks; "" when
// none applies. Keywords ($Junk, NonJunk ...) have no letter of their own and
// are not stored.
func maildirInfo(flags []string) string {
	var letters []byte
	for _, f := range flags {
		var c byte
		switch strings.ToLower(f) {
		case `\seen`:
			c = 'S'
		case `\answered`:
			c = 'R'
		case `\flagged`:
			c = 'F'
		case `\deleted`:
			c = 'T'
		case `\draft`:
			c = 'D'
		default:
			continue
		}
		if bytes.IndexByte(letters, c) < 0 {
			letters = append(letters, c)
		}
	}
	if len(letters) == 0 {
		return ""
	}
	sort.Slice(letters, func(i, j int) bool { return letters[i] < letters[j] })
	return ":2," + string(letters)
}

// ensureFolder creates the mailbox's maildir and, for a folder, the folder's,
// with the empty "maildirfolder" file Maildir++ readers look for.
func (md *Maildir) ensureFolder(mailbox, dir string) error {
	if err := md.ensure(mailbox); err != nil {
		return err
	}
	if dir == "" {
		return nil
	}
	path := filepath.Join(mailbox, dir)
	if err := md.ensure(path); err != nil {
		return err
	}
	marker := filepath.Join(path, "maildirfolder")
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	f, err := os.OpenFile(marker, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(path)
}
