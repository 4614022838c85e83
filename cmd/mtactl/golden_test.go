package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/compiler"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with the current output")

// Golden files (testdata/*.txt), caddy-style:
//
//	mtactl -config $DIR cnbuild -check      <- the command line
//	-- imta.cnf --                          <- optional files written into $DIR
//	...
//	-- @setup --                            <- optional setup steps, one per line
//	cnbuild
//	----------                              <- separator
//	expected stdout, then stderr, then "[exit N]"
//
// $DIR is a fresh temporary directory holding the files; $SITE is a fresh copy of
// examples/site. Both are written back as $DIR / $SITE in the output. Setup steps:
// "cnbuild" (compile $DIR or, with an argument, $DIR/ARG, into its compiled.image),
// "cnbuild-site", "image-version N" (patch the format version of $DIR's image),
// "image-flip" (flip one payload byte of $DIR's image), "stdin TEXT" (a line of
// standard input; repeatable).
const separator = "----------"

// fixedNow makes build times in the output stable.
func fixedNow() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

type golden struct {
	cmd      string
	files    map[string]string
	order    []string
	setup    []string
	expected string
	header   string // everything before the separator, kept verbatim on -update
}

func parseGolden(t *testing.T, data string) golden {
	t.Helper()
	head, want, ok := strings.Cut(data, "\n"+separator+"\n")
	if !ok {
		t.Fatalf("no %q separator line", separator)
	}
	g := golden{files: map[string]string{}, expected: want, header: head}
	lines := strings.Split(head, "\n")
	g.cmd = lines[0]
	cur := ""
	var buf []string
	flush := func() {
		if cur == "" {
			return
		}
		body := strings.Join(buf, "\n")
		if cur == "@setup" {
			for _, l := range buf {
				if l = strings.TrimSpace(l); l != "" {
					g.setup = append(g.setup, l)
				}
			}
		} else {
			g.files[cur] = body + "\n"
			g.order = append(g.order, cur)
		}
		buf = nil
	}
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "-- ") && strings.HasSuffix(l, " --") && len(l) > 6 {
			flush()
			cur = strings.TrimSpace(l[3 : len(l)-3])
			continue
		}
		buf = append(buf, l)
	}
	flush()
	return g
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		if d.Name() == compiler.ImageName {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func runGolden(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	g := parseGolden(t, string(data))
	dir := t.TempDir()
	site := filepath.Join(t.TempDir(), "site")
	copyDir(t, filepath.Join("..", "..", "examples", "site"), site)
	for _, name := range g.order {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(g.files[name]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var stdin strings.Builder
	for _, s := range g.setup {
		verb, arg, _ := strings.Cut(s, " ")
		switch verb {
		case "cnbuild", "cnbuild-site":
			target := dir
			if verb == "cnbuild-site" {
				target = site
			} else if arg != "" {
				target = filepath.Join(dir, arg)
			}
			var out bytes.Buffer
			if rc := runIO([]string{"-config", target, "cnbuild"}, strings.NewReader(""), false, &out, &out, fixedNow); rc != 0 {
				t.Fatalf("setup cnbuild %s: exit %d\n%s", target, rc, out.String())
			}
		case "image-version":
			patchImage(t, filepath.Join(dir, compiler.ImageName), func(b []byte) {
				var v uint32
				for _, c := range arg {
					v = v*10 + uint32(c-'0')
				}
				binary.BigEndian.PutUint32(b[len(compiler.Magic):], v)
			})
		case "image-flip":
			patchImage(t, filepath.Join(dir, compiler.ImageName), func(b []byte) { b[len(b)/2] ^= 0x55 })
		case "stdin":
			stdin.WriteString(arg + "\n")
		default:
			t.Fatalf("unknown setup step %q", s)
		}
	}
	args := strings.Fields(g.cmd)
	if len(args) == 0 || args[0] != "mtactl" {
		t.Fatalf("command line must start with mtactl: %q", g.cmd)
	}
	for i, a := range args {
		a = strings.ReplaceAll(a, "$DIR", dir)
		args[i] = strings.ReplaceAll(a, "$SITE", site)
	}
	var stdout, stderr bytes.Buffer
	rc := runIO(args[1:], strings.NewReader(stdin.String()), false, &stdout, &stderr, fixedNow)
	got := stdout.String() + stderr.String() + "[exit " + itoa(rc) + "]\n"
	got = strings.ReplaceAll(got, dir, "$DIR")
	got = strings.ReplaceAll(got, site, "$SITE")
	if *update {
		if err := os.WriteFile(path, []byte(g.header+"\n"+separator+"\n"+got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got != g.expected {
		t.Errorf("%s: output differs (run with -update to accept)\n--- got\n%s--- want\n%s", path, got, g.expected)
	}
}

func itoa(n int) string {
	if n < 0 {
		return "-" + itoa(-n)
	}
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

func patchImage(t *testing.T, path string, f func([]byte)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	f(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runGolden(t, f) })
	}
}

// TestRunUsage checks the dispatcher's own errors (not worth a golden each).
func TestRunUsage(t *testing.T) {
	cases := []struct {
		args []string
		rc   int
		want string
	}{
		{nil, 2, "usage: mtactl"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"test"}, 2, "exactly one of -rewrite, -mapping, -match"},
		{[]string{"test", "-rewrite", "-mapping"}, 2, "exactly one of"},
		{[]string{"cnbuild", "extra"}, 2, "unexpected argument"},
		{[]string{"test", "-match", "onlyone"}, 2, "usage: mtactl test -match"},
	}
	for _, tc := range cases {
		var out bytes.Buffer
		rc := run(tc.args, io.Discard, &out)
		if rc != tc.rc || !strings.Contains(out.String(), tc.want) {
			t.Errorf("run(%q) = %d, %q; want %d containing %q", tc.args, rc, out.String(), tc.rc, tc.want)
		}
	}
}

// TestCnbuildWritesLoadableImage is the round trip the daemon depends on: cnbuild
// writes DIR/compiled.image, Load reads it back with the same channels and rules.
func TestCnbuildWritesLoadableImage(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, filepath.Join("..", "..", "examples", "site"), dir)
	var out bytes.Buffer
	if rc := runIO([]string{"-config", dir, "cnbuild"}, strings.NewReader(""), false, &out, &out, fixedNow); rc != 0 {
		t.Fatalf("cnbuild: exit %d: %s", rc, out.String())
	}
	img, err := compiler.Load(filepath.Join(dir, compiler.ImageName))
	if err != nil {
		t.Fatal(err)
	}
	if !img.Header.BuildTime.Equal(fixedNow()) {
		t.Errorf("build time %v, want %v", img.Header.BuildTime, fixedNow())
	}
	if c, ok := img.Channel("tcp_siroe"); !ok || c.Pool != "SMTP_SIROE" {
		t.Errorf("tcp_siroe after load: %+v %v", c, ok)
	}
	if img.MaxJobs("tcp_siroe") != 2 {
		t.Errorf("MaxJobs(tcp_siroe) = %d, want min(maxjobs 3, job_limit 2) = 2", img.MaxJobs("tcp_siroe"))
	}
	if n := img.Rules.NumRules(); n == 0 {
		t.Error("no rules after load")
	}
}

// TestImageIsWhatTestsUse guards the cnbuild contract: once an image exists, test
// -rewrite uses it and edits of the text files are inert until the next cnbuild;
// -noimage reads the text files.
func TestImageIsWhatTestsUse(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, filepath.Join("..", "..", "examples", "site"), dir)
	mtactl := func(args ...string) (string, int) {
		var out bytes.Buffer
		rc := runIO(append([]string{"-config", dir}, args...), strings.NewReader(""), false, &out, &out, fixedNow)
		return out.String(), rc
	}
	if out, rc := mtactl("cnbuild"); rc != 0 {
		t.Fatalf("cnbuild: %d %s", rc, out)
	}
	cnfPath := filepath.Join(dir, "imta.cnf")
	b, err := os.ReadFile(cnfPath)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), "siroe.com               $U%$D@tcp_siroe-daemon", "siroe.com               $U%$D@tcp-daemon", 1)
	if edited == string(b) {
		t.Fatal("edit did not apply")
	}
	if err := os.WriteFile(cnfPath, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := mtactl("test", "-rewrite", "jdoe@siroe.com"); !strings.Contains(out, "channel                       = tcp_siroe") {
		t.Errorf("with the image: want tcp_siroe\n%s", out)
	}
	if out, _ := mtactl("test", "-rewrite", "-noimage", "jdoe@siroe.com"); !strings.Contains(out, "channel                       = tcp_local") {
		t.Errorf("with -noimage: want tcp_local\n%s", out)
	}
	// version shows the image's header.
	out, rc := mtactl("version")
	if rc != 0 || !strings.Contains(out, compiler.Version) || !strings.Contains(out, "build time  = 2026-01-02T03:04:05Z") || !strings.Contains(out, "source hash = ") {
		t.Errorf("version: %d\n%s", rc, out)
	}
}

func TestVersionWithoutImage(t *testing.T) {
	var out bytes.Buffer
	rc := runIO([]string{"-config", t.TempDir(), "version"}, strings.NewReader(""), false, &out, &out, fixedNow)
	if rc != 0 || !strings.Contains(out.String(), "image: none") {
		t.Errorf("version: %d %s", rc, out.String())
	}
}

// TestRewritePromptsOnTerminal: with no address and a terminal on stdin, each line is
// answered as it is read, after an "Address: " prompt.
func TestRewritePromptsOnTerminal(t *testing.T) {
	var out bytes.Buffer
	rc := runIO([]string{"test", "-rewrite"}, strings.NewReader("root@localhost\n\njoe@example.org\n"), true, &out, io.Discard, fixedNow)
	s := out.String()
	if rc != 0 || strings.Count(s, "Address: ") != 4 || strings.Count(s, "Submitted address list:") != 2 {
		t.Errorf("rc %d\n%s", rc, s)
	}
}
