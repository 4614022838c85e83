package jobctl

import (
	"slices"
	"time"
)

// Snapshot is the controller's state for mtactl qm (messages, jobs, counters).
type Snapshot struct {
	Time     time.Time
	Channels []ChannelInfo // sorted by name
	Jobs     []JobInfo     // jobs working on a message, sorted by channel, host
}

// ChannelInfo describes one channel. Counts are of queue entries (one message's
// recipients for one host), as qm reports "messages".
type ChannelInfo struct {
	Name       string
	Ready      int // eligible now (including those of backed-off hosts)
	Delayed    int // waiting for a retry time or a delivery window
	Active     int // being delivered or returned
	Recipients int
	Oldest     time.Time // arrival of the oldest message; zero when empty
	Jobs       int
	IdleJobs   int
	Stopped    bool
	Pool       string
	Hosts      []HostInfo // sorted by name
	Counters   Counters
}

// HostInfo describes one destination host of a channel.
type HostInfo struct {
	Host         string
	Queued       int // entries in any state
	Ready        int
	Oldest       time.Time
	LastError    string
	BackoffUntil time.Time // zero unless the host is backed off as a whole
	Jobs         int
}

// JobInfo is one job and the message it works on.
type JobInfo struct {
	Channel string
	Host    string
	ID      string
	Since   time.Time
}

// Snapshot returns a consistent copy of the controller's state. It walks the
// whole index: meant for administration, not for a hot path.
func (c *Controller) Snapshot() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Snapshot{Time: c.now()}
	type hostAgg struct {
		queued int
		oldest int64
	}
	agg := map[*hostQ]*hostAgg{}
	info := map[*chanState]*ChannelInfo{}
	for _, ch := range c.chans {
		ci := &ChannelInfo{Name: ch.name, Jobs: ch.jobs, IdleJobs: ch.idle, Stopped: ch.stopped, Counters: ch.ctr}
		if ch.pool != nil {
			ci.Pool = ch.pool.name
		}
		info[ch] = ci
	}
	for _, m := range c.msgs {
		for _, it := range m.items {
			ci := info[it.h.ch]
			switch it.state {
			case stReady:
				ci.Ready++
			case stDelayed:
				ci.Delayed++
			default:
				ci.Active++
			}
			ci.Recipients += len(it.rcpts)
			arr := time.Unix(0, m.arrival)
			if ci.Oldest.IsZero() || arr.Before(ci.Oldest) {
				ci.Oldest = arr
			}
			a := agg[it.h]
			if a == nil {
				a = &hostAgg{oldest: m.arrival}
				agg[it.h] = a
			}
			a.queued++
			a.oldest = min(a.oldest, m.arrival)
		}
	}
	for ch, ci := range info {
		for _, h := range ch.hosts {
			hi := HostInfo{Host: h.name, Ready: h.nready, LastError: h.lastErr, Jobs: h.active}
			if a := agg[h]; a != nil {
				hi.Queued, hi.Oldest = a.queued, time.Unix(0, a.oldest)
			}
			if h.blocked() {
				hi.BackoffUntil = time.Unix(0, h.until)
			}
			ci.Hosts = append(ci.Hosts, hi)
		}
		slices.SortFunc(ci.Hosts, func(a, b HostInfo) int { return compareStrings(a.Host, b.Host) })
		s.Channels = append(s.Channels, *ci)
	}
	slices.SortFunc(s.Channels, func(a, b ChannelInfo) int { return compareStrings(a.Name, b.Name) })
	for j := range c.jobs {
		if j.id != "" {
			s.Jobs = append(s.Jobs, JobInfo{Channel: j.ch.name, Host: j.host, ID: j.id, Since: j.since})
		}
	}
	slices.SortFunc(s.Jobs, func(a, b JobInfo) int {
		if a.Channel != b.Channel {
			return compareStrings(a.Channel, b.Channel)
		}
		if a.Host != b.Host {
			return compareStrings(a.Host, b.Host)
		}
		return compareStrings(a.ID, b.ID)
	})
	return s
}

// Channel returns one channel's info from a snapshot (ok false when absent).
func (s *Snapshot) Channel(name string) (ChannelInfo, bool) {
	for _, c := range s.Channels {
		if c.Name == name {
			return c, true
		}
	}
	return ChannelInfo{}, false
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
