package sieve

// Limits bound what a script may cost, so that a user's script cannot make the
// MTA spend unbounded memory or time. A zero field takes its default.
type Limits struct {
	// MaxScriptSize is the largest script accepted, in bytes.
	MaxScriptSize int
	// MaxNesting bounds how deep blocks and tests may nest ("not not not ..."
	// counts as deep as "if ... { if ... {").
	MaxNesting int
	// MaxCommands bounds the number of commands and tests in a script.
	MaxCommands int
	// MaxStringLength bounds a string in the script and a variable's value.
	MaxStringLength int
	// MaxVariables bounds the number of distinct variables a script may set.
	MaxVariables int
	// MaxRedirects bounds the redirect actions of one evaluation; one more is a
	// runtime error (a message forwarded to a hundred addresses is abuse).
	MaxRedirects int
	// MaxWork bounds the total work of one evaluation, counted in characters
	// compared and copied. Sieve has no loops, but a :matches pattern with many
	// wildcards against long header fields, repeated over many rules, could
	// still cost much; past this the evaluation stops with a runtime error.
	MaxWork int64
}

// DefaultLimits returns the limits used for every zero field of a Limits. A
// megabyte of script is far more than any filter we have seen; ten redirects
// is what a user forwarding to a household needs.
func DefaultLimits() Limits {
	return Limits{
		MaxScriptSize:   1 << 20,
		MaxNesting:      64,
		MaxCommands:     20000,
		MaxStringLength: 64 << 10,
		MaxVariables:    256,
		MaxRedirects:    10,
		MaxWork:         50_000_000,
	}
}

// withDefaults fills the zero fields.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	orDefault(&l.MaxScriptSize, d.MaxScriptSize)
	orDefault(&l.MaxNesting, d.MaxNesting)
	orDefault(&l.MaxCommands, d.MaxCommands)
	orDefault(&l.MaxStringLength, d.MaxStringLength)
	orDefault(&l.MaxVariables, d.MaxVariables)
	orDefault(&l.MaxRedirects, d.MaxRedirects)
	orDefault(&l.MaxWork, d.MaxWork)
	return l
}

func orDefault[T int | int64](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}
