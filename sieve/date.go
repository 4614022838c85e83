package sieve

import (
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// date and currentdate (RFC 5260).

var dateParts = map[string]bool{
	"year": true, "month": true, "day": true, "date": true, "julian": true, "hour": true,
	"minute": true, "second": true, "time": true, "iso8601": true, "std11": true,
	"zone": true, "weekday": true,
}

// datePart formats one part of a time (RFC 5260 §4.2).
func datePart(t time.Time, part string) string {
	switch part {
	case "year":
		return fmt.Sprintf("%04d", t.Year())
	case "month":
		return fmt.Sprintf("%02d", int(t.Month()))
	case "day":
		return fmt.Sprintf("%02d", t.Day())
	case "date":
		return t.Format("2006-01-02")
	case "julian":
		// Modified Julian Day: days since 1858-11-17, in the time's own zone.
		y, m, d := t.Date()
		day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		base := time.Date(1858, 11, 17, 0, 0, 0, 0, time.UTC)
		return fmt.Sprint(int64(day.Sub(base).Hours()) / 24)
	case "hour":
		return fmt.Sprintf("%02d", t.Hour())
	case "minute":
		return fmt.Sprintf("%02d", t.Minute())
	case "second":
		return fmt.Sprintf("%02d", t.Second())
	case "time":
		return t.Format("15:04:05")
	case "iso8601":
		return t.Format("2006-01-02T15:04:05-07:00")
	case "std11":
		return t.Format("Mon, 02 Jan 2006 15:04:05 -0700")
	case "zone":
		return t.Format("-0700")
	case "weekday":
		return fmt.Sprint(int(t.Weekday()))
	}
	return ""
}

// parseZone reads "+hhmm" / "-hhmm".
func parseZone(s string) (*time.Location, bool) {
	if len(s) != 5 || (s[0] != '+' && s[0] != '-') || !isDigits(s[1:]) {
		return nil, false
	}
	h := int(s[1]-'0')*10 + int(s[2]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if h > 23 || m > 59 {
		return nil, false
	}
	off := (h*60 + m) * 60
	if s[0] == '-' {
		off = -off
	}
	return time.FixedZone(s, off), true
}

// dateSpec is what date and currentdate share: zone, part, matcher, keys.
type dateSpec struct {
	m            matcher
	zone         *time.Location // :zone
	originalZone bool
	part         str
	keys         []key
}

func (c *checker) dateSpec(a *callArgs, partArg, keyArg *Argument) dateSpec {
	d := dateSpec{m: c.matcher(a), originalZone: a.has("originalzone")}
	if arg, ok := a.tags["zone"]; ok {
		if s, ok := c.constant(arg, ":zone"); ok {
			if d.zone, ok = parseZone(s); !ok {
				c.errorf(arg.Pos, "%q is not a time zone (+hhmm or -hhmm)", s)
			}
		}
	}
	d.part = c.str(partArg)
	if d.part.parts == nil {
		d.part.lit = strings.ToLower(d.part.lit)
		if !dateParts[d.part.lit] {
			c.errorf(partArg.Pos, "unknown date part %q", partArg.Strings[0])
		}
	}
	d.keys = c.keys(d.m, keyArg)
	return d
}

// match compares the times' parts with the keys.
func (d *dateSpec) match(e *eval, times []time.Time) (bool, error) {
	part := strings.ToLower(e.expand(d.part))
	if !dateParts[part] {
		return false, nil
	}
	ta := tally{m: &d.m, keys: d.keys}
	for _, t := range times {
		switch {
		case d.zone != nil:
			t = t.In(d.zone)
		case !d.originalZone:
			t = t.In(e.localZone())
		}
		if !ta.add(e, value{s: datePart(t, part)}) {
			break
		}
	}
	return ta.result(e)
}

func (e *eval) localZone() *time.Location {
	if e.env.Location != nil {
		return e.env.Location
	}
	if e.env.Now.IsZero() {
		return time.UTC
	}
	return e.env.Now.Location()
}

type testDate struct {
	node
	dateSpec
	header hname
	index  int
	last   bool
}

func buildDate(c *checker, a *callArgs, n node, _ []test) test {
	t := &testDate{node: n, dateSpec: c.dateSpec(a, a.pos[1], a.pos[2])}
	t.header = c.hnames(a.pos[0])[0]
	t.index, t.last = c.index(a)
	return t
}

// eval reads the dates of the fields; a field that holds no valid date is
// skipped. In a Received field the date is after the last ";".
func (t *testDate) eval(e *eval) (bool, error) {
	var times []time.Time
	for _, i := range e.fieldIndexes(t.header, t.index, t.last) {
		v := e.decoded(int(i)).s
		if e.fields[i].f.Is("received") {
			if semi := strings.LastIndexByte(v, ';'); semi >= 0 {
				v = v[semi+1:]
			}
		}
		if tm, err := mail.ParseDate(strings.TrimSpace(v)); err == nil {
			times = append(times, tm)
		}
	}
	return t.match(e, times)
}

type testCurrentDate struct {
	node
	dateSpec
}

func buildCurrentDate(c *checker, a *callArgs, n node, _ []test) test {
	return &testCurrentDate{node: n, dateSpec: c.dateSpec(a, a.pos[0], a.pos[1])}
}

func (t *testCurrentDate) eval(e *eval) (bool, error) {
	if e.env.Now.IsZero() {
		return false, nil
	}
	return t.match(e, []time.Time{e.env.Now})
}
