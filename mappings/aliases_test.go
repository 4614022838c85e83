package mappings

import (
	"bytes"
	"encoding/gob"
	"errors"
	"reflect"
	"testing"
)

func TestAliases(t *testing.T) {
	a, errs := CompileAliases([]AliasSource{
		{Name: "Postmaster", Targets: []string{"root@siroe.com"}, Src: "aliases:1"},
		{Name: "staff", Targets: []string{"Ann@siroe.com", " bob@siroe.com "}, Src: "aliases:2"},
		{Name: "list", Targets: []string{"list", "x@y"}, Src: "aliases:3"},
	})
	if errs != nil {
		t.Fatal(errs)
	}
	if a.Len() != 3 {
		t.Errorf("Len = %d", a.Len())
	}
	tests := []struct {
		name    string
		targets []string
		src     string
		ok      bool
	}{
		{"postmaster", []string{"root@siroe.com"}, "aliases:1", true},
		{"POSTMASTER", []string{"root@siroe.com"}, "aliases:1", true},
		{"Staff", []string{"Ann@siroe.com", "bob@siroe.com"}, "aliases:2", true},
		{"list", []string{"list", "x@y"}, "aliases:3", true},
		{"nobody", nil, "", false},
	}
	check := func(a *Aliases) {
		t.Helper()
		for _, tc := range tests {
			targets, src, ok := a.Lookup(tc.name)
			if ok != tc.ok || src != tc.src || !reflect.DeepEqual(targets, tc.targets) {
				t.Errorf("Lookup(%q) = %q %q %v, want %q %q %v", tc.name, targets, src, ok, tc.targets, tc.src, tc.ok)
			}
		}
	}
	check(a)
	if got := a.Names(); !reflect.DeepEqual(got, []string{"Postmaster", "staff", "list"}) {
		t.Errorf("Names = %q", got)
	}

	// Binary and gob round trips.
	b, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var a2 Aliases
	if err := a2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	check(&a2)
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(struct{ A *Aliases }{a}); err != nil {
		t.Fatal(err)
	}
	var dec struct{ A *Aliases }
	if err := gob.NewDecoder(&buf).Decode(&dec); err != nil {
		t.Fatal(err)
	}
	check(dec.A)
	for n := 0; n < len(b); n++ {
		var bad Aliases
		if err := bad.UnmarshalBinary(b[:n]); err == nil {
			t.Errorf("truncated to %d bytes: no error", n)
		}
	}
}

func TestAliasErrors(t *testing.T) {
	_, errs := CompileAliases([]AliasSource{
		{Name: "Staff", Targets: []string{"a@b"}, Src: "aliases:1"},
		{Name: "STAFF", Targets: []string{"c@d"}, Src: "aliases:2"},
		{Name: "empty", Src: "aliases:3"},
		{Name: "blank", Targets: []string{"a@b", " "}, Src: "aliases:4"},
	})
	want := []string{
		`aliases:2: duplicate aliases found: "STAFF" (first at aliases:1)`,
		`aliases:3: no equivalence addresses for alias: "empty"`,
		`aliases:4: bad equivalence for alias: "blank": target 2 is " "`,
	}
	if len(errs) != len(want) {
		t.Fatalf("errors = %v", errs)
	}
	for i, w := range want {
		var se *SourceError
		if !errors.As(errs[i], &se) || errs[i].Error() != w {
			t.Errorf("error %d = %q, want %q", i, errs[i], w)
		}
	}
}

func TestNilAliases(t *testing.T) {
	var a *Aliases
	if _, _, ok := a.Lookup("x"); ok || a.Len() != 0 {
		t.Error("nil Aliases is not empty")
	}
}
