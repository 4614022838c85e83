package cnf

import (
	"errors"
	"strings"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
)

// This file holds the grammar of each kind of logical line, written for participle,
// and a hand-written fast path for each common line shape. The fast paths exist
// because a participle parse costs microseconds and a 100 000-entry mapping table must
// build in well under a second; TestFastPathsMatchGrammar and FuzzFastPaths check that
// every line a fast path accepts gets the same result from the grammar. A fast path
// that is unsure returns ok=false and the grammar decides.
//
// The parsers are built once and are immutable afterwards (participle parsers are safe
// for concurrent use), so package-level variables hold no mutable state.

// --- "first token, then the rest of the line": rewrite rules and general.txt ---

type restLineG struct {
	Head string `parser:"Blank? @Text"`
	Rest string `parser:"(Blank @(Text | Blank)*)?"`
}

var restLineParser = participle.MustBuild[restLineG](
	participle.Lexer(lexer.MustSimple([]lexer.SimpleRule{
		{Name: "Blank", Pattern: `[ \t]+`},
		{Name: "Text", Pattern: `[^ \t]+`},
	})),
)

// headRest splits a line into its first token and the rest after the first run of
// blanks, the rest with trailing blanks removed. The caller guarantees a non-blank line.
type headRest struct{ Head, Rest string }

func parseHeadRestGrammar(s string) (headRest, error) {
	g, err := restLineParser.ParseString("", s)
	if err != nil {
		return headRest{}, err
	}
	return headRest{g.Head, strings.TrimRight(g.Rest, " \t")}, nil
}

func fastHeadRest(s string) (headRest, bool) {
	s = strings.TrimLeft(s, " \t")
	if s == "" {
		return headRest{}, false
	}
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return headRest{Head: s}, true
	}
	return headRest{Head: s[:i], Rest: strings.Trim(s[i:], " \t")}, true
}

func parseHeadRest(s string) (headRest, error) {
	if h, ok := fastHeadRest(s); ok {
		return h, nil
	}
	return parseHeadRestGrammar(s)
}

// --- words: channel-name lines and host lines ---

type wordsG struct {
	Words []*wordG `parser:"(Blank | @@)*"`
}

// wordG is a run of pieces with no blank between them; a quoted piece loses its
// quotes, so `"pt5m"` is the word pt5m and `a"b c"` the word `ab c` (the product's
// documentation does not describe quoting here; this is the shell's rule).
type wordG struct {
	Pos    lexer.Position
	Pieces []*wordPieceG `parser:"@@+"`
}

type wordPieceG struct {
	Quoted *string `parser:"  @Quoted"`
	Bare   *string `parser:"| @Bare"`
	Unterm *string `parser:"| @Unterm"`
}

var wordsParser = participle.MustBuild[wordsG](
	participle.Lexer(lexer.MustSimple([]lexer.SimpleRule{
		{Name: "Blank", Pattern: `[ \t]+`},
		{Name: "Quoted", Pattern: `"[^"]*"`},
		{Name: "Unterm", Pattern: `"[^"]*`},
		{Name: "Bare", Pattern: `[^ \t"]+`},
	})),
)

// word is a token of a words line with its byte offset in the line.
type word struct {
	Off    int
	Text   string
	Quoted bool
}

var errUnterminated = errors.New("unterminated quoted string")

func parseWordsGrammar(s string) ([]word, error) {
	g, err := wordsParser.ParseString("", s)
	if err != nil {
		return nil, err
	}
	out := make([]word, 0, len(g.Words))
	for _, w := range g.Words {
		var b strings.Builder
		quoted := false
		for _, p := range w.Pieces {
			switch {
			case p.Quoted != nil:
				quoted = true
				b.WriteString((*p.Quoted)[1 : len(*p.Quoted)-1])
			case p.Bare != nil:
				b.WriteString(*p.Bare)
			default:
				return nil, errUnterminated
			}
		}
		out = append(out, word{Off: w.Pos.Offset, Text: b.String(), Quoted: quoted})
	}
	return out, nil
}

// fastWords handles lines whose words are either free of quotes or wholly quoted
// without blanks inside ("pt5m"): the shapes of nearly every channel line.
func fastWords(s string) ([]word, bool) {
	var out []word
	for i := 0; i < len(s); {
		if s[i] == ' ' || s[i] == '\t' {
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] != ' ' && s[j] != '\t' {
			j++
		}
		w := word{Off: i, Text: s[i:j]}
		if q := strings.Count(w.Text, `"`); q != 0 {
			if q != 2 || len(w.Text) < 2 || w.Text[0] != '"' || w.Text[len(w.Text)-1] != '"' {
				return nil, false
			}
			w.Text, w.Quoted = w.Text[1:len(w.Text)-1], true
		}
		out = append(out, w)
		i = j
	}
	return out, true
}

func parseWords(s string) ([]word, error) {
	if w, ok := fastWords(s); ok {
		return w, nil
	}
	return parseWordsGrammar(s)
}

// --- NAME=value option lines and [TYPE=value] section headers ---

type optionG struct {
	Name  string `parser:"Blank? @Text Blank? '='"`
	Value string `parser:"@(Text | Blank | '=' | '[' | ']')*"`
}

type sectionG struct {
	Type  string `parser:"Blank? '[' Blank? @Text Blank? '='"`
	Value string `parser:"@(Text | Blank | '=')* ']' Blank?"`
}

var optionLexer = lexer.MustSimple([]lexer.SimpleRule{
	{Name: "Blank", Pattern: `[ \t]+`},
	{Name: "Punct", Pattern: `[=\[\]]`},
	{Name: "Text", Pattern: `[^=\[\] \t]+`},
})

var (
	optionParser  = participle.MustBuild[optionG](participle.Lexer(optionLexer))
	sectionParser = participle.MustBuild[sectionG](participle.Lexer(optionLexer))
)

type nameValue struct{ Name, Value string }

func parseOptionGrammar(s string) (nameValue, error) {
	g, err := optionParser.ParseString("", s)
	if err != nil {
		return nameValue{}, err
	}
	return nameValue{g.Name, strings.Trim(g.Value, " \t")}, nil
}

// fastOption accepts a name of plain characters, "=", and anything after it.
func fastOption(s string) (nameValue, bool) {
	i := strings.IndexByte(s, '=')
	if i < 0 {
		return nameValue{}, false
	}
	name := strings.Trim(s[:i], " \t")
	if name == "" || strings.ContainsAny(name, " \t[]") {
		return nameValue{}, false
	}
	return nameValue{name, strings.Trim(s[i+1:], " \t")}, true
}

func parseOption(s string) (nameValue, error) {
	if nv, ok := fastOption(s); ok {
		return nv, nil
	}
	return parseOptionGrammar(s)
}

func parseSectionGrammar(s string) (nameValue, error) {
	g, err := sectionParser.ParseString("", s)
	if err != nil {
		return nameValue{}, err
	}
	return nameValue{strings.ToUpper(g.Type), strings.Trim(g.Value, " \t")}, nil
}

// --- mapping entries: pattern and template, "$ " and "$<TAB>" do not split ---

type mapEntryG struct {
	Pattern  string `parser:"Blank? @(Esc | Dollar | Text)+"`
	Template string `parser:"(Blank @(Esc | Dollar | Text)*)?"`
	Extra    string `parser:"(Blank @(Esc | Dollar | Text | Blank)*)?"`
}

var mapEntryParser = participle.MustBuild[mapEntryG](
	participle.Lexer(lexer.MustSimple([]lexer.SimpleRule{
		{Name: "Esc", Pattern: `\$[\s\S]`},
		{Name: "Dollar", Pattern: `\$`},
		{Name: "Blank", Pattern: `[ \t]+`},
		{Name: "Text", Pattern: `[^$ \t]+`},
	})),
)

// mapEntry is an entry split into its columns; Extra is any unquoted text after the
// template (an error: a blank meant to be part of the template was not written "$ ").
type mapEntry struct{ Pattern, Template, Extra string }

func parseMapEntryGrammar(s string) (mapEntry, error) {
	g, err := mapEntryParser.ParseString("", s)
	if err != nil {
		return mapEntry{}, err
	}
	return mapEntry{g.Pattern, g.Template, strings.TrimRight(g.Extra, " \t")}, nil
}

// mapColumn returns the column starting at s[i] and the index just after it: it ends
// at the first blank not quoted by "$".
func mapColumn(s string, i int) (string, int) {
	j := i
	for j < len(s) {
		c := s[j]
		if c == '$' {
			j += 2
			continue
		}
		if c == ' ' || c == '\t' {
			break
		}
		j++
	}
	if j > len(s) {
		j = len(s)
	}
	return s[i:j], j
}

func skipBlanks(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

func fastMapEntry(s string) (mapEntry, bool) {
	i := skipBlanks(s, 0)
	if i == len(s) {
		return mapEntry{}, false
	}
	var e mapEntry
	e.Pattern, i = mapColumn(s, i)
	i = skipBlanks(s, i)
	e.Template, i = mapColumn(s, i)
	i = skipBlanks(s, i)
	e.Extra = strings.TrimRight(s[i:], " \t")
	return e, true
}

func parseMapEntry(s string) (mapEntry, error) {
	if e, ok := fastMapEntry(s); ok {
		return e, nil
	}
	return parseMapEntryGrammar(s)
}

// --- alias lines: name: target, target ... ---

type aliasG struct {
	Name    []*aliasNameG   `parser:"Sep? @@+ Sep? Colon"`
	Targets []*aliasTargetG `parser:"(Sep | @@)*"`
}

// aliasNameG is a piece of an alias name: no colon, no angle bracket.
type aliasNameG struct {
	Quoted *string `parser:"  @Quoted"`
	Text   *string `parser:"| @Text"`
}

type aliasTargetG struct {
	Pos    lexer.Position
	Pieces []*aliasPieceG `parser:"@@+"`
}

type aliasPieceG struct {
	Quoted *string `parser:"  @Quoted"`
	Angle  *string `parser:"| @Angle"`
	LAngle *string `parser:"| @LAngle"`
	Unterm *string `parser:"| @Unterm"`
	Text   *string `parser:"| @Text"`
	Colon  *string `parser:"| @Colon"`
}

func (p *aliasPieceG) raw() string {
	for _, s := range []*string{p.Quoted, p.Angle, p.LAngle, p.Unterm, p.Text, p.Colon} {
		if s != nil {
			return *s
		}
	}
	return ""
}

var aliasLineParser = participle.MustBuild[aliasG](
	participle.Lexer(lexer.MustSimple([]lexer.SimpleRule{
		{Name: "Sep", Pattern: `[ \t,]+`},
		{Name: "Colon", Pattern: `:`},
		{Name: "Quoted", Pattern: `"(?:[^"\\]|\\[\s\S])*"`},
		{Name: "Unterm", Pattern: `"[\s\S]*`},
		{Name: "Angle", Pattern: `<[^<>]*>`},
		{Name: "LAngle", Pattern: `<`},
		{Name: "Text", Pattern: `[^ \t,:"<]+`},
	})),
)

// grammarMessage strips participle's position prefix: our caller knows the line.
func grammarMessage(err error) string {
	var perr participle.Error
	if errors.As(err, &perr) {
		return perr.Message()
	}
	return err.Error()
}
