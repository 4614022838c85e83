package compiler

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"mtad.dev/mta/cnf"
	"mtad.dev/mta/engine"
	"mtad.dev/mta/mappings"
)

// Report is the full outcome of checking a configuration: the image when there are
// no errors, and every error and warning, each sorted by file and line.
type Report struct {
	Image    *Image
	Errors   cnf.ErrorList
	Warnings cnf.ErrorList
}

// Build validates a parsed configuration across its files and compiles it. On
// failure it returns every error as a cnf.ErrorList sorted by file:line; use Check
// to get the warnings of a failed build as well.
func Build(cfg *cnf.Config) (*Image, error) {
	r := Check(cfg)
	if len(r.Errors) > 0 {
		return nil, r.Errors
	}
	return r.Image, nil
}

// builder carries one Check run.
type builder struct {
	cfg   *cnf.Config
	errs  cnf.ErrorList
	warns cnf.ErrorList
	// tableErrors: the channel table itself is broken (duplicate or missing host
	// names), so the rule engine is not run on it.
	tableErrors bool
	// files is the configuration directory, where imta.filter and the channel
	// filters are read; nil when there is none.
	files fs.FS
}

func (b *builder) errorf(pos cnf.Pos, format string, args ...any) {
	b.errs = append(b.errs, &cnf.Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func (b *builder) warnf(pos cnf.Pos, format string, args ...any) {
	b.warns = append(b.warns, &cnf.Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// Check is Build returning everything it found. The filter files the
// configuration names are read from its directory (cfg.Dir).
func Check(cfg *cnf.Config) Report {
	var files fs.FS
	if cfg != nil && cfg.Dir != "" {
		files = os.DirFS(cfg.Dir)
	}
	return check(cfg, false, files)
}

// check runs every check; parseFailed says the AST is partial (cnf reported errors),
// so checks that would mistake a dropped line for a missing one are skipped.
// files is the configuration directory, for the filter files (nil: none).
func check(cfg *cnf.Config, parseFailed bool, files fs.FS) Report {
	b := &builder{cfg: cfg, files: files}
	if cfg == nil || cfg.IMTA == nil {
		if !parseFailed { // else cnf has said why imta.cnf is missing
			b.errorf(cnf.Pos{File: "imta.cnf"}, "no imta.cnf: the configuration needs rewrite rules and a channel table")
		}
		if cfg != nil {
			b.warns = append(b.warns, cfg.Warnings...)
		}
		return b.report(nil)
	}
	b.warns = append(b.warns, cfg.Warnings...)

	img := &Image{Header: Header{Magic: Magic, FormatVersion: FormatVersion, BuiltBy: Version,
		SourceHash: SourceHash(cfg.Sources), BuildTime: time.Now().UTC()}}
	img.Options = readOptions(cfg.Options, &b.errs, &b.warns)
	img.Jobs = readJobConfig(cfg.JobController, &b.errs, &b.warns)
	img.Dispatcher = readDispatcher(cfg.Dispatcher, &b.errs, &b.warns)
	img.Channels = b.channels(cfg.IMTA)
	b.checkChannelRefs(img)

	img.ChannelOptions = map[string]ChannelOptions{}
	for name, f := range cfg.ChannelOptions {
		if _, ok := img.Channel(name); !ok {
			pos := cnf.Pos{File: name + "_option", Line: 1}
			if f != nil && len(f.Options) > 0 {
				pos = f.Options[0].Pos
			}
			b.warnf(pos, "option file for channel %q, which is not in the channel table (ignored)", name)
		}
		img.ChannelOptions[strings.ToLower(name)] = readChannelOptions(name, f, &b.errs, &b.warns)
	}
	foldChannelOptionLimits(img)
	checkSRS(img, &b.errs)
	b.checkServerOptions(img, cfg.ChannelOptions)

	img.General = map[string]string{}
	if cfg.General != nil {
		for _, e := range cfg.General.Entries {
			img.General[strings.ToLower(e.Key)] = e.Value
		}
	}

	// Mapping tables and aliases compile independently of the rules; their errors
	// carry "file:line" that we turn back into positions.
	if cfg.Mappings != nil {
		var tables []mappings.TableSource
		for _, t := range cfg.Mappings.Tables {
			ts := mappings.TableSource{Name: t.Name, Src: srcOf(t.Pos)}
			for _, e := range t.Entries {
				ts.Entries = append(ts.Entries, mappings.EntrySource{Pattern: e.Pattern, Template: e.Template, Src: srcOf(e.Pos)})
			}
			tables = append(tables, ts)
		}
		set, errs := mappings.Compile(tables)
		b.addSourceErrors(errs)
		img.Mappings = set
	}
	if cfg.Aliases != nil {
		var src []mappings.AliasSource
		for _, a := range cfg.Aliases.Aliases {
			as := mappings.AliasSource{Name: a.Name, Src: srcOf(a.Pos)}
			for _, t := range a.Targets {
				if t.List != "" {
					for _, m := range t.Members {
						as.Targets = append(as.Targets, m.Addr)
					}
					continue
				}
				as.Targets = append(as.Targets, t.Addr)
			}
			src = append(src, as)
		}
		al, errs := mappings.CompileAliases(src)
		b.addSourceErrors(errs)
		img.Aliases = al
	}

	if !parseFailed {
		b.checkRoutingHosts(cfg.IMTA, img.Channels)
	}
	b.filters(img) // filters.go

	// The engine validates templates; it needs a sound channel table, so it runs
	// only when the table itself had no errors (else it would repeat them).
	if !b.tableErrors {
		ecfg := engine.Config{Mappings: img.Mappings, Aliases: img.Aliases, General: img.General,
			Options: engineOptions(img)}
		for _, r := range cfg.IMTA.Rules {
			ecfg.Rules = append(ecfg.Rules, engine.RuleSource{Pattern: r.Pattern, Template: r.Template, Src: srcOf(r.Pos)})
		}
		for i := range img.Channels {
			ecfg.Channels = append(ecfg.Channels, img.Channels[i].engineChannel())
		}
		rs, errs := engine.Compile(ecfg)
		b.addSourceErrors(errs)
		img.Rules = rs
	}
	img.Warnings = b.warns
	return b.report(img)
}

func (b *builder) report(img *Image) Report {
	sortErrors(b.errs)
	sortErrors(b.warns)
	r := Report{Errors: dedupe(b.errs), Warnings: dedupe(b.warns)}
	if len(r.Errors) == 0 && img != nil {
		img.Warnings = r.Warnings
		r.Image = img
	}
	return r
}

func engineOptions(img *Image) engine.Options {
	o := engine.Options{
		UnknownHostText:  img.Options.ErrorTextUnknownHost,
		MaxAliasLevels:   img.Options.MaxAliasLevels,
		SubaddressChar:   '+',
		MaxRewritePasses: img.Options.MaxRewritePasses,
	}
	if s := img.Options.SubaddressChar; len(s) == 1 {
		o.SubaddressChar = s[0]
	}
	if l := img.LocalChannel(); l != nil {
		o.LocalHost = l.Official
	}
	return o
}

// addSourceErrors turns engine/mappings errors ("file:line: msg") into positions.
func (b *builder) addSourceErrors(errs []error) {
	for _, err := range errs {
		var es *engine.SourceError
		var ms *mappings.SourceError
		switch {
		case errors.As(err, &es):
			b.errs = append(b.errs, &cnf.Error{Pos: parseSrc(es.Src), Msg: es.Msg})
		case errors.As(err, &ms):
			b.errs = append(b.errs, &cnf.Error{Pos: parseSrc(ms.Src), Msg: ms.Msg})
		default:
			b.errs = append(b.errs, &cnf.Error{Msg: err.Error()})
		}
	}
}

// srcOf is Pos.String without fmt: it runs once per mapping entry (100 000s).
func srcOf(p cnf.Pos) string { return p.File + ":" + strconv.Itoa(p.Line) }

// parseSrc reads "file:line" back into a position.
func parseSrc(src string) cnf.Pos {
	i := strings.LastIndexByte(src, ':')
	if i < 0 {
		return cnf.Pos{File: src}
	}
	n, err := strconv.Atoi(src[i+1:])
	if err != nil {
		return cnf.Pos{File: src}
	}
	return cnf.Pos{File: src[:i], Line: n}
}

func sortErrors(l cnf.ErrorList) {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i].Pos, l[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
}

// dedupe drops identical diagnostics (same position and text) that two checks may
// both find; the list is sorted, so duplicates are adjacent or close.
func dedupe(l cnf.ErrorList) cnf.ErrorList {
	seen := map[string]bool{}
	var out cnf.ErrorList
	for _, e := range l {
		k := e.Error()
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, e)
	}
	return out
}

// SourceHash is the SHA-256 over the source files sorted by name, each contributing
// its name, a NUL, its own SHA-256 and a newline: it changes when any file's content
// or the set of files changes, and not with reading order.
func SourceHash(sources []cnf.Source) [32]byte {
	s := append([]cnf.Source(nil), sources...)
	sort.Slice(s, func(i, j int) bool { return s[i].Path < s[j].Path })
	h := sha256.New()
	for _, src := range s {
		h.Write([]byte(src.Path))
		h.Write([]byte{0})
		h.Write(src.SHA256[:])
		h.Write([]byte{'\n'})
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}
