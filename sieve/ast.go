package sieve

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is a place in a script: file name, line and column (both from 1; the
// column counts characters, not bytes).
type Pos struct {
	File   string
	Line   int
	Column int
}

// String is "file:line:column", or "line:column" for a script without a name.
func (p Pos) String() string {
	if p.File == "" {
		return fmt.Sprintf("%d:%d", p.Line, p.Column)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// Short is "file:line", what a log line or the test command prints for an action.
func (p Pos) Short() string {
	if p.File == "" {
		return fmt.Sprintf("line %d", p.Line)
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Position returns p; every action embeds a Pos, so every action has Position.
func (p Pos) Position() Pos { return p }

// Error is one problem in a script, found while parsing, checking or evaluating it.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// ErrorList is every problem the checker found in a script, in the order of the
// script. Compile returns one as its error when there is at least one problem.
type ErrorList []*Error

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// sortErrors orders errors by position, so that the first one printed is the first
// one in the script whatever order the checker met them in.
func sortErrors(l ErrorList) {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i].Pos, l[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

// File is a parsed script: its top-level commands in order.
type File struct {
	Name     string
	Commands []*Command
}

// Command is one command of a script ("if", "fileinto", "require" ...).
type Command struct {
	Pos  Pos
	Name string // lower case: Sieve identifiers ignore case
	Args []*Argument
	// Tests is the test of "if"/"elsif", or the tests of a test list.
	Tests []*Test
	// TestList says the tests were written in parentheses.
	TestList bool
	// Block holds the commands between braces; HasBlock says there were braces
	// (an empty block has HasBlock and no commands).
	Block    []*Command
	HasBlock bool
}

// Test is one test ("header", "allof" ...), with its own tests for allof,
// anyof and not.
type Test struct {
	Pos      Pos
	Name     string
	Args     []*Argument
	Tests    []*Test
	TestList bool
}

// ArgKind says what an argument is.
type ArgKind int

const (
	ArgTag        ArgKind = iota // :name
	ArgNumber                    // 10, 5K
	ArgString                    // "text" or text: ... .
	ArgStringList                // ["a", "b"]
)

func (k ArgKind) String() string {
	switch k {
	case ArgTag:
		return "tagged argument"
	case ArgNumber:
		return "number"
	case ArgString:
		return "string"
	default:
		return "string list"
	}
}

// Argument is one argument of a command or test.
type Argument struct {
	Pos     Pos
	Kind    ArgKind
	Tag     string   // for ArgTag: the name, lower case, without the colon
	Number  uint64   // for ArgNumber: the value with its quantifier applied
	Strings []string // for ArgString (one) and ArgStringList
}

// describe is how an argument is named in an error message.
func (a *Argument) describe() string {
	switch a.Kind {
	case ArgTag:
		return ":" + a.Tag
	case ArgNumber:
		return fmt.Sprintf("number %d", a.Number)
	case ArgString:
		return fmt.Sprintf("string %q", clip(a.Strings[0]))
	default:
		return "string list"
	}
}

// clip shortens a string quoted in an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}
