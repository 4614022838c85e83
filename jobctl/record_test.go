package jobctl

import (
	"errors"
	"slices"
	"testing"
	"time"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/queue"
	"mtad.dev/mta/status"
)

// TestClassifyResults pins how an attempt's results become a plan: which
// recipients are delivered, requeued (with their next attempt) or failed for
// good, which stay in the item, and whether the host, not the message, failed.
func TestClassifyResults(t *testing.T) {
	now := t0
	cfg := &Channel{Backoff: [3]Backoff{{}, BackoffOf(10*time.Minute, 20*time.Minute, 40*time.Minute), {}}}
	ok := channels.Result{Remote: "mx.example", Reply: "smtp;250 2.0.0 ok"}
	answered451 := channels.Result{Remote: "mx.example", Err: status.New(451, "4.2.0", "mailbox busy"), Reply: "smtp;451 4.2.0 mailbox busy"}
	// The delivery program says when no server took the transaction (ConnFailed):
	// a refused connection, or a server that timed out (4.4.x).
	refused := channels.Result{Err: status.New(451, "4.4.1", "connection refused"), ConnFailed: true}
	timedOut := channels.Result{Remote: "mx.example", Err: status.New(451, "4.4.2", "timeout"), Reply: "timeout", ConnFailed: true}
	rejected := channels.Result{Remote: "mx.example", Err: status.New(550, "5.1.1", "no such user"), Reply: "smtp;550 5.1.1 no such user"}

	type rc struct {
		rcpt  int
		state queue.RcptState
		code  string
		at    time.Duration // NextAttempt - now; 0: none
	}
	tests := []struct {
		name      string
		attempts  []int // earlier attempts of each recipient
		results   []channels.Result
		expired   bool
		want      []rc
		failed    []string // status of each failed recipient, in order
		keep      []int32
		nextAt    time.Duration // 0: zero time
		delivered bool
		connFail  bool
		lastErr   string
	}{
		{name: "all delivered", attempts: []int{0, 2}, results: []channels.Result{ok, ok},
			want:      []rc{{0, queue.Delivered, "D", 0}, {1, queue.Delivered, "D", 0}},
			delivered: true},
		{name: "server answered a temporary failure", attempts: []int{1}, results: []channels.Result{answered451},
			want: []rc{{0, queue.Pending, "Q", 20 * time.Minute}}, keep: []int32{0}, nextAt: 20 * time.Minute,
			lastErr: "smtp;451 4.2.0 mailbox busy"},
		{name: "no server answered", attempts: []int{0}, results: []channels.Result{refused},
			want: []rc{{0, queue.Pending, "Q", 10 * time.Minute}}, keep: []int32{0}, nextAt: 10 * time.Minute,
			connFail: true, lastErr: "451 4.4.1 connection refused"},
		{name: "4.4.x from a server counts as no answer", attempts: []int{0}, results: []channels.Result{timedOut},
			want: []rc{{0, queue.Pending, "Q", 10 * time.Minute}}, keep: []int32{0}, nextAt: 10 * time.Minute,
			connFail: true, lastErr: "timeout"},
		{name: "permanent failure waits for its notice", attempts: []int{3}, results: []channels.Result{rejected},
			failed: []string{"5.1.1"}, lastErr: "smtp;550 5.1.1 no such user"},
		{name: "temporary failure after the last notice age", attempts: []int{5}, results: []channels.Result{answered451},
			expired: true, failed: []string{"5.4.7"}, lastErr: "smtp;451 4.2.0 mailbox busy"},
		{name: "mixed: earliest retry wins", attempts: []int{0, 0, 2, 0}, results: []channels.Result{ok, refused, answered451, rejected},
			want:   []rc{{0, queue.Delivered, "D", 0}, {1, queue.Pending, "Q", 10 * time.Minute}, {2, queue.Pending, "Q", 40 * time.Minute}},
			failed: []string{"5.1.1"}, keep: []int32{1, 2}, nextAt: 10 * time.Minute, delivered: true,
			lastErr: "smtp;550 5.1.1 no such user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &queue.Envelope{ID: "m1"}
			var idx []int
			for i, a := range tt.attempts {
				r := rcpt("tcp_local", "r@x.example")
				r.Attempts = a
				e.Rcpts = append(e.Rcpts, r)
				idx = append(idx, i)
			}
			p := classifyResults(e, idx, tt.results, now, tt.expired, cfg, Normal)
			if len(p.updates) != len(tt.want) || len(p.outs) != len(tt.want) {
				t.Fatalf("updates %+v outs %+v, want %+v", p.updates, p.outs, tt.want)
			}
			for k, w := range tt.want {
				u, o := p.updates[k], p.outs[k]
				var at time.Duration
				if !u.NextAttempt.IsZero() {
					at = u.NextAttempt.Sub(now)
				}
				if u.Rcpt != w.rcpt || u.State != w.state || u.Attempts != tt.attempts[w.rcpt]+1 || at != w.at ||
					o.rcpt != w.rcpt || o.code != w.code || o.diag != u.LastError {
					t.Errorf("recipient %d: update %+v out %+v, want %+v", k, u, o, w)
				}
			}
			var failed []string
			for _, f := range p.failed {
				failed = append(failed, f.status)
				if f.attempts != tt.attempts[f.idx]+1 {
					t.Errorf("failed %+v: attempts, want %d", f, tt.attempts[f.idx]+1)
				}
			}
			if !slices.Equal(failed, tt.failed) || !slices.Equal(p.keep, tt.keep) {
				t.Errorf("failed %v keep %v, want %v %v", failed, p.keep, tt.failed, tt.keep)
			}
			var next time.Duration
			if !p.nextAt.IsZero() {
				next = p.nextAt.Sub(now)
			}
			if next != tt.nextAt || p.delivered != tt.delivered || p.connFail != tt.connFail || p.lastErr != tt.lastErr {
				t.Errorf("nextAt %v delivered %v connFail %v lastErr %q, want %v %v %v %q",
					next, p.delivered, p.connFail, p.lastErr, tt.nextAt, tt.delivered, tt.connFail, tt.lastErr)
			}
		})
	}
}

// TestSettleFailed: once the failure notice is submitted, failed recipients are
// Returned (R, or K when NOTIFY left them out); a notice that could not be
// submitted keeps them queued (Q) for retryNotice, and no earlier retry is lost.
func TestSettleFailed(t *testing.T) {
	now := t0
	plan := func() attemptPlan {
		p := attemptPlan{failed: []noticeRcpt{
			{idx: 1, status: "5.1.1", diag: "smtp;550 no", attempts: 2},
			{idx: 3, status: "5.1.1", diag: "smtp;550 gone", attempts: 1},
		}}
		p.requeue(0, 1, now.Add(time.Hour), "later", "later") // an earlier temporary failure
		return p
	}

	sent := plan()
	sent.settleFailed([]bool{true, false}, nil, now)
	if got := codes(sent.outs); !slices.Equal(got, []string{"Q", "R", "K"}) {
		t.Errorf("codes after the notice was sent: %v", got)
	}
	for _, u := range sent.updates[1:] {
		if u.State != queue.Returned || !u.NextAttempt.IsZero() {
			t.Errorf("returned recipient's update %+v", u)
		}
	}
	if !slices.Equal(sent.keep, []int32{0}) || sent.allDelivered() {
		t.Errorf("keep %v", sent.keep)
	}

	unsent := plan()
	unsent.settleFailed(nil, errors.New("submit refused"), now)
	if got := codes(unsent.outs); !slices.Equal(got, []string{"Q", "Q", "Q"}) {
		t.Errorf("codes after the notice failed: %v", got)
	}
	if unsent.outs[1].diag != "notice not sent: submit refused" || unsent.updates[1].LastError != "smtp;550 no" ||
		unsent.updates[1].Attempts != 2 || unsent.updates[1].State != queue.Pending {
		t.Errorf("kept recipient: out %+v update %+v", unsent.outs[1], unsent.updates[1])
	}
	if !slices.Equal(unsent.keep, []int32{0, 1, 3}) || !unsent.nextAt.Equal(now.Add(retryNotice)) {
		t.Errorf("keep %v nextAt %v, want [0 1 3] %v", unsent.keep, unsent.nextAt, now.Add(retryNotice))
	}
}

func codes(outs []outcome) []string {
	var s []string
	for _, o := range outs {
		s = append(s, o.code)
	}
	return s
}
