package sieve

import (
	"fmt"
	"strings"
)

// --- control ---

type ifBranch struct {
	test  test // nil for else
	block []command
}

type cmdIf struct {
	node
	branches []ifBranch
	hasElse  bool
}

func (c *cmdIf) run(e *eval) error {
	for _, b := range c.branches {
		if b.test != nil {
			ok, err := e.test(b.test)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
		}
		return e.runBlock(b.block)
	}
	return nil
}

type cmdStop struct{ node }

func buildStop(c *checker, a *callArgs, n node) command { return &cmdStop{n} }

func (c *cmdStop) run(e *eval) error {
	if e.env.Trace != nil {
		e.env.Trace(TraceEvent{Pos: c.pos, Kind: TraceStop, Name: "stop"})
	}
	return errStop
}

// --- keep, fileinto, discard, jettison ---

type cmdKeep struct {
	node
	flags    []str // with :flags
	hasFlags bool
}

func buildKeep(c *checker, a *callArgs, n node) command {
	k := &cmdKeep{node: n}
	if arg, ok := a.tags["flags"]; ok {
		k.flags, k.hasFlags = c.strs(arg), true
	}
	return k
}

// flagsFor gives the flags of a keep or fileinto: those of :flags, else the
// internal variable's (RFC 5232 §5).
func (e *eval) flagsFor(list []str, given bool) []string {
	if given {
		return canonicalFlags(nil, e.expandList(list))
	}
	if len(e.flags) == 0 {
		return nil
	}
	return append([]string(nil), e.flags...)
}

func (c *cmdKeep) run(e *eval) error {
	if err := e.conflictsWithReject(c.pos, "keep"); err != nil {
		return err
	}
	e.implicitKeep = false
	flags := e.flagsFor(c.flags, c.hasFlags)
	for _, a := range e.actions {
		if k, ok := a.(*Keep); ok {
			// Delivering twice into the same mailbox is not done (RFC 5228
			// §2.10.3); the flags of the later keep join those of the first.
			k.Flags = canonicalFlags(k.Flags, flags)
			return nil
		}
	}
	e.addAction(&Keep{Pos: c.pos, Flags: flags})
	return nil
}

type cmdFileInto struct {
	node
	folder   str
	copy     bool
	flags    []str
	hasFlags bool
}

func buildFileInto(c *checker, a *callArgs, n node) command {
	f := &cmdFileInto{node: n, folder: c.str(a.pos[0]), copy: a.has("copy")}
	if arg, ok := a.tags["flags"]; ok {
		f.flags, f.hasFlags = c.strs(arg), true
	}
	if f.folder.parts == nil && !validFolder(f.folder.lit) {
		c.errorf(a.pos[0].Pos, "%q is not a valid folder name", f.folder.lit)
	}
	return f
}

// validFolder refuses what no mailbox can be called: empty names, control
// characters, invalid UTF-8.
func validFolder(s string) bool {
	if s == "" || !utf8Valid(s) {
		return false
	}
	for _, r := range s {
		if r < 32 || r == 127 {
			return false
		}
	}
	return true
}

func (c *cmdFileInto) run(e *eval) error {
	folder := e.expand(c.folder)
	if !validFolder(folder) {
		return &Error{Pos: c.pos, Msg: fmt.Sprintf("fileinto: %q is not a valid folder name", folder)}
	}
	if err := e.conflictsWithReject(c.pos, "fileinto"); err != nil {
		return err
	}
	if !c.copy {
		e.implicitKeep = false
	}
	flags := e.flagsFor(c.flags, c.hasFlags)
	for _, a := range e.actions {
		if f, ok := a.(*FileInto); ok && f.Folder == folder {
			f.Flags = canonicalFlags(f.Flags, flags)
			f.Copy = f.Copy && c.copy
			return nil
		}
	}
	e.addAction(&FileInto{Pos: c.pos, Folder: folder, Flags: flags, Copy: c.copy})
	return nil
}

type cmdDiscard struct{ node }

func buildDiscard(c *checker, a *callArgs, n node) command { return &cmdDiscard{n} }

func (c *cmdDiscard) run(e *eval) error {
	e.implicitKeep = false
	e.addAction(&Discard{Pos: c.pos})
	return nil
}

type cmdJettison struct{ node }

func buildJettison(c *checker, a *callArgs, n node) command { return &cmdJettison{n} }

func (c *cmdJettison) run(e *eval) error {
	e.implicitKeep = false
	e.addAction(&Jettison{Pos: c.pos})
	return nil
}

// --- redirect ---

type cmdRedirect struct {
	node
	address       str
	copy          bool
	resent        ResentMode
	resetMailFrom bool
	notify        []string
}

func buildRedirect(c *checker, a *callArgs, n node) command {
	r := &cmdRedirect{node: n, address: c.str(a.pos[0]), copy: a.has("copy"),
		resetMailFrom: a.has("resetmailfrom")}
	switch {
	case a.has("resent"):
		r.resent = ResentAdd
	case a.has("noresent"):
		r.resent = ResentNone
	}
	if r.address.parts == nil && !validAddress(r.address.lit) {
		c.errorf(a.pos[0].Pos, "redirect: %q is not a valid address", r.address.lit)
	}
	if arg, ok := a.tags["notify"]; ok {
		r.notify = c.notify(arg)
	}
	return r
}

// notify reads the product's :notify: DSN NOTIFY keywords, as a list or
// comma-separated (RFC 3461 §4.1: NEVER alone, or any of SUCCESS, FAILURE,
// DELAY).
func (c *checker) notify(arg *Argument) []string {
	out := []string{}
	for _, s := range arg.Strings {
		for _, w := range strings.Split(s, ",") {
			w = strings.ToUpper(strings.TrimSpace(w))
			switch w {
			case "NEVER", "SUCCESS", "FAILURE", "DELAY":
				if !contains(out, w) {
					out = append(out, w)
				}
			default:
				c.errorf(arg.Pos, ":notify takes NEVER, SUCCESS, FAILURE or DELAY, not %q", w)
			}
		}
	}
	if contains(out, "NEVER") && len(out) > 1 {
		c.errorf(arg.Pos, ":notify NEVER cannot be combined with other values")
	}
	return out
}

// validAddress is a light check of an addr-spec: local@domain, no white space
// or angle brackets.
func validAddress(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || len(s) > 998 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == '<' || s[i] == '>' || s[i] == 127 {
			return false
		}
	}
	return true
}

func (c *cmdRedirect) run(e *eval) error {
	addr := e.expand(c.address)
	if !validAddress(addr) {
		return &Error{Pos: c.pos, Msg: fmt.Sprintf("redirect: %q is not a valid address", addr)}
	}
	if err := e.conflictsWithReject(c.pos, "redirect"); err != nil {
		return err
	}
	if !c.copy {
		e.implicitKeep = false
	}
	for _, a := range e.actions {
		if r, ok := a.(*Redirect); ok && strings.EqualFold(r.Address, addr) {
			// One copy per address (RFC 5228 §2.10.3).
			r.Copy = r.Copy && c.copy
			return nil
		}
	}
	e.redirects++
	if e.redirects > e.s.limits.MaxRedirects {
		return &Error{Pos: c.pos, Msg: fmt.Sprintf("too many redirects (limit %d)", e.s.limits.MaxRedirects)}
	}
	e.addAction(&Redirect{Pos: c.pos, Address: addr, Copy: c.copy, Resent: c.resent,
		ResetMailFrom: c.resetMailFrom, Notify: c.notify})
	return nil
}

// --- reject, ereject ---

type cmdReject struct {
	node
	reason   str
	extended bool
}

func buildReject(c *checker, a *callArgs, n node) command {
	return &cmdReject{node: n, reason: c.str(a.pos[0]), extended: n.name == "ereject"}
}

func (c *cmdReject) run(e *eval) error {
	for _, a := range e.actions {
		switch a.(type) {
		case *Keep, *FileInto, *Redirect, *Vacation, *Reject:
			return &Error{Pos: c.pos, Msg: fmt.Sprintf("%s cannot be combined with %s at %s",
				c.name, actionName(a), a.Position().Short())}
		}
	}
	e.implicitKeep = false
	e.addAction(&Reject{Pos: c.pos, Reason: e.expand(c.reason), Extended: c.extended})
	return nil
}

// conflictsWithReject: a message that is refused cannot also be delivered or
// answered (RFC 5429 §2.1, RFC 5230 §4.7).
func (e *eval) conflictsWithReject(at Pos, what string) error {
	for _, a := range e.actions {
		if r, ok := a.(*Reject); ok {
			name := "reject"
			if r.Extended {
				name = "ereject"
			}
			return &Error{Pos: at, Msg: fmt.Sprintf("%s cannot be combined with %s at %s", what, name, r.Short())}
		}
	}
	return nil
}

// --- addtag, spamadjust ---

type cmdAddTag struct {
	node
	tag str
}

func buildAddTag(c *checker, a *callArgs, n node) command {
	t := &cmdAddTag{node: n, tag: c.str(a.pos[0])}
	if t.tag.parts == nil && strings.Contains(t.tag.lit, "|") {
		c.errorf(a.pos[0].Pos, "addtag: a tag cannot contain \"|\"")
	}
	return t
}

func (c *cmdAddTag) run(e *eval) error {
	tag := e.expand(c.tag)
	if strings.Contains(tag, "|") {
		return &Error{Pos: c.pos, Msg: fmt.Sprintf("addtag: a tag cannot contain \"|\": %q", tag)}
	}
	e.addAction(&AddTag{Pos: c.pos, Tag: tag})
	return nil
}

type cmdSpamAdjust struct {
	node
	text str
}

func buildSpamAdjust(c *checker, a *callArgs, n node) command {
	return &cmdSpamAdjust{node: n, text: c.str(a.pos[0])}
}

// run adds the first real number of the text to the score (the product's
// documentation: "the leading real number"; "True"/"False" are skipped, so in
// "True ; 7.3 / 5.0" it is 7.3) and appends the text to the score's text.
func (c *cmdSpamAdjust) run(e *eval) error {
	text := e.expand(c.text)
	delta := firstReal(text)
	sc := SpamScore{}
	if e.spam != nil {
		sc = *e.spam
	}
	sc.Score += delta
	if sc.Text != "" && text != "" {
		sc.Text += " "
	}
	sc.Text += text
	e.spam, e.spamTested = &sc, true
	e.addAction(&SpamAdjust{Pos: c.pos, Text: text, Delta: delta})
	return nil
}
