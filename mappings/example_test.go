package mappings_test

import (
	"encoding"
	"fmt"

	"mtad.dev/mta/mappings"
)

// The image stores both through gob, which uses these interfaces.
var (
	_ encoding.BinaryMarshaler   = (*mappings.Set)(nil)
	_ encoding.BinaryUnmarshaler = (*mappings.Set)(nil)
	_ encoding.BinaryMarshaler   = (*mappings.Aliases)(nil)
	_ encoding.BinaryUnmarshaler = (*mappings.Aliases)(nil)
)

// The shape `mtactl test -match` prints (the product's documented example).
func ExamplePattern_MatchDetail() {
	p, err := mappings.CompilePattern("$_*@*.$[a-z]*")
	if err != nil {
		panic(err)
	}
	ok, caps := p.MatchDetail("a@b.example.com")
	if !ok {
		fmt.Println("No match.")
		return
	}
	fmt.Println("Match.")
	for _, c := range caps {
		fmt.Printf(" %d - %s\n", c.Index, c.Text)
	}
	// Output:
	// Match.
	//  0 - a
	//  1 - b.example
	//  2 - com
}

// An ORIG_SEND_ACCESS refusal as the SMTP server sees it (the product's documented
// example).
func ExampleDecodeAccess() {
	set, errs := mappings.Compile([]mappings.TableSource{{
		Name: "ORIG_SEND_ACCESS", Src: "mappings:1",
		Entries: []mappings.EntrySource{
			{Pattern: "*|*@sesta.com|*|*", Template: "$X4.2.1|$NHost$ temporarily$ blocked", Src: "mappings:3"},
		},
	}})
	if errs != nil {
		panic(errs)
	}
	r, _ := set.Map("ORIG_SEND_ACCESS", "tcp_local|joe@sesta.com|ims-ms|ann@siroe.com", 0, nil)
	fmt.Printf("Output string: %s\nOutput flags: %s\n", r.Output, r.Flags)
	a := mappings.DecodeAccess(r)
	fmt.Printf("reject=%v code=%s text=%q src=%s\n", a.Reject, a.Enhanced, a.Text, a.Src)
	// Output:
	// Output string: 4.2.1|Host temporarily blocked
	// Output flags: NX
	// reject=true code=4.2.1 text="Host temporarily blocked" src=mappings:3
}
