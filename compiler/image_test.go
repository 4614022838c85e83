package compiler

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sectionOffsets returns the offsets of the image's section table entries.
func sectionOffsets(t *testing.T, data []byte) [numSections]int {
	t.Helper()
	off := len(Magic) + 4
	off += 4 + int(binary.BigEndian.Uint32(data[off:]))
	var out [numSections]int
	for i := range out {
		out[i] = off
		off += 8 + int(binary.BigEndian.Uint64(data[off:]))
	}
	if off != len(data)-sha256.Size {
		t.Fatalf("section table ends at %d, checksum at %d", off, len(data)-sha256.Size)
	}
	return out
}

func resum(data []byte) {
	sum := sha256.Sum256(data[:len(data)-sha256.Size])
	copy(data[len(data)-sha256.Size:], sum[:])
}

// TestLoadFileDamage goes through Load (file on disk, concurrent checksum): a
// flipped byte anywhere is a checksum error, whatever the decoders make of it.
func TestLoadFileDamage(t *testing.T) {
	good, err := Encode(siteImage(t))
	if err != nil {
		t.Fatal(err)
	}
	secs := sectionOffsets(t, good)
	dir := t.TempDir()
	for _, at := range []int{len(Magic) + 9, secs[secRules] + 20, secs[secMappings] + 20, secs[secRest] + 12, len(good) - 1} {
		bad := append([]byte(nil), good...)
		bad[at] ^= 0x40
		path := filepath.Join(dir, ImageName)
		if err := os.WriteFile(path, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		img, err := Load(path)
		if img != nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "checksum mismatch") {
			t.Errorf("byte %d flipped: Load = %v, %v", at, img, err)
		}
		if _, err := ReadHeader(path); !errors.Is(err, ErrCorrupt) {
			t.Errorf("byte %d flipped: ReadHeader err = %v", at, err)
		}
	}
}

// TestDecodeBadPayload: an intact checksum over a payload our decoders reject
// (what a FormatVersion bump forgotten would give) is a corrupt image, never a
// panic or a partial image.
func TestDecodeBadPayload(t *testing.T) {
	good, err := Encode(siteImage(t))
	if err != nil {
		t.Fatal(err)
	}
	secs := sectionOffsets(t, good)
	for name, at := range map[string]int{
		"rules magic":    secs[secRules] + 8,
		"mappings magic": secs[secMappings] + 8,
		"aliases magic":  secs[secAliases] + 8,
		"rest gob":       secs[secRest] + 9,
		"section length": secs[secMappings] + 7,
	} {
		bad := append([]byte(nil), good...)
		bad[at] ^= 0x55
		resum(bad)
		img, err := Decode(bad)
		if img != nil || !errors.Is(err, ErrCorrupt) || strings.Contains(err.Error(), "checksum") {
			t.Errorf("%s: Decode = %v, %v", name, img, err)
		}
	}
	// Nil parts round-trip as nil.
	img := siteImage(t)
	img.Mappings, img.Aliases = nil, nil
	data, err := Encode(img)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data)
	if err != nil || got.Mappings != nil || got.Aliases != nil || got.Rules == nil {
		t.Fatalf("nil parts: %+v, %v", got, err)
	}
}

// Regression: a cnbuild killed mid-write left its temporary file forever; the next
// Write removes temporary files whose writer is gone and keeps a live writer's.
func TestWriteRemovesStaleTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	img := siteImage(t)
	path := filepath.Join(dir, ImageName)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skip("no true(1):", err)
	}
	stale := filepath.Join(dir, fmt.Sprintf(".%s.tmp%d-123", ImageName, dead.Process.Pid))
	live := filepath.Join(dir, fmt.Sprintf(".%s.tmp%d-456", ImageName, os.Getppid()))
	for _, f := range []string{stale, live} {
		if err := os.WriteFile(f, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := Write(path, img); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temporary file of a dead writer kept (err %v)", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("temporary file of a live writer removed: %v", err)
	}
}
