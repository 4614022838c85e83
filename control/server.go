package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ErrInUse is returned by Listen when another process answers on the socket.
var ErrInUse = errors.New("control socket in use: another mtad runs on this data directory")

// Handler answers one request. It must end with exactly one call of w.Result or
// w.Fail; it may call w.Event before (streamed replies).
type Handler func(ctx context.Context, req *Request, w *Writer)

// Server serves the control socket.
type Server struct {
	ln      *net.UnixListener
	path    string
	file    os.FileInfo // the socket we created, so that we never remove another's
	handler Handler
	log     *slog.Logger
	wg      sync.WaitGroup
	// requestTimeout bounds reading a request (0: 10s); tests shorten it.
	requestTimeout time.Duration
}

// Listen creates the socket at path with mode 0600. A stale socket (a file nobody
// answers on) is removed; a live one gives ErrInUse.
func Listen(path string, h Handler, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	if _, err := os.Lstat(path); err == nil {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: %w", path, ErrInUse)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("control socket %s: %w", path, err)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove stale control socket: %w", err)
		}
		log.Info("removed stale control socket", "path", path)
	}
	// Bind under a temporary name and rename once the mode is right: the socket
	// never exists at path with the umask's permissions.
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.%d", filepath.Base(path), os.Getpid()))
	os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control socket: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return &Server{ln: ln, path: path, file: fi, handler: h, log: log}, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Serve accepts connections until ctx ends, then closes the listener, removes the
// socket file and waits for the requests in progress.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	defer s.wg.Wait()
	defer s.remove()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				s.ln.Close()
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.ln.Close()
			return fmt.Errorf("control socket accept: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(ctx, c)
		}()
	}
}

// remove deletes the socket file if it is still ours: a new mtad may already
// have replaced it.
func (s *Server) remove() {
	if fi, err := os.Stat(s.path); err == nil && os.SameFile(fi, s.file) {
		os.Remove(s.path)
	}
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	rt := s.requestTimeout
	if rt <= 0 {
		rt = 10 * time.Second
	}
	c.SetReadDeadline(time.Now().Add(rt))
	var req Request
	dec := json.NewDecoder(io.LimitReader(c, maxRequestSize))
	w := &Writer{enc: json.NewEncoder(c)}
	if err := dec.Decode(&req); err != nil {
		w.Fail(ErrKindUsage, fmt.Sprintf("bad request: %v", err))
		return
	}
	c.SetReadDeadline(time.Time{})
	if req.Version != Version {
		w.Fail(ErrKindUsage, fmt.Sprintf("protocol version %d not supported (mtad speaks %d): use the mtactl of the same release", req.Version, Version))
		return
	}
	// The request ends when the client goes away: a zero-byte read returning
	// means the peer closed (it sends nothing after its request).
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		var b [1]byte
		c.Read(b[:])
		cancel()
	}()
	func() {
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("control request panicked", "command", req.Command, "panic", p)
				w.Fail(ErrKindInternal, fmt.Sprintf("internal error: %v", p))
			}
		}()
		s.handler(rctx, &req, w)
	}()
	if !w.final {
		w.Fail(ErrKindInternal, "internal error: no reply")
	}
}

// Writer sends the replies of one request.
type Writer struct {
	enc   *json.Encoder
	final bool
	err   error
}

func (w *Writer) send(r Response) error {
	if w.final {
		return errors.New("control: reply after the final one")
	}
	if w.err != nil {
		return w.err
	}
	r.Version = Version
	r.Time = time.Now()
	w.final = r.Final
	w.err = w.enc.Encode(&r)
	return w.err
}

// Event streams one line (run). An error means the client went away.
func (w *Writer) Event(line string) error { return w.send(Response{Event: line}) }

// Result sends the final reply with v as its result and an optional note.
func (w *Writer) Result(v any, note string) error {
	b, err := json.Marshal(v)
	if err != nil {
		return w.Fail(ErrKindInternal, fmt.Sprintf("encode reply: %v", err))
	}
	return w.send(Response{Final: true, Result: b, Extra: note})
}

// Fail sends the final reply as an error.
func (w *Writer) Fail(kind, msg string) error {
	return w.send(Response{Final: true, Error: msg, Kind: kind})
}
