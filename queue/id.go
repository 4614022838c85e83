package queue

import (
	crand "crypto/rand"
	"math/rand/v2"
	"time"
)

// Message ids are 16 characters of Crockford base32 (digits and upper-case letters
// without I, L, O, U): 80 bits = 48 bits of Unix milliseconds, a 16-bit counter within
// the millisecond and 16 random bits. The alphabet is in ASCII order and the width is
// fixed, so ids sort by creation time both as strings and as bbolt keys (bbolt then
// appends at the right edge of its B+tree, its cheapest insert). They are safe in file
// names and log lines.
const (
	idLen      = 16
	idAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)

// idGen is used only by the committer goroutine, so it needs no lock.
type idGen struct {
	lastMS int64
	seq    uint32
	rnd    *rand.ChaCha8
}

func newIDGen() *idGen {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails on supported platforms
	return &idGen{rnd: rand.NewChaCha8(seed)}
}

// observe makes the generator stay above an existing id, so that a clock stepped
// back across a restart cannot produce an id smaller than (or equal to) one in the queue.
func (g *idGen) observe(id string) {
	if ms, ok := idMillis(id); ok && ms >= g.lastMS {
		g.lastMS = ms
		g.seq = 0xffff // force the next id into the following millisecond
	}
}

func (g *idGen) next(now time.Time) string {
	ms := now.UnixMilli()
	if ms <= g.lastMS {
		ms = g.lastMS
		g.seq++
		if g.seq > 0xffff {
			// More than 65536 ids in one millisecond (or a clock stepped back):
			// borrow the next millisecond rather than repeat an id.
			ms++
			g.seq = 0
		}
	} else {
		g.seq = 0
	}
	g.lastMS = ms
	hi := uint64(ms)&(1<<48-1)<<16 | uint64(g.seq)
	lo := uint16(g.rnd.Uint64())
	// 80 bits: hi (64) then lo (16); emit 5 bits at a time from the top.
	var b [idLen]byte
	for i := idLen - 1; i >= 0; i-- {
		b[i] = idAlphabet[lo&31]
		lo = lo>>5 | uint16(hi&31)<<11
		hi >>= 5
	}
	return string(b[:])
}

// idMillis extracts the timestamp of an id; ok is false for a malformed id.
func idMillis(id string) (int64, bool) {
	if len(id) != idLen {
		return 0, false
	}
	var v uint64 // top 64 of the 80 bits are all we need: ms is bits 79..32
	var extra uint64
	for i := 0; i < idLen; i++ {
		c := indexAlphabet(id[i])
		if c < 0 {
			return 0, false
		}
		// shift the 80-bit value left by 5: carry from extra(16 bits) into v
		v = v<<5 | (extra >> 11)
		extra = (extra<<5 | uint64(c)) & 0xffff
	}
	return int64(v >> 16), true
}

func indexAlphabet(c byte) int {
	for i := 0; i < len(idAlphabet); i++ {
		if idAlphabet[i] == c {
			return i
		}
	}
	return -1
}

// validID reports whether s looks like one of our ids (a cheap guard for admin input).
func validID(s string) bool {
	_, ok := idMillis(s)
	return ok
}
