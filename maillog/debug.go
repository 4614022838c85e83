package maillog

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// DefaultDebugLimit bounds one debug transcript file. The product's debug logs have
// no documented bound; a transcript includes message contents, so without one a busy
// debug session could fill the disk. 16 MiB holds thousands of ordinary sessions'
// worth of dialogue.
const DefaultDebugLimit = 16 << 20

// DebugLog is one SMTP session's debug transcript: the channel's slave_debug log
// (an inbound session, `<channel>_slave.log-<id>`) or master_debug log (an
// outbound connection, `<channel>_master.log-<id>`), named as the product names them.
//
// Both directions are written, one line per protocol line, each stamped
// "hh:mm:ss.mmm C: " (from the SMTP client) or "S: " (from the SMTP server), plus
// "#" notes. Bytes are assembled into lines per direction, so a caller may feed
// whatever its reads and writes returned. Credentials are masked: the argument of
// an AUTH command is written as "****", and so is every client line after AUTH up
// to the server's first reply that is not 334 (including lines a client sent
// before the challenge: a blind response is still a secret).
//
// After Limit bytes the file gets a last note and nothing more. A nil *DebugLog
// does nothing, so callers need no checks. Safe for concurrent use.
type DebugLog struct {
	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	written int64
	limit   int64
	full    bool
	now     func() time.Time

	partial [2][]byte // incomplete line per direction
	inAuth  bool      // between a client AUTH line and the server's final reply
}

// DebugOptions for OpenDebug.
type DebugOptions struct {
	Limit int64            // bytes per file; 0: DefaultDebugLimit
	Now   func() time.Time // clock, for tests; nil: time.Now
}

// DebugPath is the file name of a debug transcript: kind is "slave" or "master".
func DebugPath(dir, channel, kind, id string) string {
	return filepath.Join(dir, clean(channel)+"_"+kind+".log-"+clean(id))
}

// OpenDebug creates the transcript file (and dir), failing if it exists: ids are
// unique, and a transcript must never be appended to another.
func OpenDebug(dir, channel, kind, id string, opts DebugOptions) (*DebugLog, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("debug log directory: %w", err)
	}
	p := DebugPath(dir, channel, kind, id)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open debug log: %w", err)
	}
	d := &DebugLog{f: f, w: bufio.NewWriterSize(f, 8<<10), limit: opts.Limit, now: opts.Now}
	if d.limit <= 0 {
		d.limit = DefaultDebugLimit
	}
	if d.now == nil {
		d.now = time.Now
	}
	return d, nil
}

const (
	dirClient = 0
	dirServer = 1
)

// FromClient records bytes sent by the SMTP client (read by a slave, written by a
// master).
func (d *DebugLog) FromClient(p []byte) { d.feed(dirClient, p) }

// FromServer records bytes sent by the SMTP server.
func (d *DebugLog) FromServer(p []byte) { d.feed(dirServer, p) }

// ClientReader returns r with everything read from it recorded as sent by the
// client; ServerReader, as sent by the server. A connection puts one under its
// read buffer, so the transcript shows the bytes as they arrived.
func (d *DebugLog) ClientReader(r io.Reader) io.Reader { return teeReader{r, d, dirClient} }

// ServerReader: see ClientReader.
func (d *DebugLog) ServerReader(r io.Reader) io.Reader { return teeReader{r, d, dirServer} }

type teeReader struct {
	r   io.Reader
	d   *DebugLog
	dir int
}

func (t teeReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.d.feed(t.dir, p[:n])
	return n, err
}

// Note writes a "#" line: who, what, why the session ended.
func (d *DebugLog) Note(format string, args ...any) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.line("#", fmt.Sprintf(format, args...))
}

func (d *DebugLog) feed(dir int, p []byte) {
	if d == nil || len(p) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.full || d.f == nil {
		return
	}
	buf := append(d.partial[dir], p...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		d.protoLine(dir, string(bytes.TrimSuffix(buf[:i], []byte{'\r'})))
		buf = buf[i+1:]
	}
	// A line without its end is kept, but not without bound: a client that never
	// sends LF must not grow our memory.
	if len(buf) > 4096 {
		d.protoLine(dir, string(buf)+" [line continues]")
		buf = buf[:0]
	}
	d.partial[dir] = append(d.partial[dir][:0], buf...)
	if dir == dirServer {
		// A server reply ends a step of the dialogue: make it visible now, for
		// whoever follows the file (qm run) while the connection stays open.
		d.w.Flush()
	}
}

// protoLine masks credentials and writes one protocol line.
func (d *DebugLog) protoLine(dir int, s string) {
	if dir == dirClient {
		verb, rest, _ := strings.Cut(s, " ")
		switch {
		case strings.EqualFold(verb, "AUTH"):
			d.inAuth = true
			if mech, resp, ok := strings.Cut(rest, " "); ok && resp != "" {
				s = verb + " " + mech + " ****"
			}
		case d.inAuth:
			s = "****"
		}
		d.line("C:", s)
		return
	}
	if d.inAuth && !strings.HasPrefix(s, "334") {
		d.inAuth = false
	}
	d.line("S:", s)
}

func (d *DebugLog) line(tag, s string) {
	if d.full || d.f == nil {
		return
	}
	b := make([]byte, 0, len(s)+24)
	b = d.now().AppendFormat(b, "15:04:05.000 ")
	b = append(b, tag...)
	b = append(b, ' ')
	b = append(b, cleanText(s)...)
	b = append(b, '\n')
	if d.written+int64(len(b)) > d.limit {
		d.full = true
		fmt.Fprintf(d.w, "# debug log limit of %d bytes reached; the rest of the session is not written\n", d.limit)
		return
	}
	d.written += int64(len(b))
	d.w.Write(b)
}

// Close writes any partial lines and closes the file.
func (d *DebugLog) Close() error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return nil
	}
	for dir := range d.partial {
		if len(d.partial[dir]) > 0 {
			d.protoLine(dir, string(d.partial[dir]))
			d.partial[dir] = nil
		}
	}
	err := d.w.Flush()
	if cerr := d.f.Close(); err == nil {
		err = cerr
	}
	d.f = nil
	if err != nil {
		return fmt.Errorf("close debug log: %w", err)
	}
	return nil
}
