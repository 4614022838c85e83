package compiler

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"mtad.dev/mta/cnf"
	"mtad.dev/mta/engine"
	"mtad.dev/mta/mappings"
)

// Magic opens every image file.
const Magic = "MTAIMAGE"

// FormatVersion is the image layout version. Change it whenever the payload's Go
// types change incompatibly: a program finding another version refuses the image
// (operations.md §4.1 "Compiled configuration version mismatch").
const FormatVersion uint32 = 1

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
	Warnings       cnf.ErrorList
}

// payload is what is gob-encoded after the header. The engine and mapping types
// serialise themselves (MarshalBinary).
type payload struct {
	Rules          *engine.RuleSet
	Mappings       *mappings.Set
	Aliases        *mappings.Aliases
	Channels       []ChannelConfig
	Jobs           JobConfig
	Dispatcher     DispatcherConfig
	Options        Options
	ChannelOptions map[string]ChannelOptions
	General        map[string]string
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
// (operations.md §1.5); the pool's limit alone when maxjobs is not given.
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
	var hdr, body bytes.Buffer
	h := img.Header
	h.Magic, h.FormatVersion = Magic, FormatVersion
	if err := gob.NewEncoder(&hdr).Encode(h); err != nil {
		return nil, fmt.Errorf("encode image header: %w", err)
	}
	p := payload{Rules: img.Rules, Mappings: img.Mappings, Aliases: img.Aliases,
		Channels: img.Channels, Jobs: img.Jobs, Dispatcher: img.Dispatcher,
		Options: img.Options, ChannelOptions: img.ChannelOptions, General: img.General,
		Warnings: img.Warnings}
	if err := gob.NewEncoder(&body).Encode(p); err != nil {
		return nil, fmt.Errorf("encode image payload: %w", err)
	}
	var out bytes.Buffer
	out.Grow(len(Magic) + 16 + hdr.Len() + body.Len() + sha256.Size)
	out.WriteString(Magic)
	_ = binary.Write(&out, binary.BigEndian, FormatVersion)
	_ = binary.Write(&out, binary.BigEndian, uint32(hdr.Len()))
	out.Write(hdr.Bytes())
	_ = binary.Write(&out, binary.BigEndian, uint64(body.Len()))
	out.Write(body.Bytes())
	sum := sha256.Sum256(out.Bytes())
	out.Write(sum[:])
	return out.Bytes(), nil
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
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
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

// Load reads and verifies an image file. Any defect is an error: the caller never
// gets a partly decoded image.
func Load(path string) (*Image, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load image: %w", err)
	}
	img, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// ReadHeader reads only an image's header (for `mtactl version`), after the same
// integrity checks as Load.
func ReadHeader(path string) (Header, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Header{}, fmt.Errorf("read image header: %w", err)
	}
	h, _, err := verify(data)
	if err != nil {
		return Header{}, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s; run mtactl cnbuild", ErrCorrupt, fmt.Sprintf(format, args...))
}

// verify checks magic, version, lengths and checksum and decodes the header; it
// returns the payload bytes.
func verify(data []byte) (Header, []byte, error) {
	var h Header
	if len(data) < len(Magic)+4 || string(data[:len(Magic)]) != Magic {
		return h, nil, corrupt("not a compiled configuration (bad magic)")
	}
	off := len(Magic)
	v := binary.BigEndian.Uint32(data[off:])
	off += 4
	if v != FormatVersion {
		return h, nil, fmt.Errorf("%w: image format %d, this program reads format %d; run mtactl cnbuild", ErrVersionMismatch, v, FormatVersion)
	}
	if len(data) < off+4+8+sha256.Size {
		return h, nil, corrupt("truncated")
	}
	body := data[:len(data)-sha256.Size]
	sum := sha256.Sum256(body)
	if !bytes.Equal(sum[:], data[len(data)-sha256.Size:]) {
		return h, nil, corrupt("checksum mismatch")
	}
	hl := int(binary.BigEndian.Uint32(data[off:]))
	off += 4
	if hl < 0 || off+hl+8 > len(body) {
		return h, nil, corrupt("bad header length")
	}
	if err := gob.NewDecoder(bytes.NewReader(data[off : off+hl])).Decode(&h); err != nil {
		return h, nil, corrupt("header: %v", err)
	}
	off += hl
	pl := binary.BigEndian.Uint64(data[off:])
	off += 8
	if pl != uint64(len(body)-off) {
		return h, nil, corrupt("bad payload length")
	}
	if h.Magic != Magic || h.FormatVersion != FormatVersion {
		return h, nil, corrupt("header does not match the file prefix")
	}
	return h, body[off:], nil
}

// Decode is Load on bytes already read.
func Decode(data []byte) (img *Image, err error) {
	h, body, err := verify(data)
	if err != nil {
		return nil, err
	}
	// A checksummed payload that still fails to decode means our own types changed
	// without a FormatVersion bump; the engine/mappings decoders may also panic on
	// input they do not expect. Either way the image is unusable, not the process.
	defer func() {
		if r := recover(); r != nil {
			img, err = nil, corrupt("payload: %v", r)
		}
	}()
	var p payload
	if err := gob.NewDecoder(bytes.NewReader(body)).Decode(&p); err != nil {
		return nil, corrupt("payload: %v", err)
	}
	img = &Image{Header: h, Rules: p.Rules, Mappings: p.Mappings, Aliases: p.Aliases,
		Channels: p.Channels, Jobs: p.Jobs, Dispatcher: p.Dispatcher, Options: p.Options,
		ChannelOptions: p.ChannelOptions, General: p.General, Warnings: p.Warnings}
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
	return checkParsed(cfg, err)
}

// CheckFS is CheckDir on a file system (the embedded default configuration).
func CheckFS(fsys fs.FS) (Report, error) {
	cfg, err := cnf.ParseFS(fsys)
	return checkParsed(cfg, err)
}

func checkParsed(cfg *cnf.Config, err error) (Report, error) {
	if err == nil {
		return Check(cfg), nil
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
	r := check(cfg, true)
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
