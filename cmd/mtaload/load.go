package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// result is what one run measured.
type result struct {
	n          int
	accepted   int
	errors     int
	errSamples []string
	elapsed    time.Duration   // start to the last acceptance
	submit     []time.Duration // MAIL FROM sent -> 250 after the content

	sink      bool
	delivered int           // distinct ids that reached the sink
	e2eSpan   time.Duration // start to the last arrival
	e2e       []time.Duration
	lost, dup int // accepted but never arrived; arrived more than once
	anon      int // arrivals without a usable id
}

func (r *result) ok() bool {
	return r.errors == 0 && r.accepted == r.n && (!r.sink || (r.lost == 0 && r.dup == 0))
}

func (r *result) line(cfg config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "mtaload n=%d c=%d per_session=%d rcpts=%d size=%d rate=%g pipelining=%t accepted=%d errors=%d",
		cfg.n, cfg.c, cfg.perSession, cfg.rcpts, cfg.size, cfg.rate, cfg.pipelining, r.accepted, r.errors)
	if r.elapsed > 0 {
		fmt.Fprintf(&b, " accept_s=%.3f accept_msgs_per_s=%.1f", r.elapsed.Seconds(), float64(r.accepted)/r.elapsed.Seconds())
	}
	writePct(&b, "accept", r.submit)
	if r.sink {
		fmt.Fprintf(&b, " delivered=%d lost=%d dup=%d", r.delivered, r.lost, r.dup)
		if r.anon > 0 {
			fmt.Fprintf(&b, " foreign=%d", r.anon)
		}
		if r.e2eSpan > 0 {
			fmt.Fprintf(&b, " e2e_s=%.3f e2e_msgs_per_s=%.1f", r.e2eSpan.Seconds(), float64(r.delivered)/r.e2eSpan.Seconds())
		}
		writePct(&b, "e2e", r.e2e)
	}
	return b.String()
}

func writePct(b *strings.Builder, name string, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	ms := func(x time.Duration) string { return strconv.FormatFloat(float64(x)/1e6, 'f', 1, 64) }
	fmt.Fprintf(b, " %s_p50_ms=%s %s_p90_ms=%s %s_p99_ms=%s %s_max_ms=%s", name, ms(pct(d, 50)), name, ms(pct(d, 90)),
		name, ms(pct(d, 99)), name, ms(d[len(d)-1]))
}

// pct is the nearest-rank percentile of an ascending slice (as the bench harness).
func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(k, len(sorted)-1))]
}

// load runs the sessions, then waits for the sink to have everything accepted.
func load(ctx context.Context, cfg config, sk *sink) *result {
	body := makeBody(cfg.size)
	acceptAt := make([]time.Time, cfg.n) // zero: not accepted
	var (
		next atomic.Int64 // next message id
		mu   sync.Mutex
		res  = &result{n: cfg.n, sink: sk != nil}
		wg   sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		res.errors++
		if len(res.errSamples) < 5 {
			res.errSamples = append(res.errSamples, err.Error())
		}
		mu.Unlock()
	}
	start := time.Now()
	for range cfg.c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var submit []time.Duration
			defer func() {
				mu.Lock()
				res.submit = append(res.submit, submit...)
				mu.Unlock()
			}()
			for ctx.Err() == nil && next.Load() < int64(cfg.n) {
				s, err := dial(ctx, cfg.addr)
				if err != nil {
					fail(err)
					sleepCtx(ctx, 100*time.Millisecond) // do not spin on a refusing server
					continue
				}
				for k := 0; k < cfg.perSession; k++ {
					id := next.Add(1) - 1
					if id >= int64(cfg.n) {
						break
					}
					if cfg.rate > 0 {
						// Open loop: message id is due at start + id/rate whatever the
						// MTA's speed, so latency is measured below saturation.
						sleepCtx(ctx, time.Until(start.Add(time.Duration(float64(id)/cfg.rate*1e9))))
					}
					t0 := time.Now()
					if err := s.send(cfg, id, body); err != nil {
						fail(fmt.Errorf("message %d: %w", id, err))
						break
					}
					now := time.Now()
					acceptAt[id] = now // each id is written by one goroutine only
					submit = append(submit, now.Sub(t0))
				}
				s.quit()
			}
		}()
	}
	wg.Wait()
	var last time.Time
	for _, t := range acceptAt {
		if !t.IsZero() {
			res.accepted++
			if t.After(last) {
				last = t
			}
		}
	}
	if !last.IsZero() {
		res.elapsed = last.Sub(start)
	}
	if sk == nil {
		return res
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Minute)
	}
	sk.waitFor(res.accepted, deadline)
	first, dups, anon := sk.snapshot()
	res.dup, res.anon = dups, anon
	var lastArr time.Time
	for id, at := range acceptAt {
		arr, ok := first[uint64(id)]
		if !ok {
			if !at.IsZero() {
				res.lost++
			}
			continue
		}
		res.delivered++
		if arr.After(lastArr) {
			lastArr = arr
		}
		if !at.IsZero() {
			// The sink may see a message before its 250 reaches us; count that as 0.
			res.e2e = append(res.e2e, max(0, arr.Sub(at)))
		}
	}
	if !lastArr.IsZero() {
		res.e2eSpan = lastArr.Sub(start)
	}
	return res
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// makeBody is the part of every message after its headers: lines of 76 'X' (no
// dot-stuffing needed) up to about size bytes, CRLF line ends.
func makeBody(size int) []byte {
	line := strings.Repeat("X", 76) + "\r\n"
	var b []byte
	for len(b)+len(line) <= max(size-200, len(line)) {
		b = append(b, line...)
	}
	return b
}

// session is one client connection.
type session struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

func dial(ctx context.Context, addr string) (*session, error) {
	c, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	s := &session{c: c, r: bufio.NewReader(c), w: bufio.NewWriterSize(c, 16<<10)}
	if _, err := s.expect(220); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	s.w.WriteString("EHLO mtaload.invalid\r\n")
	if err := s.w.Flush(); err != nil {
		c.Close()
		return nil, err
	}
	if _, err := s.expect(250); err != nil {
		c.Close()
		return nil, fmt.Errorf("EHLO: %w", err)
	}
	return s, nil
}

// expect reads one (possibly multi-line) reply and checks its code.
func (s *session) expect(code int) (string, error) {
	s.c.SetReadDeadline(time.Now().Add(5 * time.Minute))
	var text string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 3 {
			return "", fmt.Errorf("bad reply %q", line)
		}
		text = line
		if len(line) == 3 || line[3] != '-' {
			break
		}
	}
	got, err := strconv.Atoi(text[:3])
	if err != nil || got != code {
		return text, fmt.Errorf("want %d, got %q", code, text)
	}
	return text, nil
}

// send transmits one message and waits for the reply to its content.
func (s *session) send(cfg config, id int64, body []byte) error {
	local, domain, _ := strings.Cut(cfg.to, "@")
	cmds := []string{"MAIL FROM:<" + cfg.from + ">"}
	for i := range cfg.rcpts {
		cmds = append(cmds, fmt.Sprintf("RCPT TO:<%s%d@%s>", local, id*int64(cfg.rcpts)+int64(i), domain))
	}
	cmds = append(cmds, "DATA")
	codes := make([]int, len(cmds))
	for i := range codes {
		codes[i] = 250
	}
	codes[len(codes)-1] = 354
	if cfg.pipelining {
		for _, c := range cmds {
			s.w.WriteString(c + "\r\n")
		}
		if err := s.w.Flush(); err != nil {
			return err
		}
		for i, c := range cmds {
			if _, err := s.expect(codes[i]); err != nil {
				return fmt.Errorf("%s: %w", c, err)
			}
		}
	} else {
		for i, c := range cmds {
			s.w.WriteString(c + "\r\n")
			if err := s.w.Flush(); err != nil {
				return err
			}
			if _, err := s.expect(codes[i]); err != nil {
				return fmt.Errorf("%s: %w", c, err)
			}
		}
	}
	fmt.Fprintf(s.w, "From: <%s>\r\nTo: <%s>\r\nSubject: mtaload %d\r\nMessage-ID: <mtaload.%d.%d@mtaload.invalid>\r\nX-Mtaload-Id: %d\r\n\r\n",
		cfg.from, cfg.to, id, time.Now().UnixNano(), id, id)
	s.w.Write(body)
	s.w.WriteString(".\r\n")
	if err := s.w.Flush(); err != nil {
		return err
	}
	if _, err := s.expect(250); err != nil {
		return fmt.Errorf("end of data: %w", err)
	}
	return nil
}

func (s *session) quit() {
	s.w.WriteString("QUIT\r\n")
	if s.w.Flush() == nil {
		s.expect(221)
	}
	s.c.Close()
}
