package cnf

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
)

var update = flag.Bool("update", false, "rewrite the expected output of golden files in testdata/golden")

// A golden file is a tiny txtar: "-- name --" lines start the files of a configuration
// directory; the section named "want" is the expected dump of ParseFS over the others.

const wantSection = "want"

type archiveFile struct {
	name string
	data []byte
}

func parseArchive(data []byte) (comment []byte, files []archiveFile) {
	var cur *archiveFile
	for len(data) > 0 {
		var ln []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			ln, data = data[:i+1], data[i+1:]
		} else {
			ln, data = data, nil
		}
		t := strings.TrimRight(string(ln), "\r\n")
		if strings.HasPrefix(t, "-- ") && strings.HasSuffix(t, " --") && len(t) > 6 {
			files = append(files, archiveFile{name: strings.TrimSpace(t[3 : len(t)-3])})
			cur = &files[len(files)-1]
			continue
		}
		if cur == nil {
			comment = append(comment, ln...)
		} else {
			cur.data = append(cur.data, ln...)
		}
	}
	return comment, files
}

func formatArchive(comment []byte, files []archiveFile) []byte {
	var b bytes.Buffer
	b.Write(comment)
	for _, f := range files {
		fmt.Fprintf(&b, "-- %s --\n", f.name)
		b.Write(f.data)
	}
	return b.Bytes()
}

func TestGolden(t *testing.T) {
	paths, err := filepath.Glob("testdata/golden/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no golden files")
	}
	for _, p := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(p), ".txtar"), func(t *testing.T) {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			comment, files := parseArchive(data)
			fsys := fstest.MapFS{}
			want, wantAt := "", -1
			for i, f := range files {
				if f.name == wantSection {
					want, wantAt = string(f.data), i
					continue
				}
				fsys[f.name] = &fstest.MapFile{Data: f.data}
			}
			c, err := ParseFS(fsys)
			got := dumpConfig(c, err)
			if *update {
				if wantAt < 0 {
					files = append(files, archiveFile{name: wantSection})
					wantAt = len(files) - 1
				}
				files[wantAt].data = []byte(got)
				if err := os.WriteFile(p, formatArchive(comment, files), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("dump differs from %s (run go test ./cnf -run TestGolden -update to accept)\n--- got\n%s--- want\n%s", p, got, want)
			}
		})
	}
}

// dumpConfig prints everything a parse produced, one node per line, for golden files.
func dumpConfig(c *Config, err error) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	if f := c.IMTA; f != nil {
		for _, r := range f.Rules {
			w("rule %s %q %q", r.Pos, r.Pattern, r.Template)
		}
		if f.RulesEnd.Line != 0 {
			w("rules-end %s", f.RulesEnd)
		}
		for i := range f.Blocks {
			bl := &f.Blocks[i]
			w("block %s %q blank-before=%s", bl.Pos, bl.Name, bl.BlankBefore)
			for _, wd := range bl.Words {
				q := ""
				if wd.Quoted {
					q = " quoted"
				}
				w("  word %s %q%s", wd.Pos, wd.Text, q)
			}
			for _, h := range bl.Hosts {
				w("  host %s %q alias=%q", h.Pos, h.Name, h.Alias)
			}
			if n := f.BlankLineNote(bl); n != nil {
				w("  %s", n)
			}
		}
	}
	if f := c.Mappings; f != nil {
		for _, t := range f.Tables {
			w("table %s %q", t.Pos, t.Name)
			for _, e := range t.Entries {
				w("  entry %s %q %q", e.Pos, e.Pattern, e.Template)
			}
		}
	}
	if f := c.Aliases; f != nil {
		for _, a := range f.Aliases {
			w("alias %s %q", a.Pos, a.Name)
			for _, t := range a.Targets {
				if t.List != "" {
					w("  list %s %q", t.Pos, t.List)
					for _, m := range t.Members {
						w("    member %s %q", m.Pos, m.Addr)
					}
				} else {
					w("  addr %s %q", t.Pos, t.Addr)
				}
			}
		}
	}
	dumpOptions := func(label string, f *OptionFile) {
		if f == nil {
			return
		}
		w("%s", label)
		for _, o := range f.Options {
			w("  option %s %q=%q", o.Pos, o.Name, o.Value)
		}
	}
	dumpOptions("option.dat", c.Options)
	for _, label := range []string{FileJobController, FileDispatcher} {
		f := c.JobController
		if label == FileDispatcher {
			f = c.Dispatcher
		}
		if f == nil {
			continue
		}
		w("%s", label)
		for _, o := range f.Global {
			w("  global %s %q=%q", o.Pos, o.Name, o.Value)
		}
		for _, s := range f.Sections {
			w("  section %s [%s=%s]", s.Pos, s.Type, s.Value)
			for _, o := range s.Options {
				w("    option %s %q=%q", o.Pos, o.Name, o.Value)
			}
		}
	}
	channels := make([]string, 0, len(c.ChannelOptions))
	for ch := range c.ChannelOptions {
		channels = append(channels, ch)
	}
	sort.Strings(channels)
	for _, ch := range channels {
		dumpOptions("channel options "+ch, c.ChannelOptions[ch])
	}
	if f := c.General; f != nil {
		for _, e := range f.Entries {
			w("general %s %q %q", e.Pos, e.Key, e.Value)
		}
	}
	for _, s := range c.Sources {
		w("source %s", s.Path)
	}
	for _, e := range c.Warnings {
		w("warning %s", e)
	}
	if err != nil {
		for _, l := range strings.Split(err.Error(), "\n") {
			w("error %s", l)
		}
	}
	return b.String()
}
