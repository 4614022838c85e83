package compiler

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mtad.dev/mta/cnf"
	"mtad.dev/mta/engine"
	"mtad.dev/mta/mappings"
)

// Magic opens every image file.
const Magic = "MTAIMAGE"

// FormatVersion is the image layout version. Change it whenever the payload's Go
// types change incompatibly: a program finding another version refuses the image
// with the product's message, "Compiled configuration version mismatch".
// Version 2: the engine, mapping and alias parts are framed sections of their own
// binary encodings instead of blobs inside one gob stream.
const FormatVersion uint32 = 2

// Version is the tool version recorded in Header.BuiltBy.
const Version = "mtactl 0.1.0"

// ImageName is the image's file name inside the configuration directory.
const ImageName = "compiled.image"

// ImagePath is where the image of a configuration directory lives.
func ImagePath(dir string) string { return filepath.Join(dir, ImageName) }

// ErrVersionMismatch is wrapped by Load's error for an image of another format.
var ErrVersionMismatch = errors.New("compiled configuration version mismatch")

// ErrCorrupt is wrapped by Load's error for an image that is not intact.
var ErrCorrupt = errors.New("corrupt image")

// Header describes an image without decoding its payload.
type Header struct {
	Magic         string
	FormatVersion uint32
	BuiltBy       string
	SourceHash    [32]byte // SHA-256 over the sorted source files' names and hashes
	BuildTime     time.Time
}

// Image is one compiled configuration: immutable once built or loaded, safe to share
// between goroutines (the daemon swaps whole images, never edits one).
type Image struct {
	Header         Header
	Rules          *engine.RuleSet
	Mappings       *mappings.Set
	Aliases        *mappings.Aliases
	Channels       []ChannelConfig
	Jobs           JobConfig
	Dispatcher     DispatcherConfig
	Options        Options
	ChannelOptions map[string]ChannelOptions // keyed by channel name (lower case)
	General        map[string]string         // general.txt, keys lower-cased
	// MTAFilter is imta.filter, the MTA-wide Sieve filter, as cnbuild read and
	// checked it; nil when the configuration has none. The product's
	// documentation says it is copied into the compiled configuration: an edit
	// takes effect at the next cnbuild.
	MTAFilter *FilterSource
	Warnings  cnf.ErrorList
}

// The file is
//
//	Magic | FormatVersion u32 | header length u32 | header (gob) |
//	4 × { section length u64 | section } | SHA-256 of everything before it
//
// with the sections, in order, the engine RuleSet, the mapping Set and the Aliases
// (their own MarshalBinary encodings; length 0 for a nil part) and the rest (gob).
// The big parts are framed rather than gob-wrapped so that Load can decode them
// straight from the one string it read the file into: gob would copy every blob
// into a fresh []byte, and the mapping decoder keeps substrings of its input
// instead of copying the text of 100 000 entries again.
const (
	secRules = iota
	secMappings
	secAliases
	secRest
	numSections
)

// rest is the gob-encoded remainder of the image: small, typed parts.
type rest struct {
	Channels       []ChannelConfig
	Jobs           JobConfig
	Dispatcher     DispatcherConfig
	Options        Options
	ChannelOptions map[string]ChannelOptions
	General        map[string]string
	MTAFilter      *FilterSource
	Warnings       cnf.ErrorList
}

// Channel returns a channel by name: an exact match, else one differing only in
// case (the engine compares channel names case-insensitively too).
func (img *Image) Channel(name string) (*ChannelConfig, bool) {
	for i := range img.Channels {
		if img.Channels[i].Name == name {
			return &img.Channels[i], true
		}
	}
	for i := range img.Channels {
		if strings.EqualFold(img.Channels[i].Name, name) {
			return &img.Channels[i], true
		}
	}
	return nil, false
}

// PoolFor is the pool a channel's jobs run in: its pool keyword, else the first
// pool of job_controller.cnf. Build guarantees a named pool exists.
func (img *Image) PoolFor(channel string) Pool {
	if c, ok := img.Channel(channel); ok && c.Pool != "" {
		if p, ok := img.Jobs.Pool(c.Pool); ok {
			return p
		}
	}
	if len(img.Jobs.Pools) > 0 {
		return img.Jobs.Pools[0]
	}
	return Pool{Name: "DEFAULT", JobLimit: defaultJobLimit}
}

// MaxJobs is the most concurrent jobs for a channel: min(maxjobs, pool job_limit)
// (the product's documented rule); the pool's limit alone when maxjobs is not given.
func (img *Image) MaxJobs(channel string) int {
	limit := img.PoolFor(channel).JobLimit
	if c, ok := img.Channel(channel); ok && c.MaxJobs > 0 && c.MaxJobs < limit {
		return c.MaxJobs
	}
	return limit
}

// ChannelOptionsFor returns a channel's option file values, or the defaults.
func (img *Image) ChannelOptionsFor(channel string) ChannelOptions {
	if o, ok := img.ChannelOptions[strings.ToLower(channel)]; ok {
		return o
	}
	return DefaultChannelOptions()
}

// LocalChannel is the l channel (nil when the table has none).
func (img *Image) LocalChannel() *ChannelConfig {
	c, _ := img.Channel("l")
	return c
}

// Encode renders the image file's bytes.
func Encode(img *Image) ([]byte, error) {
	var hdr bytes.Buffer
	h := img.Header
	h.Magic, h.FormatVersion = Magic, FormatVersion
	if err := gob.NewEncoder(&hdr).Encode(h); err != nil {
		return nil, fmt.Errorf("encode image header: %w", err)
	}
	var secs [numSections][]byte
	var err error
	if img.Rules != nil {
		if secs[secRules], err = img.Rules.MarshalBinary(); err != nil {
			return nil, fmt.Errorf("encode image rewrite rules: %w", err)
		}
	}
	if img.Mappings != nil {
		if secs[secMappings], err = img.Mappings.MarshalBinary(); err != nil {
			return nil, fmt.Errorf("encode image mappings: %w", err)
		}
	}
	if img.Aliases != nil {
		if secs[secAliases], err = img.Aliases.MarshalBinary(); err != nil {
			return nil, fmt.Errorf("encode image aliases: %w", err)
		}
	}
	var rb bytes.Buffer
	r := rest{Channels: img.Channels, Jobs: img.Jobs, Dispatcher: img.Dispatcher,
		Options: img.Options, ChannelOptions: img.ChannelOptions, General: img.General,
		MTAFilter: img.MTAFilter, Warnings: img.Warnings}
	if err := gob.NewEncoder(&rb).Encode(r); err != nil {
		return nil, fmt.Errorf("encode image payload: %w", err)
	}
	secs[secRest] = rb.Bytes()
	size := len(Magic) + 8 + hdr.Len() + sha256.Size
	for _, sec := range secs {
		size += 8 + len(sec)
	}
	out := make([]byte, 0, size)
	out = append(out, Magic...)
	out = binary.BigEndian.AppendUint32(out, FormatVersion)
	out = binary.BigEndian.AppendUint32(out, uint32(hdr.Len()))
	out = append(out, hdr.Bytes()...)
	for _, sec := range secs {
		out = binary.BigEndian.AppendUint64(out, uint64(len(sec)))
		out = append(out, sec...)
	}
	sum := sha256.Sum256(out)
	return append(out, sum[:]...), nil
}

// Write stores an image atomically: a temporary file in the same directory is
// written and fsynced, renamed over path, and the directory is fsynced, so a reader
// sees the old image or the new one, never a mixture, even after a crash.
func Write(path string, img *Image) error {
	data, err := Encode(img)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	removeStaleTemps(dir, filepath.Base(path))
	// The temporary name carries our pid so that a later run can tell a temporary file
	// left by a killed cnbuild from one a concurrent cnbuild is still writing.
	tmp, err := os.CreateTemp(dir, fmt.Sprintf(".%s.tmp%d-*", filepath.Base(path), os.Getpid()))
	if err != nil {
		return fmt.Errorf("write image: %w", err)
	}
	cleanup := func() { _ = tmp.Close(); _ = os.Remove(tmp.Name()) }
	if _, err := tmp.Write(data); err != nil {
		cleanup()
		return fmt.Errorf("write image %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		cleanup()
		return fmt.Errorf("write image %s: fsync: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		cleanup()
		return fmt.Errorf("write image %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write image %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write image %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write image %s: open directory for fsync: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write image %s: fsync directory: %w", path, err)
	}
	return nil
}

// removeStaleTemps deletes temporary image files whose writer no longer runs (a
// cnbuild killed mid-write leaves one; nothing else would ever remove it).
func removeStaleTemps(dir, base string) {
	prefix := "." + base + ".tmp"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		pidText, _, ok := strings.Cut(name, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 {
			continue // not ours (or an old-style name): leave it alone
		}
		if pid != os.Getpid() && syscall.Kill(pid, 0) == syscall.ESRCH {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// Load reads and verifies an image file. Any defect is an error: the caller never
// gets a partly decoded image.
func Load(path string) (*Image, error) {
	data, err := readString(path)
	if err != nil {
		return nil, fmt.Errorf("load image: %w", err)
	}
	img, err := decodeString(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// maxImageSize refuses files no configuration produces before allocating for them.
const maxImageSize = 1 << 31

// readString reads a file straight into the string the decoded image will share:
// a strings.Builder grown to the file's size is neither zeroed first (as
// os.ReadFile's buffer is) nor copied again to make a string of it.
func readString(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if fi.Size() > maxImageSize {
		return "", corrupt("%d bytes is not a plausible image size", fi.Size())
	}
	var sb strings.Builder
	sb.Grow(int(fi.Size()))
	buf := make([]byte, 256<<10)
	for {
		n, err := f.Read(buf)
		sb.Write(buf[:n])
		if err == io.EOF {
			return sb.String(), nil
		}
		if err != nil {
			return "", err
		}
	}
}

// ReadHeader reads only an image's header (for `mtactl version`), after the same
// integrity checks as Load.
func ReadHeader(path string) (Header, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Header{}, fmt.Errorf("read image header: %w", err)
	}
	h, _, err := verify(string(data))
	if err == nil {
		err = checkSum(data, sha256.Sum256(data[:len(data)-sha256.Size]))
	}
	if err != nil {
		return Header{}, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s; run mtactl cnbuild", ErrCorrupt, fmt.Sprintf(format, args...))
}

// checkPrefix checks magic and version: the errors a foreign or outdated file
// gets before any of it is hashed or copied.
func checkPrefix(data string) error {
	if len(data) < len(Magic)+4 || data[:len(Magic)] != Magic {
		return corrupt("not a compiled configuration (bad magic)")
	}
	if v := binary.BigEndian.Uint32([]byte(data[len(Magic) : len(Magic)+4])); v != FormatVersion {
		return fmt.Errorf("%w: image format %d, this program reads format %d; run mtactl cnbuild", ErrVersionMismatch, v, FormatVersion)
	}
	return nil
}

// minImageLen is the size of an image with an empty header and empty sections.
const minImageLen = len(Magic) + 4 + 4 + numSections*8 + sha256.Size

// checkSum compares the trailing checksum of data (at least minImageLen long)
// with sum, the SHA-256 of what precedes it.
func checkSum(data []byte, sum [sha256.Size]byte) error {
	if !bytes.Equal(sum[:], data[len(data)-sha256.Size:]) {
		return corrupt("checksum mismatch")
	}
	return nil
}

// verify checks magic, version and framing (not the checksum) and decodes the
// header; it returns the sections.
func verify(data string) (Header, [numSections]string, error) {
	var h Header
	var secs [numSections]string
	if err := checkPrefix(data); err != nil {
		return h, secs, err
	}
	if len(data) < minImageLen {
		return h, secs, corrupt("truncated")
	}
	off := len(Magic) + 4
	body := data[:len(data)-sha256.Size]
	hl := int(binary.BigEndian.Uint32([]byte(data[off : off+4])))
	off += 4
	if hl < 0 || hl > len(body)-off {
		return h, secs, corrupt("bad header length")
	}
	if err := gob.NewDecoder(strings.NewReader(body[off : off+hl])).Decode(&h); err != nil {
		return h, secs, corrupt("header: %v", err)
	}
	off += hl
	for i := range secs {
		if len(body)-off < 8 {
			return h, secs, corrupt("truncated section table")
		}
		n := binary.BigEndian.Uint64([]byte(body[off : off+8]))
		off += 8
		if n > uint64(len(body)-off) {
			return h, secs, corrupt("bad section length")
		}
		secs[i] = body[off : off+int(n)]
		off += int(n)
	}
	if off != len(body) {
		return h, secs, corrupt("bad payload length")
	}
	if h.Magic != Magic || h.FormatVersion != FormatVersion {
		return h, secs, corrupt("header does not match the file prefix")
	}
	return h, secs, nil
}

// Decode is Load on bytes already read. The image does not keep data (it works on
// one string copy of it); data must not change during the call.
//
// The checksum is computed on another goroutine while the payload is copied and
// decoded: decoding unverified bytes is safe (the decoders reject garbage, and a
// panic is recovered), and nothing decoded is returned unless the checksum then
// matches, which is checked before any decoding error is reported. On two cores
// this hides the hashing of a big image behind the decoding of its mapping tables.
func Decode(data []byte) (*Image, error) {
	// A foreign, outdated or cut file costs no hashing and no copy of the whole.
	if err := checkPrefix(string(data[:min(len(data), len(Magic)+4)])); err != nil {
		return nil, err
	}
	if len(data) < minImageLen {
		return nil, corrupt("truncated")
	}
	sums := make(chan [sha256.Size]byte, 1)
	go func() { sums <- sha256.Sum256(data[:len(data)-sha256.Size]) }()
	return decodeSummed(string(data), sums)
}

// decodeString is Decode on a string (Load's path): the image shares it.
func decodeString(data string) (*Image, error) {
	if err := checkPrefix(data); err != nil {
		return nil, err
	}
	if len(data) < minImageLen {
		return nil, corrupt("truncated")
	}
	sums := make(chan [sha256.Size]byte, 1)
	go func() {
		// sha256 takes []byte: feed it the string through a small buffer, a
		// cheap copy next to the hashing itself.
		h := sha256.New()
		var buf [32 << 10]byte
		for body := data[:len(data)-sha256.Size]; len(body) > 0; {
			n := copy(buf[:], body)
			h.Write(buf[:n])
			body = body[n:]
		}
		var sum [sha256.Size]byte
		h.Sum(sum[:0])
		sums <- sum
	}()
	return decodeSummed(data, sums)
}

// decodeSummed decodes data while its checksum is computed (it arrives on sums),
// and returns the image only when the checksum matches; a mismatch is reported in
// preference to whatever decoding made of the damaged bytes.
func decodeSummed(data string, sums <-chan [sha256.Size]byte) (*Image, error) {
	img, err := decode(data)
	sum := <-sums
	if string(sum[:]) != data[len(data)-sha256.Size:] {
		return nil, corrupt("checksum mismatch")
	}
	if err != nil {
		return nil, err
	}
	return img, nil
}

// decode decodes an image whose checksum the caller verifies.
func decode(data string) (img *Image, err error) {
	// A checksummed payload that still fails to decode means our own types changed
	// without a FormatVersion bump; the engine/mappings decoders may also panic on
	// input they do not expect. Either way the image is unusable, not the process.
	defer func() {
		if r := recover(); r != nil {
			img, err = nil, corrupt("payload: %v", r)
		}
	}()
	h, secs, err := verify(data)
	if err != nil {
		return nil, err
	}
	img = &Image{Header: h}
	if s := secs[secRules]; s != "" {
		img.Rules = new(engine.RuleSet)
		if err := img.Rules.UnmarshalBinary([]byte(s)); err != nil {
			return nil, corrupt("payload: %v", err)
		}
	}
	if s := secs[secMappings]; s != "" {
		if img.Mappings, err = mappings.DecodeSet(s); err != nil {
			return nil, corrupt("payload: %v", err)
		}
	}
	if s := secs[secAliases]; s != "" {
		if img.Aliases, err = mappings.DecodeAliases(s); err != nil {
			return nil, corrupt("payload: %v", err)
		}
	}
	var r rest
	if err := gob.NewDecoder(strings.NewReader(secs[secRest])).Decode(&r); err != nil {
		return nil, corrupt("payload: %v", err)
	}
	img.Channels, img.Jobs, img.Dispatcher, img.Options = r.Channels, r.Jobs, r.Dispatcher, r.Options
	img.ChannelOptions, img.General, img.Warnings = r.ChannelOptions, r.General, r.Warnings
	img.MTAFilter = r.MTAFilter
	if img.Rules != nil {
		img.Rules.Attach(img.Mappings, img.Aliases)
	}
	return img, nil
}

// BuildDir parses a configuration directory and builds it.
func BuildDir(dir string) (*Image, error) {
	r, err := CheckDir(dir)
	if err != nil {
		return nil, err
	}
	if len(r.Errors) > 0 {
		return nil, r.Errors
	}
	return r.Image, nil
}

// CheckDir parses and checks a directory; parse errors come back in the Report.
func CheckDir(dir string) (Report, error) {
	cfg, err := cnf.ParseDir(dir)
	return checkParsed(cfg, err, os.DirFS(dir))
}

// CheckFS is CheckDir on a file system (the embedded default configuration).
// The filter files the configuration names are read from it too.
func CheckFS(fsys fs.FS) (Report, error) {
	cfg, err := cnf.ParseFS(fsys)
	return checkParsed(cfg, err, fsys)
}

func checkParsed(cfg *cnf.Config, err error, files fs.FS) (Report, error) {
	if err == nil {
		return check(cfg, false, files), nil
	}
	var list cnf.ErrorList
	if !errors.As(err, &list) {
		var one *cnf.Error
		if !errors.As(err, &one) {
			return Report{}, err
		}
		list = cnf.ErrorList{one}
	}
	if cfg == nil {
		r := Report{Errors: append(cnf.ErrorList(nil), list...)}
		sortErrors(r.Errors)
		return r, nil
	}
	// Parse errors do not stop the cross-file checks: an operator wants every
	// problem of a run at once. The image is withheld all the same.
	r := check(cfg, true, files)
	r.Errors = append(r.Errors, list...)
	sortErrors(r.Errors)
	r.Errors = dedupe(r.Errors)
	r.Image = nil
	return r, nil
}

// LoadOrBuild returns the compiled image of dir when there is one, else builds the
// text files (what mtad and `test -rewrite` do). fromImage says which happened.
func LoadOrBuild(dir string) (img *Image, fromImage bool, err error) {
	path := ImagePath(dir)
	if _, statErr := os.Stat(path); statErr == nil {
		img, err := Load(path)
		return img, true, err
	} else if !errors.Is(statErr, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("load image: %w", statErr)
	}
	img, err = BuildDir(dir)
	return img, false, err
}
