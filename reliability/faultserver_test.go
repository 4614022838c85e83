package reliability

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// faultServer is a tiny scriptable SMTP server on 127.0.0.1:0: a well-behaved
// server whose behaviour one fault replaces at a chosen stage.
type faultServer struct {
	port  int
	fault string
	// trickle is the delay between bytes of every reply with the fault "trickle";
	// fixed before the server accepts, so that no connection races with it.
	trickle time.Duration
	mu      sync.Mutex
	conns   int
	dataOK  int // transactions it answered 250 after the final dot
}

// The faults.
const (
	fRefused   = "refused"     // nothing listens on the port
	fReset     = "reset"       // RST right after accept
	fNoGreet   = "no-greeting" // accepts, never sends 220
	f421       = "421"         // 421 greeting
	fRcptMixed = "rcpt-mixed"  // 4xx for tmp*@, 5xx for bad*@, 250 for the rest
	fDrop354   = "drop-354"    // closes right after 354
	fDropMid   = "drop-mid"    // closes after part of the content
	fHangDot   = "hang-dot"    // reads the content, never answers the final dot
	fTrickle   = "trickle"     // every reply one byte at a time
)

func newFaultServer(t *testing.T, fault string, trickle time.Duration) *faultServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &faultServer{port: l.Addr().(*net.TCPAddr).Port, fault: fault, trickle: trickle}
	if fault == fRefused {
		l.Close() // the port was ours a moment ago: nothing listens there now
		return fs
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	t.Cleanup(func() { close(done); l.Close(); wg.Wait() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fs.mu.Lock()
			fs.conns++
			fs.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				go func() { <-done; c.Close() }()
				fs.serve(c)
			}()
		}
	}()
	return fs
}

func (fs *faultServer) counts() (conns, ok int) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.conns, fs.dataOK
}

func (fs *faultServer) serve(c net.Conn) {
	c.SetDeadline(time.Now().Add(10 * time.Minute))
	r := bufio.NewReader(c)
	say := func(s string) bool {
		if fs.fault == fTrickle {
			for i := range len(s) {
				if _, err := c.Write([]byte{s[i]}); err != nil {
					return false
				}
				time.Sleep(fs.trickle)
			}
			return true
		}
		_, err := c.Write([]byte(s))
		return err == nil
	}
	switch fs.fault {
	case fReset:
		c.(*net.TCPConn).SetLinger(0)
		return
	case fNoGreet:
		r.ReadString(0) // until the client gives up
		return
	case f421:
		say("421 4.3.2 fault.test service not available, closing\r\n")
		return
	}
	if !say("220 fault.test ESMTP\r\n") {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.TrimSpace(line))
		if i := strings.IndexAny(verb, " :"); i >= 0 {
			verb = verb[:i]
		}
		var reply string
		switch verb {
		case "EHLO":
			reply = "250-fault.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
		case "HELO", "MAIL", "RSET", "NOOP":
			reply = "250 2.0.0 ok\r\n"
		case "RCPT":
			low := strings.ToLower(line)
			switch {
			case fs.fault == fRcptMixed && strings.Contains(low, "<tmp"):
				reply = "450 4.2.1 mailbox temporarily unavailable\r\n"
			case fs.fault == fRcptMixed && strings.Contains(low, "<bad"):
				reply = "550 5.1.1 no such user here\r\n"
			default:
				reply = "250 2.1.5 ok\r\n"
			}
		case "DATA":
			if !say("354 go ahead\r\n") {
				return
			}
			if fs.fault == fDrop354 {
				return
			}
			n := 0
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				n += len(l)
				if fs.fault == fDropMid && n > 100 {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			if fs.fault == fHangDot {
				r.ReadString(0)
				return
			}
			fs.mu.Lock()
			fs.dataOK++
			fs.mu.Unlock()
			reply = "250 2.0.0 queued\r\n"
		case "QUIT":
			say("221 2.0.0 bye\r\n")
			return
		default:
			reply = "502 5.5.2 unknown command\r\n"
		}
		if !say(reply) {
			return
		}
	}
}
