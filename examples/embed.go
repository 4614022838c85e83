package examples

import (
	"embed"
	"io/fs"
)

//go:embed default
var defaultFS embed.FS

// Default is the configuration built into mtad and mtactl, rooted at the
// examples/default directory (imta.cnf is at its top).
var Default fs.FS = mustSub(defaultFS, "default")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		// fs.Sub fails only on an invalid path, which is a constant here.
		panic(err)
	}
	return sub
}
