package sieve

import (
	"context"
	"strings"
	"testing"
	"time"
)

// personalMessage is testMessage without its List-ID: mail a vacation answers.
func personalMessage() string {
	return strings.Replace(testMessage, "List-ID: Acme users <acme-users.lists.example.com>\r\n", "", 1)
}

// RFC 5230 vacation.
func TestVacation(t *testing.T) {
	s := Must(t, `require "vacation";
vacation :days 23 :addresses ["tjs@example.edu", "ts4z@landru.example.edu"] :handle "away"
  "I'm away until October 19.";`)
	r, err := s.Evaluate(context.Background(), []byte(personalMessage()), testEnv())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Actions) != 1 || !r.ImplicitKeep {
		t.Fatalf("vacation must not cancel the implicit keep: %s", render(r))
	}
	v := r.Actions[0].(*Vacation)
	if v.Days != 23 || v.Handle != "away" || v.Reason != "I'm away until October 19." ||
		v.Subject != "Auto: [acme-users] [fwd] version 1.0 is out" || v.ReplyTo != "coyote@desert.example.org" ||
		v.InReplyTo != "<1234@desert.example.org>" || v.Suppressed != "" || v.Pos.Line != 2 {
		t.Errorf("vacation = %+v", v)
	}
	if strings.Join(v.Addresses, ",") != "ken+sieve@example.com,tjs@example.edu,ts4z@landru.example.edu" {
		t.Errorf("addresses %v", v.Addresses)
	}
	r2, _ := Must(t, `require "vacation"; vacation :subject "Gone" :from "me@example.com" :mime "x";`).
		Evaluate(context.Background(), []byte(testMessage), testEnv())
	v2 := r2.Actions[0].(*Vacation)
	if v2.Days != 7 || v2.Subject != "Gone" || v2.From != "me@example.com" || !v2.Mime || !strings.HasPrefix(v2.Handle, "vacation-") {
		t.Errorf("defaults: %+v", v2)
	}
}

func TestVacationSuppressed(t *testing.T) {
	script := `require "vacation"; vacation "away";`
	nullSender := testEnv()
	nullSender.Envelope.From = ""
	owner := testEnv()
	owner.Envelope.From = "owner-list@example.com"
	notMe := testEnv()
	notMe.Envelope.To = []string{"someone.else@example.com"}
	cases := []struct {
		name string
		msg  string
		env  Env
		want string
	}{
		{"answered", personalMessage(), testEnv(), ""},
		{"null sender", testMessage, nullSender, "null envelope sender"},
		{"list owner", personalMessage(), owner, "sender is a mailing list or a mailer"},
		{"not addressed to me", personalMessage(), notMe, "recipient is not in To, Cc or Bcc"},
		{"auto-submitted", "Auto-Submitted: auto-replied\r\nTo: ken+sieve@example.com\r\n\r\n", testEnv(), "message is auto-submitted"},
		{"precedence bulk", "Precedence: bulk\r\nTo: ken+sieve@example.com\r\n\r\n", testEnv(), "message is bulk or list mail"},
		{"list-id", "List-Id: <x.example.com>\r\nTo: ken+sieve@example.com\r\n\r\n", testEnv(), "message is list mail"},
		{"subaddress of a To: address", "To: ken@example.com\r\n\r\n", testEnv(), ""},
		{"list-unsubscribe", "list-unsubscribe: <mailto:x@example.com>\r\nTo: ken+sieve@example.com\r\n\r\n", testEnv(), "message is list mail"},
	}
	for _, c := range cases {
		r, err := Must(t, script).Evaluate(context.Background(), []byte(c.msg), c.env)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Actions[0].(*Vacation).Suppressed; got != c.want {
			t.Errorf("%s: suppressed %q, want %q", c.name, got, c.want)
		}
	}
	if got := evalScript(t, `require ["vacation", "reject"]; vacation "a"; reject "b";`, "", nil); !strings.Contains(got, "reject cannot be combined with vacation") {
		t.Errorf("vacation then reject: %s", got)
	}
	if got := evalScript(t, `require "vacation"; vacation "a"; vacation "b";`, "", nil); !strings.Contains(got, "vacation can only be used once") {
		t.Errorf("two vacations: %s", got)
	}
}

// RFC 5260 date and index.
func TestDateIndex(t *testing.T) {
	rq := `require ["date", "relational", "index"]; `
	local := testEnv()
	local.Location = time.FixedZone("+0200", 2*3600)
	runCases(t, []evalCase{
		{"date year", rq + `if date :is "date" "year" "2026" { discard; }`, "", nil, "discard"},
		{"date in local zone (UTC)", rq + `if date :is "date" "time" "14:58:30" { discard; }`, "", nil, "discard"},
		{"date original zone", rq + `if date :originalzone :is "date" "zone" "-0500" { discard; }`, "", nil, "discard"},
		{"date :zone", rq + `if date :zone "+0100" :is "date" "hour" "15" { discard; }`, "", nil, "discard"},
		{"date local from env", rq + `if date :is "date" "hour" "16" { discard; }`, "", &local, "discard"},
		{"weekday", rq + `if date :is "date" "weekday" "2" { discard; }`, "", nil, "discard"},
		{"julian", rq + `if date :is "date" "julian" "61375" { discard; }`, "", nil, "discard"},
		{"iso8601 and std11", rq + `if allof(date :is "date" "iso8601" "2026-12-01T14:58:30+00:00",
			date :originalzone :is "date" "std11" "Tue, 01 Dec 2026 09:58:30 -0500") { discard; }`, "", nil, "discard"},
		{"no such header", rq + `if date :is "x-none" "year" "2026" { discard; }`, "", nil, "implicit keep"},
		{"received date, last one", rq + `if date :index 1 :last :originalzone :is "received" "zone" "-0500" { discard; }`, "", nil, "discard"},
		{"received date, first one", rq + `if date :index 1 :originalzone :is "received" "zone" "+0000" { discard; }`, "", nil, "discard"},
		{"currentdate", rq + `if currentdate :value "ge" "date" "2026-01-01" { discard; }`, "", nil, "discard"},
		{"currentdate zone", rq + `if currentdate :zone "-0800" :is "hour" "04" { discard; }`, "", nil, "discard"},
		{"currentdate without a time", rq + `if currentdate :matches "year" "*" { discard; }`, "", &Env{}, "implicit keep"},
		{"header :index", rq + `if header :index 2 :contains "received" "client.example.org" { discard; }`, "", nil, "discard"},
		{"header :index out of range", rq + `if header :index 3 :contains "received" "example" { discard; }`, "", nil, "implicit keep"},
		{"address :index :last", rq + `if address :index 1 :last :is "to" "roadrunner@acme.example.com" { discard; }`, "", nil, "discard"},
	})
}

// RFC 5235 spamtest and virustest, and the product's spamadjust.
func TestSpamVirus(t *testing.T) {
	rq := `require ["spamtest", "relational", "comparator-i;ascii-numeric", "fileinto"]; `
	spam := testEnv()
	spam.Spam = &SpamScore{Score: 7.3, Text: "True ; 7.3 / 5.0"}
	virus := testEnv()
	virus.Virus = &VirusScore{Score: 5, Text: "Worm.Mydoom.I"}
	product := rq + `if spamtest :value "ge" :comparator "i;ascii-numeric" "8" { discard; }
		elsif spamtest :value "ge" :comparator "i;ascii-numeric" "5" { fileinto "Junk"; }`
	runCases(t, []evalCase{
		{"not tested is 0", rq + `if spamtest :value "eq" :comparator "i;ascii-numeric" "0" { discard; }`, "", nil, "discard"},
		{"documented example, 7.3", product, "", &spam, `fileinto "Junk"`},
		{"text follows the number", rq + `if spamtest :contains "7.3 / 5.0" { discard; }`, "", &spam, "discard"},
		{"percent", `require ["spamtestplus", "relational", "comparator-i;ascii-numeric"];
			if spamtest :percent :value "eq" :comparator "i;ascii-numeric" "73" { discard; }`, "", &spam, "discard"},
		{"spamadjust raises the score", rq + `spamadjust "+1.5 more"; ` + strings.TrimPrefix(product, rq), "", &spam,
			`spamadjust "+1.5 more"; discard`},
		{"spamadjust from untested", rq + `spamadjust "True ; 6.1 / 5.0"; if spamtest :value "eq" :comparator "i;ascii-numeric" "6" { discard; }`,
			"", nil, `spamadjust "True ; 6.1 / 5.0"; discard`},
		{"spamadjust negative", rq + `spamadjust "-7"; if spamtest :value "eq" :comparator "i;ascii-numeric" "0" { discard; }`,
			"", &spam, `spamadjust "-7"; discard`},
		{"virustest", `require ["virustest", "relational", "comparator-i;ascii-numeric"];
			if virustest :value "eq" :comparator "i;ascii-numeric" "5" { discard; }`, "", &virus, "discard"},
		{"virustest untested", `require ["virustest", "relational", "comparator-i;ascii-numeric"];
			if virustest :value "eq" :comparator "i;ascii-numeric" "0" { discard; }`, "", nil, "discard"},
	})
	s := Must(t, rq+`spamadjust "2"; spamadjust "0.5 extra";`)
	r, _ := s.Evaluate(context.Background(), []byte(testMessage), spam)
	if r.Spam == nil || r.Spam.Score != 9.8 || r.Spam.Text != "True ; 7.3 / 5.0 2 0.5 extra" {
		t.Errorf("spam after adjust: %+v", r.Spam)
	}
}

// RFC 5173 body.
func TestBody(t *testing.T) {
	multipart := "From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n" +
		"preamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"caf=C3=A9 au lait\r\n--b1\r\nContent-Type: text/html\r\n\r\n<p>Hello <b>world</b></p>\r\n" +
		"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nU0VDUkVU\r\n" +
		"--b1\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner text here\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nna=EFve\r\n--b1--\r\n"
	rq := `require ["body", "relational", "comparator-i;ascii-numeric"]; `
	runCases(t, []evalCase{
		{"raw", rq + `if body :raw :contains "MAKE MONEY FAST" { discard; }`, "", nil, "discard"},
		{"text default", rq + `if body :contains "make money" { discard; }`, "", nil, "discard"},
		{"decoded quoted-printable", rq + `if body :text :contains "café" { discard; }`, multipart, nil, "discard"},
		{"raw is not decoded", rq + `if body :raw :contains "café" { discard; }`, multipart, nil, "implicit keep"},
		{"content type only", rq + `if body :content "text/html" :contains "<b>world" { discard; }`, multipart, nil, "discard"},
		{"content text/plain misses html", rq + `if body :content "text/plain" :contains "world" { discard; }`, multipart, nil, "implicit keep"},
		{"base64 application part", rq + `if body :content "application" :contains "SECRET" { discard; }`, multipart, nil, "discard"},
		{"empty type is every part", rq + `if body :content "" :contains "SECRET" { discard; }`, multipart, nil, "discard"},
		{"attached message body", rq + `if body :text :contains "inner text" { discard; }`, multipart, nil, "discard"},
		{"latin-1", rq + `if body :text :contains "naïve" { discard; }`, multipart, nil, "discard"},
		{"count of text parts", rq + `if body :text :count "eq" :comparator "i;ascii-numeric" "4" { discard; }`, multipart, nil, "discard"},
	})
}

// The product's extensions: jettison, addtag, redirect arguments.
func TestProductExtensions(t *testing.T) {
	runCases(t, []evalCase{
		{"jettison", `require "jettison"; jettison;`, "", nil, "jettison"},
		{"addtag", `require "addtag"; addtag "[SPAM]"; addtag "[big one]";`, "", nil, `addtag "[SPAM]"; addtag "[big one]"; implicit keep`},
		{"addtag with bar from a variable", `require ["addtag", "variables"]; set "t" "a|b"; addtag "${t}";`, "", nil,
			`error: t.sieve:1:49: addtag: a tag cannot contain "|": "a|b"`},
		{"redirect arguments", `redirect :resent :resetmailfrom :notify "success,failure" "bob@example.com";`, "", nil,
			`redirect :resent :resetmailfrom :notify "SUCCESS,FAILURE" "bob@example.com"`},
		{"redirect noresent keepmailfrom", `redirect :noresent :keepmailfrom :notify ["NEVER"] "bob@example.com";`, "", nil,
			`redirect :noresent :notify "NEVER" "bob@example.com"`},
		{"redirect with variable address", `require "variables"; set "a" "not an address"; redirect "${a}";`, "", nil,
			`error: t.sieve:1:48: redirect: "not an address" is not a valid address`},
	})
	r, _ := Must(t, `require ["jettison", "addtag"]; addtag "x"; jettison;`).Evaluate(context.Background(), []byte(testMessage), testEnv())
	if !r.Jettisoned() || strings.Join(r.Tags(), ",") != "x" {
		t.Errorf("Jettisoned %v Tags %v", r.Jettisoned(), r.Tags())
	}
}

func TestEncodedCharacter(t *testing.T) {
	runCases(t, []evalCase{
		{"hex and unicode", `require ["encoded-character", "fileinto"]; fileinto "${hex:48 69} ${unicode:263a}";`, "", nil, `fileinto "Hi ☺"`},
		{"not required, literal", `require "fileinto"; fileinto "${hex:48}";`, "", nil, `fileinto "${hex:48}"`},
		{"malformed stays", `require ["encoded-character", "fileinto"]; fileinto "${hex:4G}";`, "", nil, `fileinto "${hex:4G}"`},
	})
}

func TestTrace(t *testing.T) {
	s := Must(t, "require \"fileinto\";\nif anyof (false, header :contains \"subject\" \"acme\") {\n  fileinto \"A\";\n  stop;\n}\nkeep;\n")
	var lines []string
	env := testEnv()
	env.Trace = func(ev TraceEvent) { lines = append(lines, ev.String()) }
	if _, err := s.Evaluate(context.Background(), []byte(testMessage), env); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"t.sieve:2:11: test false = false",
		"t.sieve:2:18: test header = true",
		"t.sieve:2:4: test anyof = true",
		`t.sieve:3:3: fileinto "A"`,
		"t.sieve:4:3: stop",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("trace:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestActionPositions(t *testing.T) {
	s := Must(t, "require \"fileinto\";\n\nfileinto \"A\";\nredirect \"b@example.com\";\n")
	r, _ := s.Evaluate(context.Background(), []byte(testMessage), testEnv())
	var got []string
	for _, a := range r.Actions {
		got = append(got, a.Position().Short())
	}
	if strings.Join(got, " ") != "t.sieve:3 t.sieve:4" {
		t.Errorf("positions %v", got)
	}
}

// A script compiled once is evaluated by many goroutines at once (run with -race).
func TestConcurrentEvaluate(t *testing.T) {
	s := Must(t, `require ["fileinto", "variables", "editheader", "imap4flags"];
if header :matches "subject" "[*] *" { set "list" "${1}"; }
addflag "x"; addheader "X-List" "${list}";
if header :is "x-list" "acme-users" { fileinto "lists/${list}"; }`)
	done := make(chan string, 8)
	for i := 0; i < 8; i++ {
		go func() {
			var last string
			for j := 0; j < 200; j++ {
				r, err := s.Evaluate(context.Background(), []byte(testMessage), testEnv())
				if err != nil {
					last = err.Error()
					break
				}
				last = render(r)
			}
			done <- last
		}()
	}
	for i := 0; i < 8; i++ {
		if got := <-done; got != `addheader "X-List" "acme-users"; fileinto "lists/acme-users" :flags "x"` {
			t.Errorf("goroutine got %s", got)
		}
	}
}

func TestCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r, err := Must(t, `keep;`).Evaluate(ctx, []byte(testMessage), testEnv())
	if err == nil || !strings.Contains(err.Error(), "cancelled") || !r.ImplicitKeep {
		t.Errorf("cancelled: %v %s", err, render(r))
	}
}

func TestAddressOnlyOnAddressFields(t *testing.T) {
	runCases(t, []evalCase{
		{"subject is not an address field", `if address :contains "subject" "acme" { discard; }`, "", nil, "implicit keep"},
		{"reply-to is", `if address :is "reply-to" "x@example.com" { discard; }`, "Reply-To: X <x@example.com>\r\n\r\n", nil, "discard"},
	})
}

// TestImplicitCapabilities: Options.Implicit grants the product's own
// extensions without a require (the documented `data:,addtag "[SPAM]";`), and
// nothing a script is not allowed.
func TestImplicitCapabilities(t *testing.T) {
	src := []byte(`addtag "[SPAM]"; jettison;`)
	if _, err := Compile("s", src, Options{}); err == nil {
		t.Fatal("without Implicit, addtag needs a require")
	}
	s, err := Compile("s", src, Options{Implicit: []string{"addtag", "jettison"}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Evaluate(context.Background(), []byte("Subject: x\r\n\r\n"), testEnv())
	if err != nil || !r.Jettisoned() || len(r.Tags()) != 1 {
		t.Fatalf("got %v %v", r, err)
	}
	_, err = Compile("s", []byte(`vacation "x";`), Options{Implicit: []string{"vacation"},
		Extensions: []string{"addtag"}})
	if err == nil {
		t.Error("Implicit granted an extension Extensions does not allow")
	}
}
