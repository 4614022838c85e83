package cnf

import (
	"bytes"
	"fmt"
	"strings"
)

// MaxIncludeDepth is how deep "<file" includes may nest: the top file may include a
// file (level 1), which may include another (level 2), which may include a third
// (level 3); an include inside that third file is an error. The product's
// documentation says "three levels" without saying whether the top file counts; we do
// not count it, which is the more permissive reading.
const MaxIncludeDepth = 3

// Physical line limits, in bytes without the line terminator.
const (
	LimitIMTA     = 252  // imta.cnf, job_controller.cnf, dispatcher.cnf, option files
	LimitMappings = 4096 // mappings (MS 6.3)
	LimitAliases  = 1024 // aliases (MS 6.x)
	// LimitGeneral is our choice for general.txt, whose line limit the product's
	// documentation does not give; we use the aliases file's.
	LimitGeneral = 1024
)

// Opener reads an included file (or an alias list file). name is the path exactly as
// written after "<"; the opener resolves it (relative paths against the configuration
// directory) and returns the name to record in Pos.File, which also identifies the
// file for include-cycle detection.
type Opener func(name string) (file string, data []byte, err error)

// lineConfig is what differs between file formats at the physical-line level.
type lineConfig struct {
	limit        int    // physical line limit in bytes
	commentChars string // column-1 characters that start a comment
	openErr      string // product text for an include that cannot be opened
}

var (
	imtaLines     = lineConfig{LimitIMTA, "!", "cannot open include file"}
	optionLines   = lineConfig{LimitIMTA, "!;#", "cannot open include file"}
	sectionLines  = lineConfig{LimitIMTA, "!", "cannot open include file"}
	mappingLines  = lineConfig{LimitMappings, "!", "cannot open include file"}
	aliasLines    = lineConfig{LimitAliases, "!", "cannot open alias include file"}
	generalLines  = lineConfig{LimitGeneral, "!", "cannot open include file"}
	listFileLines = lineConfig{LimitAliases, "!", "cannot open alias include file"}
)

// line is one logical line after comments, includes and continuations are resolved.
type line struct {
	Pos   Pos
	Text  string // physical lines joined, without the "\" and line terminators
	Blank bool   // empty or only blanks: structurally meaningful in imta.cnf and mappings
	// conts records where each continuation physical line starts in Text (nil when the
	// logical line is a single physical line), so that words keep their own line.
	conts []cont
}

type cont struct {
	off  int // byte offset in Text
	line int // physical line number
}

// posAt is the position of byte offset off of the logical line.
func (l *line) posAt(off int) Pos {
	p := l.Pos
	for _, c := range l.conts {
		if off >= c.off {
			p.Line = c.line
		}
	}
	return p
}

// lineReader turns files into logical lines, splicing includes in.
type lineReader struct {
	cfg   lineConfig
	open  Opener
	errs  ErrorList
	out   []line
	chain []string // files being read, outermost first, for cycle detection
}

func readLines(cfg lineConfig, name string, src []byte, open Opener) ([]line, ErrorList) {
	// One logical line per physical line is the common case: size for it once.
	r := &lineReader{cfg: cfg, open: open, out: make([]line, 0, bytes.Count(src, []byte{'\n'})+1)}
	r.readFile(name, src)
	return r.out, r.errs
}

func (r *lineReader) errorf(p Pos, format string, args ...any) {
	r.errs = append(r.errs, &Error{Pos: p, Msg: fmt.Sprintf(format, args...)})
}

// isBlank reports a line that is empty or holds only spaces and tabs.
func isBlank(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' && s[i] != '\t' {
			return false
		}
	}
	return true
}

// readFile appends the logical lines of one file. How continuation works (the product's
// documentation only says that a trailing "\" continues a line and that a comment line
// stays a comment; the rest are our choices, with the reason given):
//   - a physical line whose last non-blank character is "\" continues on the next
//     line; blanks after the "\" are forgiven, because they are invisible in an editor
//     and the product's intent is unambiguous.
//   - the "\" is removed and the next physical line is appended as it is (leading blanks
//     kept), so that a long LDAP URL can be split in the middle of a token.
//   - comment lines met while continuing are skipped and the logical line goes on (the
//     product's documentation: "a continuation line starting with a comment character
//     is still a comment").
//   - a blank line met while continuing ends the logical line and still counts as a
//     blank line, so a stray "\" on a block's last line does not swallow the blank line
//     that separates it from the next block.
//   - an include line met while continuing is text, not an include, so a continued
//     value that happens to start with "<" is not read as a file name.
func (r *lineReader) readFile(name string, data []byte) {
	r.chain = append(r.chain, name)
	defer func() { r.chain = r.chain[:len(r.chain)-1] }()

	// One string for the whole file: single-line logical lines are substrings of it,
	// so a 100 000-line mapping file costs no allocation per line.
	src := string(data)
	var (
		cur     line // logical line being continued, when inCont
		inCont  bool
		curText strings.Builder
	)
	flush := func() {
		if inCont {
			cur.Text = curText.String()
			r.out = append(r.out, cur)
			inCont = false
			curText.Reset()
		}
	}
	lineNo := 0
	for len(src) > 0 {
		lineNo++
		var phys string
		if i := strings.IndexByte(src, '\n'); i >= 0 {
			phys, src = src[:i], src[i+1:]
		} else {
			phys, src = src, ""
		}
		phys = strings.TrimSuffix(phys, "\r")
		pos := Pos{File: name, Line: lineNo}
		if len(phys) > r.cfg.limit {
			r.errorf(pos, "line too long (%d bytes; the limit is %d)", len(phys), r.cfg.limit)
		}
		if len(phys) > 0 && strings.IndexByte(r.cfg.commentChars, phys[0]) >= 0 {
			continue
		}
		if isBlank(phys) {
			flush()
			r.out = append(r.out, line{Pos: pos, Blank: true})
			continue
		}
		if !inCont && phys[0] == '<' {
			r.include(pos, strings.TrimSpace(phys[1:]))
			continue
		}
		body := strings.TrimRight(phys, " \t")
		continued := body[len(body)-1] == '\\'
		switch {
		case !continued && !inCont:
			r.out = append(r.out, line{Pos: pos, Text: phys})
			continue
		case continued:
			body = body[:len(body)-1]
		default:
			body = phys
		}
		if !inCont {
			cur, inCont = line{Pos: pos}, true
		} else {
			cur.conts = append(cur.conts, cont{off: curText.Len(), line: lineNo})
		}
		curText.WriteString(body)
		if !continued {
			flush()
		}
	}
	flush()
}

func (r *lineReader) include(pos Pos, name string) {
	if name == "" {
		r.errorf(pos, "%s: no file name after \"<\"", r.cfg.openErr)
		return
	}
	if len(r.chain) > MaxIncludeDepth {
		r.errorf(pos, "include nesting too deep: %q (at most %d levels)", name, MaxIncludeDepth)
		return
	}
	if r.open == nil {
		r.errorf(pos, "%s: %s: includes are not available here", r.cfg.openErr, name)
		return
	}
	file, data, err := r.open(name)
	if err != nil {
		r.errorf(pos, "%s: %s: %v", r.cfg.openErr, name, err)
		return
	}
	for i, f := range r.chain {
		if f == file {
			chain := append(append([]string(nil), r.chain[i:]...), file)
			r.errorf(pos, "include cycle: %s", strings.Join(chain, " -> "))
			return
		}
	}
	r.readFile(file, data)
}
