package compiler

import (
	"fmt"
	"strings"

	"mtad.dev/mta/cnf"
)

// Pipe channel modes (PIPE_MODE, our extension: not a key of the product).
const (
	PipeModeRecipient = "recipient" // one run per recipient (default)
	PipeModeMessage   = "message"   // one run for all the recipients of the message
)

// pipeRecipientVars are the PIPE_COMMAND substitutions that name one recipient:
// meaningless when one run serves them all.
var pipeRecipientVars = []string{"${recipient}", "${user}", "${domain}"}

// readPipeOptions types and checks the pipe channel's keys, which are our extensions:
// PIPE_MODE, PIPE_TEMPORARY_EXITS, PIPE_PERMANENT_EXITS, and the substitutions
// PIPE_COMMAND may use in the chosen mode. Errors are reported at the key's line,
// because a mistake here would otherwise surface as bounces or endless deferrals.
func readPipeOptions(o *ChannelOptions, r *optionReader, f *cnf.OptionFile, errs *cnf.ErrorList) {
	pos := func(name string) cnf.Pos {
		for _, op := range f.Options {
			if strings.EqualFold(strings.TrimSpace(op.Name), name) {
				return op.Pos
			}
		}
		return cnf.Pos{File: r.file}
	}
	bad := func(name, format string, args ...any) {
		*errs = append(*errs, &cnf.Error{Pos: pos(name), Msg: fmt.Sprintf("bad value for option %s: ", name) + fmt.Sprintf(format, args...)})
	}

	o.PipeMode = PipeModeRecipient
	if v, ok := r.strs["PIPE_MODE"]; ok {
		switch m := strings.ToLower(v); m {
		case PipeModeRecipient, PipeModeMessage:
			o.PipeMode = m
		default:
			bad("PIPE_MODE", "%q is neither %q nor %q", v, PipeModeRecipient, PipeModeMessage)
		}
	}

	seen := map[int]string{}
	for _, key := range []string{"PIPE_TEMPORARY_EXITS", "PIPE_PERMANENT_EXITS"} {
		v, ok := r.strs[key]
		if !ok {
			continue
		}
		codes, err := parseExitList(v)
		if err != nil {
			bad(key, "%v", err)
			continue
		}
		for _, c := range codes {
			if other, dup := seen[c]; dup && other != key {
				bad(key, "exit status %d is also in %s", c, other)
				continue
			}
			seen[c] = key
		}
		if key == "PIPE_TEMPORARY_EXITS" {
			o.PipeTemporaryExits = codes
		} else {
			o.PipePermanentExits = codes
		}
	}

	if o.PipeCommand == "" {
		return
	}
	for _, arg := range strings.Fields(o.PipeCommand) {
		if o.PipeMode == PipeModeMessage {
			for _, v := range pipeRecipientVars {
				if strings.Contains(arg, v) {
					bad("PIPE_COMMAND", "%s names one recipient, but PIPE_MODE=message runs once for all of them (use ${recipients} or $RECIPIENTS)", v)
				}
			}
			if strings.Contains(arg, "${recipients}") && arg != "${recipients}" {
				bad("PIPE_COMMAND", "%q: ${recipients} must be a whole argument (it becomes one argument per recipient)", arg)
			}
		} else if strings.Contains(arg, "${recipients}") {
			bad("PIPE_COMMAND", "${recipients} needs PIPE_MODE=message (this channel runs once per recipient: use ${recipient})")
		}
	}
}

// parseExitList reads "67,69" or "64-78, 1": exit statuses 1..255 (0 is success
// and cannot be remapped), single values or inclusive ranges, comma or blank
// separated.
func parseExitList(s string) ([]int, error) {
	var out []int
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	if len(fields) == 0 {
		return nil, fmt.Errorf("empty list (exit statuses such as 67,69 or 64-78)")
	}
	in := map[int]bool{}
	for _, f := range fields {
		lo, hi := f, f
		if a, b, ok := strings.Cut(f, "-"); ok {
			lo, hi = a, b
		}
		l, err1 := ParseInt(lo)
		h, err2 := ParseInt(hi)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%q is not an exit status or a range N-M", f)
		}
		if l < 1 || h > 255 || l > h {
			return nil, fmt.Errorf("%q: exit statuses are 1 to 255 (0 means delivered)", f)
		}
		for c := l; c <= h; c++ {
			if !in[c] {
				in[c] = true
				out = append(out, c)
			}
		}
	}
	return out, nil
}
