package filter

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"mtad.dev/mta/sieve"
)

// Level says who wrote a script, which decides what it may use.
type Level uint8

const (
	// LevelSystem scripts are the administrator's: imta.filter, channel filters, the
	// actions of spam and virus verdicts. They act on the whole message at
	// acceptance, so the extensions about one mailbox (vacation, imap4flags)
	// are not theirs; the product's own extensions (addheader, addtag,
	// jettison) need no require, as the product's documented scriptlets
	// (data:,addtag "[SPAM]";) have none.
	LevelSystem Level = iota
	// LevelUser scripts are a user's own, run when a message reaches the mailbox:
	// every extension, each required as RFC 5228 asks.
	LevelUser
)

func (l Level) String() string {
	if l == LevelSystem {
		return "system"
	}
	return "user"
}

// CompileOptions are the sieve options of a level.
func CompileOptions(l Level) sieve.Options {
	if l == LevelUser {
		return sieve.Options{}
	}
	exts := slices.DeleteFunc(sieve.Extensions(), func(e string) bool { return e == "vacation" || e == "imap4flags" })
	return sieve.Options{Extensions: exts, Implicit: []string{"addheader", "addtag", "jettison"}}
}

// Compile compiles a script of a level; the error is a sieve.ErrorList.
func Compile(name string, src []byte, l Level) (*sieve.Script, error) {
	return sieve.Compile(name, src, CompileOptions(l))
}

// DefaultRecheck is how long a file's compiled script is used before the file
// is looked at again: an edit takes effect within this time, and a busy MTA
// does not stat every filter file for every message.
const DefaultRecheck = time.Second

// Cache keeps compiled scripts by location and compiles a file again when it
// changes. It is safe for concurrent use and lives as long as the daemon: a
// reload keeps what it compiled.
type Cache struct {
	log     *slog.Logger
	recheck time.Duration
	now     func() time.Time

	mu    sync.Mutex
	files map[fileKey]*fileEntry
	data  map[dataKey]*compiled
}

type fileKey struct {
	path  string
	level Level
}

type dataKey struct {
	name, text string
	level      Level
}

// compiled is a script or why there is none.
type compiled struct {
	script *sieve.Script
	err    error
}

type fileEntry struct {
	compiled
	missing bool
	id      fileID
	checked time.Time
}

// fileID tells one version of a file from another.
type fileID struct {
	size  int64
	mtime time.Time
	ino   uint64
}

// NewCache returns an empty cache; recheck 0 is DefaultRecheck, a negative one
// looks at the file at every use (tests).
func NewCache(log *slog.Logger, recheck time.Duration) *Cache {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if recheck == 0 {
		recheck = DefaultRecheck
	}
	return &Cache{log: log, recheck: recheck, now: time.Now, files: map[fileKey]*fileEntry{}, data: map[dataKey]*compiled{}}
}

// maxDataScripts bounds the data: scripts kept; a verdict substituted into a
// scriptlet makes a new one per verdict, so the cache starts over past this.
const maxDataScripts = 1000

// Script returns the compiled script of a location. A file that does not exist
// is no filter: (nil, nil). A script that does not compile, or a file that
// cannot be read, gives its error (for a script, a sieve.ErrorList); the caller
// then acts as if there were no filter.
func (c *Cache) Script(loc Location, l Level) (*sieve.Script, error) {
	if loc.Scheme == "data" {
		return c.dataScript(loc, l)
	}
	k := fileKey{loc.Path, l}
	now := c.now()
	c.mu.Lock()
	e := c.files[k]
	if e != nil && c.recheck > 0 && now.Sub(e.checked) < c.recheck {
		c.mu.Unlock()
		return e.script, e.err
	}
	c.mu.Unlock()

	id, missing, statErr := statFile(loc.Path)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e = c.files[k]; e != nil && statErr == nil && e.missing == missing && e.id == id {
		e.checked = now
		return e.script, e.err
	}
	ne := &fileEntry{missing: missing, id: id, checked: now}
	switch {
	case statErr != nil:
		ne.err = statErr
	case !missing:
		ne.compiled = c.compileFile(loc, l)
	}
	c.files[k] = ne
	return ne.script, ne.err
}

// compileFile reads and compiles a file, logging a script that does not
// compile once, when it is found so, not at every message.
func (c *Cache) compileFile(loc Location, l Level) compiled {
	src, err := readScript(loc.Path)
	if err != nil {
		c.log.Error("filter unreadable; messages pass as if it did not exist", "file", loc.Path, "err", err)
		return compiled{err: err}
	}
	s, err := Compile(loc.Name, src, l)
	if err != nil {
		c.log.Error("filter does not compile; messages pass as if it did not exist", "file", loc.Path, "err", err)
	}
	return compiled{script: s, err: err}
}

func (c *Cache) dataScript(loc Location, l Level) (*sieve.Script, error) {
	k := dataKey{loc.Name, string(loc.Data), l}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.data[k]; ok {
		return e.script, e.err
	}
	if len(c.data) >= maxDataScripts {
		clear(c.data)
	}
	s, err := Compile(loc.Name, loc.Data, l)
	c.data[k] = &compiled{script: s, err: err}
	return s, err
}

// statFile identifies the version of a file; missing is set when it does not
// exist.
func statFile(path string) (id fileID, missing bool, err error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return id, true, nil
	}
	if err != nil {
		return id, false, err
	}
	id = fileID{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.ino = st.Ino
	}
	return id, false, nil
}

// readScript reads a script file, refusing one over the size limit before
// reading it.
func readScript(path string) ([]byte, error) {
	max := sieve.DefaultLimits().MaxScriptSize
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > int64(max) {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d a script may have", path, fi.Size(), max)
	}
	return os.ReadFile(path)
}
