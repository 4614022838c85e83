package channels

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"mtad.dev/mta/status"
)

// Pipe is the pipe channel program.
type Pipe struct{ opts PipeOptions }

// NewPipe returns a pipe channel.
func NewPipe(opts PipeOptions) *Pipe {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	return &Pipe{opts: opts}
}

// Deliver implements Program. The program counts as the server that answered
// (Remote "pipe"): only a run that timed out or was cancelled (4.4.7) has
// ConnFailed.
func (p *Pipe) Deliver(ctx context.Context, m *Message) []Result {
	out := make([]Result, len(m.Rcpts))
	if p.opts.PerMessage && len(m.Rcpts) > 0 {
		argv, env, st := p.messageArgs(m)
		reply := ""
		if st == nil {
			st, reply = p.run(ctx, m, argv, env)
		} else {
			reply = st.Error()
		}
		for i := range out {
			out[i] = pipeResult(st, reply)
		}
		return out
	}
	for i, r := range m.Rcpts {
		argv, env := p.recipientArgs(m, r)
		out[i] = pipeResult(p.run(ctx, m, argv, env))
	}
	return out
}

// pipeResult is the Result of a run that ended with st (nil: exit 0). The
// program is where the message ends, as far as we can tell: a delivery is
// final here (a success notice is ours to send), and "pipe" is no host with a
// DNS name to report.
func pipeResult(st *status.Status, reply string) Result {
	return Result{Err: st, Remote: "pipe", Reply: "x-unix;" + reply, ConnFailed: failedAtConnection(st, "pipe"),
		NoRemoteMTA: true, Handoff: DeliveredHere}
}

// stderrLimit bounds what we keep of a program's stderr; diagLineLimit bounds
// each line of it in the diagnostic, which goes into mail.log and the DSN.
const (
	stderrLimit   = 4096
	diagLineLimit = 200
)

// recipientArgs expands the command and the environment for one recipient.
func (p *Pipe) recipientArgs(m *Message, r Rcpt) (argv, env []string) {
	user, domain := r.Addr, r.Host
	if i := strings.LastIndexByte(r.Addr, '@'); i >= 0 {
		user, domain = r.Addr[:i], r.Addr[i+1:]
	}
	rep := strings.NewReplacer("${sender}", m.From, "${recipient}", r.Addr, "${user}", user,
		"${domain}", domain, "${queueid}", m.ID)
	argv = make([]string, len(p.opts.Command))
	for i, a := range p.opts.Command {
		argv[i] = rep.Replace(a)
	}
	env = []string{"RECIPIENT=" + r.Addr, "USER=" + user, "DOMAIN=" + domain, "ORIGINAL_RECIPIENT=" + r.ORCPT}
	return argv, env
}

// messageArgs expands the command and the environment for one run that serves
// every recipient. A per-recipient name in the command is a configuration
// error (cnbuild reports it); it defers rather than guess which recipient.
func (p *Pipe) messageArgs(m *Message) (argv, env []string, st *status.Status) {
	rcpts := make([]string, len(m.Rcpts))
	for i, r := range m.Rcpts {
		rcpts[i] = r.Addr
	}
	rep := strings.NewReplacer("${sender}", m.From, "${queueid}", m.ID)
	for _, a := range p.opts.Command {
		if a == "${recipients}" {
			argv = append(argv, rcpts...)
			continue
		}
		for _, v := range []string{"${recipient}", "${user}", "${domain}"} {
			if strings.Contains(a, v) {
				return nil, nil, status.New(451, "4.3.5", "pipe command argument %q uses %s, which has no value when one run serves every recipient", a, v)
			}
		}
		argv = append(argv, rep.Replace(a))
	}
	return argv, []string{"RECIPIENTS=" + strings.Join(rcpts, ",")}, nil
}

// run runs argv once with the message on stdin and maps how it ended.
func (p *Pipe) run(ctx context.Context, m *Message, argv, env []string) (*status.Status, string) {
	if len(argv) == 0 {
		st := status.New(451, "4.3.5", "pipe channel has no command configured")
		return st, st.Error()
	}
	if err := ctx.Err(); err != nil {
		st := status.New(451, "4.4.7", "delivery cancelled: %v", err)
		return st, st.Error()
	}

	rctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(rctx, argv[0], argv[1:]...)
	cmd.Dir = p.opts.Dir
	cmd.Env = append(append([]string{
		"PATH=/usr/local/bin:/usr/bin:/bin", "SENDER=" + m.From, "QUEUE_ID=" + m.ID,
	}, env...), p.opts.Env...)
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
	st := p.exitStatus(code, withDetail(fmt.Sprintf("%s exited %d", argv[0], code)))
	if code < 0 {
		st = status.New(451, "4.3.0", "%s", withDetail(fmt.Sprintf("%s: %v", argv[0], ee)))
	}
	return st, st.Error()
}

// exitStatus applies the administrator's overrides, then the sysexits mapping.
func (p *Pipe) exitStatus(code int, text string) *status.Status {
	switch {
	case slices.Contains(p.opts.TemporaryExits, code):
		return status.New(451, "4.3.0", "%s", text)
	case slices.Contains(p.opts.PermanentExits, code):
		if st := sysexitStatus(code, text); !st.Temporary() {
			return st // keep the specific enhanced code (5.1.1 for 67 ...)
		}
		return status.New(550, "5.3.0", "%s", text)
	}
	return sysexitStatus(code, text)
}

// sysexitStatus maps a sysexits.h code: 75 (EX_TEMPFAIL) temporary, 64-78
// permanent, with Postfix's enhanced codes; any other non-zero exit is
// temporary, since an unknown failure must defer, never bounce.
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
		if len(l) > diagLineLimit {
			l = strings.ToValidUTF8(l[:diagLineLimit], "") + "..."
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
