package compiler

import (
	"fmt"
	"slices"
	"strings"

	"mtad.dev/mta/cnf"
)

// Channel keywords that this version accepts without acting on them. Real product
// configurations must keep building, so none of them is an error; but an
// administrator who writes "loopcheck" must learn if it does nothing, so each such
// keyword is either harmless by construction (no warning) or reported by cnbuild
// as a warning at its position. The keyword table (keywordtable.go) decides it,
// keyword by keyword, with an effect class and a reason; the documentation's table
// is generated from it (KeywordEffectTable).

// effectClass says why a keyword has no effect.
type effectClass uint8

const (
	// irrelevant: the keyword tunes a mechanism this architecture does not have
	// (queue subdirectories, job batching, periodic jobs ...); nothing is lost.
	irrelevant effectClass = iota + 1
	// asBuilt: the keyword asks for what this version always does (mostly the
	// product's default spelled out, such as noinner or identnonenumeric).
	asBuilt
	// notImplemented: a feature this version lacks; cnbuild warns.
	notImplemented
)

// noEffectWarning is the cnbuild warning for keyword kw, "" when it has an effect
// or its lack of one is harmless.
func noEffectWarning(kw Keyword) string {
	e, ok := keywordIndex[kw.Name]
	if !ok || e.effect != notImplemented {
		return ""
	}
	if len(e.asArgs) > 0 && len(kw.Args) > 0 && slices.Contains(e.asArgs, kw.Args[0]) {
		return ""
	}
	return fmt.Sprintf("channel keyword %q is not implemented in this version; it has no effect (%s)", kw.Name, e.why)
}

// warnNoEffect appends the warnings of noEffectWarning for the keywords of one
// line; a defaults line is reported once, at its own position.
func warnNoEffect(kws []Keyword, warns *cnf.ErrorList) {
	for _, k := range kws {
		if k.Unknown {
			continue
		}
		if msg := noEffectWarning(k); msg != "" {
			*warns = append(*warns, &cnf.Error{Pos: k.Pos, Msg: msg})
		}
	}
}

// KeywordEffectTable renders the table of docs/configuration.md's section
// "Channel keywords accepted without effect": one row per status and reason, its
// keywords in the keyword table's order, rows in the order of their first
// keyword. A test compares the document with it (and rewrites it with -update).
func KeywordEffectTable() string {
	type row struct {
		names  []string
		status string
		why    string
	}
	var rows []*row
	byKey := map[string]*row{}
	for i := range keywordSpecs {
		e := &keywordSpecs[i]
		if e.effect == 0 {
			continue
		}
		st := effectStatus(e)
		key := st + "\x00" + e.why
		r := byKey[key]
		if r == nil {
			r = &row{status: st, why: e.why}
			byKey[key] = r
			rows = append(rows, r)
		}
		r.names = append(r.names, "`"+e.name+"`")
	}
	var b strings.Builder
	b.WriteString("| Keywords | Status | Why |\n|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", strings.Join(r.names, ", "), r.status, r.why)
	}
	return b.String()
}

// effectStatus is the documentation's "Status" cell of a keyword without effect.
func effectStatus(e *keywordSpec) string {
	switch {
	case e.effect == notImplemented && len(e.asArgs) > 0:
		return fmt.Sprintf("**not implemented** except with argument %s (accepted: what mtad does anyway)", strings.Join(e.asArgs, " or "))
	case e.effect == notImplemented:
		return "**not implemented**: cnbuild warns"
	case e.effect == asBuilt:
		return "accepted: what mtad does anyway"
	}
	return "accepted: irrelevant here"
}
