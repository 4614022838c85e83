package queue

import (
	"reflect"
	"testing"
)

func TestSplitBySender(t *testing.T) {
	r := func(a string) Recipient { return Recipient{Addr: a} }
	type copy struct {
		from  string
		rcpts []string
	}
	tests := []struct {
		name    string
		from    string
		rcpts   []string
		senders []string
		want    []copy
	}{
		{"no owners", "p@x", []string{"a", "b"}, nil, []copy{{"p@x", []string{"a", "b"}}}},
		{"owner equal to the sender", "p@x", []string{"a"}, []string{"p@x"}, []copy{{"p@x", []string{"a"}}}},
		{"one list", "p@x", []string{"a", "m1", "m2", "b"}, []string{"", "owner-l@x", "owner-l@x", ""},
			[]copy{{"p@x", []string{"a", "b"}}, {"owner-l@x", []string{"m1", "m2"}}}},
		{"list first, order of first recipient", "", []string{"m1", "a", "n1", "m2"}, []string{"owner-l@x", "", "owner-n@x", "owner-l@x"},
			[]copy{{"owner-l@x", []string{"m1", "m2"}}, {"", []string{"a"}}, {"owner-n@x", []string{"n1"}}}},
		{"senders shorter than recipients", "p@x", []string{"m1", "a"}, []string{"owner-l@x"},
			[]copy{{"owner-l@x", []string{"m1"}}, {"p@x", []string{"a"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := &Envelope{From: tt.from, RET: "HDRS", Source: "tcp_local"}
			for _, a := range tt.rcpts {
				base.Rcpts = append(base.Rcpts, r(a))
			}
			var got []copy
			for _, e := range SplitBySender(base, tt.senders) {
				if e == base {
					t.Fatal("returned the base envelope itself, not a copy")
				}
				if e.RET != "HDRS" || e.Source != "tcp_local" {
					t.Errorf("copy lost envelope fields: %+v", e)
				}
				c := copy{from: e.From}
				for _, rc := range e.Rcpts {
					c.rcpts = append(c.rcpts, rc.Addr)
				}
				got = append(got, c)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
