package status

import (
	"errors"
	"fmt"
	"strings"
)

// Status is an SMTP reply or a delivery outcome. The zero value is not meaningful;
// a nil *Status means success wherever a *Status is returned.
type Status struct {
	Code     int    // three-digit SMTP code: 250, 451, 550 ...
	Enhanced string // "5.1.1"; empty when unknown
	Text     string // diagnostic text without code
}

// New builds a Status. The enhanced code may be empty.
func New(code int, enhanced, format string, args ...any) *Status {
	return &Status{Code: code, Enhanced: enhanced, Text: fmt.Sprintf(format, args...)}
}

// Temporary reports whether the outcome is a 4xx (retry later).
// Codes outside 5xx count as temporary: only an explicit 5xx bounces.
func (s *Status) Temporary() bool { return s.Code < 500 || s.Code > 599 }

// Error renders the reply as it appears on the wire, without CRLF: "550 5.1.1 text".
func (s *Status) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", s.Code)
	if s.Enhanced != "" {
		b.WriteByte(' ')
		b.WriteString(s.Enhanced)
	}
	if s.Text != "" {
		b.WriteByte(' ')
		b.WriteString(s.Text)
	}
	return b.String()
}

// From returns err as a *Status. An error that carries no status becomes a
// temporary failure (451 4.3.0) with the error's text, so an unexpected error
// never turns into a bounce.
func From(err error) *Status {
	if err == nil {
		return nil
	}
	var s *Status
	if errors.As(err, &s) {
		return s
	}
	return &Status{Code: 451, Enhanced: "4.3.0", Text: err.Error()}
}

// Permanent reports whether err is a permanent (5xx) failure. Unknown errors are temporary.
func Permanent(err error) bool {
	s := From(err)
	return s != nil && !s.Temporary()
}

// FromEnhanced builds a reply whose basic code follows the enhanced code's class, the way
// access mappings do: "4.2.1" gives 450, "5.7.1" gives 550.
func FromEnhanced(enhanced, text string) *Status {
	code := 550
	if strings.HasPrefix(enhanced, "4.") {
		code = 450
	}
	return &Status{Code: code, Enhanced: enhanced, Text: text}
}
