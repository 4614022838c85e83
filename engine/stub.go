package engine

// Placeholder bodies so that other packages compile while this package is built.
// The owner of engine/ replaces this file; the signatures are the contract.

import "mtad.dev/mta/mappings"

// RuleSet is the compiled, immutable rule engine: rules indexed by pattern, the
// channel table by host name, templates pre-parsed. Safe for concurrent use. It
// round-trips through encoding/gob via MarshalBinary/UnmarshalBinary and is ready to
// use after decoding.
type RuleSet struct{}

// Compile builds a RuleSet. Errors are *SourceError with the rule's file:line.
func Compile(cfg Config) (*RuleSet, []error) { panic("engine.Compile: not implemented") }

// Rewrite rewrites and routes one address.
func (rs *RuleSet) Rewrite(req Request) Result { panic("engine.Rewrite: not implemented") }

// Resolve rewrites an envelope recipient, routes it and expands aliases when it lands
// on the local channel (each expansion rewritten again, nested to MaxAliasLevels).
func (rs *RuleSet) Resolve(req Request) Resolution { panic("engine.Resolve: not implemented") }

// Channel returns a channel by name.
func (rs *RuleSet) Channel(name string) (*Channel, bool) { panic("not implemented") }

// Channels lists the channel table in configuration order.
func (rs *RuleSet) Channels() []Channel { panic("not implemented") }

// NumRules is the number of rewrite rules.
func (rs *RuleSet) NumRules() int { panic("not implemented") }

func (rs *RuleSet) MarshalBinary() ([]byte, error) { panic("not implemented") }
func (rs *RuleSet) UnmarshalBinary(b []byte) error { panic("not implemented") }

// Attach connects a decoded RuleSet to the mapping tables and aliases of the same
// image (they are serialised beside it, not inside it). Compile attaches those of
// its Config itself.
func (rs *RuleSet) Attach(m *mappings.Set, a *mappings.Aliases) { panic("not implemented") }
