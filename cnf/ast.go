package cnf

import (
	"fmt"
	"strings"
)

// Pos is where a node came from: the file as the user named it (relative to the
// configuration directory when it lies inside it) and the 1-based physical line on
// which the node's logical line starts.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// Error is one diagnostic: "FILE:LINE: message".
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// ErrorList is every error found in a run; it is returned as an error so that a
// caller can print all of them, one per line, like a compiler.
type ErrorList []*Error

func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Err returns nil for an empty list so that `return errs.Err()` is safe.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// Config is the whole configuration directory, parsed but not yet validated across
// files (that is the compiler's job). Only IMTA is required; every other file is nil
// when absent.
type Config struct {
	Dir            string
	IMTA           *IMTAFile
	Mappings       *MappingFile
	Aliases        *AliasFile
	Options        *OptionFile            // option.dat
	JobController  *SectionFile           // job_controller.cnf
	Dispatcher     *SectionFile           // dispatcher.cnf
	ChannelOptions map[string]*OptionFile // "<channel>_option" files, keyed by channel name
	General        *GeneralFile           // general.txt: the general database for $(key)
	Sources        []Source               // every file read, includes too, in reading order
	Warnings       ErrorList              // things worth saying that do not stop a build
}

// Source is one file that went into the configuration, for the image's source hash.
type Source struct {
	Path   string // as in Pos.File
	SHA256 [32]byte
}

// IMTAFile is imta.cnf: rewrite rules, the first blank line, then channel blocks.
type IMTAFile struct {
	Rules []Rule
	// Blocks in file order, including "defaults" and "nodefaults" pseudo-blocks.
	Blocks []Block
	// RulesEnd is the blank line that ended the rule section (zero if none). The
	// compiler points at it when channel blocks look like rules ("stray blank line").
	RulesEnd Pos
	// Warnings are things worth saying that do not stop a build (ParseFS moves them
	// into Config.Warnings).
	Warnings ErrorList
}

// Rule is one rewrite rule: pattern, whitespace, template (the rest of the logical
// line, so that $?text may contain spaces).
type Rule struct {
	Pos      Pos
	Pattern  string
	Template string
}

// Block is one channel block, or a defaults/nodefaults pseudo-block (Name is then
// "defaults" or "nodefaults", lower-cased). Keyword grouping (which words are
// arguments of which keyword) is the compiler's business: the parser only splits.
type Block struct {
	Pos   Pos    // the channel-name line
	Name  string // channel name as written
	Words []Word // the words after the name on line 1 (continuations joined)
	Hosts []HostLine
	// BlankBefore is the blank line just before the block (zero for none).
	BlankBefore Pos
}

// Word is a whitespace-separated token of a channel-name line. Quotes are removed
// from quoted words ("pt5m" -> pt5m) and Quoted is set.
type Word struct {
	Pos    Pos
	Text   string
	Quoted bool
}

// HostLine is line 2 (official host name [local host alias]) or a line 3+
// (host name [proper name]) of a channel block.
type HostLine struct {
	Pos   Pos
	Name  string
	Alias string // second token, if any
}

// MappingFile is the mappings file: named tables of pattern/template entries.
type MappingFile struct {
	Tables   []MappingTable
	Warnings ErrorList
}

type MappingTable struct {
	Pos     Pos
	Name    string
	Entries []MappingEntry
}

// MappingEntry keeps pattern and template exactly as written (with their $-quoting);
// the mappings package compiles them.
type MappingEntry struct {
	Pos      Pos
	Pattern  string
	Template string
}

// AliasFile is the aliases file.
type AliasFile struct {
	Aliases []Alias
}

// Alias is "name: target, target ..." (comma or blank separated).
type Alias struct {
	Pos     Pos
	Name    string
	Targets []AliasTarget
}

// AliasTarget is one right-hand item: an address, or a "<file" / ":include:file"
// list whose addresses the parser has already read (so a missing list file is a
// build error, "cannot open alias include file").
type AliasTarget struct {
	Pos     Pos
	Addr    string   // set for an address
	List    string   // set for a list file, as written
	Members []Member // the list's addresses
}

// Member is one address of an alias list file.
type Member struct {
	Pos  Pos
	Addr string
}

// OptionFile is option.dat or a channel option file: NAME=value lines.
type OptionFile struct {
	Options []Option
}

// Option is one NAME=value. Name keeps its spelling; compare case-insensitively.
type Option struct {
	Pos   Pos
	Name  string
	Value string
}

// SectionFile is job_controller.cnf or dispatcher.cnf: global options, then
// [TYPE=value] sections.
type SectionFile struct {
	Global   []Option
	Sections []Section
}

type Section struct {
	Pos     Pos
	Type    string // upper-cased: POOL, CHANNEL, SERVICE ...
	Value   string // as written
	Options []Option
}

// GeneralFile is general.txt, the general database consulted by $(key) in rewrite
// rules: "key value" lines, value being the rest of the line.
type GeneralFile struct {
	Entries []GeneralEntry
}

type GeneralEntry struct {
	Pos   Pos
	Key   string
	Value string
}
