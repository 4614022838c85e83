package mappings

// This file is the contract other packages code against (compiler, engine,
// smtpserver, mtactl). Keep the exported names and signatures; add, don't change.

// Flags is a set of flag letters ($Y, $N, $X ...). Letters are case-insensitive:
// 'y' and 'Y' are the same flag.
type Flags uint32

// Has reports whether the flag letter c is set.
func (f Flags) Has(c byte) bool { return f&Flag(c) != 0 }

// Flag returns the bit for letter c (A-Z, a-z); 0 for anything else.
func Flag(c byte) Flags {
	switch {
	case c >= 'a' && c <= 'z':
		return 1 << (c - 'a')
	case c >= 'A' && c <= 'Z':
		return 1 << (c - 'A')
	}
	return 0
}

// String lists the set letters in upper case, in alphabetical order ("NX").
func (f Flags) String() string {
	var b []byte
	for c := byte('A'); c <= 'Z'; c++ {
		if f.Has(c) {
			b = append(b, c)
		}
	}
	return string(b)
}

// TableSource is one table as the configuration gave it; Src is "file:line".
type TableSource struct {
	Name    string
	Src     string
	Entries []EntrySource
}

// EntrySource is one entry, pattern and template exactly as written.
type EntrySource struct {
	Pattern  string
	Template string
	Src      string
}

// SourceError is a compile error at a configuration position ("file:line").
type SourceError struct {
	Src string
	Msg string
}

func (e *SourceError) Error() string { return e.Src + ": " + e.Msg }

// Result is the outcome of running a table on one input string.
type Result struct {
	Matched bool   // some entry matched (and did not fail)
	Output  string // the output string with flag metacharacters removed
	Flags   Flags  // flags set by the deciding entries
	Src     string // "file:line" of the last entry that produced the output
}

// Env gives a mapping evaluation what lies outside the table set. Nil fields mean
// "not available": the entry using them fails.
type Env struct {
	// General looks a key up in the general database (${text} in mapping templates).
	General func(key string) (string, bool)
	// Percent returns a number in [0,100) for $?x? entries; nil means math/rand.
	Percent func() int
}

// AliasSource is one alias as the configuration gave it. Targets are addresses
// (list files already expanded into addresses by the parser).
type AliasSource struct {
	Name    string
	Targets []string
	Src     string
}
