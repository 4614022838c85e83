package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// Client talks to mtad's control socket.
type Client struct {
	Path string
	// DialTimeout bounds connecting (0: 2s); a socket that accepts nothing in that
	// time is ErrNotAnswering.
	DialTimeout time.Duration
	// ReplyTimeout bounds waiting for a reply to a non-streamed request (0: 30s).
	ReplyTimeout time.Duration
}

// Call sends req and decodes the final reply's result into result (may be nil).
// It returns the final Response (for its Time and note) or an error: ErrNotRunning,
// ErrNotAnswering, *Error for a refusal, or a transport error.
func (c *Client) Call(ctx context.Context, req Request, result any) (*Response, error) {
	return c.Stream(ctx, req, nil, result)
}

// Stream is Call that hands each streamed event to onEvent as it arrives.
//
// An mtad that is shutting down answers ErrKindShutdown until its socket goes;
// the request is retried for a few seconds (also when the connection is reset
// unanswered, as a closing listener does), so that a command run during the
// stop ends up working on the files (ErrNotRunning) rather than failing.
func (c *Client) Stream(ctx context.Context, req Request, onEvent func(string), result any) (*Response, error) {
	for i := 0; ; i++ {
		r, err := c.stream(ctx, req, onEvent, result)
		var ce *Error
		retry := errors.As(err, &ce) && ce.Kind == ErrKindShutdown
		// A listener closed with our connection still in its backlog resets it: the
		// request was never read, and mtad is going away.
		retry = retry || errors.Is(err, syscall.ECONNRESET)
		if !retry || i >= 50 {
			return r, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Client) stream(ctx context.Context, req Request, onEvent func(string), result any) (*Response, error) {
	dt := c.DialTimeout
	if dt <= 0 {
		dt = 2 * time.Second
	}
	d := net.Dialer{Timeout: dt}
	conn, err := d.DialContext(ctx, "unix", c.Path)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOENT) {
			return nil, ErrNotRunning
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, ErrNotAnswering
		}
		return nil, fmt.Errorf("control socket %s: %w", c.Path, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	req.Version = Version
	conn.SetWriteDeadline(time.Now().Add(dt))
	if err := json.NewEncoder(conn).Encode(&req); err != nil {
		return nil, fmt.Errorf("control socket: send: %w", err)
	}
	conn.SetWriteDeadline(time.Time{})
	rt := c.ReplyTimeout
	if rt <= 0 {
		rt = 30 * time.Second
	}
	dec := json.NewDecoder(conn)
	for {
		if onEvent == nil {
			conn.SetReadDeadline(time.Now().Add(rt))
		}
		var r Response
		if err := dec.Decode(&r); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				return nil, ErrNotAnswering
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("control socket: read reply: %w", err)
		}
		if r.Version != Version {
			return nil, fmt.Errorf("control socket: mtad speaks protocol version %d, mtactl %d: use the mtactl of the same release", r.Version, Version)
		}
		if !r.Final {
			if onEvent != nil {
				onEvent(r.Event)
			}
			continue
		}
		if r.Error != "" {
			return &r, &Error{Kind: r.Kind, Msg: r.Error}
		}
		return &r, decodeResult(&r, result)
	}
}
