package compiler

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"mtad.dev/mta/cnf"
	"mtad.dev/mta/filter"
	"mtad.dev/mta/sieve"
)

// The Sieve filters of the configuration (package filter runs them). cnbuild
// reads and compiles every filter the configuration names, so that a script
// that would not compile is an error at its own file:line (and a column in the
// message) and no image is written: imta.filter, which is copied into the
// image, and the channels' sourcefilter and destinationfilter files, which the
// daemon reads again when they change. Users' filters are the users' files,
// not the administrator's: those found when cnbuild runs are checked too, but
// a broken one is a warning (the mail of that user passes as if it had none).

// FilterSource is a Sieve script carried in the image.
type FilterSource struct {
	Name string // the name its positions carry
	Text string
}

// MTAFilterName is the MTA-wide filter's file in the configuration directory.
const MTAFilterName = "imta.filter"

// FilterDiscardChannel is the channel FILTER_DISCARD=2 parks discarded mail on.
const FilterDiscardChannel = "filter_discard"

// filters reads and checks the filters the configuration names.
func (b *builder) filters(img *Image) {
	if b.files != nil {
		img.MTAFilter = b.mtaFilter(img)
	}
	for i := range img.Channels {
		c := &img.Channels[i]
		b.channelFilter(c, c.SourceFilter, "sourcefilter")
		b.channelFilter(c, c.DestinationFilter, "destinationfilter", "channelfilter")
		if c.UserFilter != "" {
			b.userFilters(c)
		}
	}
	if _, ok := img.Channel(FilterDiscardChannel); !ok {
		for _, name := range []string{"FILTER_DISCARD", "FILTER_JETTISON"} {
			if strings.TrimSpace(img.Options.Raw[name]) == "2" {
				b.warnf(b.optionPos(name), "%s=2 parks discarded mail on the %s channel, which the configuration does not have: it is deleted at once", name, FilterDiscardChannel)
			}
		}
	}
}

// mtaFilter reads and compiles imta.filter; nil when there is none (or it does
// not compile: the errors say why).
func (b *builder) mtaFilter(img *Image) *FilterSource {
	data, err := fs.ReadFile(b.files, MTAFilterName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		b.errorf(cnf.Pos{File: MTAFilterName}, "cannot read the MTA-wide filter: %v", err)
		return nil
	}
	if _, err := filter.Compile(MTAFilterName, data, filter.LevelSystem); err != nil {
		b.scriptErrors(&b.errs, err, "")
		return nil
	}
	// The image says which sources it was built from: imta.filter is one.
	src := append(slices.Clone(b.cfg.Sources), cnf.Source{Path: MTAFilterName, SHA256: sha256.Sum256(data)})
	img.Header.SourceHash = SourceHash(src)
	return &FilterSource{Name: MTAFilterName, Text: string(data)}
}

// channelFilter checks the script a channel filter keyword names.
func (b *builder) channelFilter(c *ChannelConfig, url string, keywords ...string) {
	if url == "" {
		return
	}
	pos, kw := keywordPos(c, keywords...)
	where := fmt.Sprintf(" (%s of channel %s, %s)", kw, c.Name, pos)
	loc, err := filter.Locate(url, ".", "")
	if err != nil {
		b.errorf(pos, "channel %s: %s: %v", c.Name, kw, err)
		return
	}
	src, err := b.readFilter(loc)
	if err != nil {
		b.errorf(pos, "channel %s: %s %s: %v", c.Name, kw, url, err)
		return
	}
	if _, err := filter.Compile(loc.Name, src, filter.LevelSystem); err != nil {
		b.scriptErrors(&b.errs, err, where)
	}
}

// userFilters checks a channel's filter URL-pattern and the users' scripts it
// finds now.
func (b *builder) userFilters(c *ChannelConfig) {
	pos, _ := keywordPos(c, "filter")
	if !c.Local() {
		b.warnf(pos, "channel %s: users' filters run when the local channel l delivers; filter has no effect here", c.Name)
		return
	}
	url, err := filter.ExpandURL(c.UserFilter, "*+*@*", "+")
	if err != nil {
		return // splitKeywords reported it
	}
	loc, err := filter.Locate(url, ".", "")
	if err != nil {
		b.errorf(pos, "channel %s: filter: %v", c.Name, err)
		return
	}
	var matches []string
	switch {
	case loc.Scheme == "data":
		if _, err := filter.Compile("data:", loc.Data, filter.LevelUser); err != nil {
			b.scriptErrors(&b.errs, err, fmt.Sprintf(" (filter of channel %s, %s)", c.Name, pos))
		}
		return
	case filepath.IsAbs(loc.Path):
		matches, _ = filepath.Glob(loc.Path)
	case b.files != nil:
		matches, _ = fs.Glob(b.files, filepath.ToSlash(loc.Path))
	}
	for _, m := range matches {
		src, err := b.readFilter(filter.Location{Path: m})
		if err != nil {
			b.warnf(pos, "channel %s: user's filter %s: %v", c.Name, m, err)
			continue
		}
		if _, err := filter.Compile(filepath.ToSlash(m), src, filter.LevelUser); err != nil {
			b.scriptErrors(&b.warns, err, " (a user's filter: that user's mail passes as if it had none)")
		}
	}
}

// readFilter reads a script: a data: URL's own, a file of the configuration
// directory, or an absolute path.
func (b *builder) readFilter(loc filter.Location) ([]byte, error) {
	switch {
	case loc.Scheme == "data":
		return loc.Data, nil
	case filepath.IsAbs(loc.Path):
		return os.ReadFile(loc.Path)
	case b.files == nil:
		return nil, errors.New("no configuration directory to read it from")
	}
	return fs.ReadFile(b.files, path.Clean(filepath.ToSlash(loc.Path)))
}

// scriptErrors adds a script's errors to list, each at the script's file and
// line, the column first in the message (the configuration's positions have no
// column).
func (b *builder) scriptErrors(list *cnf.ErrorList, err error, where string) {
	var el sieve.ErrorList
	if !errors.As(err, &el) {
		*list = append(*list, &cnf.Error{Msg: err.Error() + where})
		return
	}
	for _, e := range el {
		msg := e.Msg + where
		if e.Pos.Column > 0 {
			msg = fmt.Sprintf("column %d: %s", e.Pos.Column, msg)
		}
		*list = append(*list, &cnf.Error{Pos: cnf.Pos{File: e.Pos.File, Line: e.Pos.Line}, Msg: msg})
	}
}

// keywordPos is where the channel's last keyword of those names is, and which
// it is.
func keywordPos(c *ChannelConfig, names ...string) (cnf.Pos, string) {
	for i := len(c.Keywords) - 1; i >= 0; i-- {
		if slices.Contains(names, c.Keywords[i].Name) {
			return c.Keywords[i].Pos, c.Keywords[i].Name
		}
	}
	return c.Pos, names[0]
}

// optionPos is where option.dat sets an option.
func (b *builder) optionPos(name string) cnf.Pos {
	if b.cfg.Options != nil {
		for _, o := range b.cfg.Options.Options {
			if strings.EqualFold(strings.TrimSpace(o.Name), name) {
				return o.Pos
			}
		}
	}
	return cnf.Pos{File: "option.dat"}
}
