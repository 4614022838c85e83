package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"mtad.dev/mta/compiler"
)

// cmdVersion prints the program versions and, when DIR has one, the compiled
// image's header: enough to tell whether the running configuration is the one on disk.
func cmdVersion(a *app, args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(a.stderr, "mtactl version: unexpected argument %q\n", args[0])
		return 2
	}
	fmt.Fprintf(a.stdout, "%s (image format %d)\n", compiler.Version, compiler.FormatVersion)
	fmt.Fprintf(a.stdout, "%s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if a.configDir == "" {
		fmt.Fprintln(a.stdout, "configuration: built-in (no -config)")
		return 0
	}
	path := a.imagePath()
	h, err := compiler.ReadHeader(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(a.stdout, "image: none (%s not found)\n", path)
		return 0
	case err != nil:
		fmt.Fprintf(a.stderr, "mtactl: %v\n", err)
		return 1
	}
	fmt.Fprintf(a.stdout, "image: %s\n", path)
	fmt.Fprintf(a.stdout, "  built by    = %s\n", h.BuiltBy)
	fmt.Fprintf(a.stdout, "  build time  = %s\n", h.BuildTime.Format(time.RFC3339))
	fmt.Fprintf(a.stdout, "  source hash = %s\n", hex.EncodeToString(h.SourceHash[:]))
	return 0
}
