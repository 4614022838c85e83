package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"time"
)

// The envelope encoding stored in bbolt. Binary, not JSON: it is encoded on every
// enqueue and update and decoded by every Walk, so it must be cheap.
//
//	version byte (envVersion)
//	fields in the fixed order of encodeEnvelope (strings: uvarint length + bytes,
//	integers: varint/uvarint, times: presence byte + varint UnixNano)
//	CRC32C (little endian) of everything before it
//
// A new field means a new version; decodeEnvelope keeps reading the old ones.
const envVersion = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// contentLoc is where a message's content lives: a record in a segment file.
type contentLoc struct {
	Seg uint32 // segment number (segments/%06d.seg)
	Off int64  // offset of the content (just after the record header)
	Len int64
	CRC uint32 // CRC32C of the content
}

var errBadEnvelope = errors.New("queue: corrupt envelope record")

type encoder struct{ b []byte }

func (e *encoder) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}
func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) time(t time.Time) {
	if t.IsZero() {
		e.b = append(e.b, 0)
		return
	}
	e.b = append(e.b, 1)
	e.varint(t.UnixNano())
}

// encodeEnvelope appends the stored form of env and loc to dst.
func encodeEnvelope(dst []byte, env *Envelope, loc contentLoc) []byte {
	e := encoder{b: dst}
	start := len(e.b)
	e.b = append(e.b, envVersion)
	e.str(env.ID)
	e.str(env.From)
	e.str(env.Source)
	e.time(env.Arrival)
	e.varint(env.Size)
	e.str(env.RET)
	e.str(env.EnvID)
	var flags byte
	if env.Body8Bit {
		flags |= 1
	}
	if env.SMTPUTF8 {
		flags |= 2
	}
	if env.Held {
		flags |= 4
	}
	e.b = append(e.b, flags)
	e.str(env.MessageID)
	e.str(env.Client)
	e.varint(int64(env.Priority))
	e.str(env.HeldReason)
	e.varint(int64(env.Notices))
	e.uvarint(uint64(loc.Seg))
	e.varint(loc.Off)
	e.varint(loc.Len)
	e.b = binary.LittleEndian.AppendUint32(e.b, loc.CRC)
	e.uvarint(uint64(len(env.Rcpts)))
	for i := range env.Rcpts {
		r := &env.Rcpts[i]
		e.str(r.Addr)
		e.str(r.Orig)
		e.str(r.ORCPT)
		e.str(r.Notify)
		e.str(r.Channel)
		e.str(r.Host)
		e.b = append(e.b, byte(r.State))
		e.varint(int64(r.Attempts))
		e.time(r.NextAttempt)
		e.str(r.LastError)
	}
	return binary.LittleEndian.AppendUint32(e.b, crc32.Checksum(e.b[start:], castagnoli))
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errBadEnvelope
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int() int {
	v := d.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail()
		return 0
	}
	return int(v)
}

func (d *decoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) time() time.Time {
	switch d.byte() {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(0, d.varint())
	default:
		d.fail()
		return time.Time{}
	}
}

func (d *decoder) uint32() uint32 {
	if len(d.b) < 4 {
		d.fail()
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

// decodeEnvelope parses a stored envelope, verifying its checksum. It never
// retains b (bbolt's memory is only valid during the transaction).
func decodeEnvelope(b []byte) (*Envelope, contentLoc, error) {
	var loc contentLoc
	if len(b) < 5 {
		return nil, loc, fmt.Errorf("%w: %d bytes", errBadEnvelope, len(b))
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, loc, fmt.Errorf("%w: checksum mismatch", errBadEnvelope)
	}
	if body[0] != envVersion {
		return nil, loc, fmt.Errorf("%w: unknown version %d", errBadEnvelope, body[0])
	}
	d := decoder{b: body[1:]}
	env := &Envelope{}
	env.ID = d.str()
	env.From = d.str()
	env.Source = d.str()
	env.Arrival = d.time()
	env.Size = d.varint()
	env.RET = d.str()
	env.EnvID = d.str()
	flags := d.byte()
	env.Body8Bit = flags&1 != 0
	env.SMTPUTF8 = flags&2 != 0
	env.Held = flags&4 != 0
	env.MessageID = d.str()
	env.Client = d.str()
	env.Priority = d.int()
	env.HeldReason = d.str()
	env.Notices = d.int()
	seg := d.uvarint()
	if seg > math.MaxUint32 {
		d.fail()
	}
	loc.Seg = uint32(seg)
	loc.Off = d.varint()
	loc.Len = d.varint()
	loc.CRC = d.uint32()
	n := d.uvarint()
	// Each recipient takes at least 10 bytes; this bounds the allocation for garbage input.
	if n > uint64(len(d.b))/10 {
		d.fail()
	}
	if d.err == nil && n > 0 {
		env.Rcpts = make([]Recipient, n)
		for i := range env.Rcpts {
			r := &env.Rcpts[i]
			r.Addr = d.str()
			r.Orig = d.str()
			r.ORCPT = d.str()
			r.Notify = d.str()
			r.Channel = d.str()
			r.Host = d.str()
			st := d.byte()
			if st > byte(Returned) {
				d.fail()
			}
			r.State = RcptState(st)
			r.Attempts = d.int()
			r.NextAttempt = d.time()
			r.LastError = d.str()
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	if d.err != nil {
		return nil, loc, d.err
	}
	if loc.Off < 0 || loc.Len < 0 || loc.Len != env.Size {
		return nil, loc, fmt.Errorf("%w: bad content location", errBadEnvelope)
	}
	return env, loc, nil
}

// QuarantineInfo describes a message that recovery found damaged and set aside in
// the quarantine bucket instead of delivering it (qm shows them).
type QuarantineInfo struct {
	ID       string
	Reason   string    // what was wrong: "content checksum mismatch", "segment truncated" ...
	Time     time.Time // when it was quarantined
	Envelope *Envelope // nil when the envelope itself was unreadable
}

const quarantineVersion = 1

func encodeQuarantine(reason string, when time.Time, rawEnv []byte) []byte {
	e := encoder{b: make([]byte, 0, 16+len(reason)+len(rawEnv))}
	e.b = append(e.b, quarantineVersion)
	e.time(when)
	e.str(reason)
	e.b = append(e.b, rawEnv...)
	return e.b
}

func decodeQuarantine(id string, b []byte) QuarantineInfo {
	qi := QuarantineInfo{ID: id}
	if len(b) == 0 || b[0] != quarantineVersion {
		qi.Reason = "unreadable quarantine record"
		return qi
	}
	d := decoder{b: b[1:]}
	qi.Time = d.time()
	qi.Reason = d.str()
	if d.err != nil {
		qi.Reason = "unreadable quarantine record"
		return qi
	}
	if env, _, err := decodeEnvelope(d.b); err == nil {
		qi.Envelope = env
	}
	return qi
}
