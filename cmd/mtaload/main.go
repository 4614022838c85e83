// Command mtaload is our SMTP load generator: it opens sessions against an MTA on a
// loopback address, sends messages (per session, recipients, size, pacing are
// flags), and reports acceptance throughput and latency; with its in-process sink,
// to which the MTA relays, it also reports end-to-end (accepted -> delivered)
// latency per message, and counts messages lost or delivered twice.
//
//	mtaload [-addr 127.0.0.1:2525] [-sink 127.0.0.1:2526 | -sink ""] [-n 10000] [-c 20]
//	        [-per-session 1] [-rcpts 1] [-size 4096] [-rate 0] [-pipelining]
//	        [-timeout 5m]
//
// Each message carries an X-Mtaload-Id header; the sink notes when each id arrives.
// The accept time of a message is when its 250 after DATA came back. With -sink ""
// the MTA relays to an external sink (smtp-sink, see /work/shared/bench) and only
// acceptance is measured. It prints one line of key=value, like the bench harness:
//
//	mtaload n=... accept_msgs_per_s=... e2e_msgs_per_s=... accept_p50_ms=... e2e_p99_ms=... lost=0 dup=0
//
// Everything stays on loopback: -addr and -sink must be loopback addresses.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// config is one load run.
type config struct {
	addr       string        // the MTA
	sink       string        // in-process sink listen address, "" for none
	n          int           // messages
	c          int           // parallel sessions
	perSession int           // messages per session
	rcpts      int           // recipients per message
	size       int           // approximate message size in bytes
	rate       float64       // messages per second over all sessions, 0: as fast as possible
	pipelining bool          // MAIL, RCPT and DATA in one write
	timeout    time.Duration // whole run
	from, to   string        // envelope sender; recipient local part @ domain
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mtaload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:2525", "the MTA's SMTP `address` (loopback)")
	fs.StringVar(&cfg.sink, "sink", "127.0.0.1:2526", "run the sink on this loopback `address` (the MTA relays to it); empty: external sink, acceptance only")
	fs.IntVar(&cfg.n, "n", 10000, "messages")
	fs.IntVar(&cfg.c, "c", 20, "parallel SMTP sessions")
	fs.IntVar(&cfg.perSession, "per-session", 1, "messages per SMTP session")
	fs.IntVar(&cfg.rcpts, "rcpts", 1, "recipients per message")
	fs.IntVar(&cfg.size, "size", 4096, "message size in `bytes` (approximately: whole lines)")
	fs.Float64Var(&cfg.rate, "rate", 0, "offered load in `messages/s` over all sessions (0: as fast as the MTA accepts)")
	fs.BoolVar(&cfg.pipelining, "pipelining", false, "send MAIL, RCPT and DATA in one write (RFC 2920)")
	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "bound on the whole run")
	fs.StringVar(&cfg.from, "from", "load@src.invalid", "envelope sender")
	fs.StringVar(&cfg.to, "to", "rcpt@dst.invalid", "recipient; a sequence number is appended to the local part")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := cfg.check(); err != nil {
		fmt.Fprintf(stderr, "mtaload: %v\n", err)
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, cfg.timeout)
	defer cancelT()

	var sk *sink
	if cfg.sink != "" {
		var err error
		if sk, err = startSink(cfg.sink); err != nil {
			fmt.Fprintf(stderr, "mtaload: %v\n", err)
			return 1
		}
		defer sk.Close()
	}
	res := load(ctx, cfg, sk)
	fmt.Fprintln(stdout, res.line(cfg))
	if !res.ok() {
		for _, e := range res.errSamples {
			fmt.Fprintf(stderr, "mtaload: %s\n", e)
		}
		return 1
	}
	return 0
}

func (c *config) check() error {
	switch {
	case c.n < 1 || c.c < 1 || c.perSession < 1 || c.rcpts < 1:
		return fmt.Errorf("-n, -c, -per-session and -rcpts must be at least 1")
	case c.size < 0 || c.rate < 0:
		return fmt.Errorf("-size and -rate must not be negative")
	}
	if err := loopback(c.addr); err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	if c.sink != "" {
		if err := loopback(c.sink); err != nil {
			return fmt.Errorf("-sink: %w", err)
		}
	}
	return nil
}

// loopback refuses anything but a loopback IP literal: a load generator must never
// be pointed at somebody else's server by a typo.
func loopback(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want IP:port: %w", addr, err)
	}
	if !ap.Addr().IsLoopback() {
		return fmt.Errorf("%q is not a loopback address", addr)
	}
	return nil
}

// dialer is shared by the sessions; a short timeout: everything is local.
var dialer = net.Dialer{Timeout: 10 * time.Second}
