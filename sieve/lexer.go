package sieve

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/alecthomas/participle/v2/lexer"
)

// The lexer is written by hand rather than from participle's regular-expression
// rules because Sieve's multi-line strings (text: ... a line holding only ".")
// and its escapes are easier to get right, and to report clearly, as code; the
// grammar itself is participle's (grammar.go). The lexer also enforces the
// string-length and nesting limits, so that the recursive-descent parser never
// sees input deep enough to hurt it.

// Token types. The names are what the grammar refers to.
const (
	tokIdent lexer.TokenType = iota + 1
	tokTag
	tokNumber
	tokString
	tokPunct
)

// lexDef tells participle which token names exist; the tokens themselves come
// from lexAll.
type lexDef struct{}

func (lexDef) Symbols() map[string]lexer.TokenType {
	return map[string]lexer.TokenType{
		"EOF": lexer.EOF, "Ident": tokIdent, "Tag": tokTag,
		"Number": tokNumber, "String": tokString, "Punct": tokPunct,
	}
}

// Lex is only there to satisfy lexer.Definition: the parser is always fed the
// tokens lexAll made.
func (lexDef) Lex(string, io.Reader) (lexer.Lexer, error) {
	return nil, fmt.Errorf("sieve: use lexAll")
}

// scanner walks a script's source.
type scanner struct {
	src    string
	file   string
	off    int
	line   int
	col    int
	limits Limits
	toks   []lexer.Token
	// Nesting: braces open, and for each open parenthesis the run of tests
	// nested without brackets before it ("not not exists"); see nest.
	braces int
	chains []int
	chain  int
}

// lexAll cuts src into tokens (comments and white space dropped), the last one EOF.
func lexAll(file, src string, limits Limits) ([]lexer.Token, error) {
	s := &scanner{src: src, file: file, line: 1, col: 1, limits: limits}
	for {
		tok, err := s.next()
		if err != nil {
			return nil, err
		}
		s.toks = append(s.toks, tok)
		if tok.Type == lexer.EOF {
			return s.toks, nil
		}
		if err := s.nest(tok); err != nil {
			return nil, err
		}
	}
}

func (s *scanner) pos() lexer.Position {
	return lexer.Position{Filename: s.file, Offset: s.off, Line: s.line, Column: s.col}
}

func (s *scanner) errorf(p lexer.Position, format string, args ...any) error {
	return &Error{Pos: toPos(p), Msg: fmt.Sprintf(format, args...)}
}

func toPos(p lexer.Position) Pos { return Pos{File: p.Filename, Line: p.Line, Column: p.Column} }

// advance moves over n bytes, keeping line and column.
func (s *scanner) advance(n int) {
	for _, r := range s.src[s.off : s.off+n] {
		if r == '\n' {
			s.line++
			s.col = 1
		} else {
			s.col++
		}
	}
	s.off += n
}

// next returns the next token, skipping white space and comments.
func (s *scanner) next() (lexer.Token, error) {
	for s.off < len(s.src) {
		c := s.src[s.off]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			s.advance(1)
		case c == '#':
			n := strings.IndexByte(s.src[s.off:], '\n')
			if n < 0 {
				n = len(s.src) - s.off
			}
			s.advance(n)
		case strings.HasPrefix(s.src[s.off:], "/*"):
			p := s.pos()
			n := strings.Index(s.src[s.off+2:], "*/")
			if n < 0 {
				return lexer.Token{}, s.errorf(p, "comment /* is not closed")
			}
			s.advance(n + 4)
		default:
			return s.token()
		}
	}
	return lexer.Token{Type: lexer.EOF, Pos: s.pos()}, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isIdentChar(c byte) bool { return isIdentStart(c) || '0' <= c && c <= '9' }

// token reads one token at a non-blank position.
func (s *scanner) token() (lexer.Token, error) {
	p := s.pos()
	c := s.src[s.off]
	switch {
	case strings.ContainsRune(";,()[]{}", rune(c)):
		s.advance(1)
		return lexer.Token{Type: tokPunct, Value: string(c), Pos: p}, nil
	case c == '"':
		return s.quoted(p)
	case c == ':':
		n := s.identLen(s.off + 1)
		if n == 0 {
			return lexer.Token{}, s.errorf(p, "a tag needs a name after the colon")
		}
		s.advance(1 + n)
		return lexer.Token{Type: tokTag, Value: s.src[p.Offset:s.off], Pos: p}, nil
	case '0' <= c && c <= '9':
		return s.number(p)
	case isIdentStart(c):
		n := s.identLen(s.off)
		word := s.src[s.off : s.off+n]
		if strings.EqualFold(word, "text") && s.off+n < len(s.src) && s.src[s.off+n] == ':' {
			return s.multiLine(p)
		}
		s.advance(n)
		return lexer.Token{Type: tokIdent, Value: word, Pos: p}, nil
	}
	r, _ := utf8.DecodeRuneInString(s.src[s.off:])
	return lexer.Token{}, s.errorf(p, "unexpected character %q", r)
}

func (s *scanner) identLen(at int) int {
	if at >= len(s.src) || !isIdentStart(s.src[at]) {
		return 0
	}
	n := 1
	for at+n < len(s.src) && isIdentChar(s.src[at+n]) {
		n++
	}
	return n
}

// number reads digits and an optional K, M or G quantifier (RFC 5228 §2.4.1).
func (s *scanner) number(p lexer.Position) (lexer.Token, error) {
	n := 0
	for s.off+n < len(s.src) && '0' <= s.src[s.off+n] && s.src[s.off+n] <= '9' {
		n++
	}
	if s.off+n < len(s.src) && strings.IndexByte("KkMmGg", s.src[s.off+n]) >= 0 {
		n++
	}
	text := s.src[s.off : s.off+n]
	s.advance(n)
	if s.off < len(s.src) && isIdentChar(s.src[s.off]) {
		return lexer.Token{}, s.errorf(p, "number %s is followed by %q", text, s.src[s.off])
	}
	if _, ok := parseNumber(text); !ok {
		return lexer.Token{}, s.errorf(p, "number %s is too large", text)
	}
	return lexer.Token{Type: tokNumber, Value: text, Pos: p}, nil
}

// parseNumber reads a number token; ok is false when it does not fit 63 bits.
func parseNumber(text string) (uint64, bool) {
	mult := uint64(1)
	switch text[len(text)-1] {
	case 'K', 'k':
		mult = 1 << 10
	case 'M', 'm':
		mult = 1 << 20
	case 'G', 'g':
		mult = 1 << 30
	}
	if mult != 1 {
		text = text[:len(text)-1]
	}
	var v uint64
	for i := 0; i < len(text); i++ {
		if v > (1<<63-1)/10 {
			return 0, false
		}
		v = v*10 + uint64(text[i]-'0')
	}
	if v > (1<<63-1)/mult {
		return 0, false
	}
	return v * mult, true
}

// quoted reads a quoted string: \" and \\ stand for themselves, and a backslash
// before any other character is dropped (RFC 5228 §2.4.2).
func (s *scanner) quoted(p lexer.Position) (lexer.Token, error) {
	var b strings.Builder
	i := s.off + 1
	for {
		if i >= len(s.src) {
			return lexer.Token{}, s.errorf(p, "string is not closed")
		}
		c := s.src[i]
		if c == '"' {
			break
		}
		if c == '\\' && i+1 < len(s.src) {
			i++
			c = s.src[i]
		}
		b.WriteByte(c)
		if b.Len() > s.limits.MaxStringLength {
			return lexer.Token{}, s.errorf(p, "string is longer than %d bytes", s.limits.MaxStringLength)
		}
		i++
	}
	s.advance(i + 1 - s.off)
	return lexer.Token{Type: tokString, Value: b.String(), Pos: p}, nil
}

// multiLine reads "text:" up to a line holding only "." (RFC 5228 §2.4.2). A
// line starting with ".." loses one dot. Lines may end in CRLF or LF; the value
// has CRLF line ends either way, as the RFC's grammar writes them.
func (s *scanner) multiLine(p lexer.Position) (lexer.Token, error) {
	i := s.off + len("text:")
	for i < len(s.src) && (s.src[i] == ' ' || s.src[i] == '\t') {
		i++
	}
	if i < len(s.src) && s.src[i] == '#' {
		for i < len(s.src) && s.src[i] != '\n' {
			i++
		}
	} else if strings.HasPrefix(s.src[i:], "\r\n") {
		i++
	}
	if i >= len(s.src) || s.src[i] != '\n' {
		return lexer.Token{}, s.errorf(p, "text: must be followed by the end of the line")
	}
	i++
	var b strings.Builder
	for {
		if i >= len(s.src) {
			return lexer.Token{}, s.errorf(p, "multi-line string is not closed by a line holding only \".\"")
		}
		end := strings.IndexByte(s.src[i:], '\n')
		if end < 0 {
			end = len(s.src) - i
		}
		line := strings.TrimSuffix(s.src[i:i+end], "\r")
		next := i + end + 1
		if line == "." {
			s.advance(min(next, len(s.src)) - s.off)
			return lexer.Token{Type: tokString, Value: b.String(), Pos: p}, nil
		}
		if strings.HasPrefix(line, "..") {
			line = line[1:]
		}
		b.WriteString(line)
		b.WriteString("\r\n")
		if b.Len() > s.limits.MaxStringLength {
			return lexer.Token{}, s.errorf(p, "string is longer than %d bytes", s.limits.MaxStringLength)
		}
		i = next
	}
}

// nest keeps the nesting depth and fails past the limit. Braces nest blocks;
// within a command, every identifier after the first is a test nested in the
// one before ("if not exists ..."), and a parenthesis starts a list of tests
// one level deeper still.
func (s *scanner) nest(tok lexer.Token) error {
	switch {
	case tok.Type == tokIdent:
		s.chain++
	case tok.Value == "{" && tok.Type == tokPunct:
		s.braces++
		s.chain = 0
	case tok.Value == "}" && tok.Type == tokPunct:
		s.braces--
		s.chain = 0
	case tok.Value == "(" && tok.Type == tokPunct:
		s.chains = append(s.chains, s.chain)
		s.chain = 0
	case tok.Value == ")" && tok.Type == tokPunct:
		if n := len(s.chains); n > 0 {
			s.chain, s.chains = s.chains[n-1], s.chains[:n-1]
		}
	case (tok.Value == ";" || tok.Value == ",") && tok.Type == tokPunct:
		s.chain = 0
	}
	depth := s.braces + s.chain
	for _, c := range s.chains {
		depth += c + 1
	}
	if depth > s.limits.MaxNesting {
		return s.errorf(tok.Pos, "nesting deeper than %d levels", s.limits.MaxNesting)
	}
	return nil
}
