package cnf

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxOptionValue is the longest option value in characters: the product's
// documentation gives 1024 (256 before versions 6.2p8 and 6.3). It does not say how
// that fits the 252-byte physical line; we keep the line limit, so a longer value is
// written with "\" continuations.
const MaxOptionValue = 1024

// ParseOptions parses option.dat or a channel option file: NAME=value lines; "!",
// ";" and "#" in column 1 start comments.
func ParseOptions(name string, src []byte, open Opener) (*OptionFile, ErrorList) {
	lines, errs := readLines(optionLines, name, src, open)
	f := &OptionFile{}
	for k := range lines {
		if lines[k].Blank {
			continue
		}
		if o, ok := optionLine(&lines[k], &errs); ok {
			f.Options = append(f.Options, o)
		}
	}
	sortErrors(errs)
	return f, errs
}

func optionLine(l *line, errs *ErrorList) (Option, bool) {
	add := func(format string, args ...any) {
		*errs = append(*errs, &Error{Pos: l.Pos, Msg: fmt.Sprintf(format, args...)})
	}
	text := strings.TrimSpace(l.Text)
	if !strings.Contains(text, "=") {
		add("option line has no \"=\": %q", text)
		return Option{}, false
	}
	nv, err := parseOption(l.Text)
	if err != nil {
		name := strings.TrimSpace(text[:strings.IndexByte(text, '=')])
		if name == "" {
			add("option line has no name before \"=\": %q", text)
		} else {
			add("bad option name: %q", name)
		}
		return Option{}, false
	}
	if n := utf8.RuneCountInString(nv.Value); n > MaxOptionValue {
		add("option value is too long: %s (%d characters; the limit is %d)", nv.Name, n, MaxOptionValue)
		return Option{}, false
	}
	return Option{Pos: l.Pos, Name: nv.Name, Value: nv.Value}, true
}

// ParseSections parses job_controller.cnf or dispatcher.cnf: option lines, and
// [TYPE=value] headers that open sections; options before the first header are
// Global. Comments are "!" lines only: the product's documentation allows ";" and "#"
// comments in option files alone, and says nothing of them here.
func ParseSections(name string, src []byte, open Opener) (*SectionFile, ErrorList) {
	lines, errs := readLines(sectionLines, name, src, open)
	f := &SectionFile{}
	var cur *Section
	for k := range lines {
		l := &lines[k]
		if l.Blank {
			continue
		}
		text := strings.TrimSpace(l.Text)
		if strings.HasPrefix(text, "[") {
			nv, err := parseSectionGrammar(l.Text)
			if err != nil {
				errs = append(errs, &Error{Pos: l.Pos, Msg: fmt.Sprintf("bad section header: %q: %s", text, grammarMessage(err))})
				// Keep reading into a throw-away section so its options are still
				// checked but are not taken as options of the previous section.
				cur = &Section{Pos: l.Pos}
				continue
			}
			if nv.Value == "" {
				errs = append(errs, &Error{Pos: l.Pos, Msg: fmt.Sprintf("section header has no value: %q", text)})
			}
			f.Sections = append(f.Sections, Section{Pos: l.Pos, Type: nv.Name, Value: nv.Value})
			cur = &f.Sections[len(f.Sections)-1]
			continue
		}
		o, ok := optionLine(l, &errs)
		if !ok {
			continue
		}
		if cur == nil {
			f.Global = append(f.Global, o)
		} else {
			cur.Options = append(cur.Options, o)
		}
	}
	sortErrors(errs)
	return f, errs
}

// ParseGeneral parses general.txt: "key value" lines, the value being the rest of
// the line after the first run of blanks. A key without a value is allowed and maps to
// the empty string (the product's documentation does not describe this file; we chose
// the forgiving reading).
func ParseGeneral(name string, src []byte, open Opener) (*GeneralFile, ErrorList) {
	lines, errs := readLines(generalLines, name, src, open)
	f := &GeneralFile{}
	for k := range lines {
		l := &lines[k]
		if l.Blank {
			continue
		}
		hr, err := parseHeadRest(l.Text)
		if err != nil {
			errs = append(errs, &Error{Pos: l.Pos, Msg: "bad general database entry: " + grammarMessage(err)})
			continue
		}
		f.Entries = append(f.Entries, GeneralEntry{Pos: l.Pos, Key: hr.Head, Value: hr.Rest})
	}
	sortErrors(errs)
	return f, errs
}
