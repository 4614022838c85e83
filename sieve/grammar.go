package sieve

import (
	"errors"
	"fmt"
	"strings"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
)

// The grammar of RFC 5228 §8.2, for participle:
//
//	start       = commands
//	commands    = *command
//	command     = identifier arguments (";" / block)
//	block       = "{" commands "}"
//	arguments   = *argument [ test / test-list ]
//	argument    = string-list / number / tag
//	test        = identifier arguments
//	test-list   = "(" test *("," test) ")"
//	string-list = "[" string *("," string) "]" / string
//
// The g* types are participle's view; parse turns them into the AST of ast.go,
// which the rest of the package uses.

type gScript struct {
	Commands []*gCommand `parser:"@@* EOF"`
}

type gCommand struct {
	Pos      lexer.Position
	Name     string     `parser:"@Ident"`
	Args     []*gArg    `parser:"@@*"`
	TestList *gTestList `parser:"( @@"`
	Test     *gTest     `parser:"| @@ )?"`
	Block    *gBlock    `parser:"( @@"`
	Semi     bool       `parser:"| @';' )?"`
	EndPos   lexer.Position
}

type gBlock struct {
	Open     bool        `parser:"@'{'"`
	Commands []*gCommand `parser:"@@* '}'"`
}

type gTest struct {
	Pos      lexer.Position
	Name     string     `parser:"@Ident"`
	Args     []*gArg    `parser:"@@*"`
	TestList *gTestList `parser:"( @@"`
	Test     *gTest     `parser:"| @@ )?"`
}

type gTestList struct {
	Open  bool     `parser:"@'('"`
	Tests []*gTest `parser:"@@ ( ',' @@ )* ')'"`
}

type gArg struct {
	Pos    lexer.Position
	Tag    *string `parser:"  @Tag"`
	Number *string `parser:"| @Number"`
	String *string `parser:"| @String"`
	List   *gSList `parser:"| @@"`
}

type gSList struct {
	Open    bool     `parser:"@'['"`
	Strings []string `parser:"@String ( ',' @String )* ']'"`
}

// grammarParser is built once; participle parsers are safe for concurrent use.
var grammarParser = participle.MustBuild[gScript](
	participle.Lexer(lexDef{}),
)

// Parse reads a script into its syntax tree. name is the file name positions
// carry ("" for none). The error, when there is one, is an ErrorList.
func Parse(name string, src []byte, limits Limits) (*File, error) {
	f, err := parse(name, src, limits)
	if err != nil {
		return nil, asErrorList(err)
	}
	return f, nil
}

func parse(name string, src []byte, limits Limits) (*File, error) {
	limits = limits.withDefaults()
	if len(src) > limits.MaxScriptSize {
		return nil, &Error{Pos: Pos{File: name, Line: 1, Column: 1},
			Msg: "script is larger than " + itoa(limits.MaxScriptSize) + " bytes"}
	}
	toks, err := lexAll(name, string(src), limits)
	if err != nil {
		return nil, err
	}
	plex, err := lexer.Upgrade(&tokenList{toks: toks})
	if err != nil {
		return nil, err
	}
	g, err := grammarParser.ParseFromLexer(plex)
	if err != nil {
		return nil, syntaxError(name, err)
	}
	f := &File{Name: name}
	var errs ErrorList
	for _, c := range g.Commands {
		f.Commands = append(f.Commands, convertCommand(c, &errs))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return f, nil
}

// tokenList replays the tokens lexAll made.
type tokenList struct {
	toks []lexer.Token
	i    int
}

func (l *tokenList) Next() (lexer.Token, error) {
	t := l.toks[l.i]
	if l.i < len(l.toks)-1 {
		l.i++
	}
	return t, nil
}

// syntaxError turns participle's error into ours, with a message a script
// writer can act on.
func syntaxError(name string, err error) error {
	var perr participle.Error
	if !errors.As(err, &perr) {
		return &Error{Pos: Pos{File: name, Line: 1, Column: 1}, Msg: err.Error()}
	}
	p := toPos(perr.Position())
	msg := perr.Message()
	var ut *participle.UnexpectedTokenError
	if errors.As(err, &ut) {
		msg = "syntax error: unexpected " + describeToken(ut.Unexpected)
		if ut.Expect != "" {
			msg += ", expected " + ut.Expect
		}
	}
	return &Error{Pos: p, Msg: msg}
}

func describeToken(t lexer.Token) string {
	switch t.Type {
	case lexer.EOF:
		return "end of script"
	case tokString:
		return "string \"" + clip(strings.ReplaceAll(t.Value, "\r\n", "\\n")) + "\""
	case tokTag:
		return "tag " + t.Value
	case tokNumber:
		return "number " + t.Value
	case tokIdent:
		return "identifier " + t.Value
	}
	return "\"" + t.Value + "\""
}

// convertCommand builds the AST of a command. The grammar lets the ";" after a
// command be missing so that the error can say which command lacks it (left to
// participle, the error would point at the start of the command).
func convertCommand(g *gCommand, errs *ErrorList) *Command {
	c := &Command{Pos: toPos(g.Pos), Name: strings.ToLower(g.Name)}
	c.Args = convertArgs(g.Args)
	c.Tests, c.TestList = convertTests(g.TestList, g.Test)
	if g.Block != nil {
		c.HasBlock = true
		for _, sub := range g.Block.Commands {
			c.Block = append(c.Block, convertCommand(sub, errs))
		}
	} else if !g.Semi {
		*errs = append(*errs, &Error{Pos: toPos(g.EndPos),
			Msg: fmt.Sprintf("syntax error: expected \";\" after command %q", g.Name)})
	}
	return c
}

func convertTest(g *gTest) *Test {
	t := &Test{Pos: toPos(g.Pos), Name: strings.ToLower(g.Name)}
	t.Args = convertArgs(g.Args)
	t.Tests, t.TestList = convertTests(g.TestList, g.Test)
	return t
}

func convertTests(list *gTestList, one *gTest) ([]*Test, bool) {
	if list != nil {
		out := make([]*Test, len(list.Tests))
		for i, t := range list.Tests {
			out[i] = convertTest(t)
		}
		return out, true
	}
	if one != nil {
		return []*Test{convertTest(one)}, false
	}
	return nil, false
}

func convertArgs(gs []*gArg) []*Argument {
	out := make([]*Argument, 0, len(gs))
	for _, g := range gs {
		a := &Argument{Pos: toPos(g.Pos)}
		switch {
		case g.Tag != nil:
			a.Kind, a.Tag = ArgTag, strings.ToLower((*g.Tag)[1:])
		case g.Number != nil:
			a.Kind = ArgNumber
			a.Number, _ = parseNumber(*g.Number) // the lexer checked it
		case g.String != nil:
			a.Kind, a.Strings = ArgString, []string{*g.String}
		default:
			a.Kind, a.Strings = ArgStringList, g.List.Strings
		}
		out = append(out, a)
	}
	return out
}
