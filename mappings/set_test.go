package mappings

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// tbl builds a TableSource from "pattern<blanks>template" lines; Src is
// "mappings:N" with N counting from 1 across the calls of one set.
func tbl(name string, line *int, entries ...string) TableSource {
	*line++
	ts := TableSource{Name: name, Src: fmt.Sprintf("mappings:%d", *line)}
	for _, e := range entries {
		*line++
		pat, tmpl, _ := strings.Cut(e, " ")
		ts.Entries = append(ts.Entries, EntrySource{
			Pattern: pat, Template: strings.TrimLeft(tmpl, " "), Src: fmt.Sprintf("mappings:%d", *line)})
	}
	*line++ // blank line between tables
	return ts
}

func mustCompile(t testing.TB, tables ...TableSource) *Set {
	t.Helper()
	s, errs := Compile(tables)
	if len(errs) > 0 {
		t.Fatalf("Compile: %v", errs)
	}
	return s
}

func TestMap(t *testing.T) {
	type probe struct {
		in      string
		inFlags string
		matched bool
		out     string
		flags   string // Flags.Describe()
		src     string // "" = don't check
	}
	general := map[string]string{"joe": "joe@mail.example", "K": "upper"}
	env := &Env{
		General: func(k string) (string, bool) { v, ok := general[k]; return v, ok },
		Percent: func() int { return 30 },
	}
	tests := []struct {
		name   string
		tables [][]string // first element of each: table name
		table  string
		probes []probe
	}{
		{"§8.1-2 port access", [][]string{{"PORT_ACCESS",
			"TCP|*|25|192.0.2.66|* $N500$ can't$ connect$ now", "* $Y"}}, "PORT_ACCESS", []probe{
			{in: "TCP|10.0.0.5|25|192.0.2.66|51515", matched: true, out: "500 can't connect now", flags: "N", src: "mappings:2"},
			{in: "TCP|10.0.0.5|587|192.0.2.66|51515", matched: true, out: "", flags: "Y", src: "mappings:3"},
		}},
		{"§8.3-4 ip matchers", [][]string{{"PORT_ACCESS",
			"TCP|*|*|$(192.0.2.0/24)|* $Y", "TCP|*|*|$<198.51.100.4/2>|* $N"}}, "port_access", []probe{
			{in: "TCP|10.0.0.5|25|192.0.2.200|5", matched: true, flags: "Y"},
			{in: "TCP|10.0.0.5|25|198.51.100.6|5", matched: true, flags: "N"},
			{in: "TCP|10.0.0.5|25|198.51.100.8|5", matched: false},
		}},
		{"§8.6 first match wins, case-blind", [][]string{{"SEND_ACCESS",
			"*|Elvis1@sesta.com|*|* $Y", "*|Nelson7@sesta.com|*|* $Y", "*|AkiraK@sesta.com|*|* $Y",
			"*|*@sesta.com|*|* $NMail$ Blocked"}}, "SEND_ACCESS", []probe{
			{in: "tcp_local|ELVIS1@SESTA.COM|l|x@y.org", matched: true, flags: "Y", src: "mappings:2"},
			{in: "tcp_local|nobody@sesta.com|l|x@y.org", matched: true, out: "Mail Blocked", flags: "N", src: "mappings:5"},
			{in: "tcp_local|nobody@other.com|l|x@y.org", matched: false},
		}},
		{"§8.9 PSI", [][]string{{"T", "PSI$%*::* $1@$0.psi.siroe.com"}}, "T", []probe{
			{in: "PSI%1234::USER", matched: true, out: "USER@1234.psi.siroe.com"},
			{in: "PSIABC::DEF", matched: false},
		}},
		{"§8.10 $C chain", [][]string{{"T", "a* b$0$C", "b* c$0"}}, "T", []probe{
			{in: "a1", matched: true, out: "c1", flags: "C", src: "mappings:3"},
			{in: "b7", matched: true, out: "c7"},
		}},
		{"§8.11 $R shrinking", [][]string{{"T", "x* $0$R"}}, "T", []probe{
			{in: "xxxx", matched: true, out: "", flags: "R"},
		}},
		{"$C without further match keeps last output", [][]string{{"T", "a* b$0$C", "z* q"}}, "T", []probe{
			{in: "a1", matched: true, out: "b1", flags: "C"},
		}},
		{"$R restarts at top", [][]string{{"T", "b* done$0", "a* b$0$R"}}, "T", []probe{
			{in: "a1", matched: true, out: "done1", flags: "R", src: "mappings:2"},
		}},
		{"$L one more pass", [][]string{{"T", "b c", "a b$L"}}, "T", []probe{
			{in: "a", matched: true, out: "c", flags: "L"},
		}},
		{"$C does not loop", [][]string{{"T", "b c", "a b$C"}}, "T", []probe{
			{in: "a", matched: true, out: "b", flags: "C"},
		}},
		{"$L overridden by later $C", [][]string{{"T", "b c", "a b$L", "b z$C"}}, "T", []probe{
			{in: "a", matched: true, out: "z", flags: "CL"},
		}},
		{"$E stops a chain", [][]string{{"T", "a b$C", "b c$E", "c d"}}, "T", []probe{
			{in: "a", matched: true, out: "c", flags: "CE"},
		}},
		{"last control flag wins", [][]string{{"T", "a b$C$E", "b c"}}, "T", []probe{
			{in: "a", matched: true, out: "b", flags: "CE"},
		}},
		{"flags accumulate over a chain", [][]string{{"T", "a* b$0$C$X", "b* c$0$Y"}}, "T", []probe{
			{in: "a1", matched: true, out: "c1", flags: "CXY"},
		}},
		{"loop guard growing", [][]string{{"T", "x* xx$0$R"}}, "T", []probe{
			// 1 + 10 allowed restarts; the 11th request is ignored.
			{in: "x", matched: true, out: strings.Repeat("x", 12), flags: "R"},
		}},
		{"loop guard same length", [][]string{{"T", "a a$R"}}, "T", []probe{
			{in: "a", matched: true, out: "a", flags: "R"},
		}},
		{"loop guard $L", [][]string{{"T", "* $0$L"}}, "T", []probe{
			{in: "q", matched: true, out: "q", flags: "L"},
		}},
		{"general lookup", [][]string{{"T", "* ${$0}$Y"}}, "T", []probe{
			{in: "joe", matched: true, out: "joe@mail.example", flags: "Y"},
			// Keys are passed as built (case kept); the caller's database decides.
			{in: "K", matched: true, out: "upper", flags: "Y"},
		}},
		{"failure without C ends mapping", [][]string{{"T", "a* ${$0}$Y", "a* z$Y"}}, "T", []probe{
			{in: "ann", matched: false, out: "ann", flags: "", src: "mappings:2"},
		}},
		{"failure after C continues", [][]string{{"T", "a* $C${$0}$Y", "a* z$Y"}}, "T", []probe{
			{in: "ann", matched: true, out: "z", flags: "Y", src: "mappings:3"},
		}},
		{"failure before C ends mapping", [][]string{{"T", "a* ${$0}$C$Y", "a* z$Y"}}, "T", []probe{
			{in: "ann", matched: false, out: "ann", flags: ""},
		}},
		{"nested mapping",
			[][]string{
				{"INTERNAL_IP", "$(10.0.0.0/8) $Y", "127.0.0.1 $Y", "* $N"},
				{"PORT_ACCESS", "*|*|*|*|* $C$|INTERNAL_IP;$3|$Y$E", "* $YEXTERNAL"},
			}, "PORT_ACCESS", []probe{
				{in: "TCP|10.0.0.5|25|10.1.2.3|40000", matched: true, out: "", flags: "CEY", src: "mappings:7"},
				{in: "TCP|10.0.0.5|25|127.0.0.1|40000", matched: true, out: "", flags: "CEY"},
				{in: "TCP|10.0.0.5|25|198.51.100.7|40000", matched: true, out: "EXTERNAL", flags: "Y", src: "mappings:8"},
			}},
		{"nested output inserted", [][]string{
			{"INNER", "* [$0]$Y"}, {"T", "* <$|inner;x$0|>$Y"}}, "T", []probe{
			{in: "a", matched: true, out: "<[xa]>", flags: "Y"},
		}},
		{"nested missing table fails", [][]string{{"T", "* $|NOPE;$0|$Y"}}, "T", []probe{
			{in: "a", matched: false, out: "a"},
		}},
		{"nested self recursion bounded", [][]string{{"T", "* $|T;$0|$Y"}}, "T", []probe{
			{in: "a", matched: false, out: "a"},
		}},
		{"percent", [][]string{{"T", "a $?50?yes$Y", "b $?20?no$Y", "b fallback"}}, "T", []probe{
			{in: "a", matched: true, out: "yes", flags: "Y"},
			{in: "b", matched: false, out: "b"},
		}},
		{"input flag tests", [][]string{{"ORIG_SEND_ACCESS",
			"tcp_local|*|tcp_local|* $:A$Y", "tcp_local|*|tcp_local|* $;T$NNeed$ TLS",
			"tcp_local|*|tcp_local|* $NRelaying$ not$ allowed"}}, "ORIG_SEND_ACCESS", []probe{
			{in: "tcp_local|a@x.org|tcp_local|b@y.org", inFlags: "A", matched: true, flags: "Y"},
			{in: "tcp_local|a@x.org|tcp_local|b@y.org", inFlags: "", matched: true, out: "Need TLS", flags: "N"},
			{in: "tcp_local|a@x.org|tcp_local|b@y.org", inFlags: "T", matched: true, out: "Relaying not allowed", flags: "N"},
		}},
		{"case control", [][]string{{"T", "up* $^$0", "lo* $\\$0XY", "mix*@* $^$0$_@$1", "lit* $\\ABC$_DEF"}}, "T", []probe{
			{in: "upAbc", matched: true, out: "ABC"},
			{in: "loAbC", matched: true, out: "abcxy"},
			{in: "mixAb@Cd", matched: true, out: "AB@Cd"},
			{in: "lit", matched: true, out: "abcDEF"},
		}},
		{"quoting in templates", [][]string{{"T", "* a$$b$ c$\td"}}, "T", []probe{
			{in: "x", matched: true, out: "a$b c\td"},
		}},
		{"$+1E exits at once", [][]string{{"T", "* a$C$+1E$Nb", "* z"}}, "T", []probe{
			{in: "x", matched: true, out: "a", flags: "CE"},
		}},
		{"non-letter flags", [][]string{{"T", "* $<$>$!log|$Y"}}, "T", []probe{
			{in: "x", matched: true, out: "log|", flags: "Y<>!"},
		}},
		{"duplicates: first wins", [][]string{{"T", "a first", "a second"}}, "T", []probe{
			{in: "A", matched: true, out: "first", src: "mappings:2"},
		}},
		{"no entry matches", [][]string{{"T", "a b"}}, "T", []probe{
			{in: "c", matched: false, out: ""},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			line := 0
			var srcs []TableSource
			for _, tb := range tc.tables {
				srcs = append(srcs, tbl(tb[0], &line, tb[1:]...))
			}
			s := mustCompile(t, srcs...)
			for _, p := range tc.probes {
				var in Flags
				for i := 0; i < len(p.inFlags); i++ {
					in |= Flag(p.inFlags[i])
				}
				r, ok := s.Map(tc.table, p.in, in, env)
				if !ok {
					t.Fatalf("table %s not found", tc.table)
				}
				if r.Matched != p.matched || r.Output != p.out {
					t.Errorf("Map(%q) = matched %v output %q, want %v %q", p.in, r.Matched, r.Output, p.matched, p.out)
				}
				if got := r.Flags.Describe(); got != p.flags {
					t.Errorf("Map(%q) flags = %q, want %q", p.in, got, p.flags)
				}
				if p.src != "" && r.Src != p.src {
					t.Errorf("Map(%q) src = %q, want %q", p.in, r.Src, p.src)
				}
			}
		})
	}
}

func TestMapMissingEnvFails(t *testing.T) {
	line := 0
	s := mustCompile(t, tbl("T", &line, "* ${$0}$Y"))
	for _, env := range []*Env{nil, {}} {
		r, _ := s.Map("T", "k", 0, env)
		if r.Matched || r.Output != "k" {
			t.Errorf("env %v: %+v, want failure", env, r)
		}
	}
	// nil Percent falls back to math/rand; 100 always succeeds, 0 never.
	s = mustCompile(t, tbl("T", &line, "a $?100?$Y", "b $?0?$Y"))
	if r, _ := s.Map("T", "a", 0, nil); !r.Matched {
		t.Error("$?100? failed")
	}
	if r, _ := s.Map("T", "b", 0, nil); r.Matched {
		t.Error("$?0? succeeded")
	}
}

func TestSetTablesHas(t *testing.T) {
	line := 0
	s := mustCompile(t, tbl("PORT_ACCESS", &line, "* $Y"), tbl("Reverse", &line, "a b", "c d"))
	if !s.Has("port_access") || !s.Has("REVERSE") || s.Has("FORWARD") {
		t.Error("Has is wrong")
	}
	got := s.Tables()
	want := []TableInfo{{"PORT_ACCESS", 1, "mappings:1"}, {"Reverse", 2, "mappings:4"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Tables = %v, want %v", got, want)
	}
	if _, ok := s.Map("forward", "x", 0, nil); ok {
		t.Error("Map on a missing table reported ok")
	}
}

func TestCompileErrors(t *testing.T) {
	line := 0
	_, errs := Compile([]TableSource{
		tbl("T", &line, "$(1.2.3 $Y", "* $0$1", "ok $Y"),
		tbl("t", &line, "* $Y"),
	})
	if len(errs) != 3 {
		t.Fatalf("got %d errors: %v", len(errs), errs)
	}
	var se *SourceError
	want := []struct{ src, msg string }{
		{"mappings:2", `bad mapping pattern "$(1.2.3": unterminated $( IP matcher`},
		{"mappings:3", `bad mapping template "$0$1": substitution $1`},
		{"mappings:6", `duplicate mapping name found: "t" (first at mappings:1)`},
	}
	for i, w := range want {
		if !errors.As(errs[i], &se) {
			t.Fatalf("error %d is %T, want *SourceError", i, errs[i])
		}
		if se.Src != w.src || !strings.HasPrefix(se.Msg, w.msg) {
			t.Errorf("error %d = %q, want %s: %s...", i, errs[i], w.src, w.msg)
		}
	}
}

// TestMapWorkBounded guards maxWork: nested calls that fan out, and restarts inside
// nested calls, would otherwise multiply to astronomical counts.
func TestMapWorkBounded(t *testing.T) {
	for _, tmpl := range []string{
		"$|T;$0|$|T;$0|$|T;$0|$Y",
		"x$0$|T;$0|$R",
		"$C$|T;$0x|$|T;$0|$L",
	} {
		line := 0
		s := mustCompile(t, tbl("T", &line, "* "+tmpl))
		start := time.Now()
		s.Map("T", "abc", 0, nil)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%q took %v", tmpl, d)
		}
	}
}

// TestMapConcurrent runs lookups from several goroutines on one Set (run with
// -race): a Set is shared by every SMTP session.
func TestMapConcurrent(t *testing.T) {
	line := 0
	s := mustCompile(t,
		tbl("INTERNAL_IP", &line, "$(10.0.0.0/8) $Y", "* $N"),
		tbl("PORT_ACCESS", &line, "*|*|*|*|* $C$|INTERNAL_IP;$3|$Y$E", "* $YEXTERNAL"))
	done := make(chan bool)
	for g := 0; g < 4; g++ {
		go func() {
			ok := true
			for i := 0; i < 500; i++ {
				r, _ := s.Map("PORT_ACCESS", fmt.Sprintf("TCP|1.2.3.4|25|10.0.%d.%d|1", g, i%250), 0, nil)
				ok = ok && r.Matched && r.Output == ""
			}
			done <- ok
		}()
	}
	for g := 0; g < 4; g++ {
		if !<-done {
			t.Error("concurrent lookup gave a wrong result")
		}
	}
}

func TestNilSetMarshal(t *testing.T) {
	var s *Set
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var s2 Set
	if err := s2.UnmarshalBinary(b); err != nil || len(s2.Tables()) != 0 {
		t.Fatalf("empty round trip: %v %v", err, s2.Tables())
	}
}

func TestTableNameFolding(t *testing.T) {
	long := strings.Repeat("Ab", 40) // beyond the lookup's stack buffer
	line := 0
	s := mustCompile(t, tbl(long, &line, "* $Y"), tbl("Internal_IP", &line, "* $Y"))
	for _, name := range []string{long, strings.ToUpper(long), strings.ToLower(long), "INTERNAL_IP", "internal_ip"} {
		if !s.Has(name) {
			t.Errorf("Has(%q) = false", name)
		}
	}
	if s.Has(long + "x") {
		t.Error("Has matched a longer name")
	}
}
