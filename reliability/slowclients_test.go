package reliability

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The slow-sender attack, as an administrator ran it against mtad: clients from
// many addresses take every SMTP connection slot and keep it by sending a byte
// now and then, each inside the read timeout, so that every other client gets
// "421 4.3.2 Too many connections" for as long as the attackers like. Here most
// attackers dribble their message in DATA, one byte every 100 ms (10 bytes/s
// against a minimum of 1000, inside a 400 ms DATA_RECEIVE_TIME), and two send a
// NOOP every 300 ms (inside a 1 s COMMAND_RECEIVE_TIME) to test the session
// bound. Each attacker comes back after a short pause whenever it is cut off.
// Healthy clients, from addresses of their own, send one message per connection
// meanwhile: they must keep being served, and mail.log must say why the
// attackers were cut off.
//
// Every client binds its own loopback source address (127.0.0.x: Linux routes
// all of 127/8 to lo), as the attack came from many addresses.

const (
	slowSlots        = 12 // MAX_PROCS x MAX_CONNS
	slowDataAttacks  = 10 // dribbling in DATA
	slowCmdAttacks   = slowSlots - slowDataAttacks
	slowHealthy      = 3
	slowWindow       = 3 * time.Second
	slowByteGap      = 100 * time.Millisecond
	slowNoopGap      = 300 * time.Millisecond
	slowReconnect    = 100 * time.Millisecond // an attacker's pause before it comes back
	slowHealthyPause = 50 * time.Millisecond
)

func slowClientsConfig() map[string]string {
	return map[string]string{
		"imta.cnf":       ".             $U%$H@tcp-daemon\n\nl\nlocalhost\n\ntcp_local smtp mx\ntcp-daemon\n",
		"dispatcher.cnf": fmt.Sprintf("[SERVICE=SMTP]\nPORT=2525\nINTERFACE_ADDRESS=127.0.0.1\nMAX_PROCS=1\nMAX_CONNS=%d\n", slowSlots),
		"option.dat":     "LOG_CONNECTION=2\n",
		"tcp_local_option": "COMMAND_RECEIVE_TIME=1s\nDATA_RECEIVE_TIME=400ms\n" +
			"MIN_DATA_RECEIVE_RATE=1000\nMAX_SESSION_TIME=1500ms\n",
	}
}

// slowConn is one raw client connection from a chosen source address.
type slowConn struct {
	net.Conn
	r *bufio.Reader
}

func dialSlow(addr, from string) (*slowConn, error) {
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &slowConn{Conn: c, r: bufio.NewReader(c)}, nil
}

// reply reads one reply's last line.
func (c *slowConn) reply() (string, error) {
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return strings.TrimSpace(line), err
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimSpace(line), nil
		}
	}
}

// cmd sends a line and returns the reply, or "" when the exchange failed.
func (c *slowConn) cmd(line string) string {
	if _, err := io.WriteString(c, line+"\r\n"); err != nil {
		return ""
	}
	r, _ := c.reply()
	return r
}

// slowTally counts what the clients saw.
type slowTally struct {
	mu          sync.Mutex
	cuts        map[string]int // 421 4.4.2 replies the attackers got, by text
	served      [slowHealthy][]time.Duration
	refused     atomic.Int32 // 421 4.3.2 banners the healthy clients got
	attackStart time.Time
}

func (s *slowTally) cut(reply string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cuts[reply]++
}

func (s *slowTally) serve(client int, at time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.served[client] = append(s.served[client], at)
}

// attack runs one attacker until stop: connect, start a transaction (inData) or
// just greet, then dribble until the server cuts the session off.
func attack(addr, from string, inData bool, stop <-chan struct{}, tally *slowTally) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		if c, err := dialSlow(addr, from); err == nil {
			if banner, _ := c.reply(); strings.HasPrefix(banner, "220") {
				dribbleUntilCut(c, inData, stop, tally)
			}
			c.Close()
		}
		select {
		case <-stop:
			return
		case <-time.After(slowReconnect):
		}
	}
}

func dribbleUntilCut(c *slowConn, inData bool, stop <-chan struct{}, tally *slowTally) {
	c.cmd("EHLO attacker.test")
	gap, bit := slowNoopGap, "NOOP\r\n"
	if inData {
		if !strings.HasPrefix(c.cmd("MAIL FROM:<spam@attacker.test>"), "250") ||
			!strings.HasPrefix(c.cmd("RCPT TO:<user@localhost>"), "250") ||
			!strings.HasPrefix(c.cmd("DATA"), "354") {
			return
		}
		gap, bit = slowByteGap, "x"
	}
	// The server's replies are read by a goroutine: a NOOP's 250 and, at last,
	// the cut.
	replies := make(chan string, 16)
	go func() {
		defer close(replies)
		for {
			r, err := c.reply()
			if r != "" {
				replies <- r
			}
			if err != nil {
				return
			}
		}
	}()
	tick := time.NewTicker(gap)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case r, ok := <-replies:
			if !ok {
				return
			}
			if strings.HasPrefix(r, "421") {
				tally.cut(r)
				return
			}
		case <-tick.C:
			io.WriteString(c, bit)
		}
	}
}

// healthy sends one message per connection until stop, counting the messages
// accepted and the connections refused for want of a slot.
func healthy(addr string, client int, stop <-chan struct{}, tally *slowTally) {
	from := fmt.Sprintf("127.0.0.%d", 200+client)
	for {
		select {
		case <-stop:
			return
		case <-time.After(slowHealthyPause):
		}
		c, err := dialSlow(addr, from)
		if err != nil {
			continue
		}
		banner, _ := c.reply()
		switch {
		case strings.HasPrefix(banner, "421 4.3.2"):
			tally.refused.Add(1)
		case strings.HasPrefix(banner, "220") &&
			strings.HasPrefix(c.cmd("EHLO healthy.test"), "250") &&
			strings.HasPrefix(c.cmd("MAIL FROM:<ok@healthy.test>"), "250") &&
			strings.HasPrefix(c.cmd("RCPT TO:<user@localhost>"), "250") &&
			strings.HasPrefix(c.cmd("DATA"), "354") &&
			strings.HasPrefix(c.cmd("Subject: healthy\r\n\r\nhello\r\n."), "250"):
			tally.serve(client, time.Since(tally.attackStart))
			c.cmd("QUIT")
		}
		c.Close()
	}
}

// TestSlowClientsCannotHoldEverySlot: see the comment at the top of the file.
func TestSlowClientsCannotHoldEverySlot(t *testing.T) {
	cfg := t.TempDir()
	writeFiles(t, cfg, slowClientsConfig())
	d, data := startDaemon(t, cfg)
	addr := d.Addr().String()

	tally := &slowTally{cuts: map[string]int{}, attackStart: time.Now()}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range slowSlots {
		wg.Go(func() { attack(addr, fmt.Sprintf("127.0.0.%d", 10+i), i < slowDataAttacks, stop, tally) })
	}
	// The attack holds every slot before the healthy clients start.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := dialSlow(addr, "127.0.0.250")
		if err != nil {
			t.Fatal(err)
		}
		banner, _ := c.reply()
		c.Close()
		if strings.HasPrefix(banner, "421 4.3.2") {
			break
		}
		if time.Now().After(deadline) {
			close(stop)
			t.Fatalf("the attackers did not take every slot: %q", banner)
		}
		time.Sleep(10 * time.Millisecond)
	}
	tally.attackStart = time.Now()
	for i := range slowHealthy {
		wg.Go(func() { healthy(addr, i, stop, tally) })
	}
	time.Sleep(slowWindow)
	close(stop)
	wg.Wait()

	tally.mu.Lock()
	defer tally.mu.Unlock()
	t.Logf("healthy clients served at %v; %d refusals for want of a slot; cuts %v", tally.served, tally.refused.Load(), tally.cuts)
	for i, at := range tally.served {
		// served more than once, and still in the last third of the window: the
		// slots keep coming free, not once by luck
		if len(at) < 2 || at[len(at)-1] < 2*slowWindow/3 {
			t.Errorf("healthy client %d was served at %v during the %v attack, want again and again", i, at, slowWindow)
		}
	}
	for _, want := range []string{
		"421 4.4.2 localhost Error: message data below the minimum rate of 1000 bytes per second, closing connection",
		"421 4.4.2 localhost Error: session time limit exceeded, closing connection",
	} {
		if tally.cuts[want] == 0 {
			t.Errorf("no attacker got %q", want)
		}
		waitLogLine(t, data, 5*time.Second, "C record "+want, func(l string) bool {
			return strings.Contains(l, " tcp_local + C TCP|") && strings.HasSuffix(l, " "+want)
		})
	}
	waitLogLine(t, data, 5*time.Second, "J record of a dribbled message", func(l string) bool {
		return strings.Contains(l, " J ") && strings.Contains(l, " spam@attacker.test ") &&
			strings.Contains(l, " 421 4.4.2 localhost Error: message data below the minimum rate")
	})
}
