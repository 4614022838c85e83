package maillog

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Record is one mail.log line.
type Record struct {
	Time      time.Time // zero: now
	Source    string    // source channel (enqueue lines) or the channel dequeuing
	Dest      string    // destination channel; only on enqueue-side lines (E, J)
	Code      string    // an action code (CodeDelivered ...), possibly with modifiers (EE, DE)
	Size      int64     // bytes
	From      string    // envelope sender, "" for <>
	ORCPT     string    // "rfc822;addr" or ""
	To        string    // current recipient
	ID        string    // queue id, "" when there is none (J)
	MessageID string    // Message-ID header, written when the logger has LogMessageID
	Diag      string    // diagnostic text
	// Conn is the connection's source information, written when the caller has
	// LOG_CONNECTION bit 1 set (E records: "helo ([client-ip])", as in the
	// product's documented example), after MESSAGE-ID and before DIAG; "" writes
	// nothing.
	Conn string
}

// Logger is safe for concurrent use.
type Logger struct {
	path         string
	logMessageID bool

	mu     sync.Mutex // guards f, w, closed
	f      *os.File
	w      *bufio.Writer
	closed bool

	// sendMu lets Close close lines while no Log is sending: a record logged
	// after Close (an idle outbound connection's C record when its cache timer
	// fires after shutdown) is dropped instead of panicking.
	sendMu  sync.RWMutex
	stopped bool // guarded by sendMu

	lines chan entry
	done  chan struct{}
}

// entry is what the writer goroutine receives: a line to write, or (synced set) a
// request to flush everything before it and then close synced.
type entry struct {
	line   []byte
	synced chan struct{}
}

// Options for Open.
type Options struct {
	LogMessageID bool // LOG_MESSAGE_ID=1
}

// Open opens (appends to) the log file and starts its writer.
func Open(path string, opts Options) (*Logger, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open mail.log: %w", err)
	}
	l := &Logger{
		path:         path,
		logMessageID: opts.LogMessageID,
		f:            f,
		w:            bufio.NewWriterSize(f, 64<<10),
		lines:        make(chan entry, 4096),
		done:         make(chan struct{}),
	}
	go l.run()
	return l, nil
}

// Discard is a Logger that writes nowhere, for tests and tools.
func Discard() *Logger {
	l := &Logger{lines: make(chan entry, 64), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for e := range l.lines {
			if e.synced != nil {
				close(e.synced)
			}
		}
	}()
	return l
}

func (l *Logger) run() {
	defer close(l.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case e, ok := <-l.lines:
			if !ok {
				l.flush()
				return
			}
			if e.synced != nil {
				l.flush()
				close(e.synced)
				continue
			}
			l.mu.Lock()
			if l.w != nil {
				l.w.Write(e.line)
			}
			l.mu.Unlock()
		case <-tick.C:
			l.flush()
		}
	}
}

func (l *Logger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w != nil {
		l.w.Flush()
	}
}

// Log formats r and queues it for writing. It never blocks on the disk, only on a
// full buffer (4096 lines), which is back-pressure rather than loss.
func (l *Logger) Log(r Record) {
	if l == nil {
		return
	}
	l.send(l.format(r))
}

func (l *Logger) send(b []byte) {
	l.sendMu.RLock()
	defer l.sendMu.RUnlock()
	if !l.stopped {
		l.lines <- entry{line: b}
	}
}

// Sync returns once every record logged before it was called is written to the
// file (not fsynced), or when ctx ends first, with ctx's error. It is for tests and
// tools that read mail.log right after something was logged, so that they need not
// guess the writer's flush interval. After Close it returns at once: Close wrote
// everything.
func (l *Logger) Sync(ctx context.Context) error {
	if l == nil {
		return nil
	}
	synced := make(chan struct{})
	l.sendMu.RLock()
	if l.stopped {
		l.sendMu.RUnlock()
		return nil
	}
	select {
	case l.lines <- entry{synced: synced}:
		l.sendMu.RUnlock()
	case <-ctx.Done():
		l.sendMu.RUnlock()
		return fmt.Errorf("mail.log sync: %w", ctx.Err())
	}
	select {
	case <-synced:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mail.log sync: %w", ctx.Err())
	}
}

// Line is r as Log would write it to the file, without the line end: for showing
// a record elsewhere (qm run streams the outcomes of the job controller) in the
// very layout administrators know from mail.log.
func (l *Logger) Line(r Record) string {
	if l == nil {
		l = &Logger{} // the layout without LOG_MESSAGE_ID
	}
	b := l.format(r)
	return string(b[:len(b)-1])
}

func (l *Logger) format(r Record) []byte {
	b := make([]byte, 0, 200)
	b = appendTime(b, r.Time)
	field := func(s string) {
		b = append(b, ' ')
		b = append(b, clean(s)...)
	}
	field(orDash(r.Source))
	if r.Dest != "" {
		field(r.Dest)
	}
	field(r.Code)
	field(strconv.FormatInt(Blocks(r.Size), 10))
	from := r.From
	if from == "" {
		from = "<>"
	}
	field(from)
	orcpt := r.ORCPT
	if orcpt == "" && r.To != "" {
		orcpt = "rfc822;" + r.To
	}
	field(orDash(orcpt))
	field(orDash(r.To))
	field(orDash(r.ID))
	if l.logMessageID {
		field(orDash(r.MessageID))
	}
	if r.Conn != "" {
		// free text like DIAG ("host ([ip])", as in the product's documented example),
		// but never empty
		b = append(b, ' ')
		b = append(b, cleanText(r.Conn)...)
	}
	if r.Diag != "" {
		b = append(b, ' ')
		b = append(b, cleanText(r.Diag)...)
	}
	b = append(b, '\n')
	return b
}

// Blocks converts a size in bytes to 1024-byte blocks, rounding up, as mail.log,
// qm and counters report sizes.
func Blocks(size int64) int64 { return (size + 1023) / 1024 }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clean keeps one field one token: spaces and control characters would break
// the column layout that administrators' scripts rely on.
func clean(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, s)
}

// cleanText keeps the diagnostic on one line.
func cleanText(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' {
			return ' '
		}
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// Reopen closes and reopens the file by name, for logrotate (SIGUSR1, mtactl log -reopen).
func (l *Logger) Reopen() error {
	if l == nil || l.path == "" {
		return nil
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("reopen mail.log: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w != nil {
		l.w.Flush()
	}
	if l.f != nil {
		l.f.Close()
	}
	l.f = f
	l.w = bufio.NewWriterSize(f, 64<<10)
	return nil
}

// Close writes everything queued and closes the file. Records logged after Close
// are dropped.
func (l *Logger) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.sendMu.Lock()
	l.stopped = true
	close(l.lines)
	l.sendMu.Unlock()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.w.Flush()
		return l.f.Close()
	}
	return nil
}

// Connection records (LOG_CONNECTION bit 2). The product's documentation names the
// codes and the direction marker but not the columns; mtad writes:
//
//	dd-Mon-yyyy hh:mm:ss.cc CHANNEL DIR CODE TRANSPORT APP MESSAGES [DIAG]
//
// DIR is "+" for an inbound connection (our SMTP server) and "-" for an outbound
// one (an SMTP client channel). CODE is O (opened), C (closed), X (rejected before
// the banner: PORT_ACCESS or a connection cap) or Y (outbound attempt failed before
// a connection existed). TRANSPORT is the PORT_ACCESS probe form
// "TCP|local-ip|local-port|remote-ip|remote-port". APP is "SMTP/" followed by the
// peer's name: the client's HELO/EHLO argument inbound ("-" before it gave one),
// the host name we connected to outbound. MESSAGES is the number of messages the
// connection carried (0 on O, X and Y). DIAG, free text and last, is the reason on
// C ("QUIT", "timeout", "client disconnected", ...) and the refusal on X and Y.
// Every field but DIAG is one token, so the column layout is fixed.

// ConnRecord is one connection record.
type ConnRecord struct {
	Time      time.Time // zero: now
	Channel   string    // the connection's channel (source channel inbound)
	Outbound  bool      // "-" when true, "+" otherwise
	Code      string    // O, C, X, Y
	Transport string    // TCP|local-ip|local-port|remote-ip|remote-port
	Peer      string    // client HELO name (inbound) or server host (outbound); "" unknown
	Messages  int       // messages carried by the connection
	Diag      string    // reason (C) or refusal (X, Y)
}

// LogConn formats r and queues it like Log.
func (l *Logger) LogConn(r ConnRecord) {
	if l == nil {
		return
	}
	l.send(formatConn(r))
}

func formatConn(r ConnRecord) []byte {
	b := make([]byte, 0, 160)
	b = appendTime(b, r.Time)
	field := func(s string) {
		b = append(b, ' ')
		b = append(b, clean(s)...)
	}
	field(orDash(r.Channel))
	if r.Outbound {
		field("-")
	} else {
		field("+")
	}
	field(orDash(r.Code))
	field(orDash(r.Transport))
	field("SMTP/" + orDash(r.Peer))
	field(strconv.Itoa(r.Messages))
	if r.Diag != "" {
		b = append(b, ' ')
		b = append(b, cleanText(r.Diag)...)
	}
	return append(b, '\n')
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		t = time.Now()
	}
	b = t.AppendFormat(b, "02-Jan-2006 15:04:05")
	b = append(b, '.')
	cs := t.Nanosecond() / 1e7
	return append(b, byte('0'+cs/10), byte('0'+cs%10))
}
