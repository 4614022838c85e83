package channels

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestSMTPPipelinedLongRecipientList: a server that answers each pipelined
// command as soon as it reads it, a long recipient list and small socket
// buffers on both ends. The server's replies fill the client's receive buffer
// while the client is still writing the group; a client that reads only once
// the whole group is written then waits for the server, which waits for it,
// until the MAIL timeout (the code before the writer goroutine failed so: 451
// 4.4.2 "timeout waiting for MAIL reply" after 3 s, the server having seen 297
// RCPT). The client must read while it writes, and deliver.
func TestSMTPPipelinedLongRecipientList(t *testing.T) {
	t.Parallel()
	const rcpts = 3000
	// Small socket buffers on both ends, so that a few hundred commands and
	// replies fill them. The receive buffers are not as small as the send
	// buffers: below about 32 KiB Linux's loopback crawls (a few milliseconds
	// per window), which would slow the test without showing anything more.
	const readBuffer, writeBuffer = 32 << 10, 4 << 10
	var rcptsSeen, delivered atomic.Int32
	port := scripted(t, func(c net.Conn, r *bufio.Reader) {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetReadBuffer(readBuffer)
			tc.SetWriteBuffer(writeBuffer)
		}
		io.WriteString(c, "220 eager.test ESMTP\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			// Every reply is its own unbuffered write: it blocks as soon as
			// the client stops reading, and so does this server's reading.
			switch cmd := strings.ToUpper(line); {
			case strings.HasPrefix(cmd, "EHLO"):
				io.WriteString(c, "250-eager.test\r\n250 PIPELINING\r\n")
			case strings.HasPrefix(cmd, "RCPT"):
				// As sendmail does, the reply names the recipient: long
				// replies fill the client's receive buffer sooner.
				rcptsSeen.Add(1)
				addr, _, _ := strings.Cut(line[len("RCPT TO:"):], "\r")
				io.WriteString(c, "250 2.1.5 "+addr+"... Recipient ok\r\n")
			case strings.HasPrefix(cmd, "DATA"):
				io.WriteString(c, "354 go ahead\r\n")
				if err := skipContent(r); err != nil {
					return
				}
				delivered.Add(1)
				io.WriteString(c, "250 2.0.0 queued\r\n")
			case strings.HasPrefix(cmd, "QUIT"):
				io.WriteString(c, "221 2.0.0 bye\r\n")
				return
			default:
				io.WriteString(c, "250 2.0.0 ok\r\n")
			}
		}
	})
	// A deadlock shows as a timeout: short enough to keep the test quick,
	// long enough for a loopback server that keeps answering.
	const stage = 3 * time.Second
	c := newClient(t, port, func(o *SMTPOptions) {
		o.Timeouts = Timeouts{Connect: stage, Greeting: stage, Ehlo: stage, Mail: stage, Rcpt: stage,
			DataInit: stage, DataBlock: stage, DataEnd: stage, Rset: stage, Quit: time.Second}
		o.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, network, addr)
			if tc, ok := nc.(*net.TCPConn); ok {
				tc.SetReadBuffer(readBuffer)
				tc.SetWriteBuffer(writeBuffer)
			}
			return nc, err
		}
	})
	// Long addresses: a 64-octet local part (RFC 5321's limit) and a long
	// domain, so the group is far larger than the socket buffers.
	domain := strings.Repeat("sub-domain-label.", 8) + "example"
	addrs := make([]string, rcpts)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("%s%06d@%s", strings.Repeat("r", 58), i, domain)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	res := c.Deliver(ctx, msgOf([]byte("Subject: many\r\n\r\nbody\r\n"), "s@example.org", addrs...))
	took := time.Since(start)
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("recipient %d after %v: %v (server saw %d RCPT)", i, took, r.Err, rcptsSeen.Load())
		}
	}
	if n := rcptsSeen.Load(); n != rcpts {
		t.Errorf("server saw %d RCPT, want %d", n, rcpts)
	}
	if n := delivered.Load(); n != 1 {
		t.Errorf("server completed %d transactions, want 1", n)
	}
	if took >= stage {
		t.Errorf("took %v: as long as a stage timeout", took)
	}
}

// TestSMTPPipelined421StopsTheWriter: a server that answers MAIL with 421 and
// then reads nothing more, while the client is still writing a long group.
// The 421 ends the transaction at once: the writer, blocked on a server that
// no longer reads, is stopped rather than waited for until its timeout.
func TestSMTPPipelined421StopsTheWriter(t *testing.T) {
	t.Parallel()
	done := make(chan struct{})
	port := scripted(t, func(c net.Conn, r *bufio.Reader) {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetReadBuffer(32 << 10)
		}
		io.WriteString(c, "220 closing.test ESMTP\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(strings.ToUpper(line), "EHLO") {
				io.WriteString(c, "250-closing.test\r\n250 PIPELINING\r\n")
				continue
			}
			io.WriteString(c, "421 4.3.2 shutting down\r\n")
			<-done // reads nothing more, keeps the connection open
			return
		}
	})
	t.Cleanup(func() { close(done) }) // runs before scripted's cleanup waits
	const stage = 5 * time.Second
	c := newClient(t, port, func(o *SMTPOptions) {
		o.Timeouts.Mail, o.Timeouts.Rcpt = stage, stage
		o.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, network, addr)
			if tc, ok := nc.(*net.TCPConn); ok {
				tc.SetWriteBuffer(4 << 10)
			}
			return nc, err
		}
	})
	addrs := make([]string, 3000)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("%s%06d@example.com", strings.Repeat("r", 58), i)
	}
	start := time.Now()
	res := c.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@example.org", addrs...))
	took := time.Since(start)
	if st := res[0].Err; st == nil || !st.Temporary() || st.Code != 421 {
		t.Fatalf("got %v, want the server's 421", st)
	}
	if took > stage/2 {
		t.Errorf("took %v: the blocked writer was waited for", took)
	}
}
