package main

// mtactl sendmail: local submission with sendmail's command line, for scripts and
// cron jobs. It reads the message, normalises it and hands it to mtad over the
// control socket; mtad completes the header, routes the recipients with source
// channel l, queues the message durably and logs E lines (daemon/submit.go).
//
// Decisions where the product's documentation is silent:
//   - The control socket first: mtad's user and root get the queue id at once,
//     and a refusal as the exit status, with nothing queued. When mtad is not
//     running, or the user may not use the socket (any other user), the message
//     goes into the maildrop instead (control/maildrop.go), fsynced, and the
//     exit status is 0: mtad queues it when it picks it up (at start, or as
//     soon as the file appears), as the user who owns the file, and returns
//     what it refuses to the sender in a failure notice. mtactl is installed
//     setgid mtadrop for that; it keeps the group for sendmail only (main.go).
//   - The maildrop missing (mtad never ran on the data directory) or full:
//     EX_TEMPFAIL (75) and nothing is sent; no way in for the user at all:
//     EX_UNAVAILABLE (69).
//   - Success prints nothing (cron mails any output); -v prints the queue id and
//     where each recipient was routed.
//   - Exit statuses are sendmail's (sysexits.h): 0 queued or spooled, EX_USAGE
//     64 (bad options, no recipients), EX_DATAERR 65 (message refused as a
//     whole, e.g. too large), EX_NOUSER 67 (a recipient refused: nothing is
//     queued then), EX_UNAVAILABLE 69 (neither the socket nor the maildrop may
//     be used), EX_SOFTWARE 70 (mtad does not understand the request: another
//     release), EX_TEMPFAIL 75 (a temporary failure; nothing was sent).
//   - Invoked as "sendmail" (a symlink), the data directory is $MTAD_DATA when set,
//     since a symlink cannot carry -data; otherwise mtactl's default.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"mtad.dev/mta/control"
)

// sysexits.h codes, as sendmail uses them.
const (
	exOK          = 0
	exUsage       = 64
	exDataErr     = 65
	exNoUser      = 67
	exUnavailable = 69
	exSoftware    = 70
	exTempFail    = 75
)

// sendmailOpts is the parsed command line.
type sendmailOpts struct {
	fromHeaders bool // -t
	ignoreDots  bool // -i, -oi
	verbose     bool // -v
	sender      string
	senderSet   bool // -f / -r given
	fullName    string
	rcpts       []string
}

// parseSendmailArgs reads sendmail's options. Options scripts commonly pass that
// mean nothing here (-oX, -B, -N, -R, -V, -h, -L, -U, -m, -n, -e?, -bm) are
// accepted and ignored; modes we do not implement (-bs, -bp, -bd, -q ...) are
// usage errors rather than silently doing something else.
func parseSendmailArgs(args []string) (sendmailOpts, error) {
	var o sendmailOpts
	// value returns an option's argument: the rest of the word ("-fADDR") or the
	// next word ("-f ADDR").
	value := func(i *int, opt string) (string, error) {
		a := args[*i]
		if len(a) > len(opt) {
			return a[len(opt):], nil
		}
		if *i+1 >= len(args) {
			return "", fmt.Errorf("option %s requires an argument", opt)
		}
		*i++
		return args[*i], nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			o.rcpts = append(o.rcpts, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			o.rcpts = append(o.rcpts, a)
			continue
		}
		switch {
		case a == "-t":
			o.fromHeaders = true
		case a == "-i" || a == "-oi" || a == "-oitrue":
			o.ignoreDots = true
		case a == "-v":
			o.verbose = true
		case strings.HasPrefix(a, "-f"), strings.HasPrefix(a, "-r"):
			v, err := value(&i, a[:2])
			if err != nil {
				return o, err
			}
			o.sender, o.senderSet = v, true
		case strings.HasPrefix(a, "-F"):
			v, err := value(&i, "-F")
			if err != nil {
				return o, err
			}
			o.fullName = v
		case a == "-bm" || strings.HasPrefix(a, "-o") || strings.HasPrefix(a, "-e") ||
			a == "-U" || a == "-m" || a == "-n" || a == "-G":
			// delivery-mode, error-mode and other -o options; submission mode only
		case strings.HasPrefix(a, "-B"), strings.HasPrefix(a, "-N"), strings.HasPrefix(a, "-R"),
			strings.HasPrefix(a, "-V"), strings.HasPrefix(a, "-h"), strings.HasPrefix(a, "-L"):
			if _, err := value(&i, a[:2]); err != nil {
				return o, err
			}
		case strings.HasPrefix(a, "-b"), strings.HasPrefix(a, "-q"):
			return o, fmt.Errorf("option %s is not supported: only message submission (-bm) is; use mtactl qm for the queue", a)
		default:
			return o, fmt.Errorf("unknown option %s", a)
		}
	}
	return o, nil
}

func cmdSendmail(a *app, args []string) int {
	o, err := parseSendmailArgs(args)
	if err != nil {
		fmt.Fprintf(a.stderr, "sendmail: %v\n", err)
		fmt.Fprintln(a.stderr, "usage: sendmail [-t] [-i|-oi] [-f ADDR] [-F NAME] [-v] [RECIPIENT...] < message")
		return exUsage
	}
	if !o.fromHeaders && len(o.rcpts) == 0 {
		fmt.Fprintln(a.stderr, "sendmail: Recipient names must be specified")
		return exUsage
	}
	content, err := readMessage(a.stdin, o.ignoreDots, control.MaxSubmitContent)
	if err != nil {
		fmt.Fprintf(a.stderr, "sendmail: %v\n", err)
		if errors.Is(err, errTooLarge) {
			return exDataErr
		}
		return exTempFail
	}
	sub := &control.Submission{
		Sender: o.sender, SenderSet: o.senderSet, FullName: o.fullName, User: loginName(),
		Recipients: o.rcpts, FromHeaders: o.fromHeaders, Content: content,
	}
	var res control.SubmitResult
	_, err = a.client().Call(context.Background(), control.Request{Command: control.CmdSubmitMessage, Submission: sub}, &res)
	if errors.Is(err, control.ErrNotRunning) || errors.Is(err, os.ErrPermission) {
		return a.spool(o, sub, err)
	}
	if err != nil {
		return a.sendmailFailed(err)
	}
	return a.sendmailResult(o, &res)
}

// spool writes the submission into the maildrop, for mtad to queue when it
// picks it up; why is what kept it from the control socket.
func (a *app) spool(o sendmailOpts, sub *control.Submission, why error) int {
	dir := filepath.Join(a.dataDir, control.MaildropName)
	reason, where := "this user may not use the control socket", ""
	if !errors.Is(why, os.ErrPermission) {
		reason, where = "mtad is not running", " (no answer on "+a.client().Path+")"
	}
	name, err := control.WriteDrop(dir, sub)
	if err == nil {
		if o.verbose {
			fmt.Fprintf(a.stdout, "spooled as %s (%s): mtad queues it as user %s when it picks it up\n",
				filepath.Join(dir, name), reason, sub.User)
		}
		return exOK
	}
	reason += where
	fmt.Fprintf(a.stderr, "sendmail: %s, and the maildrop cannot take the message: %v\n", reason, err)
	if errors.Is(err, os.ErrPermission) {
		fmt.Fprintln(a.stderr, "sendmail: message not sent: mtactl must be installed setgid "+control.MaildropGroup+" for other users to submit")
		return exUnavailable
	}
	fmt.Fprintln(a.stderr, "sendmail: message not sent; try again later")
	return exTempFail
}

// sendmailFailed reports a failed call; mtad down is temporary so that the caller retries.
func (a *app) sendmailFailed(err error) int {
	var ce *control.Error
	switch {
	case errors.Is(err, control.ErrNotAnswering):
		fmt.Fprintln(a.stderr, "sendmail: mtad is running but not answering: message not sent; try again later")
		return exTempFail
	case errors.As(err, &ce) && ce.Kind == control.ErrKindUsage:
		// An mtad of another release that has no local submission.
		fmt.Fprintf(a.stderr, "sendmail: mtad refused the submission: %s\n", ce.Msg)
		return exSoftware
	default:
		fmt.Fprintf(a.stderr, "sendmail: message not sent: %v\n", err)
		return exTempFail
	}
}

// sendmailResult prints refusals (and with -v what was queued) and maps the
// outcome onto sendmail's exit status.
func (a *app) sendmailResult(o sendmailOpts, res *control.SubmitResult) int {
	if res.Status != nil {
		fmt.Fprintf(a.stderr, "sendmail: message not sent: %s\n", res.Status.Error())
		switch {
		case res.Status.Temporary():
			return exTempFail
		case strings.HasPrefix(res.Status.Enhanced, "5.5."):
			return exUsage
		case strings.HasPrefix(res.Status.Enhanced, "5.1."):
			return exNoUser
		}
		return exDataErr
	}
	if refused, temporary := res.Refused(); refused {
		for _, rc := range res.Recipients {
			if rc.Status != nil {
				fmt.Fprintf(a.stderr, "sendmail: %s... %s\n", rc.Addr, rc.Status.Error())
			}
		}
		fmt.Fprintln(a.stderr, "sendmail: message not sent: nothing was queued")
		if temporary {
			return exTempFail
		}
		return exNoUser
	}
	if o.verbose {
		if res.ID == "" {
			fmt.Fprintln(a.stdout, "message discarded by the access tables")
		} else {
			fmt.Fprintf(a.stdout, "queued as %s (sender <%s>, %s)\n", res.ID, res.Sender, res.MessageID)
		}
		for _, rc := range res.Recipients {
			for _, q := range rc.Queued {
				fmt.Fprintf(a.stdout, "%s... queued to %s as %s\n", rc.Addr, q.Channel, q.Addr)
			}
		}
		if res.Held != "" {
			fmt.Fprintf(a.stdout, "held: %s\n", res.Held)
		}
	}
	return exOK
}

var errTooLarge = errors.New("message too large")

// readMessage reads a message as sendmail does: line by line, LF or CRLF, stored
// with CRLF. Without ignoreDots a line holding a single "." ends the input; with
// it (-i, -oi) only the end of input does. No dot is unstuffed: stdin is not SMTP.
// A last line without a line end gets one.
func readMessage(r io.Reader, ignoreDots bool, max int) ([]byte, error) {
	// The limit bounds memory even for one endless line; one byte over tells "too
	// large" from "exactly the limit".
	br := bufio.NewReaderSize(io.LimitReader(r, int64(max)+1), 64<<10)
	var out bytes.Buffer
	for {
		line, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read message: %w", err)
		}
		if len(line) > 0 {
			body := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
			if !ignoreDots && string(body) == "." {
				return out.Bytes(), nil
			}
			out.Write(body)
			out.WriteString("\r\n")
		}
		if err != nil {
			if out.Len() > max {
				return nil, errTooLarge
			}
			return out.Bytes(), nil
		}
	}
}

// loginName is the invoking user: the login name of the real uid, as sendmail
// takes it, falling back on $LOGNAME and $USER.
func loginName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	for _, v := range []string{"LOGNAME", "USER"} {
		if s := os.Getenv(v); s != "" {
			return s
		}
	}
	return ""
}

// programArgs turns a "sendmail" invocation (argv[0] a symlink named sendmail)
// into mtactl's: "-data $MTAD_DATA sendmail ARGS". Any other name runs mtactl
// as is.
func programArgs(argv0 string, args []string, getenv func(string) string) []string {
	if filepath.Base(argv0) != "sendmail" {
		return args
	}
	out := []string{}
	if d := getenv("MTAD_DATA"); d != "" {
		out = append(out, "-data", d)
	}
	return append(append(out, "sendmail"), args...)
}
