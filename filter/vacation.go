package filter

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"mtad.dev/mta/sieve"
)

// VacationStore remembers, durably, when each mailbox last answered each
// sender for each vacation (RFC 5230 §4.2: one answer per sender per :days):
// one small file per (mailbox, handle, sender) under its directory, written to
// a temporary file, fsynced and renamed, so that a restart or a crash never
// makes a user answer the same sender twice within the period.
type VacationStore struct {
	dir string
	mu  sync.Mutex // one check-and-record at a time: two deliveries cannot both answer
}

// NewVacationStore keeps its files under dir (DATA/vacation).
func NewVacationStore(dir string) *VacationStore { return &VacationStore{dir: dir} }

// Answer calls send unless mailbox answered sender for handle less than days
// ago, and then records the answer. sent says whether send was called and
// succeeded. The answer is sent before it is recorded: should the record fail,
// the sender may get a second answer, never none.
func (v *VacationStore) Answer(mailbox, handle, sender string, days int, now time.Time, send func() error) (sent bool, err error) {
	if strings.ContainsAny(mailbox, "/\\\x00") || mailbox == "" || mailbox[0] == '.' {
		return false, fmt.Errorf("vacation: unsafe mailbox name %q", mailbox)
	}
	sum := sha256.Sum256([]byte(handle + "\x00" + strings.ToLower(sender)))
	dir := filepath.Join(v.dir, mailbox)
	path := filepath.Join(dir, hex.EncodeToString(sum[:16]))
	v.mu.Lock()
	defer v.mu.Unlock()
	if last, ok := readAnswered(path); ok && now.Before(last.Add(time.Duration(days)*24*time.Hour)) {
		return false, nil
	}
	if err := send(); err != nil {
		return false, err
	}
	rec := fmt.Sprintf("%d\n%s\n%s\n", now.Unix(), handle, sender)
	if err := v.makeMailboxDir(dir); err != nil {
		return true, fmt.Errorf("vacation: recording the answer to %s: %w", sender, err)
	}
	if err := writeDurably(dir, path, []byte(rec)); err != nil {
		return true, fmt.Errorf("vacation: recording the answer to %s: %w", sender, err)
	}
	return true, nil
}

// readAnswered reads when an answer was recorded.
func readAnswered(path string) (time.Time, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	secs, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(secs, 0), true
}

// makeMailboxDir makes a mailbox's directory under the store's, the first time
// that mailbox answers, and the store's own directory (DATA/vacation) at the
// first answer of all. A new name is durable only once the directory holding it
// was fsynced, so both the store's directory (it holds the mailbox's entry) and
// its parent (it holds DATA/vacation's) are fsynced before anything is recorded:
// without the second, a power cut took DATA/vacation with every record in it and
// the sender got a second answer (the reliability suite's power-loss test found
// it). Two fsyncs once per mailbox; the data directory's own entry is the
// daemon's, which makes it durable at start.
func (v *VacationStore) makeMailboxDir(dir string) error {
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := syncDir(v.dir); err != nil {
		return err
	}
	return syncDir(filepath.Dir(v.dir))
}

// writeDurably replaces path with data: written beside it in dir, fsynced,
// renamed, and dir fsynced.
func writeDurably(dir, path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// vacationAnswer is the answer of RFC 5230 §5: from the user (or :from), to the
// envelope sender, with the threading fields and "Auto-Submitted:
// auto-replied" (RFC 3834) so that other responders do not answer it.
func vacationAnswer(v *sieve.Vacation, user, hostname string, now time.Time) []byte {
	from := v.From
	if from == "" {
		from = "<" + user + ">"
	}
	var b bytes.Buffer
	field := func(name, value string) {
		if value != "" {
			b.WriteString(name + ": " + value + "\r\n")
		}
	}
	field("Date", now.Format(time.RFC1123Z))
	field("From", from)
	field("To", "<"+v.ReplyTo+">")
	field("Subject", encodeWord(v.Subject))
	field("Message-ID", "<"+newMessageID("vacation", hostname, now)+">")
	field("In-Reply-To", v.InReplyTo)
	field("References", v.References)
	field("Auto-Submitted", "auto-replied (vacation)")
	field("MIME-Version", "1.0")
	body := strings.ReplaceAll(strings.ReplaceAll(v.Reason, "\r\n", "\n"), "\n", "\r\n")
	if v.Mime {
		// The reason is a MIME entity: its own header, then its body.
		b.WriteString(body)
		return b.Bytes()
	}
	field("Content-Type", "text/plain; charset=utf-8")
	cte := "7bit"
	for i := 0; i < len(body); i++ {
		if body[i] >= 0x80 {
			cte = "8bit"
			break
		}
	}
	field("Content-Transfer-Encoding", cte)
	b.WriteString("\r\n")
	b.WriteString(body)
	if !strings.HasSuffix(body, "\r\n") {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}
