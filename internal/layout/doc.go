// Package layout holds no code: its test checks that docs/design.md, the page a
// newcomer reads to learn which package owns what, agrees with the module —
// every package it lists exists and says what it is in a doc.go, every package
// of the module is listed, and no package imports another the page does not
// allow it to.
package layout
