package intake

import (
	"context"
	"slices"
	"strings"
	"testing"

	"mtad.dev/mta/status"
)

// scriptedFilter decides by the recipient's address: drop@ is dropped, tag@
// gets an edited content (the same slice for every such recipient), two@ is
// delivered twice (its own address and a folder subaddress), park@ goes to
// another channel with NOTIFY=NEVER, and refuse@ refuses the message.
type scriptedFilter struct {
	edited []byte
	after  int
	seen   *FilterRequest
}

func (f *scriptedFilter) Filter(_ context.Context, req *FilterRequest) *FilterResult {
	f.seen = req
	res := &FilterResult{After: func(context.Context) { f.after++ }}
	for _, rc := range req.Rcpts {
		local, _, _ := strings.Cut(rc.Addr, "@")
		var fr FilteredRcpt
		switch {
		case local == "refuse":
			return &FilterResult{Refused: status.New(550, "5.7.1", "refused by filter")}
		case local == "drop":
		case strings.HasPrefix(local, "tag"):
			fr.Deliveries = []Delivery{{Content: f.edited, Note: "addtag"}}
		case local == "two":
			fr.Deliveries = []Delivery{{}, {Addr: "two+junk@local.test", Note: "fileinto Junk"}}
		case local == "park":
			fr.Deliveries = []Delivery{{Channel: "hold", Notify: "NEVER"}}
		default:
			fr.Deliveries = []Delivery{{}}
		}
		res.Rcpts = append(res.Rcpts, fr)
	}
	return res
}

// TestFilterStep: the filter sees every recipient once they are known; each is
// replaced by its deliveries, edited contents share one copy per edit, a refusal
// queues nothing, and After runs only once the message is queued.
func TestFilterStep(t *testing.T) {
	run := func(t *testing.T, rcpts ...string) (*harness, *scriptedFilter, *Result, error) {
		h := newHarness(t)
		f := &scriptedFilter{edited: []byte("Subject: [SPAM] x\r\n\r\nbody\r\n")}
		h.rules.Filter = f
		tx, _ := h.in.Begin(h.rules, smtpOrigin, "s@remote.test")
		for _, r := range rcpts {
			if out := tx.AddRecipient(Recipient{Addr: r}); out.Refused != nil {
				t.Fatal(out.Refused)
			}
		}
		res, err := tx.Accept(context.Background(), Message{Content: []byte("Subject: x\r\n\r\nbody\r\n")})
		return h, f, res, err
	}
	t.Run("deliveries", func(t *testing.T) {
		h, f, res, err := run(t, "a@local.test", "drop@local.test", "tag1@local.test", "tag2@remote.test", "two@local.test", "park@local.test")
		if err != nil {
			t.Fatal(err)
		}
		if len(f.seen.Rcpts) != 6 || f.after != 1 {
			t.Fatalf("filter saw %d recipients, After ran %d times", len(f.seen.Rcpts), f.after)
		}
		var got []string
		for _, c := range res.Copies {
			var rs []string
			for _, rc := range c.Envelope.Rcpts {
				rs = append(rs, rc.Channel+":"+rc.Addr+":"+rc.Notify)
			}
			got = append(got, string(c.Content[:12])+" "+strings.Join(rs, ","))
		}
		want := []string{
			"Subject: x\r\n l:a@local.test:,l:two@local.test:,l:two+junk@local.test:,hold:park@local.test:NEVER",
			"Subject: [SP l:tag1@local.test:,tcp_local:tag2@remote.test:",
		}
		if !slices.Equal(got, want) {
			t.Errorf("copies\n%q\nwant\n%q", got, want)
		}
		recs := h.records(t)
		if len(recs) != 6 || !slices.ContainsFunc(recs, func(r string) bool {
			return strings.Contains(r, " rfc822;two@local.test two+junk@local.test ") && strings.HasSuffix(r, " fileinto Junk")
		}) {
			t.Errorf("E records carry the filters' notes:\n%s", strings.Join(recs, "\n"))
		}
	})
	t.Run("all dropped", func(t *testing.T) {
		h, f, res, err := run(t, "drop@local.test")
		if err != nil || !res.Discarded || f.after != 1 || len(h.q.envs) != 0 {
			t.Errorf("err %v discarded %v after %d queued %d", err, res.Discarded, f.after, len(h.q.envs))
		}
	})
	t.Run("refused", func(t *testing.T) {
		h, f, res, err := run(t, "a@local.test", "refuse@local.test")
		if st := status.From(err); st == nil || st.Code != 550 || res.Discarded || f.after != 0 || len(h.q.envs) != 0 {
			t.Errorf("err %v discarded %v after %d queued %d", err, res.Discarded, f.after, len(h.q.envs))
		}
	})
	t.Run("enqueue fails", func(t *testing.T) {
		h := newHarness(t)
		h.q.failFrom = "s@remote.test"
		f := &scriptedFilter{}
		h.rules.Filter = f
		tx, _ := h.in.Begin(h.rules, smtpOrigin, "s@remote.test")
		tx.AddRecipient(Recipient{Addr: "a@local.test"})
		if _, err := tx.Accept(context.Background(), Message{Content: []byte("x\r\n")}); err == nil || f.after != 0 {
			t.Errorf("err %v, After ran %d times", err, f.after)
		}
	})
}
