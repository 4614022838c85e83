package mailaddr

import "testing"

func TestQuote(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"postmaster", "postmaster"},
		{"john.doe@example.com", "john.doe@example.com"},
		{"a+tag@example.com", "a+tag@example.com"},
		{"o'hara@example.com", "o'hara@example.com"},
		{"jörg@example.de", "jörg@example.de"},
		{"john doe@example.com", `"john doe"@example.com`},
		{`"john doe"@example.com`, `"john doe"@example.com`}, // already quoted: unchanged
		{`"a\"b"@example.com`, `"a\"b"@example.com`},
		{`"a"b"@example.com`, `"\"a\"b\""@example.com`}, // not one quoted string
		{"a..b@example.com", `"a..b"@example.com`},
		{".a@example.com", `".a"@example.com`},
		{"a.@example.com", `"a."@example.com`},
		{`say "hi"@example.com`, `"say \"hi\""@example.com`},
		{`back\slash@example.com`, `"back\\slash"@example.com`},
		{"user@other@example.com", `"user@other"@example.com`},
		{"a(b)@example.com", `"a(b)"@example.com`},
	} {
		if got := Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// Quote is idempotent: what it returns, it returns unchanged.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"a@b", "john doe@x", `"q"@x`, `a"b@x`, `\@x`, "@x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := Quote(s)
		if again := Quote(q); again != q {
			t.Fatalf("Quote(%q) = %q, but Quote of that = %q", s, q, again)
		}
	})
}
