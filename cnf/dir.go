package cnf

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// File names in a configuration directory.
const (
	FileIMTA            = "imta.cnf"
	FileMappings        = "mappings"
	FileAliases         = "aliases"
	FileOptions         = "option.dat"
	FileJobController   = "job_controller.cnf"
	FileDispatcher      = "dispatcher.cnf"
	FileGeneral         = "general.txt"
	ChannelOptionSuffix = "_option"
)

// ParseDir reads the configuration directory dir. Only imta.cnf is required. It
// returns every error found, as an ErrorList sorted by file and line, together with
// whatever could be parsed; warnings are in Config.Warnings. Includes may be relative
// (to dir) or absolute; Pos.File is relative to dir when the file lies inside it.
func ParseDir(dir string) (*Config, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("configuration directory %s: %w", dir, err)
	}
	fsys := os.DirFS(abs)
	c, errs := parse(fsys, abs)
	c.Dir = dir
	return c, errs.Err()
}

// ParseFS is ParseDir over an fs.FS (for the configuration embedded in the binary).
// Include paths must be relative to the root of fsys.
func ParseFS(fsys fs.FS) (*Config, error) {
	c, errs := parse(fsys, "")
	return c, errs.Err()
}

// FSOpener returns an Opener reading include files from fsys, for the per-file
// parsers. Relative names are taken from the root of fsys; absolute names are
// refused.
func FSOpener(fsys fs.FS) Opener {
	return (&sources{fsys: fsys}).open
}

// sources opens files and remembers every one it read, in order, with its hash.
type sources struct {
	fsys fs.FS
	dir  string // absolute directory when absolute includes are allowed, else ""
	list []Source
}

// record notes a file read. A file read twice with the same content (a list file
// named by two aliases) is listed once.
func (s *sources) record(file string, data []byte) {
	src := Source{Path: file, SHA256: sha256.Sum256(data)}
	if !slices.Contains(s.list, src) {
		s.list = append(s.list, src)
	}
}

// open resolves an include name: relative names against the configuration directory,
// absolute ones (ParseDir only) as they are, recorded relative to the directory when
// they lie inside it so that one file has one name whichever way it is reached.
func (s *sources) open(name string) (string, []byte, error) {
	if filepath.IsAbs(name) || path.IsAbs(name) {
		if s.dir == "" {
			return "", nil, errors.New("absolute include paths are not allowed in an embedded configuration")
		}
		clean := filepath.Clean(name)
		file := clean
		if rel, err := filepath.Rel(s.dir, clean); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			file = filepath.ToSlash(rel)
		}
		data, err := os.ReadFile(clean)
		if err != nil {
			return "", nil, err
		}
		s.record(file, data)
		return file, data, nil
	}
	file := path.Clean(filepath.ToSlash(name))
	if !fs.ValidPath(file) {
		if s.dir == "" {
			return "", nil, fmt.Errorf("include path leaves the configuration directory")
		}
		return s.open(filepath.Join(s.dir, name))
	}
	data, err := fs.ReadFile(s.fsys, file)
	if err != nil {
		return "", nil, err
	}
	s.record(file, data)
	return file, data, nil
}

// readTop reads one top-level file; ok is false when it does not exist.
func (s *sources) readTop(name string, errs *ErrorList) ([]byte, bool) {
	data, err := fs.ReadFile(s.fsys, name)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			*errs = append(*errs, &Error{Pos: Pos{File: name, Line: 0}, Msg: fmt.Sprintf("cannot read configuration file: %v", err)})
		}
		return nil, false
	}
	s.record(name, data)
	return data, true
}

func parse(fsys fs.FS, dir string) (*Config, ErrorList) {
	s := &sources{fsys: fsys, dir: dir}
	c := &Config{Dir: dir}
	var errs ErrorList
	add := func(e ErrorList) { errs = append(errs, e...) }

	if data, ok := s.readTop(FileIMTA, &errs); ok {
		f, e := ParseIMTA(FileIMTA, data, s.open)
		c.IMTA = f
		add(e)
		c.Warnings = append(c.Warnings, f.Warnings...)
	} else if len(errs) == 0 {
		// Line 0: the error is about the file as a whole.
		errs = append(errs, &Error{Pos: Pos{File: FileIMTA}, Msg: "cannot open the MTA configuration file: file does not exist"})
	}
	if data, ok := s.readTop(FileMappings, &errs); ok {
		f, e := ParseMappings(FileMappings, data, s.open)
		c.Mappings = f
		add(e)
		c.Warnings = append(c.Warnings, f.Warnings...)
	}
	if data, ok := s.readTop(FileAliases, &errs); ok {
		f, e := ParseAliases(FileAliases, data, s.open)
		c.Aliases = f
		add(e)
	}
	if data, ok := s.readTop(FileOptions, &errs); ok {
		f, e := ParseOptions(FileOptions, data, s.open)
		c.Options = f
		add(e)
	}
	if data, ok := s.readTop(FileJobController, &errs); ok {
		f, e := ParseSections(FileJobController, data, s.open)
		c.JobController = f
		add(e)
	}
	if data, ok := s.readTop(FileDispatcher, &errs); ok {
		f, e := ParseSections(FileDispatcher, data, s.open)
		c.Dispatcher = f
		add(e)
	}
	if data, ok := s.readTop(FileGeneral, &errs); ok {
		f, e := ParseGeneral(FileGeneral, data, s.open)
		c.General = f
		add(e)
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		errs = append(errs, &Error{Pos: Pos{File: "."}, Msg: fmt.Sprintf("cannot list the configuration directory: %v", err)})
	}
	for _, de := range entries { // fs.ReadDir sorts by name
		n := de.Name()
		channel, ok := strings.CutSuffix(n, ChannelOptionSuffix)
		if !ok || channel == "" || de.IsDir() {
			continue
		}
		if data, ok := s.readTop(n, &errs); ok {
			f, e := ParseOptions(n, data, s.open)
			if c.ChannelOptions == nil {
				c.ChannelOptions = map[string]*OptionFile{}
			}
			c.ChannelOptions[channel] = f
			add(e)
		}
	}
	c.Sources = s.list
	sortErrors(errs)
	sortErrors(c.Warnings)
	return c, errs
}

// sortErrors orders by file then line, keeping the reading order within a line.
func sortErrors(l ErrorList) {
	slices.SortStableFunc(l, func(a, b *Error) int {
		if c := cmp.Compare(a.Pos.File, b.Pos.File); c != 0 {
			return c
		}
		return cmp.Compare(a.Pos.Line, b.Pos.Line)
	})
}
