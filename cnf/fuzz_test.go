package cnf

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

// fastPathCorpus holds line shapes that matter to the fast paths.
var fastPathCorpus = []string{
	"a b", "  a   b  ", "a\tb c", "$ a", "a$ b c$\td", "a$", "a $", "a$$ b", "$", "$$", "$ ",
	"x \"q\"", "\"unterminated", "A=1", " A = 1 ", "A B=1", "=1", "A==", "A=[x]", "[P=Q]", "A[=1",
	"é ü", "a\xffb c", "\xff", "a:b, c", "  ", "a", "a\\", "tcp_local smtp mx pool SMTP_POOL",
	"TCP|*|25|192.0.2.66|*    $N500$ can't$ connect$ now",
}

// randomLine draws a line from characters that are special to some grammar.
func randomLine(r *rand.Rand) string {
	const alphabet = "ab $$\t\"=[],:<>\\!é"
	runes := []rune(alphabet)
	n := r.IntN(12)
	var b strings.Builder
	for range n {
		b.WriteRune(runes[r.IntN(len(runes))])
	}
	return b.String()
}

// checkFastPaths fails when a fast path accepts a line and the grammar disagrees.
func checkFastPaths(t *testing.T, s string) {
	t.Helper()
	if h, ok := fastHeadRest(s); ok {
		g, err := parseHeadRestGrammar(s)
		if err != nil || g != h {
			t.Errorf("headRest %q: fast %+v, grammar %+v %v", s, h, g, err)
		}
	}
	if w, ok := fastWords(s); ok {
		g, err := parseWordsGrammar(s)
		if err != nil || (len(w) > 0 || len(g) > 0) && !reflect.DeepEqual(w, g) {
			t.Errorf("words %q: fast %+v, grammar %+v %v", s, w, g, err)
		}
	}
	if o, ok := fastOption(s); ok {
		g, err := parseOptionGrammar(s)
		if err != nil || g != o {
			t.Errorf("option %q: fast %+v, grammar %+v %v", s, o, g, err)
		}
	}
	if e, ok := fastMapEntry(s); ok {
		g, err := parseMapEntryGrammar(s)
		if err != nil || g != e {
			t.Errorf("map entry %q: fast %+v, grammar %+v %v", s, e, g, err)
		}
	}
}

func TestFastPathsMatchGrammar(t *testing.T) {
	for _, s := range fastPathCorpus {
		checkFastPaths(t, s)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		checkFastPaths(t, randomLine(r))
	}
}

func FuzzFastPaths(f *testing.F) {
	for _, s := range fastPathCorpus {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsAny(s, "\n\r") {
			return // the line reader never hands a line terminator to a grammar
		}
		checkFastPaths(t, s)
	})
}

// fuzzFS gives the fuzzed parsers includes and list files to follow.
var fuzzFS = fstest.MapFS{
	"inc":      {Data: []byte("a.example $U@l\n<inc2\n")},
	"inc2":     {Data: []byte("<inc\n")},
	"list.dis": {Data: []byte("a@x\n! c\nb@x\n")},
}

func checkPositions(t *testing.T, errs ErrorList, warns ErrorList) {
	t.Helper()
	for _, l := range []ErrorList{errs, warns} {
		for _, e := range l {
			if e.Pos.File == "" || e.Pos.Line < 1 || e.Msg == "" {
				t.Errorf("error without a valid position: %#v", e)
			}
		}
	}
}

func FuzzParseIMTA(f *testing.F) {
	f.Add([]byte("a $U@x\n\nl\nhost\n\ntcp smtp \"pt5m\" \\\n x\ntcp-daemon alias\n"))
	f.Add([]byte("\nrule $U\n<inc\n\ndefaults a\nb\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		file, errs := ParseIMTA("imta.cnf", src, FSOpener(fuzzFS))
		checkPositions(t, errs, file.Warnings)
		for i := range file.Blocks {
			if n := file.BlankLineNote(&file.Blocks[i]); n != nil && n.Pos.Line < 1 {
				t.Errorf("note without a line: %v", n)
			}
		}
	})
}

func FuzzParseMappings(f *testing.F) {
	f.Add([]byte("T\n\n  a$ b  $Y\n\nU\n  x\n<inc\n"))
	f.Add([]byte("  orphan x\nT\n  a b\nc d\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		file, errs := ParseMappings("mappings", src, FSOpener(fuzzFS))
		checkPositions(t, errs, file.Warnings)
	})
}

func FuzzParseAliases(f *testing.F) {
	f.Add([]byte("a: b, \"c d\"@x <e@x>\nl: <list.dis\ni: :include:list.dis\n<inc\n"))
	f.Add([]byte("a:\n: b\nc \"d\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		_, errs := ParseAliases("aliases", src, FSOpener(fuzzFS))
		checkPositions(t, errs, nil)
	})
}

func FuzzParseOptions(f *testing.F) {
	f.Add([]byte("A=1\n; c\n[POOL=x]\nB = 2\n"))
	f.Add([]byte("NOEQ\n[BAD\n=x\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		_, errs := ParseOptions("option.dat", src, FSOpener(fuzzFS))
		checkPositions(t, errs, nil)
		_, errs = ParseSections("job_controller.cnf", src, FSOpener(fuzzFS))
		checkPositions(t, errs, nil)
		_, errs = ParseGeneral("general.txt", src, FSOpener(fuzzFS))
		checkPositions(t, errs, nil)
	})
}
