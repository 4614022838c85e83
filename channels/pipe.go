package channels

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"mtad.dev/mta/status"
)

// PipeOptions configures the pipe channel: a site program run once per
// recipient with the message on its standard input.
type PipeOptions struct {
	// Command is the program and its arguments, run without a shell. In each
	// argument ${sender}, ${recipient}, ${user} (local part), ${domain} and
	// ${queueid} are replaced; a shell never sees them, so no quoting issue.
	Command []string
	// Timeout bounds one run (default 5 min [inf]); past it the whole process
	// group is killed and the recipient deferred.
	Timeout time.Duration
	// Dir is the working directory; Env is added to a minimal environment.
	Dir string
	Env []string
}

// Pipe is the pipe channel program.
type Pipe struct{ opts PipeOptions }

// NewPipe returns a pipe channel.
func NewPipe(opts PipeOptions) *Pipe {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	return &Pipe{opts: opts}
}

// Deliver implements Program.
func (p *Pipe) Deliver(ctx context.Context, m *Message) []Result {
	out := make([]Result, len(m.Rcpts))
	for i, r := range m.Rcpts {
		st, reply := p.run(ctx, m, r)
		out[i] = Result{Err: st, Remote: "pipe", Reply: "x-unix;" + reply}
	}
	return out
}

// stderrLimit bounds what we keep of a program's stderr.
const stderrLimit = 4096

func (p *Pipe) run(ctx context.Context, m *Message, r Rcpt) (*status.Status, string) {
	if len(p.opts.Command) == 0 {
		st := status.New(451, "4.3.5", "pipe channel has no command configured")
		return st, st.Error()
	}
	if err := ctx.Err(); err != nil {
		st := status.New(451, "4.4.7", "delivery cancelled: %v", err)
		return st, st.Error()
	}
	user, domain := r.Addr, r.Host
	if i := strings.LastIndexByte(r.Addr, '@'); i >= 0 {
		user, domain = r.Addr[:i], r.Addr[i+1:]
	}
	rep := strings.NewReplacer("${sender}", m.From, "${recipient}", r.Addr, "${user}", user,
		"${domain}", domain, "${queueid}", m.ID)
	argv := make([]string, len(p.opts.Command))
	for i, a := range p.opts.Command {
		argv[i] = rep.Replace(a)
	}

	rctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(rctx, argv[0], argv[1:]...)
	cmd.Dir = p.opts.Dir
	cmd.Env = append([]string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"SENDER=" + m.From, "RECIPIENT=" + r.Addr, "USER=" + user, "DOMAIN=" + domain,
		"ORIGINAL_RECIPIENT=" + r.ORCPT, "QUEUE_ID=" + m.ID,
	}, p.opts.Env...)
	cmd.Stdin = io.NewSectionReader(m.Content, 0, m.Size)
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	// Its own process group, so a timeout kills the program and every child it
	// started (a forgotten "sleep" must not keep the delivery job waiting).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second

	err := cmd.Run()
	detail := firstLines(stderr.String(), 3)
	withDetail := func(s string) string {
		if detail != "" {
			return s + ": " + detail
		}
		return s
	}
	if err == nil {
		return nil, "0 delivered"
	}
	if rctx.Err() != nil {
		why := "timed out after " + p.opts.Timeout.String()
		if ctx.Err() != nil {
			why = "cancelled"
		}
		st := status.New(451, "4.4.7", "%s", withDetail(fmt.Sprintf("%s %s", argv[0], why)))
		return st, st.Error()
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		// Could not start it (missing binary, permissions): the configuration is
		// wrong, the message is not: defer.
		st := status.New(451, "4.3.5", "running %s: %v", argv[0], err)
		return st, st.Error()
	}
	code := ee.ExitCode()
	st := sysexitStatus(code, withDetail(fmt.Sprintf("%s exited %d", argv[0], code)))
	if code < 0 {
		st = status.New(451, "4.3.0", "%s", withDetail(fmt.Sprintf("%s: %v", argv[0], ee)))
	}
	return st, st.Error()
}

// sysexitStatus maps a sysexits.h code. Per the brief: 75 (EX_TEMPFAIL)
// temporary, 64-78 permanent, with Postfix's enhanced codes; any other non-zero
// exit is temporary [inf] (an unknown failure must defer, never bounce).
func sysexitStatus(code int, text string) *status.Status {
	perm := map[int]string{
		64: "5.3.0", // EX_USAGE
		65: "5.6.0", // EX_DATAERR
		66: "5.3.0", // EX_NOINPUT
		67: "5.1.1", // EX_NOUSER
		68: "5.1.2", // EX_NOHOST
		69: "5.3.0", // EX_UNAVAILABLE
		70: "5.3.0", // EX_SOFTWARE
		71: "5.3.0", // EX_OSERR
		72: "5.3.0", // EX_OSFILE
		73: "5.2.0", // EX_CANTCREAT
		74: "5.3.0", // EX_IOERR
		76: "5.5.0", // EX_PROTOCOL
		77: "5.7.0", // EX_NOPERM
		78: "5.3.5", // EX_CONFIG
	}
	if enh, ok := perm[code]; ok {
		return status.New(550, enh, "%s", text)
	}
	return status.New(451, "4.3.0", "%s", text)
}

func firstLines(s string, n int) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		keep = append(keep, l)
		if len(keep) == n {
			break
		}
	}
	return strings.Join(keep, "; ")
}

// limitedBuffer keeps the first stderrLimit bytes and discards the rest, so a
// chatty program cannot grow our memory.
type limitedBuffer struct{ b bytes.Buffer }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := stderrLimit - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return l.b.String() }

var _ io.Writer = (*limitedBuffer)(nil)
