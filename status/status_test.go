package status

import (
	"errors"
	"fmt"
	"testing"
)

func TestFrom(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		want      string
		temporary bool
	}{
		{"status", New(550, "5.1.1", "no such user"), "550 5.1.1 no such user", false},
		{"wrapped status", fmt.Errorf("deliver: %w", New(452, "4.5.3", "too many")), "452 4.5.3 too many", true},
		{"unknown error is temporary", errors.New("disk on fire"), "451 4.3.0 disk on fire", true},
		{"no enhanced code", New(421, "", "bye"), "421 bye", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := From(tt.err)
			if got := s.Error(); got != tt.want {
				t.Errorf("From(%v) = %q, want %q", tt.err, got, tt.want)
			}
			if s.Temporary() != tt.temporary {
				t.Errorf("Temporary() = %v, want %v", s.Temporary(), tt.temporary)
			}
		})
	}
	if From(nil) != nil {
		t.Error("From(nil) != nil")
	}
}

func TestFromEnhanced(t *testing.T) {
	if s := FromEnhanced("4.2.1", "Host temporarily blocked"); s.Code != 450 || !s.Temporary() {
		t.Errorf("4.2.1 -> %v", s)
	}
	if s := FromEnhanced("5.7.1", "Go away!"); s.Code != 550 || s.Temporary() {
		t.Errorf("5.7.1 -> %v", s)
	}
}
