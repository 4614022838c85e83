package daemon

// The maildrop pickup: local submission written into DATA/maildrop by mtactl
// sendmail (control/maildrop.go has the layout and the file format). Each file is
// submitted through intake like a control-socket submission, as the user who
// owns the file, and removed once the message is queued.
//
// Decisions where the product's documentation is silent (its sendmail talks to
// the running MTA; Postfix's maildrop is the model here):
//   - The maildrop is read at start, whenever a file arrives (fsnotify), and
//     every minute, which also retries what failed for a time.
//   - The submitter is the file owner's login name (the uid itself, "uid1234",
//     when it has none); what the file says about its sender is the -f option
//     and is used as sendmail's -f is, never as the submitter.
//   - A file that is not what mtactl writes (a symbolic link, a FIFO, a hard
//     link, a directory, an oversized, truncated or malformed file) is moved to
//     DATA/maildrop.refused and logged; nothing in it is submitted.
//   - Nobody waits for a spooled message: unlike the control socket's all or
//     nothing, recipients refused for good are returned to the sender in a
//     failure notice and the others are queued; a temporary refusal leaves the
//     file for the next pass, so that nothing is queued twice.
//   - A file not marked complete is being written and is left alone; an hour
//     old, its writer died or was stopped, and it is moved aside.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"mtad.dev/mta/control"
	"mtad.dev/mta/dsn"
	"mtad.dev/mta/status"
)

const (
	// maildropRescan is how often the maildrop is read whole.
	maildropRescan = time.Minute
	// maildropIncomplete is the age at which a file not marked complete is
	// taken for the leftover of a writer that died.
	maildropIncomplete = time.Hour
)

// maildropDir and refusedDir are the maildrop's paths.
func (d *Daemon) maildropDir() string { return filepath.Join(d.opts.DataDir, control.MaildropName) }
func (d *Daemon) refusedDir() string  { return filepath.Join(d.opts.DataDir, control.MaildropRefused) }

// startMaildrop prepares DATA/maildrop and picks up its files until ctx ends;
// done is closed when the pickup has stopped (Shutdown waits for it before the
// queue closes).
func (d *Daemon) startMaildrop(ctx context.Context) (done chan struct{}, err error) {
	if err := d.prepareMaildrop(); err != nil {
		return nil, err
	}
	w, err := fsnotify.NewWatcher()
	if err == nil {
		err = w.Add(d.maildropDir())
	}
	if err != nil {
		if w != nil {
			w.Close()
		}
		return nil, fmt.Errorf("watch %s: %w", d.maildropDir(), err)
	}
	done = make(chan struct{})
	go func() {
		defer close(done)
		defer w.Close()
		d.maildropLoop(ctx, w)
	}()
	return done, nil
}

// prepareMaildrop creates the maildrop (mode 1730, group MaildropGroup when the
// system has it) and the directory of refused files, and says what keeps
// local users from the maildrop.
func (d *Daemon) prepareMaildrop() error {
	dir := d.maildropDir()
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("maildrop: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("maildrop: %w", err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || st == nil || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("maildrop %s: not a directory of mtad's user", dir)
	}
	if g, err := user.LookupGroup(control.MaildropGroup); err != nil {
		d.log.Info("no group "+control.MaildropGroup+": only mtad's user and root can use the maildrop", "maildrop", dir)
	} else if gid, _ := strconv.Atoi(g.Gid); int(st.Gid) != gid {
		if err := os.Lchown(dir, -1, gid); err != nil {
			d.log.Warn("maildrop: cannot give the directory to group "+control.MaildropGroup+"; local users cannot use it", "maildrop", dir, "err", err)
		}
	}
	// Go's Chmod maps ModeSticky to S_ISVTX.
	if err := os.Chmod(dir, control.MaildropMode); err != nil {
		return fmt.Errorf("maildrop: %w", err)
	}
	if di, err := os.Stat(d.opts.DataDir); err == nil && di.Mode().Perm()&0o001 == 0 {
		d.log.Info("the data directory is not searchable by other users: only mtad's user and root can use the maildrop (chmod o+x it for local users)", "data", d.opts.DataDir)
	}
	if err := os.Mkdir(d.refusedDir(), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("maildrop: %w", err)
	}
	// Both names are new on a first start, and a name is durable only once the
	// directory holding it was fsynced: without this a power cut took the
	// maildrop with what mtactl sendmail had spooled (and fsynced) in it before
	// exiting 0 (the reliability suite's power-loss test found it). One fsync
	// at every start, as the queue does for its own entry.
	if err := syncDir(d.opts.DataDir); err != nil {
		return fmt.Errorf("maildrop: %w", err)
	}
	return nil
}

// maildropLoop picks files up one at a time: at start, on every new name, and
// every maildropRescan.
func (d *Daemon) maildropLoop(ctx context.Context, w *fsnotify.Watcher) {
	tick := time.NewTicker(maildropRescan)
	defer tick.Stop()
	d.scanMaildrop(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			// A file is taken when marked complete (Chmod); Create covers a
			// file moved in whole.
			if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Chmod) {
				d.pickUp(ctx, filepath.Base(ev.Name))
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			d.log.Warn("maildrop watcher", "err", err)
			d.scanMaildrop(ctx) // events may have been lost
		case <-tick.C:
			d.scanMaildrop(ctx)
		}
	}
}

// scanMaildrop picks up every file there, and removes stale temporary ones.
func (d *Daemon) scanMaildrop(ctx context.Context) {
	ents, err := os.ReadDir(d.maildropDir())
	if err != nil {
		d.log.Error("maildrop: read", "err", err)
		return
	}
	for _, e := range ents {
		if ctx.Err() != nil {
			return
		}
		d.pickUp(ctx, e.Name())
	}
}

// pickUp submits one maildrop file and removes it once queued.
func (d *Daemon) pickUp(ctx context.Context, name string) {
	path := filepath.Join(d.maildropDir(), name)
	drop, err := control.ReadDrop(d.maildropDir(), name)
	var bad *control.DropError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return // taken already
	case errors.Is(err, control.ErrDropIncomplete):
		if time.Since(drop.ModTime) > maildropIncomplete {
			d.refuseDrop(name, "never marked complete: its writer died or was stopped")
		}
		return
	case errors.As(err, &bad):
		d.refuseDrop(name, bad.Reason)
		return
	case err != nil:
		d.log.Error("maildrop: cannot read a file; trying again later", "file", name, "err", err)
		return
	}
	drop.Submission.User = uidName(drop.UID)
	if !d.submitDrop(ctx, drop) {
		return
	}
	if err := os.Remove(path); err != nil {
		d.log.Error("maildrop: cannot remove a queued file: it will be queued again", "file", name, "err", err)
	}
}

// refuseDrop moves a refused file aside (its name, not what it points to) and
// logs why.
func (d *Daemon) refuseDrop(name, reason string) {
	from := filepath.Join(d.maildropDir(), name)
	owner := "?"
	if fi, err := os.Lstat(from); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			owner = uidName(st.Uid)
		}
	}
	to := filepath.Join(d.refusedDir(), name)
	if err := os.Rename(from, to); err != nil {
		d.log.Error("maildrop: file refused and not movable; removed", "file", name, "owner", owner, "reason", reason, "err", err)
		os.RemoveAll(from)
		return
	}
	d.log.Warn("maildrop: file refused, moved aside", "file", name, "owner", owner, "reason", reason, "moved_to", to)
}

// uidName is the login name of uid, or "uid" and the number when it has none.
func uidName(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil && u.Username != "" {
		return u.Username
	}
	return "uid" + strconv.FormatUint(uint64(uid), 10)
}

// submitDrop submits a spooled message through intake; it reports whether the
// file is done with (queued, or returned to its sender).
func (d *Daemon) submitDrop(ctx context.Context, drop *control.Drop) bool {
	sub := &drop.Submission
	p, res := prepareSubmission(d.intake, d.intakeRules(), d.image.Load(), sub, time.Now())
	refused, temporary := res.Refused()
	if temporary {
		d.log.Warn("maildrop: submission refused for now; trying again later", "file", drop.Name, "user", sub.User, "status", firstRefusal(&res))
		return false
	}
	var failed []control.SubmitRecipient
	if res.Status != nil {
		// The message as a whole: name what was given, for the notice.
		addr := strings.Join(sub.Recipients, ",")
		if addr == "" {
			addr = "(no recipient)"
		}
		failed = []control.SubmitRecipient{{Addr: addr, Status: res.Status}}
	}
	for _, rc := range res.Recipients {
		if rc.Status != nil {
			failed = append(failed, rc)
		}
	}
	if p != nil && p.tx.Len() > 0 {
		actx, cancel := context.WithTimeout(ctx, submitTimeout)
		_, err := p.accept(actx, &res)
		cancel()
		if err != nil {
			// Copies already queued are delivered; the next pass may queue them
			// again: a duplicate, never a loss.
			d.log.Error("maildrop: enqueue failed; trying again later", "file", drop.Name, "user", sub.User, "err", err)
			return false
		}
	}
	if refused {
		if err := d.returnDrop(ctx, drop, res.Sender, failed); err != nil {
			d.log.Error("maildrop: cannot return the refused recipients; trying again later", "file", drop.Name, "err", err)
			return res.ID != "" // what was queued must not be queued again
		}
	}
	d.log.Info("maildrop: message queued", "file", drop.Name, "user", sub.User, "id", res.ID, "refused", len(failed))
	return true
}

// firstRefusal is the first refusal of a submission result, for the log.
func firstRefusal(res *control.SubmitResult) string {
	if res.Status != nil {
		return res.Status.Error()
	}
	for _, rc := range res.Recipients {
		if rc.Status != nil {
			return rc.Addr + ": " + rc.Status.Error()
		}
	}
	return ""
}

// returnDrop sends the sender of a spooled message (the postmaster for the
// empty sender) a failure notice naming the recipients refused: the user who
// spooled it is no longer there to read an exit status.
func (d *Daemon) returnDrop(ctx context.Context, drop *control.Drop, sender string, failed []control.SubmitRecipient) error {
	img := d.image.Load()
	host := hostname(img)
	postmaster := img.Options.ReturnAddress
	if postmaster == "" {
		postmaster = "postmaster@" + host
	}
	to := sender
	if to == "" {
		to = postmaster
	}
	now := time.Now()
	rep := &dsn.Report{
		ReportingMTA: host, From: postmaster, To: to, Date: now,
		MessageID: "dsn." + newMessageID(now) + "@" + host, Arrival: drop.ModTime,
		Original: bytes.NewReader(drop.Submission.Content), Full: true,
	}
	for _, rc := range failed {
		st := rc.Status
		if st == nil {
			st = status.New(550, "5.0.0", "refused")
		}
		rep.Recipients = append(rep.Recipients, dsn.Recipient{Original: "rfc822;" + rc.Addr, Final: rc.Addr,
			Action: dsn.Failed, Status: st.Enhanced, Diagnostic: st.Error()})
	}
	b, err := dsn.Build(rep)
	if err != nil {
		return err
	}
	nctx, cancel := context.WithTimeout(ctx, submitTimeout)
	defer cancel()
	return d.submitNotice(nctx, "", []string{to}, b)
}
