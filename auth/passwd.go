package auth

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

const (
	// DefaultFileName is the password file's name in the data directory.
	DefaultFileName = "passwd"
	// DefaultCost is the bcrypt cost of new hashes.
	DefaultCost = 11
	// MinCost is the lowest cost Set accepts.
	MinCost = 10
	// MaxUserLen bounds a user name.
	MaxUserLen = 256
	// MaxPasswordLen is bcrypt's limit: it ignores bytes after the 72nd.
	MaxPasswordLen = 72
)

// ErrBadUser is returned for a user name the file cannot hold.
var ErrBadUser = errors.New("invalid user name")

// Store is a parsed password file. Verify is safe for concurrent use; Set and
// Delete are not (mtactl edits a store that no server is using).
type Store struct {
	lines []line         // in file order, comments included, for a faithful rewrite
	index map[string]int // lower-cased user -> index in lines
	// dummy is compared against for unknown users. It is made on the first
	// Verify (whatever the user), so loading stays cheap for mtactl and the
	// first verification costs the same for known and unknown users.
	dummyOnce sync.Once
	dummy     []byte
	dummyErr  error
}

type line struct {
	user string // "" for a comment or blank line
	hash []byte
	raw  string // the line as read, for comments
}

// Load reads a password file. A missing file is an empty store (no user can
// authenticate yet), so a fresh data directory needs no setup.
func Load(path string) (*Store, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return newStore(nil), nil
	}
	if err != nil {
		return nil, fmt.Errorf("password file: %w", err)
	}
	defer f.Close()
	return Parse(f, path)
}

// Parse reads a password file from r; name is used in error messages
// ("NAME:LINE: message").
func Parse(r io.Reader, name string) (*Store, error) {
	var lines []line
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	n := 0
	seen := make(map[string]int)
	for sc.Scan() {
		n++
		raw := strings.TrimRight(sc.Text(), "\r")
		t := strings.TrimSpace(raw)
		if t == "" || t[0] == '!' || t[0] == '#' {
			lines = append(lines, line{raw: raw})
			continue
		}
		user, hash, ok := strings.Cut(t, ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: bad password entry: no ':' between user and hash", name, n)
		}
		if err := CheckUser(user); err != nil {
			return nil, fmt.Errorf("%s:%d: bad password entry: %w", name, n, err)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil || !isBcrypt(hash) {
			return nil, fmt.Errorf("%s:%d: bad password entry: user %q: not a bcrypt hash", name, n, user)
		}
		k := key(user)
		if first, dup := seen[k]; dup {
			return nil, fmt.Errorf("%s:%d: duplicate user %q (first at %s:%d)", name, n, user, name, first)
		}
		seen[k] = n
		lines = append(lines, line{user: user, hash: []byte(hash)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, n+1, err)
	}
	return newStore(lines), nil
}

func isBcrypt(h string) bool {
	return strings.HasPrefix(h, "$2a$") || strings.HasPrefix(h, "$2b$") || strings.HasPrefix(h, "$2y$")
}

func newStore(lines []line) *Store {
	s := &Store{lines: lines}
	s.reindex()
	return s
}

// dummyHash makes the hash unknown users are compared against. It has the cost
// most users have, so that an unknown user costs what a known one does.
func (s *Store) dummyHash() ([]byte, error) {
	s.dummyOnce.Do(func() {
		cost := DefaultCost
		for _, l := range s.lines {
			if l.user != "" {
				if c, err := bcrypt.Cost(l.hash); err == nil {
					cost = c
					break
				}
			}
		}
		var pw [16]byte
		if _, err := rand.Read(pw[:]); err != nil {
			s.dummyErr = fmt.Errorf("password store: dummy hash: %w", err)
			return
		}
		s.dummy, s.dummyErr = bcrypt.GenerateFromPassword(pw[:], cost)
	})
	return s.dummy, s.dummyErr
}

func (s *Store) reindex() {
	s.index = make(map[string]int, len(s.lines))
	for i, l := range s.lines {
		if l.user != "" {
			s.index[key(l.user)] = i
		}
	}
}

// key folds ASCII case only: Unicode folding could make two distinct byte
// strings one user, which an operator would not expect.
func key(user string) string {
	b := []byte(user)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// CheckUser reports whether a user name can be stored.
func CheckUser(user string) error {
	if user == "" {
		return fmt.Errorf("%w: empty", ErrBadUser)
	}
	if len(user) > MaxUserLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrBadUser, MaxUserLen)
	}
	for _, c := range []byte(user) {
		if c <= ' ' || c == 0x7f || c == ':' {
			return fmt.Errorf("%w: %q contains %q", ErrBadUser, user, c)
		}
	}
	return nil
}

// Verify reports whether password is the user's. It takes one bcrypt comparison
// whatever the outcome, unknown users included.
func (s *Store) Verify(user, password string) bool {
	hash, err := s.dummyHash()
	if err != nil {
		// No dummy (no randomness): refuse everyone rather than leak timing.
		return false
	}
	known := false
	if i, ok := s.index[key(user)]; ok && user != "" {
		hash, known = s.lines[i].hash, true
	}
	pw := []byte(password)
	if len(pw) > MaxPasswordLen {
		// bcrypt would refuse at once; compare anyway so the time is the same.
		pw = pw[:MaxPasswordLen]
		known = false
	}
	err = bcrypt.CompareHashAndPassword(hash, pw)
	return known && err == nil
}

// Has reports whether a user exists.
func (s *Store) Has(user string) bool {
	_, ok := s.index[key(user)]
	return ok
}

// Users lists the user names in file order.
func (s *Store) Users() []string {
	var out []string
	for _, l := range s.lines {
		if l.user != "" {
			out = append(out, l.user)
		}
	}
	return out
}

// Len is the number of users.
func (s *Store) Len() int { return len(s.index) }

// WeakUsers lists the users whose hash has a cost below MinCost.
func (s *Store) WeakUsers() []string {
	var out []string
	for _, l := range s.lines {
		if l.user == "" {
			continue
		}
		if c, err := bcrypt.Cost(l.hash); err != nil || c < MinCost {
			out = append(out, l.user)
		}
	}
	return out
}

// Set adds a user or changes a password, hashing with cost (0: DefaultCost). It
// reports whether the user existed.
func (s *Store) Set(user, password string, cost int) (existed bool, err error) {
	if err := CheckUser(user); err != nil {
		return false, err
	}
	if cost == 0 {
		cost = DefaultCost
	}
	if cost < MinCost || cost > bcrypt.MaxCost {
		return false, fmt.Errorf("bcrypt cost %d outside %d..%d", cost, MinCost, bcrypt.MaxCost)
	}
	if password == "" {
		return false, errors.New("empty password")
	}
	if len(password) > MaxPasswordLen {
		return false, fmt.Errorf("password longer than %d bytes", MaxPasswordLen)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return false, fmt.Errorf("hashing password: %w", err)
	}
	if i, ok := s.index[key(user)]; ok {
		s.lines[i].hash = h
		return true, nil
	}
	s.lines = append(s.lines, line{user: user, hash: h})
	s.index[key(user)] = len(s.lines) - 1
	return false, nil
}

// Delete removes a user; it reports whether the user existed.
func (s *Store) Delete(user string) bool {
	i, ok := s.index[key(user)]
	if !ok {
		return false
	}
	s.lines = append(s.lines[:i], s.lines[i+1:]...)
	s.reindex()
	return true
}

// Bytes is the file's content: comments kept, users in order.
func (s *Store) Bytes() []byte {
	var b bytes.Buffer
	for _, l := range s.lines {
		if l.user == "" {
			b.WriteString(l.raw)
		} else {
			b.WriteString(l.user)
			b.WriteByte(':')
			b.Write(l.hash)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// WriteFile replaces path atomically with the store, mode 0600.
func (s *Store) WriteFile(path string) error {
	return writeFileAtomic(path, s.Bytes(), 0o600)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	ok = true
	// The rename is durable only once the directory is.
	if d, err := os.Open(dir); err == nil {
		serr := d.Sync()
		d.Close()
		if serr != nil {
			return fmt.Errorf("writing %s: syncing directory: %w", path, serr)
		}
	}
	return nil
}
