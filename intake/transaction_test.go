package intake

import (
	"testing"

	"mtad.dev/mta/mappings"
)

// TestCountTrace: Received: fields counted in the header section only, Message-ID unfolded.
func TestCountTrace(t *testing.T) {
	msg := "Received: from a\r\n\tby b\r\nreceived : x\r\nMessage-ID:\r\n <id@x>\r\nX-Not-Received: y\r\n\r\nReceived: body\r\n"
	h := countTrace([]byte(msg), "")
	if h.received != 2 || h.messageID != "<id@x>" {
		t.Errorf("%+v", h)
	}
	if h := countTrace([]byte("\r\nReceived: x\r\n"), ""); h.received != 0 {
		t.Errorf("empty header section: %+v", h)
	}
}

func TestAccessStatus(t *testing.T) {
	tests := []struct {
		a    mappings.Access
		addr string
		want string
	}{
		{mappings.Access{Reject: true, Text: "Relaying denied"}, "bob@x.org", "550 5.7.1 Relaying denied bob@x.org"},
		{mappings.Access{Reject: true, Enhanced: "4.2.1", Text: "Host temporarily blocked"}, "a@b", "450 4.2.1 Host temporarily blocked a@b"},
		{mappings.Access{Reject: true}, "a@b", "550 5.7.1 Access denied a@b"},
		{mappings.Access{Reject: true, Enhanced: "2.0.0", Text: "odd"}, "", "550 5.7.1 odd"},
	}
	for _, tt := range tests {
		if got := accessStatus(tt.a, tt.addr).Error(); got != tt.want {
			t.Errorf("accessStatus(%+v) = %q, want %q", tt.a, got, tt.want)
		}
	}
}
