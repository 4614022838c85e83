package filter

import (
	"strings"
	"testing"
	"time"
)

func TestLocate(t *testing.T) {
	cases := []struct {
		url              string
		scheme, path     string
		name, data, errs string
	}{
		{url: "file:IMTA_TABLE:bulk.filter", scheme: "file", path: "/cfg/bulk.filter", name: "bulk.filter"},
		{url: `"file:imta_table:sub/x.filter"`, scheme: "file", path: "/cfg/sub/x.filter", name: "sub/x.filter"},
		{url: "file:x.filter", scheme: "file", path: "/cfg/x.filter", name: "x.filter"},
		{url: "file:///etc/mta/x.filter", scheme: "file", path: "/etc/mta/x.filter", name: "/etc/mta/x.filter"},
		{url: "file://localhost/etc/x", scheme: "file", path: "/etc/x", name: "/etc/x"},
		{url: "file:/cfg/../cfg/y", scheme: "file", path: "/cfg/y", name: "y"},
		{url: "ssrd:Bob+lists@Example.COM", scheme: "ssrd", path: "/cfg/sieve/bob.sieve", name: "sieve/bob.sieve"},
		{url: `data:,require "fileinto"; fileinto "Junk";`, scheme: "data", name: "data:", data: `require "fileinto"; fileinto "Junk";`},
		{url: "data:text/plain;base64,ZGlzY2FyZDs=", scheme: "data", name: "data:", data: "discard;"},
		{url: "file://other.host/x", errs: "only local files"},
		{url: "file:IMTA_LIB:x", errs: "unknown directory tag"},
		{url: "ldap:///cn=x", errs: "unsupported scheme"},
		{url: "nothing", errs: "no scheme"},
		{url: "ssrd:../../etc@x", errs: "names no mailbox"},
		{url: "data:discard;", errs: "needs a comma"},
	}
	for _, c := range cases {
		loc, err := Locate(c.url, "/cfg", "")
		if c.errs != "" {
			if err == nil || !strings.Contains(err.Error(), c.errs) {
				t.Errorf("%s: error %v, want %q", c.url, err, c.errs)
			}
			continue
		}
		if err != nil || loc.Scheme != c.scheme || loc.Path != c.path || loc.Name != c.name || string(loc.Data) != c.data {
			t.Errorf("%s: got %+v (data %q), %v", c.url, loc, loc.Data, err)
		}
	}
	if _, err := Locate("file:x", "", ""); err == nil {
		t.Error("a relative file without a configuration directory must fail")
	}
	loc, _ := Locate(`"ssrd:bob@example.com"`, "/cfg", "")
	want := []string{`mmc_open_url called to open "ssrd:bob@example.com"`, "   URL with quotes stripped: ssrd:bob@example.com",
		"Determined to be a SSRD URL.", "   Identifier: bob@example.com", "   File: /cfg/sieve/bob.sieve"}
	if got := loc.Trace(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("trace\n%s", strings.Join(got, "\n"))
	}
}

func TestPatterns(t *testing.T) {
	urls := map[string]string{
		"ssrd:$A":                    "ssrd:Bob+lists@mail.example.com",
		"file:IMTA_TABLE:sieve/$U":   "file:IMTA_TABLE:sieve/Bob",
		"file:$\\$U.$D":              "file:bob.mail.example.com",
		"file:$H/$^$U$_-$S":          "file:mail/BOB-lists",
		"file:$U+$2S@$D":             "file:Bob+lists@mail.example.com",
		"cost $$5":                   "cost $5",
		"file:$u$1s":                 "file:Boblists",
		"file:IMTA_TABLE:$U.$3S.txt": "file:IMTA_TABLE:Bob.lists.txt",
	}
	for p, want := range urls {
		if got, err := ExpandURL(p, "Bob+lists@mail.example.com", ""); err != nil || got != want {
			t.Errorf("ExpandURL(%q) = %q, %v; want %q", p, got, err, want)
		}
	}
	noDetail := map[string]string{
		"$U+$2S@$D":   "bob@example.com",
		"$U.$3S.txt":  "bob.txt",
		"$U-$S@$D":    "bob-@example.com",
		"ssrd:$A":     "ssrd:bob@example.com",
		"$U=$1S=done": "bob==done",
	}
	for p, want := range noDetail {
		if got, err := ExpandURL(p, "bob@example.com", "+"); err != nil || got != want {
			t.Errorf("ExpandURL(%q) no detail = %q, %v; want %q", p, got, err, want)
		}
	}
	if got, _ := ExpandFileInto("$U+$S@$D", "bob+x@example.com", "Junk", "+"); got != "bob+Junk@example.com" {
		t.Errorf("fileinto template: %q", got)
	}
	for _, bad := range []string{"file:$~/sieve", "ssrd:$I", "file:$E", "x$", "file:$2U"} {
		if err := CheckPattern(bad); err == nil {
			t.Errorf("CheckPattern(%q) = nil, want an error", bad)
		}
	}
	if got := Scriptlet(`data:,require "fileinto"; fileinto "$U";`, `Spam"; discard; "x\`); got != `data:,require "fileinto"; fileinto "Spam; discard; x";` {
		t.Errorf("Scriptlet: %q", got)
	}
}

func TestRecheckInterval(t *testing.T) {
	c := NewCache(nil, 0)
	if c.recheck != DefaultRecheck || DefaultRecheck != time.Second {
		t.Errorf("recheck %v", c.recheck)
	}
}
