package smtpserver

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"mtad.dev/mta/maillog"
)

type countingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, writes: l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestRepliesCoalesced guards the write side of the connection: a multi-line reply is
// one write(2), and the replies to a PIPELINING group (RFC 2920) go out together
// once the group is answered, not one write per command.
func TestRepliesCoalesced(t *testing.T) {
	var writes atomic.Int64
	pol := basePolicy(&fakeRules{}, &fakeAccess{})
	srv := New(Config{Queue: &fakeQueue{}, Log: maillog.Discard(), Policy: func() *Policy { return pol }})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, countingListener{l, &writes}) }()
	defer func() {
		sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
		defer c()
		srv.Shutdown(sctx)
		cancel()
		<-done
	}()

	c := dialRaw(t, l.Addr().String())
	var total int64
	step := func(what string, f func(), want int64) {
		t.Helper()
		f()
		total += want
		if got := writes.Load(); got != total {
			t.Errorf("%s: %d writes so far, want %d", what, got, total)
			total = got
		}
	}
	step("banner", func() { c.expect("220 ") }, 1)
	step("EHLO (multi-line reply)", func() {
		if r := c.cmd("EHLO client.test", "250-"); len(r) < 20 {
			t.Errorf("EHLO reply %q", r)
		}
	}, 1)
	step("pipelined MAIL, RCPT, RCPT, DATA", func() {
		c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<x@example.net>\r\nRCPT TO:<y@example.net>\r\nDATA\r\n")
		c.expect("250 ")
		c.expect("250 ")
		c.expect("250 ")
		c.expect("354 ")
	}, 1)
	step("end of data", func() {
		c.send("Subject: t\r\n\r\nbody\r\n.\r\n")
		c.expect("250 ")
	}, 1)
	step("lock-step RSET", func() { c.cmd("RSET", "250 ") }, 1)
	step("QUIT", func() { c.cmd("QUIT", "221 ") }, 1)
}
