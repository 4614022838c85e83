package mappings

// Placeholder bodies so that other packages compile while this package is built.
// The owner of mappings/ replaces this file; the signatures are the contract.

// Set is the compiled, immutable set of mapping tables. Safe for concurrent use.
// It round-trips through encoding/gob via MarshalBinary/UnmarshalBinary; a decoded
// Set is ready to use (indexes rebuilt in UnmarshalBinary).
type Set struct{}

// Compile compiles tables; errors are *SourceError (duplicate entries are not errors).
func Compile(tables []TableSource) (*Set, []error) { panic("mappings.Compile: not implemented") }

// Map runs table on input with the input flags in (for $:x / $;x tests). ok is false
// when the table does not exist.
func (s *Set) Map(table, input string, in Flags, env *Env) (r Result, ok bool) {
	panic("mappings.Map: not implemented")
}

// Has reports whether a table exists (names are case-insensitive).
func (s *Set) Has(table string) bool { panic("not implemented") }

// Tables lists table names with their entry counts, in configuration order.
func (s *Set) Tables() []TableInfo { panic("not implemented") }

// TableInfo is a summary line for cnbuild -show.
type TableInfo struct {
	Name    string
	Entries int
	Src     string
}

func (s *Set) MarshalBinary() ([]byte, error) { panic("not implemented") }
func (s *Set) UnmarshalBinary(b []byte) error { panic("not implemented") }

// Pattern is one compiled mapping pattern.
type Pattern struct{}

// CompilePattern compiles a mapping pattern (wildcards, globs, IP matchers, $-quoting).
func CompilePattern(p string) (*Pattern, error) { panic("not implemented") }

// Match matches the whole of s case-insensitively; captures are the saved wildcards
// in order ($0, $1 ...), each the text of s it matched.
func (p *Pattern) Match(s string) (captures []string, ok bool) { panic("not implemented") }

// Access is a decoded access-table result (PORT_ACCESS, *_SEND_ACCESS, *_MAIL_ACCESS,
// FROM_ACCESS): the flags' arguments cut from the output string in the documented order.
type Access struct {
	Matched      bool
	Allow        bool   // $Y, or matched without $N/$F
	Reject       bool   // $N or $F
	Text         string // $N/$F text ("$ " already turned into spaces)
	Enhanced     string // $X argument, e.g. "4.2.1"; "" means the default 5.7.1
	Delay        int    // $D argument, hundredths of a second (negative: address command only)
	Hold         bool   // $H
	Bitbucket    bool   // $B
	Discard      bool   // $V / $Z
	Debug        int    // $U argument
	SetFrom      string // $J argument (FROM_ACCESS)
	SetSender    string // $K argument (FROM_ACCESS)
	Tag          string // $T argument
	AddHeader    string // $A argument
	SyslogMatch  string // $< argument
	SyslogReject string // $> argument
	Src          string // deciding entry
}

// DecodeAccess cuts the flag arguments out of a mapping result.
func DecodeAccess(r Result) Access { panic("not implemented") }

// Aliases is the compiled alias table (names case-insensitive). gob-encodable via
// MarshalBinary/UnmarshalBinary.
type Aliases struct{}

// CompileAliases builds the table; errors are *SourceError (duplicate aliases found,
// no equivalence addresses for alias ...).
func CompileAliases(src []AliasSource) (*Aliases, []error) { panic("not implemented") }

// Lookup returns an alias's targets.
func (a *Aliases) Lookup(name string) (targets []string, src string, ok bool) {
	panic("not implemented")
}

// Len is the number of aliases.
func (a *Aliases) Len() int { panic("not implemented") }

func (a *Aliases) MarshalBinary() ([]byte, error) { panic("not implemented") }
func (a *Aliases) UnmarshalBinary(b []byte) error { panic("not implemented") }
