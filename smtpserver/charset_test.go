package smtpserver

import (
	"testing"
)

func TestAddrCharset(t *testing.T) {
	syntax := enhancedCode{5, 1, 3}
	tests := []struct {
		name     string
		addr     string
		smtputf8 bool
		code     int // 0: accepted
	}{
		{"ascii", "a@example.org", false, 0},
		{"utf8 with SMTPUTF8", "\xc3\xa9@example.org", true, 0},
		{"utf8 without SMTPUTF8", "\xc3\xa9@example.org", false, 553},
		{"encoded surrogate", "\xed\xa0\x80@example.org", true, 501},
		{"truncated sequence", "\xc3@example.org", false, 501},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := addrCharset(tt.addr, tt.smtputf8, syntax)
			switch {
			case tt.code == 0 && e != nil:
				t.Errorf("refused: %v", e)
			case tt.code != 0 && (e == nil || e.Code != tt.code):
				t.Errorf("got %v, want %d", e, tt.code)
			}
		})
	}
}
