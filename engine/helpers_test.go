package engine

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"mtad.dev/mta/mappings"
)

// rulesFrom reads rule lines the way imta.cnf holds them: pattern, the first
// whitespace run, template (the rest of the line). "!" lines are comments. Src is
// imta.cnf:N with N the line number in text.
func rulesFrom(text string) []RuleSource {
	var rs []RuleSource
	for i, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" || line[0] == '!' {
			continue
		}
		line = strings.TrimLeft(line, " \t")
		j := strings.IndexAny(line, " \t")
		if j < 0 {
			rs = append(rs, RuleSource{Pattern: line, Src: fmt.Sprintf("imta.cnf:%d", i+1)})
			continue
		}
		rs = append(rs, RuleSource{Pattern: line[:j], Template: strings.TrimLeft(line[j:], " \t"), Src: fmt.Sprintf("imta.cnf:%d", i+1)})
	}
	return rs
}

// ch builds a channel: name, official host, extra hosts; Rules defaults to true.
func ch(name, official string, hosts ...string) Channel {
	c := Channel{Name: name, Official: official, Src: "imta.cnf:100", Rules: true}
	for _, h := range hosts {
		n, p, _ := strings.Cut(h, " ")
		c.Hosts = append(c.Hosts, Host{Name: n, Proper: p})
	}
	if name == "l" {
		c.Local = true
	}
	return c
}

// section8Rules is the configuration of the worked examples in the product's
// documentation of rewrite rules, verbatim (the name is that section's number there).
const section8Rules = `mail.example.net   $U%$D@mail.example.net
example.net        $U%example.net@verify-daemon$Nverify
example.net        $U%$D@mail.example.net
siroe.com          $U%$D@tcp_siroe-daemon
.siroe.com         $U%$H$D@tcp_siroe-daemon
host.sesta.com     $U%$1D@tcp_local-daemon
.removable         $U%$H
*                  $U%$&0.example.net@tcp_intranet-daemon
com1               $U@com1@gw.example.net@tcp_gw-daemon
[]                 $U%[$L]@tcp_intranet-daemon
[10.1.]            $U%[10.1.$L]@tcp_intranet-daemon
.bad               $?No mail for .bad hosts
.                  $U%$H@tcp_local-daemon
`

func section8Channels() []Channel {
	return []Channel{
		ch("l", "mail.example.net"),
		ch("tcp_local", "tcp_local-daemon"),
		ch("tcp_siroe", "tcp_siroe-daemon"),
		ch("tcp_intranet", "tcp_intranet-daemon"),
		ch("tcp_gw", "tcp_gw-daemon"),
		ch("verify", "verify-daemon"),
	}
}

func mustCompile(t testing.TB, cfg Config) *RuleSet {
	t.Helper()
	rs, errs := Compile(cfg)
	if len(errs) > 0 {
		t.Fatalf("Compile: %v", errs)
	}
	return rs
}

func compileRules(t testing.TB, rules string, chans []Channel) *RuleSet {
	t.Helper()
	return mustCompile(t, Config{Rules: rulesFrom(rules), Channels: chans})
}

var probeRE = regexp.MustCompile(`^probe "([^"]*)"`)

// probes lists the probe strings of a trace, in order, without repeats of the
// same probe for several candidates.
func probes(tr []TraceStep) []string {
	var out []string
	for _, s := range tr {
		m := probeRE.FindStringSubmatch(s.Text)
		if m == nil {
			continue
		}
		if n := len(out); n > 0 && out[n-1] == m[1] {
			continue
		}
		out = append(out, m[1])
	}
	return out
}

func traceText(tr []TraceStep) string {
	var b strings.Builder
	for _, s := range tr {
		b.WriteString(strings.Repeat("  ", s.Depth))
		if s.Src != "" {
			b.WriteString("[" + s.Src + "] ")
		}
		b.WriteString(s.Text)
		b.WriteByte('\n')
	}
	return b.String()
}

// needMappings skips a test while the mappings package is still a stub (its
// functions panic with "not implemented").
func needMappings(t *testing.T) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Skipf("mappings package not implemented yet: %v", r)
		}
	}()
	mappings.Compile(nil)
	mappings.CompileAliases(nil)
}

func compileTables(t *testing.T, tables ...mappings.TableSource) *mappings.Set {
	t.Helper()
	s, errs := mappings.Compile(tables)
	if len(errs) > 0 {
		t.Fatalf("mappings.Compile: %v", errs)
	}
	return s
}

func compileAliases(t *testing.T, src ...mappings.AliasSource) *mappings.Aliases {
	t.Helper()
	a, errs := mappings.CompileAliases(src)
	if len(errs) > 0 {
		t.Fatalf("mappings.CompileAliases: %v", errs)
	}
	return a
}
