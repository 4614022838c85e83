package intake

import (
	"reflect"
	"testing"

	"mtad.dev/mta/engine"
)

// TestCopiesBySender: recipients that came through a list with an owner get
// their own copy, whose sender is the owner; copies come in the order of their
// first recipient and keep the message's envelope fields.
func TestCopiesBySender(t *testing.T) {
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
			tx := &Transaction{rules: &Rules{}, origin: Origin{Channel: "tcp_local"}, from: tt.from}
			for i, a := range tt.rcpts {
				sender := ""
				if i < len(tt.senders) {
					sender = tt.senders[i]
				}
				tx.add(Recipient{Addr: a}, route{rcpt: engine.Recipient{Address: a, Sender: sender}}, i)
			}
			var got []copy
			for _, cp := range tx.copies(Message{RET: "HDRS"}, "", "") {
				e := cp.Envelope
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
