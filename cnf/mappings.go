package cnf

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Mapping limits. The product's documentation (version 6.3) gives 256 characters for a
// pattern and 1024 for a template; it states no limit for a table name, so
// MaxMappingName is our choice: long enough for any real name, short enough that an
// unindented entry (whose pattern is then read as a name) trips it.
const (
	MaxMappingName     = 32
	MaxMappingPattern  = 256
	MaxMappingTemplate = 1024
)

// ParseMappings parses the mappings file. The product's documentation only describes
// the errors a badly laid-out file gives; from those we read it as follows:
// a non-blank line starting in column 1 names a table (whatever its first character:
// the product documents letters, and an unindented entry whose pattern starts with
// "*" is the same mistake, so it is treated as a name candidate too); an optional
// blank line may follow the name; then indented entries until a blank line. Comment
// lines are invisible and never end a table.
func ParseMappings(name string, src []byte, open Opener) (*MappingFile, ErrorList) {
	lines, errs := readLines(mappingLines, name, src, open)
	p := &mappingParser{f: &MappingFile{}, errs: errs, seen: map[string]Pos{}}
	p.parse(lines)
	sortErrors(p.errs)
	return p.f, p.errs
}

type mappingParser struct {
	f    *MappingFile
	errs ErrorList
	seen map[string]Pos // upper-cased table name -> where first defined
}

func (p *mappingParser) errorf(pos Pos, format string, args ...any) {
	p.errs = append(p.errs, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func isIndented(s string) bool { return s != "" && (s[0] == ' ' || s[0] == '\t') }

func (p *mappingParser) parse(lines []line) {
	const (
		none      = iota // between tables
		afterName        // name read, no entry yet: one blank line allowed
		inEntries        // entries read: a blank line ends the table
	)
	state := none
	var cur *MappingTable // table being filled (nil when none or when its name was bad)
	var ended Pos         // blank line that ended the last table, for hints
	var endedName string
	finish := func() {
		if cur != nil {
			if len(cur.Entries) == 0 {
				p.f.Warnings = append(p.f.Warnings, &Error{Pos: cur.Pos, Msg: fmt.Sprintf("mapping table %q has no entries", cur.Name)})
			}
			p.f.Tables = append(p.f.Tables, *cur)
			cur = nil
		}
	}
	for k := range lines {
		l := &lines[k]
		switch {
		case l.Blank:
			if state == inEntries {
				ended, endedName = l.Pos, ""
				if cur != nil {
					endedName = cur.Name
				}
				finish()
				state = none
			}
		case isIndented(l.Text):
			if state == none {
				if ended.Line != 0 {
					p.errorf(l.Pos, "mapping entry outside of any table: the blank line at %s ended table %q", ended, endedName)
				} else {
					p.errorf(l.Pos, "mapping entry outside of any table: a table name must start in column 1 before it")
				}
				continue
			}
			state = inEntries
			p.entry(cur, l)
		default: // column 1: a table name
			if state == inEntries {
				p.errorf(l.Pos, "mapping format error: %q starts in column 1 right after entries of table %q: indent entries with a space or tab, and put a blank line before the next table name", strings.TrimSpace(l.Text), tableName(cur))
				continue
			}
			finish()
			cur = p.tableName(l)
			state = afterName
		}
	}
	finish()
}

func tableName(t *MappingTable) string {
	if t == nil {
		return ""
	}
	return t.Name
}

// tableName reads a column-1 line. It returns a table even when the name is bad, so
// that the entries after it are still checked.
func (p *mappingParser) tableName(l *line) *MappingTable {
	hr, err := parseHeadRest(l.Text)
	if err != nil {
		p.errorf(l.Pos, "bad mapping table name: %s", grammarMessage(err))
		return &MappingTable{Pos: l.Pos}
	}
	t := &MappingTable{Pos: l.Pos, Name: hr.Head}
	if n := utf8.RuneCountInString(t.Name); n > MaxMappingName {
		p.errorf(l.Pos, "mapping name is too long: %q (%d characters; the limit is %d; an entry that is not indented is read as a table name)", t.Name, n, MaxMappingName)
	}
	key := strings.ToUpper(t.Name)
	if first, dup := p.seen[key]; dup {
		p.errorf(l.Pos, "duplicate mapping name found: %q (first at %s)", t.Name, first)
	} else {
		p.seen[key] = l.Pos
	}
	if hr.Rest != "" {
		p.errorf(l.Pos, "unexpected text after mapping table name %q: %q (entries must be indented)", t.Name, hr.Rest)
	}
	return t
}

func (p *mappingParser) entry(t *MappingTable, l *line) {
	e, err := parseMapEntry(l.Text)
	if err != nil {
		p.errorf(l.Pos, "bad mapping entry: %s", grammarMessage(err))
		return
	}
	ok := true
	if e.Template == "" {
		p.errorf(l.Pos, "mapping entry has no template: %q", e.Pattern)
		ok = false
	}
	if e.Extra != "" {
		p.errorf(l.Pos, "mapping entry has text after its template: %q (write a blank inside a pattern or template as \"$ \")", e.Extra)
		ok = false
	}
	if n := utf8.RuneCountInString(e.Pattern); n > MaxMappingPattern {
		p.errorf(l.Pos, "mapping pattern is too long (%d characters; the limit is %d)", n, MaxMappingPattern)
		ok = false
	}
	if n := utf8.RuneCountInString(e.Template); n > MaxMappingTemplate {
		p.errorf(l.Pos, "mapping template is too long (%d characters; the limit is %d)", n, MaxMappingTemplate)
		ok = false
	}
	if ok && t != nil {
		t.Entries = append(t.Entries, MappingEntry{Pos: l.Pos, Pattern: e.Pattern, Template: e.Template})
	}
}
