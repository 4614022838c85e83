package channels

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-message"
)

// crlf turns the readable "\n" line breaks of a test message into CRLF.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

var eightBitCases = []struct {
	name        string
	in          string
	changed     bool
	kinds       []ProblemKind // problems expected in the *SevenBitError
	noRoundTrip bool          // the input itself does not decode cleanly
	check       func(t *testing.T, in, out []byte)
}{
	{
		name: "text-plain-utf8",
		in: crlf("From: a@example.com\nTo: b@example.net\nSubject: test\nMIME-Version: 1.0\n" +
			"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n" +
			"Grüße aus Köln — ça va?\ntrailing space \ntab\t\n=equals= and a long line: " +
			strings.Repeat("é", 60) + "\n.\n"),
		changed: true,
		check: func(t *testing.T, in, out []byte) {
			if !bytes.Contains(out, []byte("\r\nContent-Transfer-Encoding: quoted-printable\r\n")) {
				t.Error("CTE not rewritten to quoted-printable")
			}
			if bytes.Contains(out, []byte("8bit")) {
				t.Error("old 8bit label still present")
			}
		},
	},
	{
		// The product documentation's own example of a message that a server
		// without 8BITMIME receives encoded.
		name: "seed-iso-8859-1-nul",
		in: "Date: Wed, 04 Jul 2001 11:59:56 -0700 (PDT)\r\nFrom: \"Desdemona Vilalobos\" <Desdemona@sesta.com> \r\n" +
			"To: santosh@varrius.com\r\nSubject: test message with 8bit data \r\nMIME-Version: 1.0\r\n" +
			"Content-type: TEXT/PLAIN; CHARSET=ISO-8859-1\r\nContent-transfer-encoding: 8BIT\r\n\r\n" +
			"2\x00So are the Bo\xf6tes Void and the Coal Sack the same?",
		changed: true,
		check: func(t *testing.T, in, out []byte) {
			want := "Content-transfer-encoding: quoted-printable\r\n\r\n2=00So are the Bo=F6tes Void and the Coal Sack the same?"
			if !bytes.HasSuffix(out, []byte(want)) {
				t.Errorf("output does not end with %q", want)
			}
		},
	},
	{
		name: "alternative-one-8bit-part",
		in: crlf("From: a@example.com\nMIME-Version: 1.0\nContent-Type: multipart/alternative;\n boundary=\"=_alt\"\n\n" +
			"This is a MIME message.\n--=_alt\nContent-Type: text/plain; charset=us-ascii\n\nPlain ASCII part.\n" +
			"--=_alt\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n<p>Ünïcödé</p>\n" +
			"--=_alt--\nepilogue\n"),
		changed: true,
		check: func(t *testing.T, in, out []byte) {
			seven := "\r\n--=_alt\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nPlain ASCII part.\r\n--=_alt\r\n"
			if !bytes.Contains(out, []byte(seven)) {
				t.Error("7-bit part not byte-identical")
			}
			if !bytes.HasPrefix(out, in[:bytes.Index(in, []byte("--=_alt\r\nContent-Type: text/html"))]) {
				t.Error("header, preamble or first part changed")
			}
		},
	},
	{
		name: "octet-stream-base64",
		in: crlf("From: a@example.com\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b1\n\n--b1\n"+
			"Content-Type: text/plain\n\nsee attachment\n--b1\nContent-Type: application/octet-stream\n"+
			"Content-Disposition: attachment; filename=x.bin\n\n") +
			"\x00\x01\x02\xff\xfe\r\n\n\rbinary\x80" + strings.Repeat("\xaa", 200) + "\r\n--b1--\r\n",
		changed: true,
		check: func(t *testing.T, in, out []byte) {
			if !bytes.Contains(out, []byte("filename=x.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n")) {
				t.Error("base64 CTE not appended after the part's fields")
			}
		},
	},
	{
		name: "binary-cte",
		in: crlf("From: a@example.com\nMIME-Version: 1.0\nContent-Type: image/png\nContent-Transfer-Encoding: binary\n\n") +
			"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\n",
		changed: true,
		check: func(t *testing.T, in, out []byte) {
			if !bytes.Contains(out, []byte("Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgoAAAANSUhEUgo=\r\n")) {
				t.Errorf("binary part not base64-encoded as expected:\n%s", out)
			}
		},
	},
	{
		name: "rfc822-nested-multipart",
		in: crlf("From: a@example.com\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=outer\n\n" +
			"--outer\nContent-Type: text/plain\n\nForwarded message below.\n" +
			"--outer\nContent-Type: message/rfc822\nContent-Transfer-Encoding: 8bit\n\n" +
			"From: c@example.org\nSubject: inner\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=inner\n\n" +
			"--inner\nContent-Type: text/plain; charset=utf-8\n\nÀ bientôt\n--inner\nContent-Type: text/plain\n\nsee you\n--inner--\n" +
			"\n--outer--\n"),
		changed: true,
		check: func(t *testing.T, in, out []byte) {
			if !bytes.Contains(out, []byte("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n\r\n")) {
				t.Error("message/rfc822 not relabelled 7bit")
			}
			if !bytes.Contains(out, []byte("--inner\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=C3=80 bient=C3=B4t\r\n--inner\r\n")) {
				t.Error("inner part not encoded inside the message/rfc822")
			}
		},
	},
	{
		name: "boundary-like-lines",
		in: crlf("From: a@example.com\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=frontier\n\n" +
			"--frontier\nContent-Type: text/plain; charset=utf-8\n\n--frontierX is not a delimiter\n" +
			"-- frontier\nnaïve\n--frontier \t\nContent-Type: text/plain\n\nlast\n--frontier--  \n"),
		changed: true,
		check: func(t *testing.T, in, out []byte) {
			if !bytes.Contains(out, []byte("\r\n--frontierX is not a delimiter\r\n-- frontier\r\nna=C3=AFve\r\n--frontier \t\r\n")) {
				t.Errorf("boundary-like lines or padded delimiter not kept:\n%s", out)
			}
		},
	},
	{
		name: "crlf-bare-cr-lf",
		in: crlf("From: a@example.com\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n") +
			"line one é\r\nbare LF\nbare CR\rend\r\n",
		changed: true,
		check: func(t *testing.T, in, out []byte) {
			for i, c := range out {
				if c == '\n' && (i == 0 || out[i-1] != '\r') || c == '\r' && (i+1 == len(out) || out[i+1] != '\n') {
					t.Fatalf("bare CR or LF at %d in output", i)
				}
			}
			if !bytes.Contains(out, []byte("line one =C3=A9\r\nbare LF=0Abare CR=0Dend\r\n")) {
				t.Errorf("line breaks not preserved:\n%q", out)
			}
		},
	},
	{
		// Found by FuzzSevenBit: with LF delimiters the CR before one stays in
		// the part, as go-message reads it.
		name:    "lf-delimiters-cr-in-part",
		in:      "Content-Type: multipart/mixed; boundary=outer\n\npreamble\n--outer\n\n\xb4\r\n--outer--",
		changed: true,
		check: func(t *testing.T, in, out []byte) {
			if !bytes.HasSuffix(out, []byte("\n--outer\nContent-Transfer-Encoding: quoted-printable\nContent-Type: text/plain; charset=unknown-8bit\n\n=B4=0D\n--outer--")) {
				t.Errorf("CR before an LF delimiter not kept in the part: %q", out)
			}
		},
	},
	{
		name:    "long-ascii-line-no-content-type",
		in:      crlf("Subject: x\n\n" + strings.Repeat("abc ", 300) + "\n"),
		changed: true,
		check: func(t *testing.T, in, out []byte) {
			if !bytes.Contains(out, []byte("Subject: x\r\nContent-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1.0\r\n\r\nabc abc")) {
				t.Errorf("ASCII text labelled unexpectedly:\n%s", out)
			}
		},
	},
	{
		name: "seven-bit-unchanged",
		in: crlf("From: a@example.com\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\n" +
			"Content-Type: text/plain\nContent-Transfer-Encoding: 8bit\n\nonly ascii\n--b--\n"),
		changed: false,
	},
	{
		name:    "no-mime-headers",
		in:      crlf("From: a@example.com\nSubject: old style\n\ncaf\xe9 cr\xe8me\n"),
		changed: true,
		check: func(t *testing.T, in, out []byte) {
			if !bytes.Contains(out, []byte("\r\nContent-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=unknown-8bit\r\n\r\ncaf=E9 cr=E8me\r\n")) {
				t.Errorf("MIME fields not added:\n%s", out)
			}
		},
	},
	{
		name:    "header-8bit-body-7bit",
		in:      crlf("From: a@example.com\nSubject: Grüße\n\nascii body\n"),
		changed: false,
		kinds:   []ProblemKind{Header8Bit},
	},
	{
		name:    "header-8bit-body-8bit",
		in:      crlf("From: Jörg <a@example.com>\nContent-Type: text/plain; charset=utf-8\n\nJörg\n"),
		changed: true,
		kinds:   []ProblemKind{Header8Bit},
		check: func(t *testing.T, in, out []byte) {
			if !bytes.HasPrefix(out, []byte("From: Jörg <a@example.com>\r\n")) {
				t.Error("8-bit header not kept as it was")
			}
		},
	},
	{
		name: "long-line-7bit",
		in: crlf("From: a@example.com\nMIME-Version: 1.0\nContent-Type: text/plain\n\n" +
			strings.Repeat("0123456789", 70) + "--end-" + strings.Repeat("x ", 300) + "\n"),
		changed: true,
		check: func(t *testing.T, in, out []byte) {
			for _, line := range strings.Split(string(out[bytes.Index(out, []byte("\r\n\r\n"))+4:]), "\r\n") {
				if len(line) > qpLineLen {
					t.Errorf("QP line of %d characters", len(line))
				}
				if strings.HasPrefix(line, "--") {
					t.Errorf("QP continuation line starts with --: %q", line)
				}
			}
		},
	},
	{
		name: "qp-with-raw-8bit",
		in: crlf("From: a@example.com\nMIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\n" +
			"Content-Transfer-Encoding: quoted-printable\n\nalready =E9ncoded, raw \xe9 too=\nsoft\n"),
		changed:     true,
		noRoundTrip: true,
		check: func(t *testing.T, in, out []byte) {
			if got := decodedLeaves(t, out); len(got) != 1 || got[0] != "already \xe9ncoded, raw \xe9 toosoft\r\n" {
				t.Errorf("repaired QP decodes to %q", got)
			}
		},
	},
	{
		name: "base64-with-8bit-unconvertible",
		in: crlf("From: a@example.com\nMIME-Version: 1.0\nContent-Type: application/pdf\n" +
			"Content-Transfer-Encoding: base64\n\nAAEC\xff\n"),
		changed:     false,
		kinds:       []ProblemKind{BodyUnconvertible},
		noRoundTrip: true,
	},
	{
		name: "message-partial-unconvertible",
		in: crlf("From: a@example.com\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\n" +
			"Content-Type: message/partial; id=\"x@y\"; number=1\n\n\xe9t\xe9\n--b\nContent-Type: text/plain\n\n\xe9t\xe9\n--b--\n"),
		changed: true,
		kinds:   []ProblemKind{BodyUnconvertible},
	},
	{
		name: "preamble-epilogue-8bit",
		in: crlf("From: a@example.com\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n" +
			"Préambule\n--b\nContent-Type: text/plain\n\nascii\n--b--\népilogue\n"),
		changed: true,
		check: func(t *testing.T, in, out []byte) {
			if !bytes.Contains(out, []byte("\r\n\r\nPr??ambule\r\n--b\r\nContent-Type: text/plain\r\n\r\nascii\r\n--b--\r\n??pilogue\r\n")) {
				t.Errorf("preamble/epilogue not sanitised:\n%s", out)
			}
		},
	},
	{
		name: "digest-default-rfc822",
		in: crlf("From: a@example.com\nMIME-Version: 1.0\nContent-Type: multipart/digest; boundary=d\n\n--d\n\n" +
			"From: x@example.org\nSubject: one\n\nnaïve\n--d\n\nFrom: y@example.org\nSubject: two\n\nplain\n--d--\n"),
		changed: true,
		check: func(t *testing.T, in, out []byte) {
			if !bytes.Contains(out, []byte("Subject: one\r\nContent-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=unknown-8bit\r\n\r\nna=C3=AFve\r\n--d\r\n")) {
				t.Errorf("digest part not converted as a message:\n%s", out)
			}
		},
	},
}

func TestSevenBit(t *testing.T) {
	for _, tc := range eightBitCases {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			out, changed, err := SevenBit(in)
			if changed != tc.changed {
				t.Errorf("changed = %v, want %v", changed, tc.changed)
			}
			var kinds []ProblemKind
			if err != nil {
				var sbe *SevenBitError
				if !errors.As(err, &sbe) {
					t.Fatalf("err is %T, want *SevenBitError: %v", err, err)
				}
				for _, p := range sbe.Problems {
					kinds = append(kinds, p.Kind)
				}
			}
			if !slices.Equal(kinds, tc.kinds) {
				t.Errorf("problems %v (err %v), want %v", kinds, err, tc.kinds)
			}
			if !changed {
				if len(in) > 0 && &out[0] != &in[0] {
					t.Error("unchanged message not returned as the same slice")
				}
			}
			if len(tc.kinds) == 0 && needsEncoding(out) {
				t.Errorf("output is not 7-bit:\n%q", out)
			}
			if !tc.noRoundTrip {
				if got, want := decodedLeaves(t, out), decodedLeaves(t, in); !slices.Equal(got, want) {
					t.Errorf("decoded parts differ:\n got %q\nwant %q", got, want)
				}
			}
			if tc.check != nil {
				tc.check(t, in, out)
			}
			// Converting again changes nothing.
			if again, ch, _ := SevenBit(out); ch || !bytes.Equal(again, out) {
				t.Error("second conversion changed the output")
			}
			eightBitGolden(t, filepath.Join("testdata", "eightbit", tc.name+".golden"), out)
		})
	}
}

// eightBitGolden compares got with the file, or rewrites it under -update.
func eightBitGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s:\n got %q\nwant %q", path, got, want)
	}
}

// decodedLeaves parses raw with go-message and returns the decoded body of every
// leaf part in order, descending into multiparts and message/rfc822.
func decodedLeaves(t testing.TB, raw []byte) []string {
	t.Helper()
	leaves, err := goMessageLeaves(raw, 0)
	if err != nil {
		t.Fatalf("go-message: %v", err)
	}
	return leaves
}

func goMessageLeaves(raw []byte, depth int) ([]string, error) {
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) {
		return nil, err
	}
	var out []string
	var walk func(e *message.Entity, inDigest bool, depth int) error
	walk = func(e *message.Entity, inDigest bool, depth int) error {
		if depth > 20 {
			return errors.New("too deep")
		}
		mt, _, _ := e.Header.ContentType()
		if mr := e.MultipartReader(); mr != nil {
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					return nil
				}
				if err != nil && !message.IsUnknownCharset(err) {
					return err
				}
				if err := walk(p, mt == "multipart/digest", depth+1); err != nil {
					return err
				}
			}
		}
		body, err := io.ReadAll(e.Body)
		if err != nil {
			return err
		}
		// go-message does not apply the digest default (RFC 2046 §5.1.5).
		if mt == "message/rfc822" || inDigest && !e.Header.Has("Content-Type") {
			inner, err := goMessageLeaves(body, depth+1)
			out = append(out, inner...)
			return err
		}
		out = append(out, string(body))
		return nil
	}
	return out, walk(e, false, depth)
}

func TestQPEncodeRoundTrip(t *testing.T) {
	tests := []string{
		"", "a", " ", "a \r\n", "\t\r\n\r\n", "=", "\r", "\n", "\r\r\n", "x\r\n\r\n", "--b\r\n",
		strings.Repeat("é", 100), strings.Repeat("a", 75) + "-" + strings.Repeat("-", 80),
		strings.Repeat(" ", 200), strings.Repeat("a", 74) + " \r\n", strings.Repeat("a", 75) + "=\r\n",
	}
	for _, s := range tests {
		enc := qpEncode([]byte(s))
		if needsEncoding(enc) {
			t.Errorf("qpEncode(%q) = %q is not 7-bit", s, enc)
		}
		for _, line := range strings.Split(string(enc), "\r\n") {
			if len(line) > qpLineLen || strings.ContainsAny(line, "\r\n") {
				t.Errorf("qpEncode(%q): bad line %q", s, line)
			}
		}
		got := decodeWith(t, "quoted-printable", enc)
		if got != s {
			t.Errorf("qpEncode(%q) decodes to %q", s, got)
		}
	}
}

// decodeWith decodes body under the given transfer encoding with go-message.
func decodeWith(t testing.TB, cte string, body []byte) string {
	t.Helper()
	raw := "Content-Type: application/x-test\r\nContent-Transfer-Encoding: " + cte + "\r\n\r\n" + string(body)
	got := decodedLeaves(t, []byte(raw))
	if len(got) != 1 {
		t.Fatalf("decoded %d leaves", len(got))
	}
	return got[0]
}

func TestSevenBitErrorText(t *testing.T) {
	_, _, err := SevenBit([]byte(crlf("Subject: Grüße\nContent-Type: message/partial; id=x\n\n\xe9\n")))
	var sbe *SevenBitError
	if !errors.As(err, &sbe) || !sbe.Has(Header8Bit) || !sbe.Has(BodyUnconvertible) || sbe.Has(HeaderLongLine) {
		t.Fatalf("err = %v", err)
	}
	want := "message not entirely 7-bit: 8-bit header (Subject); body cannot be encoded: message/partial must be 7bit (RFC 2046 section 5.2)"
	if err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	_, _, err = SevenBit([]byte(crlf("A: \xe9\nB: \xe9\nC: \xe9\nD: \xe9\nE: \xe9\nF\xe9: \xe9\nG: \xe9\n\nbody\n")))
	want = "message not entirely 7-bit: 8-bit header (A); 8-bit header (B); 8-bit header (C); 8-bit header (D); 8-bit header (E); and 2 more"
	if err == nil || err.Error() != want {
		t.Errorf("Error() = %v, want %q", err, want)
	}
	if !errors.As(err, &sbe) || len(sbe.Problems) != 7 || sbe.Problems[5].Field != "F\xe9" || !strings.Contains(asciiText(sbe.Problems[5].Field), `"F\xe9"`) {
		t.Errorf("problems %v", sbe.Problems)
	}
	if st := sbe.Status("mx.example.net"); st.Code != 554 || st.Enhanced != "5.6.3" || st.Temporary() {
		t.Errorf("Status() = %v", st)
	}
}

// FuzzSevenBit: no panic; unchanged means the same bytes; the output is 7-bit
// unless a problem was reported, and then its only non-7-bit lines are input
// lines kept as they were; converting again changes nothing; when both parse
// with go-message and nothing was reported, every part decodes to the same
// bytes as before.
func FuzzSevenBit(f *testing.F) {
	for _, tc := range eightBitCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, changed, err := SevenBit(in)
		if !changed && !bytes.Equal(out, in) {
			t.Fatal("changed=false but output differs")
		}
		if err == nil {
			if needsEncoding(out) {
				t.Fatalf("no problem reported but output is not 7-bit: %q", out)
			}
		} else {
			var sbe *SevenBitError
			if !errors.As(err, &sbe) || len(sbe.Problems) == 0 {
				t.Fatalf("err = %#v", err)
			}
			inLines := map[string]bool{}
			for _, l := range bytes.SplitAfter(in, []byte("\n")) {
				inLines[string(bytes.TrimRight(l, "\r\n"))] = true
			}
			for _, l := range bytes.SplitAfter(out, []byte("\n")) {
				l = bytes.TrimRight(l, "\r\n")
				if needsEncoding(l) && !inLines[string(l)] {
					t.Fatalf("new non-7-bit line %q", l)
				}
			}
		}
		// The block-wise scan agrees with the in-memory one.
		atR, atSize, atChanged, atErr := sevenBitAt(bytes.NewReader(in), int64(len(in)), 5)
		if atChanged != changed || (atErr == nil) != (err == nil) || atSize != int64(len(out)) {
			t.Fatalf("sevenBitAt: changed %v size %d err %v; SevenBit: changed %v size %d err %v", atChanged, atSize, atErr, changed, len(out), err)
		}
		if atOut, _ := io.ReadAll(io.NewSectionReader(atR, 0, atSize)); !bytes.Equal(atOut, out) {
			t.Fatal("sevenBitAt output differs from SevenBit")
		}
		again, ch, _ := SevenBit(out)
		if ch || !bytes.Equal(again, out) {
			t.Fatalf("second conversion changed %q", out)
		}
		if err != nil || !changed {
			return
		}
		want, err1 := goMessageLeaves(in, 0)
		got, err2 := goMessageLeaves(out, 0)
		if err1 == nil && err2 == nil && !slices.Equal(got, want) {
			t.Fatalf("decoded parts differ:\n got %q\nwant %q", got, want)
		}
	})
}

// TestSevenBitRandomTrees converts generated MIME trees with random bodies and
// checks with go-message that every part decodes to the same bytes as before
// and that the result is 7-bit.
func TestSevenBitRandomTrees(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 152))
	pieces := []string{"a", "Z", " ", "\t", "\r\n", "\r", "\n", "\x00", "é", "\xff", "\x80", "=", "-", "--", ".", "\r\n.\r\n", strings.Repeat("x", 500), strings.Repeat("\xe9", 90), "From ", "=\r\n", " \r\n"}
	body := func() string {
		var b strings.Builder
		for n := rng.IntN(40); n > 0; n-- {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return b.String()
	}
	seq := 0
	var entity func(depth int) string
	entity = func(depth int) string {
		seq++
		switch k := rng.IntN(6); {
		case depth < 3 && k == 0:
			bd := fmt.Sprintf("=_b%d", seq)
			var b strings.Builder
			b.WriteString("Content-Type: multipart/mixed; boundary=\"" + bd + "\"\r\n\r\n" + "preamble\r\n")
			for n := 1 + rng.IntN(3); n > 0; n-- {
				b.WriteString("--" + bd + "\r\n" + entity(depth+1) + "\r\n")
			}
			b.WriteString("--" + bd + "--\r\n")
			return b.String()
		case depth < 3 && k == 1:
			return "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSubject: inner\r\n" + entity(depth+1)
		case k == 2 || k == 3:
			return "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n" + body()
		default:
			return "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body()
		}
	}
	for i := 0; i < 300; i++ {
		in := []byte("From: a@example.com\r\nMIME-Version: 1.0\r\n" + entity(0))
		out, _, err := SevenBit(in)
		if err != nil {
			t.Fatalf("case %d: %v\n%q", i, err, in)
		}
		if needsEncoding(out) {
			t.Fatalf("case %d: output not 7-bit:\n%q", i, out)
		}
		want, err := goMessageLeaves(in, 0)
		if err != nil {
			t.Fatalf("case %d: go-message on input: %v\n%q", i, err, in)
		}
		got, err := goMessageLeaves(out, 0)
		if err != nil {
			t.Fatalf("case %d: go-message on output: %v\n%q", i, err, out)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("case %d: decoded parts differ:\n got %q\nwant %q\n in %q\nout %q", i, got, want, in, out)
		}
	}
}

func TestSevenBitAt(t *testing.T) {
	for _, tc := range eightBitCases {
		for _, block := range []int{1, 7, 64 << 10} {
			in := []byte(tc.in)
			want, wantChanged, wantErr := SevenBit(in)
			r := bytes.NewReader(in)
			got, size, changed, err := sevenBitAt(r, int64(len(in)), block)
			if changed != wantChanged || (err == nil) != (wantErr == nil) {
				t.Errorf("%s/%d: changed %v err %v, want %v %v", tc.name, block, changed, err, wantChanged, wantErr)
				continue
			}
			if !changed && got != io.ReaderAt(r) {
				t.Errorf("%s/%d: unchanged content not returned as the same reader", tc.name, block)
			}
			if b, _ := io.ReadAll(io.NewSectionReader(got, 0, size)); !bytes.Equal(b, want) {
				t.Errorf("%s/%d: output differs from SevenBit", tc.name, block)
			}
		}
	}
	// A line of exactly 998 octets is fine, 999 is not, across block edges.
	for _, n := range []int{998, 999} {
		in := []byte("Subject: x\r\n\r\n" + strings.Repeat("a", n) + "\r\n")
		_, _, changed, err := sevenBitAt(bytes.NewReader(in), int64(len(in)), 10)
		if err != nil || changed != (n > maxLineLen) {
			t.Errorf("line of %d: changed %v err %v", n, changed, err)
		}
	}
	// A short read is an error that names the offset, never a silent truncation.
	in := []byte("Subject: x\r\n\r\ncaf\xe9\r\n")
	if _, _, _, err := sevenBitAt(bytes.NewReader(in[:10]), int64(len(in)), 4); err == nil || !strings.Contains(err.Error(), "read message") {
		t.Errorf("short content: err = %v", err)
	}
}
