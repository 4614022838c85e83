// Command fillqueue enqueues many messages straight into a queue directory (mtad
// stopped), for the scale test (bench/scale.sh): a million messages for a stopped
// channel.
// It uses the queue package's own Enqueue, so every message is committed and fsynced
// exactly as mtad would (many concurrent callers share one commit, as SMTP sessions do).
//
//	go run ./bench/fillqueue -dir /var/tmp/mtad-scale/queue -n 1000000
//
// Recipients go to -channel, spread over -hosts destination domains, so the job
// controller's per-host structures are exercised as with real traffic. With
// -next-attempt they look like a backlog: tried once, deferred, due later
// (bench/requeue.sh moves such a backlog with qm requeue).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"mtad.dev/mta/queue"
)

func main() {
	dir := flag.String("dir", "", "queue `DIR` (mtad's DATA/queue)")
	n := flag.Int("n", 1000000, "messages to enqueue")
	size := flag.Int("size", 1024, "content bytes per message")
	workers := flag.Int("workers", 512, "concurrent Enqueue callers")
	channel := flag.String("channel", "tcp_local", "destination channel of every recipient")
	hosts := flag.Int("hosts", 1000, "distinct destination domains")
	backoff := flag.Duration("next-attempt", 0, "queue every recipient as tried once and deferred, due again after `DUR` (a backlog; 0: as new mail)")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "fillqueue: -dir is required")
		os.Exit(2)
	}
	if err := run(*dir, *n, *size, *workers, *channel, *hosts, *backoff); err != nil {
		fmt.Fprintln(os.Stderr, "fillqueue:", err)
		os.Exit(1)
	}
}

func run(dir string, n, size, workers int, channel string, hosts int, backoff time.Duration) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	q, err := queue.Open(dir, queue.Options{QuickRecovery: true, Logger: logger})
	if err != nil {
		return fmt.Errorf("open queue: %w", err)
	}
	content := make([]byte, 0, size)
	content = append(content, "From: fill@bench.invalid\r\nSubject: scale test\r\n\r\n"...)
	for len(content) < size-2 {
		content = append(content, 'x')
	}
	content = append(content, "\r\n"...)

	var next, done atomic.Int64
	ctx := context.Background()
	start := time.Now()
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				host := fmt.Sprintf("d%d.example", i%int64(hosts))
				addr := fmt.Sprintf("u%d@%s", i, host)
				env := &queue.Envelope{
					From:   "fill@bench.invalid",
					Source: "tcp_local",
					Client: "fillqueue ([127.0.0.1])",
					Rcpts:  []queue.Recipient{{Addr: addr, Orig: addr, Channel: channel, Host: host}},
				}
				if backoff > 0 {
					r := &env.Rcpts[0]
					r.Attempts, r.NextAttempt, r.LastError = 1, start.Add(backoff), "smtp;451 4.4.1 connection refused"
				}
				if _, err := q.Enqueue(ctx, env, content); err != nil {
					errc <- fmt.Errorf("enqueue %d: %w", i, err)
					return
				}
				if d := done.Add(1); d%100000 == 0 {
					fmt.Fprintf(os.Stderr, "fillqueue: %d enqueued, %.0f msg/s\n", d, float64(d)/time.Since(start).Seconds())
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	el := time.Since(start)
	if cerr := q.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close queue: %w", cerr)
	}
	for e := range errc {
		if err == nil {
			err = e
		}
	}
	fmt.Printf("fillqueue n=%d enqueued=%d size=%d workers=%d elapsed_s=%.1f msgs_per_s=%.0f\n",
		n, done.Load(), size, workers, el.Seconds(), float64(done.Load())/el.Seconds())
	return err
}
