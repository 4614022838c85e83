package smtpserver

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"mtad.dev/mta/maillog"
	"mtad.dev/mta/queue"
)

// countQueue is an Enqueuer that keeps nothing: the benchmarks measure the SMTP
// server, not a queue.
type countQueue struct{ n atomic.Int64 }

func (q *countQueue) Enqueue(_ context.Context, _ *queue.Envelope, _ []byte) (string, error) {
	q.n.Add(1)
	return "Q1", nil
}

// benchClient is a lean raw SMTP client, so that the allocations the benchmark
// reports are mostly the server's.
type benchClient struct {
	b    *testing.B
	conn net.Conn
	r    *bufio.Reader
}

func (c *benchClient) send(s string) {
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.b.Fatal(err)
	}
}

// expect reads one reply (all its lines) and checks the code of its last line.
func (c *benchClient) expect(code string) {
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			c.b.Fatalf("reading reply: %v", err)
		}
		if len(line) < 4 || string(line[:3]) != code {
			c.b.Fatalf("reply %q, want %s", line, code)
		}
		if line[3] == ' ' {
			return
		}
	}
}

// startBench serves on loopback with the scripted engine and a queue that keeps
// nothing, and returns the address.
func startBench(b *testing.B) string {
	b.Helper()
	pol := basePolicy(&fakeRules{}, &fakeAccess{})
	srv := New(Config{Policy: func() *Policy { return pol }, Queue: &countQueue{}, Log: maillog.Discard()})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(context.Background(), l)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return l.Addr().String()
}

// cpuTime is the process's user+system CPU so far. Wall time per op over loopback
// in lock-step is mostly scheduling latency on a loaded machine; CPU per op (both
// ends, the server's the larger share) is the steadier figure.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds the cpu-ns/op metric for the loop that started at start.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

func (c *benchClient) transaction(msg string) {
	c.send("MAIL FROM:<alice@example.org>\r\n")
	c.expect("250")
	c.send("RCPT TO:<bob@example.net>\r\n")
	c.expect("250")
	c.send("DATA\r\n")
	c.expect("354")
	c.send(msg)
	c.expect("250")
}

// benchMessage is a 4 KiB message, dot-terminated.
func benchMessage() string {
	line := strings.Repeat("0123456789abcdef", 4) + "\r\n" // 66 octets
	body := "Subject: bench\r\nMessage-ID: <bench@client.test>\r\n\r\n" + strings.Repeat(line, 4096/len(line))
	return body + ".\r\n"
}

// BenchmarkTransaction is one whole SMTP session over loopback per op: connect,
// banner, EHLO, MAIL, RCPT, DATA of 4 KiB, QUIT, lock-step. The allocations
// include the client's few.
func BenchmarkTransaction(b *testing.B) {
	addr := startBench(b)
	msg := benchMessage()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		c := &benchClient{b: b, conn: conn, r: bufio.NewReader(conn)}
		c.expect("220")
		c.send("EHLO client.test\r\n")
		c.expect("250")
		c.transaction(msg)
		c.send("QUIT\r\n")
		c.expect("221")
		conn.Close()
	}
	reportCPU(b, cpu0)
}

// BenchmarkTransactionReuse is MAIL, RCPT and DATA of 4 KiB per op on one
// session: the per-message cost without the connection's.
func BenchmarkTransactionReuse(b *testing.B) {
	addr := startBench(b)
	msg := benchMessage()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	c := &benchClient{b: b, conn: conn, r: bufio.NewReader(conn)}
	c.expect("220")
	c.send("EHLO client.test\r\n")
	c.expect("250")
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		c.transaction(msg)
	}
	reportCPU(b, cpu0)
}
