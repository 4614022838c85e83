package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Segment files: segments/%06d.seg, append-only. A segment starts with segMagic and
// then holds, per message, a content record and right after it an envelope record:
//
//	"MQR1" | id (16 bytes) | content length (uint64 LE) | content CRC32C | header CRC32C | content
//	"MQE1" | envelope length (uint32 LE) | header CRC32C | envelope (as in bbolt, own CRC32C)
//
// The envelope in bbolt points at the content (segment, offset, length, CRC); the
// content header lets recovery and Content check that the bytes there are really that
// message's and are whole. The envelope record makes the segment the journal: a
// message is acknowledged once its two records are fsync'd, before its envelope
// reaches bbolt, and recovery replays the envelope records past the index's journal
// mark (journal.go). Segments written before envelope records existed hold content
// records only; they are simply never replayed.
const (
	segMagic        = "MTASEG1\n"
	recMagic        = "MQR1"
	recHeaderLen    = 4 + idLen + 8 + 4 + 4
	envRecMagic     = "MQE1"
	envRecHeaderLen = 4 + 4 + 4
	// maxEnvRec bounds an envelope record read back by recovery: a length past it is
	// damage, not an envelope (a million recipients would not reach it).
	maxEnvRec = 64 << 20
	// segTarget is the size after which a new segment is started. A segment is removed
	// only when no queued message points into it, so one long-deferred message pins up
	// to segTarget bytes of disk until it is delivered or expires (no compaction yet).
	segTarget = 64 << 20
)

// segFile is what the committer needs of a segment it appends to. It is an interface
// so tests can inject write and sync failures (a full disk) without filling one.
type segFile interface {
	io.Writer
	Sync() error
	Truncate(size int64) error // cut back a batch that failed
	Close() error
}

func createSegmentFile(path string) (segFile, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
}

func segName(n uint32) string { return fmt.Sprintf("%06d.seg", n) }

func parseSegName(name string) (uint32, bool) {
	s, ok := strings.CutSuffix(name, ".seg")
	if !ok || len(s) < 6 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, false
	}
	return uint32(n), true
}

func appendRecHeader(dst []byte, id string, content []byte, sum uint32) []byte {
	start := len(dst)
	dst = append(dst, recMagic...)
	dst = append(dst, id...)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(content)))
	dst = binary.LittleEndian.AppendUint32(dst, sum)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// appendEnvRec appends an envelope record holding enc (an encodeEnvelope result).
func appendEnvRec(dst []byte, enc []byte) []byte {
	start := len(dst)
	dst = append(dst, envRecMagic...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(enc)))
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
	return append(dst, enc...)
}

var errRecord = errors.New("queue: bad content record")

// checkRecHeader verifies the header just before loc.Off belongs to id and loc.
func checkRecHeader(h []byte, id string, loc contentLoc) error {
	hid, n, sum, err := parseRecHeader(h)
	if err != nil {
		return err
	}
	if hid != id {
		return fmt.Errorf("%w: header names %q", errRecord, hid)
	}
	if n != loc.Len || sum != loc.CRC {
		return fmt.Errorf("%w: header length/checksum differ from envelope", errRecord)
	}
	return nil
}

// parseRecHeader checks a content record header's magic and checksum and returns
// the id, content length and content CRC it names.
func parseRecHeader(h []byte) (id string, n int64, sum uint32, err error) {
	if len(h) != recHeaderLen || string(h[:4]) != recMagic {
		return "", 0, 0, fmt.Errorf("%w: no record header", errRecord)
	}
	if crc32.Checksum(h[:recHeaderLen-4], castagnoli) != binary.LittleEndian.Uint32(h[recHeaderLen-4:]) {
		return "", 0, 0, fmt.Errorf("%w: header checksum mismatch", errRecord)
	}
	return string(h[4 : 4+idLen]), int64(binary.LittleEndian.Uint64(h[4+idLen:])), binary.LittleEndian.Uint32(h[4+idLen+8:]), nil
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// checkContent reads the record at loc from r and verifies header and content CRC.
// It distinguishes a short file (truncated segment) from a checksum mismatch.
func checkContent(r io.ReaderAt, size int64, id string, loc contentLoc, verifyBody bool) error {
	if loc.Off < int64(len(segMagic))+recHeaderLen || loc.Off+loc.Len > size {
		return fmt.Errorf("%w: segment truncated (record ends at %d, segment has %d bytes)", errRecord, loc.Off+loc.Len, size)
	}
	var h [recHeaderLen]byte
	if _, err := r.ReadAt(h[:], loc.Off-recHeaderLen); err != nil {
		return fmt.Errorf("read record header: %w", err)
	}
	if err := checkRecHeader(h[:], id, loc); err != nil {
		return err
	}
	if !verifyBody {
		return nil
	}
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	var sum uint32
	for off := int64(0); off < loc.Len; {
		n := min(int64(len(buf)), loc.Len-off)
		if _, err := r.ReadAt(buf[:n], loc.Off+off); err != nil {
			return fmt.Errorf("read content: %w", err)
		}
		sum = crc32.Update(sum, castagnoli, buf[:n])
		off += n
	}
	if sum != loc.CRC {
		return fmt.Errorf("%w: content checksum mismatch", errRecord)
	}
	return nil
}

// syncDir makes a directory entry (a new segment) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// content is a verified message content backed by its segment file.
type content struct {
	f  *os.File
	sr *io.SectionReader
}

func (c *content) ReadAt(p []byte, off int64) (int, error) { return c.sr.ReadAt(p, off) }
func (c *content) Size() int64                             { return c.sr.Size() }
func (c *content) Close() error                            { return c.f.Close() }

func segPath(dir string, n uint32) string { return filepath.Join(dir, segName(n)) }

// memContentMax is the largest content Content reads into memory whole. Below it a
// delivery costs one pread on a shared, cached file handle (the page cache serves
// it: the content was written moments ago) instead of open, fstat, a read to verify
// the checksum, the reads of the delivery itself and close.
const memContentMax = 1 << 20

// segReader is a read handle of one segment shared by concurrent Content calls.
// It is closed once the segment is removed (or the queue closed) and no reader
// still uses it. Guarded by Queue.mu.
type segReader struct {
	f     *os.File
	users int
	dead  bool
}

// memContent reads and verifies the record at loc with one pread.
func (q *Queue) memContent(id string, loc contentLoc) (Content, error) {
	r, err := q.acquireReader(loc.Seg)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			// The message was removed (and its segment with it) after we read it.
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("queue: content %s: %w", id, err)
	}
	defer q.releaseReader(r)
	if loc.Off < int64(len(segMagic))+recHeaderLen {
		return nil, fmt.Errorf("queue: content %s: %w: bad offset %d", id, errRecord, loc.Off)
	}
	buf := make([]byte, recHeaderLen+loc.Len)
	if n, err := r.f.ReadAt(buf, loc.Off-recHeaderLen); n < len(buf) {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("queue: content %s: %w: segment truncated (record ends at %d)", id, errRecord, loc.Off+loc.Len)
		}
		return nil, fmt.Errorf("queue: content %s: read record: %w", id, err)
	}
	if err := checkRecHeader(buf[:recHeaderLen], id, loc); err != nil {
		return nil, fmt.Errorf("queue: content %s: %w", id, err)
	}
	body := buf[recHeaderLen:]
	if crc32.Checksum(body, castagnoli) != loc.CRC {
		return nil, fmt.Errorf("queue: content %s: %w: content checksum mismatch", id, errRecord)
	}
	return memContent(body), nil
}

func (q *Queue) acquireReader(n uint32) (*segReader, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if r := q.readers[n]; r != nil {
		r.users++
		return r, nil
	}
	// Opened under mu: the segment cannot be removed between the caller's index
	// lookup being checked here and the open (removal also takes mu).
	f, err := os.Open(segPath(q.segDir, n))
	if err != nil {
		return nil, err
	}
	r := &segReader{f: f, users: 1}
	q.readers[n] = r
	return r, nil
}

func (q *Queue) releaseReader(r *segReader) {
	q.mu.Lock()
	r.users--
	if r.dead && r.users == 0 {
		r.f.Close()
	}
	q.mu.Unlock()
}

// dropReaderLocked forgets segment n's read handle; it is closed by its last user.
func (q *Queue) dropReaderLocked(n uint32) {
	r := q.readers[n]
	if r == nil {
		return
	}
	delete(q.readers, n)
	r.dead = true
	if r.users == 0 {
		r.f.Close()
	}
}

// memContent is a verified content held in memory; Close is a no-op.
type memContent []byte

func (c memContent) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("queue: content: negative offset")
	}
	if off >= int64(len(c)) {
		return 0, io.EOF
	}
	n := copy(p, c[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
func (c memContent) Size() int64  { return int64(len(c)) }
func (c memContent) Close() error { return nil }

// windowReader serves ReadAt from a read-ahead window over r. Recovery visits each
// segment's records in offset order, so a 1 MiB window turns one pread per message
// (1M messages: ~2.5 s of syscalls, a third of a restart) into one per MiB. Reads
// outside the window or larger than it refill it or go straight to r; the results
// are those r would give.
type windowReader struct {
	r   io.ReaderAt
	buf []byte // window contents, len = bytes valid
	off int64  // file offset of buf[0]
}

func newWindowReader(r io.ReaderAt, size int) *windowReader {
	return &windowReader{r: r, buf: make([]byte, 0, size)}
}

func (w *windowReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= w.off && off+int64(len(p)) <= w.off+int64(len(w.buf)) {
		return copy(p, w.buf[off-w.off:]), nil
	}
	if len(p) > cap(w.buf)/2 {
		return w.r.ReadAt(p, off)
	}
	n, err := w.r.ReadAt(w.buf[:cap(w.buf)], off)
	w.buf, w.off = w.buf[:n], off
	if n >= len(p) {
		return copy(p, w.buf), nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return copy(p, w.buf), err
}
