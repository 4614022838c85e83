package cnf

import (
	"fmt"
	"strings"
)

// ParseAliases parses the aliases file: "name: target, target ..." with targets
// separated by commas and/or blanks. A target "<file" or ":include:file" names a list
// file (one address per line, "!" comments) that is read now through open, so a
// missing list is a build error. ":include:" is not in the product's documentation;
// we accept it because sendmail users write it. PMDF list parameters after a
// "<file" target ("[auth_list] ...") are not supported: they are read as targets.
func ParseAliases(name string, src []byte, open Opener) (*AliasFile, ErrorList) {
	lines, errs := readLines(aliasLines, name, src, open)
	p := &aliasParser{f: &AliasFile{}, errs: errs, seen: map[string]Pos{}, open: open}
	for k := range lines {
		if !lines[k].Blank {
			p.alias(&lines[k])
		}
	}
	sortErrors(p.errs)
	return p.f, p.errs
}

type aliasParser struct {
	f    *AliasFile
	errs ErrorList
	seen map[string]Pos // lower-cased alias name -> first definition
	open Opener
}

func (p *aliasParser) errorf(pos Pos, format string, args ...any) {
	p.errs = append(p.errs, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// badName guesses the alias name of a line that did not parse, for the message.
func badName(s string) string {
	if i := strings.IndexByte(s, ':'); i >= 0 {
		return strings.TrimSpace(s[:i])
	}
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

func (p *aliasParser) alias(l *line) {
	g, err := aliasLineParser.ParseString("", l.Text)
	if err != nil {
		why := "not of the form \"name: address, ...\""
		switch {
		case !strings.Contains(l.Text, ":"):
			why = "no \":\" after the alias name"
		case strings.TrimSpace(l.Text[:strings.IndexByte(l.Text, ':')]) == "":
			why = "empty alias name"
		case strings.Count(l.Text, "\"")%2 == 1:
			why = "unbalanced '\"'"
		}
		p.errorf(l.Pos, "bad equivalence for alias: %q: %s", badName(l.Text), why)
		return
	}
	var nb strings.Builder
	for _, n := range g.Name {
		if n.Quoted != nil {
			nb.WriteString(*n.Quoted)
		} else {
			nb.WriteString(*n.Text)
		}
	}
	a := Alias{Pos: l.Pos, Name: nb.String()}
	key := strings.ToLower(a.Name)
	if first, dup := p.seen[key]; dup {
		p.errorf(l.Pos, "duplicate aliases found: %q (first at %s)", a.Name, first)
	} else {
		p.seen[key] = l.Pos
	}
	ok := true
	for _, t := range g.Targets {
		at, why := p.target(l, t)
		if why != "" {
			p.errorf(l.posAt(t.Pos.Offset), "bad equivalence for alias: %q: %s", a.Name, why)
			ok = false
			continue
		}
		a.Targets = append(a.Targets, at)
	}
	if len(g.Targets) == 0 {
		p.errorf(l.Pos, "no equivalence addresses for alias: %q", a.Name)
		return
	}
	if ok {
		p.f.Aliases = append(p.f.Aliases, a)
	}
}

// target classifies one right-hand item; why is set when it is malformed.
func (p *aliasParser) target(l *line, t *aliasTargetG) (AliasTarget, string) {
	pos := l.posAt(t.Pos.Offset)
	var raw strings.Builder
	for _, pc := range t.Pieces {
		raw.WriteString(pc.raw())
	}
	text := raw.String()
	for k, pc := range t.Pieces {
		if pc.Unterm != nil {
			return AliasTarget{}, fmt.Sprintf("unbalanced '\"' in %q", text)
		}
		if pc.LAngle != nil && k > 0 {
			return AliasTarget{}, fmt.Sprintf("unbalanced '<' in %q", text)
		}
	}
	var list string
	switch {
	case t.Pieces[0].LAngle != nil:
		list = strings.TrimPrefix(text, "<")
		if list == "" {
			return AliasTarget{}, "no file name after '<'"
		}
	case strings.HasPrefix(strings.ToLower(text), ":include:"):
		list = text[len(":include:"):]
		if list == "" {
			return AliasTarget{}, "no file name after \":include:\""
		}
	case len(t.Pieces) == 1 && t.Pieces[0].Angle != nil:
		// <user@host>: the brackets are punctuation, not part of the address.
		addr := strings.TrimSpace(text[1 : len(text)-1])
		if addr == "" {
			return AliasTarget{}, "empty address \"<>\""
		}
		return AliasTarget{Pos: pos, Addr: addr}, ""
	default:
		return AliasTarget{Pos: pos, Addr: text}, ""
	}
	at := AliasTarget{Pos: pos, List: list}
	at.Members = p.readList(pos, list)
	return at, ""
}

// readList reads a list file: one address per line, "!" comments, blank lines
// ignored. Errors are reported at the alias line that names the list.
func (p *aliasParser) readList(pos Pos, name string) []Member {
	if p.open == nil {
		p.errorf(pos, "cannot open alias include file: %s: list files are not available here", name)
		return nil
	}
	file, data, err := p.open(name)
	if err != nil {
		p.errorf(pos, "cannot open alias include file: %s: %v", name, err)
		return nil
	}
	// List files take no includes of their own (the product's documentation does not
	// say whether they may), so a "<" line in one is an address error.
	lines, errs := readLines(listFileLines, file, data, nil)
	p.errs = append(p.errs, errs...)
	var out []Member
	for _, l := range lines {
		if l.Blank {
			continue
		}
		out = append(out, Member{Pos: l.Pos, Addr: strings.TrimSpace(l.Text)})
	}
	return out
}
