package sieve

import (
	"context"
	"strings"
	"testing"
)

// fuzzSeeds are scripts touching every part of the grammar and most commands.
var fuzzSeeds = []string{
	"",
	"keep;",
	"# comment\r\n/* block */ discard;",
	`require ["fileinto", "variables", "imap4flags", "editheader", "relational", "comparator-i;ascii-numeric", "envelope", "subaddress", "body", "date", "index", "copy", "reject", "vacation", "spamtest", "virustest", "addtag", "jettison"];`,
	`if header :matches "subject" "[*] *" { require "x"; fileinto "${1}"; } elsif true {} else { stop; }`,
	`require "variables"; set :upper :quotewildcard "a" "${0}x*"; if string :matches "${a}" "*X\\*" { discard; }`,
	`require "imap4flags"; addflag "\\Seen"; if hasflag :contains "see" { keep :flags "a"; }`,
	`require "editheader"; addheader :last "X-A" "v"; deleteheader :index 1 :last :contains "x-a" ["v", "w"];`,
	`require ["date", "relational", "index"]; if date :index 1 :last :zone "+0100" :value "ge" "received" "date" "2020-01-01" {}`,
	`require ["body"]; if body :content ["text", ""] :contains "x" { discard; }`,
	`require ["vacation"]; vacation :days 3 :subject "s" :from "a@b" :addresses ["c@d"] :mime :handle "h" text:
line
..dot
.
;`,
	`require ["spamtestplus", "relational"]; spamadjust "1.5"; if spamtest :percent :count "gt" "0" { jettison; }`,
	`if anyof(not exists ["a", "b"], allof(true, size :over 1K), address :domain :is "from" "x") { redirect :copy "a@b.c"; }`,
	`require ["encoded-character"]; if header :is "x" "${hex:41}${unicode:1F600}" {}`,
	`if header :count "ge" "to" "1" {}`,
	"if true { if true { if true { keep; } } }",
}

// fuzzMessage is the fixed message fuzzed scripts run on.
const fuzzMessage = "Received: from a by b; Tue, 1 Dec 2026 10:00:00 +0000\r\n" +
	"From: \"A\" <a@example.com>\r\nTo: b+d@example.com, (c) <c@example.com>\r\n" +
	"Subject: [list] =?utf-8?q?h=C3=A9llo?= ${1}\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n" +
	"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nbody text\r\n--x--\r\n"

// FuzzParse: any input gives a syntax tree or an error, never a panic; a
// script that compiles also evaluates without an internal error.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		file, err := Parse("f", []byte(src), Limits{MaxScriptSize: 64 << 10})
		if err != nil {
			if _, ok := err.(ErrorList); !ok {
				t.Fatalf("Parse error of type %T", err)
			}
			return
		}
		if _, err := Check(file, Options{}); err != nil {
			if _, ok := err.(ErrorList); !ok {
				t.Fatalf("Check error of type %T", err)
			}
		}
	})
}

// FuzzEvaluate compiles fuzzed scripts (and the seeds with every extension
// required) and evaluates them on a fixed message: no panic, no internal error,
// and a runtime error always comes with the keep of NoFilter.
func FuzzEvaluate(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	all := `require ["fileinto", "variables", "imap4flags", "editheader", "relational", "comparator-i;ascii-numeric",
		"envelope", "subaddress", "body", "date", "index", "copy", "reject", "ereject", "vacation", "spamtest",
		"spamtestplus", "virustest", "addtag", "jettison", "addheader", "encoded-character"];` + "\n"
	env := testEnv()
	env.Spam = &SpamScore{Score: 4, Text: "t"}
	env.Virus = &VirusScore{Score: 1}
	f.Fuzz(func(t *testing.T, src string) {
		for _, script := range []string{src, all + stripRequires(src)} {
			s, err := Compile("f", []byte(script), Options{Limits: Limits{MaxScriptSize: 64 << 10, MaxWork: 2_000_000}})
			if err != nil {
				continue
			}
			r, err := s.Evaluate(context.Background(), []byte(fuzzMessage), env)
			if err != nil {
				if strings.Contains(err.Error(), "internal error") {
					t.Fatalf("script %q: %v", script, err)
				}
				if !r.ImplicitKeep || len(r.Actions) != 0 {
					t.Fatalf("runtime error without NoFilter: %v", err)
				}
				continue
			}
			r.EditedMessage([]byte(fuzzMessage))
			for _, a := range r.Actions {
				_ = a.String()
			}
		}
	})
}

// stripRequires drops a leading require so the script can be given ours.
func stripRequires(src string) string {
	s := strings.TrimSpace(src)
	for strings.HasPrefix(strings.ToLower(s), "require") {
		i := strings.IndexByte(s, ';')
		if i < 0 {
			return s
		}
		s = strings.TrimSpace(s[i+1:])
	}
	return s
}
