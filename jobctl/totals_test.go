package jobctl

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/queue"
	"mtad.dev/mta/status"
)

// bruteTotals recomputes what totalsLocked keeps incrementally, by walking the
// index and the held set. c.mu must be held.
func bruteTotals(c *Controller) QueueTotals {
	t := QueueTotals{Complete: c.loaded}
	by := map[string]*ChannelTotals{}
	get := func(name string) *ChannelTotals {
		if by[name] == nil {
			by[name] = &ChannelTotals{Name: name}
		}
		return by[name]
	}
	for _, m := range c.msgs {
		arr := time.Unix(0, m.arrival)
		seen := map[string]bool{}
		rcpts := 0
		for _, it := range m.items {
			ct := get(it.h.ch.name)
			ct.Queued.Recipients += len(it.rcpts)
			rcpts += len(it.rcpts)
			if !seen[ct.Name] {
				seen[ct.Name] = true
				ct.Queued.Add(Counts{Messages: 1, Size: m.size, Blocks: maillog.Blocks(m.size), Oldest: arr})
			}
		}
		t.Total.Queued.Add(Counts{Messages: 1, Recipients: rcpts, Size: m.size, Blocks: maillog.Blocks(m.size), Oldest: arr})
	}
	for _, h := range c.held {
		arr := time.Unix(0, h.arrival)
		rcpts := 0
		for _, hc := range h.chans {
			get(hc.name).Held.Add(Counts{Messages: 1, Recipients: hc.rcpts, Size: h.size, Blocks: maillog.Blocks(h.size), Oldest: arr})
			rcpts += hc.rcpts
		}
		t.Total.Held.Add(Counts{Messages: 1, Recipients: rcpts, Size: h.size, Blocks: maillog.Blocks(h.size), Oldest: arr})
	}
	t.Total.Name = "total"
	for _, name := range slices.Sorted(maps.Keys(by)) {
		t.Channels = append(t.Channels, *by[name])
	}
	return t
}

// checkTotals compares the incremental totals with a walk of the index at one
// instant, and checks each channel's arrival heap holds exactly its items.
func checkTotals(t *testing.T, c *Controller, step string) {
	t.Helper()
	c.mu.Lock()
	got, want := c.totalsLocked(), bruteTotals(c)
	items := map[*chanState]int{}
	for _, m := range c.msgs {
		for _, it := range m.items {
			items[it.h.ch]++
			if it.aidx < 0 || int(it.aidx) >= it.h.ch.q.arrivals.len() || it.h.ch.q.arrivals.s[it.aidx] != (*arrivalElem)(it) {
				t.Errorf("%s: item of %s in %s not at its arrival heap index %d", step, m.id, it.h.ch.name, it.aidx)
			}
		}
	}
	for _, ch := range c.chans {
		if ch.q.arrivals.len() != items[ch] {
			t.Errorf("%s: %s arrival heap has %d items, the index %d", step, ch.name, ch.q.arrivals.len(), items[ch])
		}
	}
	c.mu.Unlock()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: incremental totals differ from the index:\n got  %+v\n want %+v", step, got, want)
	}
}

// TestTotalsFollowTheIndex drives the controller through a seeded random mix of
// enqueues (several channels and hosts, out-of-order arrivals, held ones),
// deliveries, temporary failures of some recipients of an item, retries, notices
// and expiry returns, operator removals, holds and releases, and checks after every
// step that the incrementally kept totals equal a walk of the index.
func TestTotalsFollowTheIndex(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0))
			p := &program{result: func(_ *channels.Message, r channels.Rcpt) channels.Result {
				if strings.HasPrefix(r.Addr, "temp") {
					return channels.Result{Err: status.New(451, "4.2.1", "later"), Reply: "smtp;451 4.2.1 later", ConnFailed: true}
				}
				return channels.Result{Reply: "smtp;250 ok"}
			}}
			h := newHarness(t, Config{NoticeUnit: time.Hour,
				Programs: map[string]channels.Program{"a": p, "b": p, "c": p}})
			h.start()
			var ids []string
			held := map[string]*queue.Envelope{}
			for step := range 300 {
				switch op := rng.IntN(10); {
				case op < 5:
					e := &queue.Envelope{From: "s@x.example",
						Arrival: h.clock.Now().Add(-time.Duration(rng.IntN(120)) * time.Minute),
						Held:    rng.IntN(8) == 0}
					for range 1 + rng.IntN(4) {
						local := "ok"
						if rng.IntN(3) == 0 {
							local = "temp"
						}
						ch := string(rune('a' + rng.IntN(3)))
						e.Rcpts = append(e.Rcpts, rcpt(ch, fmt.Sprintf("%s%d@h%d.example", local, rng.IntN(100), rng.IntN(3))))
					}
					id := h.enqueue(e)
					ids = append(ids, id)
					if e.Held {
						held[id] = e
					}
				case op == 5 && len(ids) > 0:
					id := ids[rng.IntN(len(ids))]
					h.c.Remove(id) // qm delete; ErrBusy leaves it, as in mtad
					delete(held, id)
				case op == 6 && len(ids) > 0: // qm hold
					id := ids[rng.IntN(len(ids))]
					if e, err := h.q.Get(id); err == nil && h.c.Remove(id) == nil {
						e.Held = true
						h.c.NoteHeld(e)
						delete(held, id)
						if slices.ContainsFunc(e.Rcpts, func(r queue.Recipient) bool { return r.State == queue.Pending }) {
							held[id] = e
						}
					}
				case op == 7 && len(held) > 0: // qm release
					for id, e := range held {
						r := *e
						r.Held = false
						if cur, err := h.q.Get(id); err == nil {
							r = *cur
							r.Held = false
						}
						h.c.Add([]*queue.Envelope{&r})
						delete(held, id)
						break
					}
				case op == 8:
					h.clock.Advance(time.Duration(1+rng.IntN(90)) * time.Minute)
				default:
					time.Sleep(time.Millisecond)
				}
				checkTotals(t, h.c, fmt.Sprintf("step %d", step))
			}
			h.clock.Advance(24 * time.Hour) // past every notice age: the rest is returned
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				checkTotals(t, h.c, "drain")
				if tot := h.c.Totals(); tot.Total.Queued.Messages == 0 || time.Now().After(deadline) {
					if tot.Total.Queued.Messages != 0 {
						t.Errorf("still queued after every notice age: %+v", tot.Total.Queued)
					}
					break
				}
			}
			if tot := h.c.Totals(); tot.Total.Held.Messages != len(held) {
				t.Errorf("held %d, want %d", tot.Total.Held.Messages, len(held))
			}
		})
	}
}
