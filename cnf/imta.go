package cnf

import (
	"fmt"
	"strings"
)

// MaxHostName is the longest official host name, local host alias, additional host
// name or proper name, in octets (the product's documentation: 128 since version 6.1).
const MaxHostName = 128

// ParseIMTA parses imta.cnf: rewrite rules up to the first blank line, then channel
// blocks separated by blank lines. Warnings are in the returned file's Warnings.
func ParseIMTA(name string, src []byte, open Opener) (*IMTAFile, ErrorList) {
	lines, errs := readLines(imtaLines, name, src, open)
	p := &imtaParser{f: &IMTAFile{}, errs: errs}
	p.parse(lines)
	sortErrors(p.errs)
	return p.f, p.errs
}

type imtaParser struct {
	f    *IMTAFile
	errs ErrorList
}

func (p *imtaParser) errorf(pos Pos, format string, args ...any) {
	p.errs = append(p.errs, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func (p *imtaParser) parse(lines []line) {
	i := 0
	// Part I: rules, until the first blank line.
	for ; i < len(lines) && !lines[i].Blank; i++ {
		p.rule(&lines[i])
	}
	if i == len(lines) {
		return
	}
	p.f.RulesEnd = lines[i].Pos
	// Part II: blocks, each a run of non-blank lines.
	var blank Pos
	for i < len(lines) {
		if lines[i].Blank {
			blank = lines[i].Pos
			i++
			continue
		}
		j := i
		for j < len(lines) && !lines[j].Blank {
			j++
		}
		p.block(lines[i:j], blank)
		blank = Pos{}
		i = j
	}
}

func (p *imtaParser) rule(l *line) {
	hr, err := parseHeadRest(l.Text)
	if err != nil {
		p.errorf(l.Pos, "bad rewrite rule: %s", grammarMessage(err))
		return
	}
	if hr.Rest == "" {
		p.errorf(l.Pos, "rewrite rule has no template: %q", hr.Head)
		return
	}
	p.f.Rules = append(p.f.Rules, Rule{Pos: l.Pos, Pattern: hr.Head, Template: hr.Rest})
}

// words splits a line of a block, reporting an unterminated quote.
func (p *imtaParser) words(l *line) ([]word, bool) {
	ws, err := parseWords(l.Text)
	if err == errUnterminated {
		p.errorf(l.Pos, "unterminated quoted string")
		// Keep the block, quotes blanked out, so that later checks (and the compiler's)
		// do not report a missing channel on top of this error.
		ws, _ = fastWords(strings.ReplaceAll(l.Text, `"`, " ")) // offsets unchanged
		return ws, true
	}
	if err != nil {
		p.errorf(l.Pos, "bad channel line: %s", grammarMessage(err))
		return nil, false
	}
	return ws, true
}

func (p *imtaParser) block(lines []line, blank Pos) {
	first := &lines[0]
	ws, ok := p.words(first)
	if !ok || len(ws) == 0 {
		return
	}
	b := Block{Pos: first.Pos, Name: ws[0].Text, BlankBefore: blank}
	for _, w := range ws[1:] {
		b.Words = append(b.Words, Word{Pos: first.posAt(w.Off), Text: w.Text, Quoted: w.Quoted})
	}
	if lower := strings.ToLower(b.Name); lower == "defaults" || lower == "nodefaults" {
		b.Name = lower
		if len(lines) > 1 {
			p.f.Warnings = append(p.f.Warnings, &Error{Pos: lines[1].Pos,
				Msg: fmt.Sprintf("lines after %q are ignored: it is a one-line block", lower)})
		}
		p.f.Blocks = append(p.f.Blocks, b)
		return
	}
	if len(lines) < 2 {
		p.errorf(first.Pos, "no official host name for channel: %q", b.Name)
	}
	for k := 1; k < len(lines); k++ {
		l := &lines[k]
		ws, ok := p.words(l)
		if !ok || len(ws) == 0 {
			continue
		}
		if len(ws) > 2 {
			p.errorf(l.Pos, "too many names on host line: %d (a host name and at most one alias or proper name): %q", len(ws), strings.TrimSpace(l.Text))
		}
		h := HostLine{Pos: l.Pos, Name: ws[0].Text}
		if len(h.Name) > MaxHostName {
			// The product has a message only for the official host name; for lines 3+
			// its documentation gives none, so we say "host name".
			what := "host name is too long"
			if k == 1 {
				what = "official host name is too long"
			}
			p.errorf(l.Pos, "%s: %q (%d octets; the limit is %d)", what, h.Name, len(h.Name), MaxHostName)
		}
		if len(ws) > 1 {
			h.Alias = ws[1].Text
			if len(h.Alias) > MaxHostName {
				p.errorf(l.posAt(ws[1].Off), "local host alias or proper name too long for system: %q (%d octets; the limit is %d)", h.Alias, len(h.Alias), MaxHostName)
			}
		}
		b.Hosts = append(b.Hosts, h)
	}
	p.f.Blocks = append(p.f.Blocks, b)
}

// BlankLineNote explains a suspicious block: when b looks like a rewrite rule read as
// a channel block, it returns a note at the blank line that ended the rule section
// (the compiler prints it beside "duplicate host in channel table" and its siblings).
// It returns nil when b looks like a genuine channel or there was no such blank line.
//
// b "looks like a rule" when the second token of its channel-name line contains "$"
// (pattern + template; also when more tokens follow, as "$?text with spaces" gives),
// when one of its host lines has a "$" in its second token, or when the rule section is
// empty (a blank first line, or the blank line came before any rule) and b is the first
// block after that blank line.
func (f *IMTAFile) BlankLineNote(b *Block) *Error {
	if f == nil || b == nil || f.RulesEnd.Line == 0 {
		return nil
	}
	if !looksLikeRule(b) && !(len(f.Rules) == 0 && b.BlankBefore == f.RulesEnd) {
		return nil
	}
	return &Error{Pos: f.RulesEnd, Msg: "note: this blank line ended the rewrite rules; the lines after it are read as channel blocks"}
}

func looksLikeRule(b *Block) bool {
	// A rule's template always has "$" in practice, a channel keyword never: so the
	// first word after the name decides, whatever follows it ("$?text with spaces").
	if len(b.Words) > 0 && strings.Contains(b.Words[0].Text, "$") {
		return true
	}
	for _, h := range b.Hosts {
		if strings.Contains(h.Alias, "$") {
			return true
		}
	}
	return false
}
