package senderauth

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// Signatures made by other implementations verify here (Debian's
// opendkim-tools and python3-dkim; .ci/run installs both, the test skips with
// the reason when one is missing). dkimpy's dkimsign signs rsa-sha256 and
// ed25519-sha256, both canonicalisations: each must pass, and fail once the
// body changes. opendkim-testmsg can only sign rsa-sha1, which RFC 8301 forbids
// a verifier to accept: its signature must be refused for that reason alone
// (the key and body hash are right).

const interopMessage = "From: Ann <ann@example.test>\nTo: bob@example.net\nSubject: interop\n" +
	"Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <interop@example.test>\n\nHello  there,\n\tBob.\n\n\n"

func TestInteropDkimpy(t *testing.T) {
	for _, tool := range []string{"dkimsign", "dknewkey", "opendkim-genkey"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian python3-dkim, opendkim-tools): %v", tool, err)
		}
	}
	dir := t.TempDir()
	run(t, dir, nil, "opendkim-genkey", "-b", "2048", "-d", "example.test", "-s", "rsa")
	run(t, dir, nil, "dknewkey", "--ktype", "ed25519", "ed")
	records := []string{keyRecord(t, dir, "rsa", "rsa.txt"), keyRecord(t, dir, "ed", "ed.dns")}
	r, _ := zone(t, records...)
	for _, c := range []struct{ alg, sel, key, hc, bc string }{
		{"rsa-sha256", "rsa", "rsa.private", "relaxed", "simple"},
		{"rsa-sha256", "rsa", "rsa.private", "simple", "relaxed"},
		{"ed25519-sha256", "ed", "ed.key", "relaxed", "relaxed"},
		{"ed25519-sha256", "ed", "ed.key", "simple", "simple"},
	} {
		name := c.alg + " " + c.hc + "/" + c.bc
		signed := run(t, dir, []byte(interopMessage), "dkimsign", "--signalg", c.alg, "--hcanon", c.hc, "--bcanon", c.bc, c.sel, "example.test", filepath.Join(dir, c.key))
		got := VerifyDKIM(testCtx(t), r, crlf(string(signed)), 0)
		if len(got) != 1 || got[0].Result != DKIMPass || got[0].Selector != c.sel {
			t.Errorf("%s: %+v, want pass", name, got)
		}
		tampered := bytes.Replace(signed, []byte("Bob."), []byte("Eve."), 1)
		if got := VerifyDKIM(testCtx(t), r, crlf(string(tampered)), 0); len(got) != 1 || got[0].Result != DKIMFail {
			t.Errorf("%s, body changed: %+v, want fail", name, got)
		}
	}
}

func TestInteropOpenDKIM(t *testing.T) {
	for _, tool := range []string{"opendkim-testmsg", "opendkim-genkey"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian opendkim-tools): %v", tool, err)
		}
	}
	dir := t.TempDir()
	run(t, dir, nil, "opendkim-genkey", "-b", "2048", "-d", "example.test", "-s", "od")
	// The record opendkim-genkey writes says h=sha256; without it the key
	// allows sha1, so only RFC 8301 can refuse the signature.
	r, _ := zone(t, strings.Replace(keyRecord(t, dir, "od", "od.txt"), "h=sha256; ", "", 1))
	signed := run(t, dir, []byte(interopMessage), "opendkim-testmsg", "-d", "example.test", "-s", "od", "-k", filepath.Join(dir, "od.private"))
	if !bytes.Contains(signed, []byte("a=rsa-sha1")) {
		t.Fatalf("opendkim-testmsg no longer signs rsa-sha1; make this test expect a pass:\n%s", signed)
	}
	got := VerifyDKIM(testCtx(t), r, crlf(string(signed)), 0)
	if len(got) != 1 || got[0].Result != DKIMPermError || !strings.Contains(got[0].Problem, "sha1") {
		t.Errorf("OpenDKIM's rsa-sha1 signature: %+v, want permerror for the hash (RFC 8301)", got)
	}
}

// run runs a tool in dir with stdin and returns its standard output.
func run(t *testing.T, dir string, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.Bytes())
	}
	return out
}

// keyRecord turns a tool's key record file (opendkim-genkey's zone-file
// fragment, or dknewkey's bare text) into a TXT record at
// SEL._domainkey.example.test.
func keyRecord(t *testing.T, dir, sel, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if strs := regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(text, -1); len(strs) > 0 {
		text = ""
		for _, s := range strs {
			text += s[1]
		}
	}
	rr := &dns.TXT{Hdr: dns.RR_Header{Name: sel + "._domainkey.example.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}}
	for text = strings.TrimSpace(text); len(text) > 255; text = text[255:] {
		rr.Txt = append(rr.Txt, text[:255])
	}
	rr.Txt = append(rr.Txt, text)
	return rr.String()
}
