package sieve

import (
	"context"
	"strings"
	"testing"
	"time"
)

// testMessage is the message most cases run on.
const testMessage = "Received: from mx.example.net by mail.example.com; Tue, 1 Dec 2026 10:00:00 +0000\r\n" +
	"Received: from client.example.org by mx.example.net; Tue, 1 Dec 2026 09:59:00 -0500\r\n" +
	"From: \"Wile E. Coyote\" <coyote@desert.example.org>\r\n" +
	"To: roadrunner@acme.example.com, ken+sieve@example.com\r\n" +
	"Cc: Bob <bob@example.com>\r\n" +
	"Subject: [acme-users] [fwd] version 1.0 is out\r\n" +
	"Date: Tue, 1 Dec 2026 09:58:30 -0500\r\n" +
	"Message-ID: <1234@desert.example.org>\r\n" +
	"X-Priority: 2\r\n" +
	"X-Encoded: =?utf-8?q?caf=C3=A9_cr=C3=A8me?=\r\n" +
	"List-ID: Acme users <acme-users.lists.example.com>\r\n" +
	"\r\n" +
	"I have a proposal: MAKE MONEY FAST.\r\n"

var testNow = time.Date(2026, 12, 1, 12, 30, 45, 0, time.UTC)

func testEnv() Env {
	return Env{
		Envelope: Envelope{From: "coyote@desert.example.org", To: []string{"ken+sieve@example.com"}, Auth: "coyote"},
		Now:      testNow,
	}
}

// render is a result as one line: the actions, then "implicit keep" when it applies.
func render(r *Result) string {
	var parts []string
	for _, a := range r.Actions {
		parts = append(parts, a.String())
	}
	if r.ImplicitKeep {
		k := "implicit keep"
		if len(r.KeepFlags) > 0 {
			k += " " + strings.Join(r.KeepFlags, " ")
		}
		parts = append(parts, k)
	}
	return strings.Join(parts, "; ")
}

type evalCase struct {
	name   string
	script string
	msg    string // testMessage when empty
	env    *Env   // testEnv() when nil
	want   string // render of the result, or the runtime error
}

func runCases(t *testing.T, cases []evalCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Helper()
			got := evalScript(t, c.script, c.msg, c.env)
			if got != c.want {
				t.Errorf("\nscript: %s\ngot:  %s\nwant: %s", c.script, got, c.want)
			}
		})
	}
}

func evalScript(t *testing.T, script, msg string, env *Env) string {
	t.Helper()
	s, err := Compile("t.sieve", []byte(script), Options{})
	if err != nil {
		return "compile: " + err.Error()
	}
	if msg == "" {
		msg = testMessage
	}
	e := testEnv()
	if env != nil {
		e = *env
	}
	r, err := s.Evaluate(context.Background(), []byte(msg), e)
	if err != nil {
		if render(r) != "implicit keep" {
			t.Errorf("a runtime error must come with NoFilter, got %s", render(r))
		}
		return "error: " + err.Error()
	}
	return render(r)
}

// RFC 5228: the base language.
func TestBaseLanguage(t *testing.T) {
	runCases(t, []evalCase{
		{"no script keeps", ``, ``, nil, "implicit keep"},
		{"if elsif else, first branch", `if header :contains "from" "coyote" { discard; }
			elsif header :contains ["subject"] ["$$$"] { discard; } else { keep; }`, "", nil, "discard"},
		{"else branch", `require "fileinto"; if header :contains "from" "nobody" { discard; }
			elsif header :contains "subject" "$$$" { discard; } else { fileinto "INBOX"; }`, "", nil, `fileinto "INBOX"`},
		{"anyof not exists", `if anyof (not exists ["From", "Date"], header :contains "from" "fool@example.com") { discard; }`,
			"", nil, "implicit keep"},
		{"exists all", `if exists ["from", "x-priority"] { discard; }`, "", nil, "discard"},
		{"exists one missing", `if exists ["from", "x-missing"] { discard; }`, "", nil, "implicit keep"},
		{"allof", `if allof (true, header :is "x-priority" "2") { discard; }`, "", nil, "discard"},
		{"allof false", `if allof (true, false) { discard; }`, "", nil, "implicit keep"},
		{"not", `if not false { discard; }`, "", nil, "discard"},
		{"size over", `if size :over 100 { discard; }`, "", nil, "discard"},
		{"size under 1K", `if size :under 1K { discard; }`, "", nil, "discard"},
		{"size over 1M", `if size :over 1M { discard; }`, "", nil, "implicit keep"},
		{"stop keeps implicit keep", `stop; discard;`, "", nil, "implicit keep"},
		{"explicit keep", `keep;`, "", nil, "keep"},
		{"keep twice is one keep", `keep; keep;`, "", nil, "keep"},
		{"discard then keep", `discard; keep;`, "", nil, "discard; keep"},
		{"redirect cancels implicit keep", `redirect "bob@example.com";`, "", nil, `redirect "bob@example.com"`},
		{"redirect once per address", `redirect "bob@example.com"; redirect "BOB@example.com";`, "", nil, `redirect "bob@example.com"`},
		{"header is casemap", `if header :is "X-PRIORITY" "2" { discard; }`, "", nil, "discard"},
		{"header octet is case-sensitive", `if header :comparator "i;octet" :contains "subject" "VERSION" { discard; }`, "", nil, "implicit keep"},
		{"header casemap contains", `if header :contains "subject" "VERSION" { discard; }`, "", nil, "discard"},
		{"header matches", `if header :matches "subject" "*version ?.0*" { discard; }`, "", nil, "discard"},
		{"header matches anchored", `if header :matches "subject" "version*" { discard; }`, "", nil, "implicit keep"},
		{"escaped wildcard", `if header :matches "x-priority" "\\*" { discard; }`, "", nil, "implicit keep"},
		{"RFC 2047 decoded", `if header :is "x-encoded" "café crème" { discard; }`, "", nil, "discard"},
		{"several headers and keys", `if header :contains ["x-none", "subject"] ["zzz", "acme"] { discard; }`, "", nil, "discard"},
		{"address all", `if address :is "from" "coyote@desert.example.org" { discard; }`, "", nil, "discard"},
		{"address domain", `if address :domain :is "from" "DESERT.example.org" { discard; }`, "", nil, "discard"},
		{"address localpart", `if address :localpart :is "to" "roadrunner" { discard; }`, "", nil, "discard"},
		{"address in second of a list", `if address :is "to" "ken+sieve@example.com" { discard; }`, "", nil, "discard"},
		{"address of display-name form", `if address :all :comparator "i;octet" :contains ["To", "Cc"] "bob@" { discard; }`, "", nil, "discard"},
		{"envelope from", `require "envelope"; if envelope :all :is "from" "coyote@desert.example.org" { discard; }`, "", nil, "discard"},
		{"envelope to domain", `require "envelope"; if envelope :domain :is "to" "example.com" { discard; }`, "", nil, "discard"},
		{"envelope auth", `require "envelope"; if envelope :is "auth" "coyote" { discard; }`, "", nil, "discard"},
		{"envelope null from", `require "envelope"; if envelope :is "from" "" { discard; }`, "",
			&Env{Envelope: Envelope{From: "", To: []string{"a@b"}}}, "discard"},
		{"envelope null from has no localpart", `require "envelope"; if envelope :localpart :is "from" "" { discard; }`, "",
			&Env{Envelope: Envelope{From: "", To: []string{"a@b"}}}, "implicit keep"},
		{"fileinto", `require "fileinto"; fileinto "Junk";`, "", nil, `fileinto "Junk"`},
		{"fileinto same folder once", `require "fileinto"; fileinto "Junk"; fileinto "Junk";`, "", nil, `fileinto "Junk"`},
		{"too many redirects", `redirect "a1@x.example"; redirect "a2@x.example"; redirect "a3@x.example";
			redirect "a4@x.example"; redirect "a5@x.example"; redirect "a6@x.example"; redirect "a7@x.example";
			redirect "a8@x.example"; redirect "a9@x.example"; redirect "a10@x.example"; redirect "a11@x.example";`,
			"", nil, "error: t.sieve:3:80: too many redirects (limit 10)"},
		{"comparator i;ascii-casemap named", `if header :comparator "i;ascii-casemap" :is "x-priority" "2" { discard; }`, "", nil, "discard"},
		{"empty key matches empty value", `if header :is "x-empty" "" { discard; }`, "X-Empty:\r\n\r\n", nil, "discard"},
		{"LF message", `if header :is "subject" "hi" { discard; }`, "Subject: hi\n\nbody\n", nil, "discard"},
	})
}

// RFC 3894 copy, RFC 5429 reject/ereject and the implicit keep.
func TestImplicitKeep(t *testing.T) {
	runCases(t, []evalCase{
		{"fileinto :copy keeps", `require ["fileinto", "copy"]; fileinto :copy "Archive";`, "", nil, `fileinto :copy "Archive"; implicit keep`},
		{"redirect :copy keeps", `require "copy"; redirect :copy "bob@example.com";`, "", nil, `redirect :copy "bob@example.com"; implicit keep`},
		{"copy then plain fileinto", `require ["fileinto", "copy"]; fileinto :copy "A"; fileinto "B";`, "", nil, `fileinto :copy "A"; fileinto "B"`},
		{"reject", `require "reject"; reject "go away";`, "", nil, `reject "go away"`},
		{"ereject", `require "ereject"; ereject "go away";`, "", nil, `ereject "go away"`},
		{"reject after fileinto", `require ["reject", "fileinto"]; fileinto "A"; reject "no";`, "", nil,
			"error: t.sieve:1:47: reject cannot be combined with fileinto at t.sieve:1"},
		{"keep after reject", `require "reject"; reject "no"; keep;`, "", nil,
			"error: t.sieve:1:32: keep cannot be combined with reject at t.sieve:1"},
		{"two rejects", `require "reject"; reject "a"; reject "b";`, "", nil,
			"error: t.sieve:1:31: reject cannot be combined with reject at t.sieve:1"},
		{"discard with reject is fine", `require "reject"; discard; reject "a";`, "", nil, `discard; reject "a"`},
	})
}

// RFC 5229 variables.
func TestVariables(t *testing.T) {
	runCases(t, []evalCase{
		{"expansion, names ignore case", `require ["variables", "fileinto"]; set "honorific" "Mr"; set "last_name" "Coyote";
			fileinto "${HONORIFIC} ${last_name}";`, "", nil, `fileinto "Mr Coyote"`},
		{"unknown variable is empty", `require ["variables", "fileinto"]; fileinto "a${nothing}b";`, "", nil, `fileinto "ab"`},
		{"not a reference stays", `require ["variables", "fileinto"]; fileinto "a${b-c}${";`, "", nil, `fileinto "a${b-c}${"`},
		{"without variables no expansion", `require "fileinto"; fileinto "${x}";`, "", nil, `fileinto "${x}"`},
		{"length", `require ["variables", "fileinto"]; set "a" "juMBlEd lEttERS"; set :length "b" "${a}"; fileinto "${b}";`, "", nil, `fileinto "15"`},
		{"lower", `require ["variables", "fileinto"]; set "a" "juMBlEd lEttERS"; set :lower "b" "${a}"; fileinto "${b}";`, "", nil, `fileinto "jumbled letters"`},
		{"upperfirst", `require ["variables", "fileinto"]; set "a" "juMBlEd lEttERS"; set :upperfirst "b" "${a}"; fileinto "${b}";`, "", nil, `fileinto "JuMBlEd lEttERS"`},
		{"upper then lowerfirst", `require ["variables", "fileinto"]; set "a" "juMBlEd lEttERS"; set :upper :lowerfirst "b" "${a}"; fileinto "${b}";`, "", nil, `fileinto "jUMBLED LETTERS"`},
		{"quotewildcard", `require ["variables", "fileinto"]; set :quotewildcard "b" "Rock*"; fileinto "${b}";`, "", nil, `fileinto "Rock\\*"`},
		{"match variables", `require ["variables", "fileinto"]; if header :matches "Subject" "[*] *" { fileinto "${1}/${2}"; }`,
			"", nil, `fileinto "acme-users/[fwd] version 1.0 is out"`},
		{"match variable 0 and ?", `require ["variables", "fileinto"]; if header :matches "x-priority" "?" { fileinto "${0}-${1}"; }`,
			"", nil, `fileinto "2-2"`},
		{"list-id", `require ["variables", "fileinto"]; if header :matches "List-ID" "*<*@*" { fileinto "INBOX.lists.${2}"; stop; }`,
			"List-ID: Acme users <acme-users@lists.example.com>\r\n\r\n", nil, `fileinto "INBOX.lists.acme-users"`},
		{"failed match keeps old values", `require ["variables", "fileinto"]; if header :matches "x-priority" "*" {}
			if header :matches "subject" "nothing*" {} fileinto "${1}";`, "", nil, `fileinto "2"`},
		{"string test", `require "variables"; set "a" "hello"; if string :is "${a}" "hello" { discard; }`, "", nil, "discard"},
		{"string count ignores empty", `require ["variables", "relational", "comparator-i;ascii-numeric"];
			set "a" "x"; if string :count "eq" :comparator "i;ascii-numeric" ["${a}", "", "${b}"] "1" { discard; }`, "", nil, "discard"},
		{"wildcards from a variable are wildcards", `require "variables"; set "p" "a*"; if string :matches "abc" "${p}" { discard; }`, "", nil, "discard"},
		{"quoted wildcards are not", `require "variables"; set :quotewildcard "p" "a*"; if string :matches "abc" "${p}" { discard; }`, "", nil, "implicit keep"},
		{"10th match variable is empty", `require ["variables", "fileinto"]; if string :matches "abcdefghijk" "?????????????" {} fileinto "x${10}";`, "", nil, `fileinto "x"`},
	})
}

// RFC 5231 relational.
func TestRelational(t *testing.T) {
	rq := `require ["relational", "comparator-i;ascii-numeric"]; `
	runCases(t, []evalCase{
		{"count addresses", rq + `if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] ["3"] { discard; }`, "", nil, "discard"},
		{"count addresses too few", rq + `if address :count "ge" :comparator "i;ascii-numeric" ["to"] ["3"] { discard; }`, "", nil, "implicit keep"},
		{"count header fields", rq + `if header :count "eq" :comparator "i;ascii-numeric" "received" "2" { discard; }`, "", nil, "discard"},
		{"value numeric", rq + `if header :value "lt" :comparator "i;ascii-numeric" ["x-priority"] ["3"] { discard; }`, "", nil, "discard"},
		{"value numeric not less", rq + `if header :value "lt" :comparator "i;ascii-numeric" ["x-priority"] ["2"] { discard; }`, "", nil, "implicit keep"},
		{"value casemap orders strings", `require "relational"; if header :value "gt" "x-priority" "10" { discard; }`, "", nil, "discard"},
		{"numeric is", rq + `if header :comparator "i;ascii-numeric" :is "x-priority" "002" { discard; }`, "", nil, "discard"},
		{"non-digits are infinity", rq + `if header :value "gt" :comparator "i;ascii-numeric" "subject" "99999" { discard; }`, "", nil, "discard"},
		{"ne", rq + `if header :value "ne" :comparator "i;ascii-numeric" "x-priority" "2" { discard; }`, "", nil, "implicit keep"},
	})
}

// RFC 5233 subaddress, with the separator from the environment.
func TestSubaddress(t *testing.T) {
	rq := `require ["envelope", "subaddress"]; `
	dash := testEnv()
	dash.Envelope.To = []string{"ken-lists@example.com"}
	dash.SubaddressSeparator = "-"
	none := testEnv()
	none.Envelope.To = []string{"ken@example.com"}
	runCases(t, []evalCase{
		{"user", rq + `if envelope :user "to" "ken" { discard; }`, "", nil, "discard"},
		{"detail", rq + `if envelope :detail "to" "sieve" { discard; }`, "", nil, "discard"},
		{"detail without separator does not exist", rq + `if envelope :detail :matches "to" "*" { discard; }`, "", &none, "implicit keep"},
		{"user without separator", rq + `if envelope :user "to" "ken" { discard; }`, "", &none, "discard"},
		{"other separator", rq + `if envelope :detail "to" "lists" { discard; }`, "", &dash, "discard"},
		{"address test too", `require "subaddress"; if address :detail "to" "sieve" { discard; }`, "", nil, "discard"},
	})
}

// RFC 5232 imap4flags.
func TestIMAP4Flags(t *testing.T) {
	rq := `require ["imap4flags", "fileinto"]; `
	runCases(t, []evalCase{
		{"implicit keep takes the flags", rq + `addflag "\\Seen"; addflag ["\\Flagged", "\\seen"];`, "", nil, `implicit keep \Seen \Flagged`},
		{"setflag replaces", rq + `addflag "a"; setflag "b c";`, "", nil, "implicit keep b c"},
		{"removeflag", rq + `setflag "a b c"; removeflag "B";`, "", nil, "implicit keep a c"},
		{"fileinto uses internal flags", rq + `setflag "\\Seen"; fileinto "A";`, "", nil, `fileinto "A" :flags "\\Seen"`},
		{"fileinto :flags overrides", rq + `setflag "\\Seen"; fileinto :flags "\\Deleted" "A";`, "", nil, `fileinto "A" :flags "\\Deleted"`},
		{"keep :flags", rq + `keep :flags ["x", "y"];`, "", nil, `keep :flags "x y"`},
		{"hasflag", rq + `setflag "\\Seen"; if hasflag :is "\\seen" { discard; }`, "", nil, "discard"},
		{"hasflag count", `require ["imap4flags", "relational", "comparator-i;ascii-numeric"]; setflag "a b";
			if hasflag :count "eq" :comparator "i;ascii-numeric" "2" { discard; }`, "", nil, "discard"},
		{"flag variables", `require ["imap4flags", "variables"]; setflag "mine" "x"; addflag "mine" "y";
			if hasflag "mine" "y" { discard; }`, "", nil, "discard"},
	})
}

// RFC 5293 editheader and the product's addheader.
func TestEditHeader(t *testing.T) {
	rq := `require ["editheader", "variables"]; `
	runCases(t, []evalCase{
		{"addheader then test sees it", rq + `addheader "X-Hello" "World"; if header :is "x-hello" "World" { discard; }`,
			"", nil, `addheader "X-Hello" "World"; discard`},
		{"deleteheader", rq + `deleteheader "x-priority"; if not exists "x-priority" { discard; }`,
			"", nil, `deleteheader "x-priority" (1 removed); discard`},
		{"deleteheader with value", rq + `deleteheader :contains "received" "x";`,
			"", nil, `compile: t.sieve:1:61: deleteheader: "received" fields cannot be deleted`},
		{"deleteheader index last", rq + `addheader :last "X-A" "1"; addheader :last "X-A" "2"; addheader :last "X-A" "3";
			deleteheader :index 1 :last "x-a"; if header :is "x-a" "3" { discard; }`,
			"", nil, `addheader :last "X-A" "1"; addheader :last "X-A" "2"; addheader :last "X-A" "3"; deleteheader "x-a" (1 removed); implicit keep`},
		{"deleteheader by pattern", rq + `addheader "X-A" "keep me"; addheader "X-A" "drop me";
			deleteheader :matches "x-a" "drop*"; if header :is "x-a" "keep me" { discard; }`,
			"", nil, `addheader "X-A" "keep me"; addheader "X-A" "drop me"; deleteheader "x-a" (1 removed); discard`},
		{"non-ASCII is encoded", rq + `addheader "X-Note" "café";`, "", nil, `addheader "X-Note" "=?utf-8?q?caf=C3=A9?="; implicit keep`},
		{"product form", `require "addheader"; addheader "Spam-test: True ; 7.3 / 5.0";`, "", nil,
			`addheader "Spam-test" "True ; 7.3 / 5.0"; implicit keep`},
		{"auto-submitted by variable is not deleted", rq + `set "n" "Auto-Submitted"; deleteheader "${n}";`,
			"Auto-Submitted: auto-replied\r\n\r\n", nil, `deleteheader "Auto-Submitted" (0 removed); implicit keep`},
	})
}

func TestEditedMessage(t *testing.T) {
	s, err := Compile("", []byte(`require "editheader"; addheader "X-Top" "1"; addheader :last "X-End" "2"; deleteheader "cc";`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("From: a@example.com\r\nCc: b@example.com\r\nSubject: s\r\n\r\nbody\r\n")
	r, err := s.Evaluate(context.Background(), msg, Env{})
	if err != nil {
		t.Fatal(err)
	}
	want := "X-Top: 1\r\nFrom: a@example.com\r\nSubject: s\r\nX-End: 2\r\n\r\nbody\r\n"
	if got := string(r.EditedMessage(msg)); got != want {
		t.Errorf("edited message\n%q\nwant\n%q", got, want)
	}
	r2, _ := Must(t, `keep;`).Evaluate(context.Background(), msg, Env{})
	if string(r2.EditedMessage(msg)) != string(msg) || r2.Header != nil {
		t.Error("a script that edits nothing must leave the message alone")
	}
}

// Must compiles a script or fails the test.
func Must(t testing.TB, src string) *Script {
	t.Helper()
	s, err := Compile("t.sieve", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
