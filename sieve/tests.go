package sieve

import (
	"strconv"
	"strings"
)

// --- true, false, not, allof, anyof ---

type testConst struct {
	node
	v bool
}

func buildConst(c *checker, a *callArgs, n node, _ []test) test {
	return &testConst{node: n, v: n.name == "true"}
}

func (t *testConst) eval(*eval) (bool, error) { return t.v, nil }

type testNot struct {
	node
	sub test
}

func buildNot(c *checker, a *callArgs, n node, subs []test) test {
	if len(subs) != 1 || subs[0] == nil {
		return nil
	}
	return &testNot{node: n, sub: subs[0]}
}

func (t *testNot) eval(e *eval) (bool, error) {
	ok, err := e.test(t.sub)
	return !ok, err
}

type testAllAny struct {
	node
	all  bool
	subs []test
}

func buildAllAny(c *checker, a *callArgs, n node, subs []test) test {
	for _, s := range subs {
		if s == nil {
			return nil
		}
	}
	return &testAllAny{node: n, all: n.name == "allof", subs: subs}
}

// eval stops at the first test that decides, as RFC 5228 §5.2/§5.3 allow.
func (t *testAllAny) eval(e *eval) (bool, error) {
	for _, s := range t.subs {
		ok, err := e.test(s)
		if err != nil {
			return false, err
		}
		if ok != t.all {
			return ok, nil
		}
	}
	return t.all, nil
}

// --- header, exists ---

type testHeader struct {
	node
	m     matcher
	names []hname
	keys  []key
	index int
	last  bool
}

func buildHeader(c *checker, a *callArgs, n node, _ []test) test {
	t := &testHeader{node: n, m: c.matcher(a), names: c.hnames(a.pos[0])}
	t.keys = c.keys(t.m, a.pos[1])
	t.index, t.last = c.index(a)
	return t
}

func (t *testHeader) eval(e *eval) (bool, error) {
	ta := tally{m: &t.m, keys: t.keys}
	for _, h := range t.names {
		for _, i := range e.fieldIndexes(h, t.index, t.last) {
			if !ta.add(e, e.decoded(int(i))) {
				return ta.result(e)
			}
		}
	}
	return ta.result(e)
}

type testExists struct {
	node
	names []hname
}

func buildExists(c *checker, a *callArgs, n node, _ []test) test {
	return &testExists{node: n, names: c.hnames(a.pos[0])}
}

func (t *testExists) eval(e *eval) (bool, error) {
	for _, h := range t.names {
		if len(e.fieldIndexes(h, 0, false)) == 0 {
			return false, nil
		}
	}
	return true, nil
}

// --- size ---

type testSize struct {
	node
	over  bool
	limit uint64
}

func buildSize(c *checker, a *callArgs, n node, _ []test) test {
	if !a.has("over") && !a.has("under") {
		c.errorf(n.pos, "size needs :over or :under")
	}
	return &testSize{node: n, over: a.has("over"), limit: a.pos[0].Number}
}

func (t *testSize) eval(e *eval) (bool, error) {
	size := uint64(len(e.msg))
	if t.over {
		return size > t.limit, nil
	}
	return size < t.limit, nil
}

// --- address, envelope ---

type testAddress struct {
	node
	m     matcher
	part  addressPart
	names []hname
	keys  []key
	index int
	last  bool
}

func buildAddress(c *checker, a *callArgs, n node, _ []test) test {
	t := &testAddress{node: n, m: c.matcher(a), part: c.addressPart(a), names: c.hnames(a.pos[0])}
	t.keys = c.keys(t.m, a.pos[1])
	t.index, t.last = c.index(a)
	return t
}

func (t *testAddress) eval(e *eval) (bool, error) {
	ta := tally{m: &t.m, keys: t.keys}
	for _, h := range t.names {
		if !addressField(h.s.lit) && (h.s.parts == nil || !addressField(e.expand(h.s))) {
			continue
		}
		for _, i := range e.fieldIndexes(h, t.index, t.last) {
			for _, addr := range e.addresses(int(i)) {
				if v, ok := e.addressPart(addr, t.part); ok && !ta.add(e, value{s: v}) {
					return ta.result(e)
				}
			}
		}
	}
	return ta.result(e)
}

// addressField says whether a field holds addresses. RFC 5228 §5.1 restricts
// the address test to such fields, so that "address" on Subject finds nothing
// rather than words that look like addresses.
func addressField(name string) bool {
	switch strings.ToLower(name) {
	case "from", "sender", "reply-to", "to", "cc", "bcc", "resent-from", "resent-sender",
		"resent-to", "resent-cc", "resent-bcc", "return-path", "delivered-to", "x-original-to",
		"envelope-to", "errors-to", "disposition-notification-to", "mail-followup-to",
		"mail-reply-to", "original-recipient", "x-envelope-to", "x-envelope-from", "x-sender":
		return true
	}
	return false
}

// addresses returns the addresses of a field, parsed on first use.
func (e *eval) addresses(i int) []string {
	h := &e.fields[i]
	if !h.parsed {
		h.addrs = parseAddressList(h.f.Value())
		h.parsed = true
		e.work += int64(len(h.f.Raw))
	}
	return h.addrs
}

// addressPart cuts an address (RFC 5228 §2.7.4, RFC 5233). ok is false when
// the part does not exist: :localpart or :domain of an address without "@",
// :detail of an address without the separator.
func (e *eval) addressPart(addr string, p addressPart) (string, bool) {
	if p == partAll {
		return addr, true
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		if addr == "" || p == partDomain {
			return "", false
		}
		at = len(addr)
	}
	if p == partDomain {
		return addr[at+1:], true
	}
	local := unquoteLocal(addr[:at])
	if p == partLocal {
		return local, true
	}
	i := strings.Index(local, e.sep)
	if p == partUser {
		if i < 0 {
			return local, true
		}
		return local[:i], true
	}
	if i < 0 {
		return "", false
	}
	return local[i+len(e.sep):], true
}

// unquoteLocal removes the quotes of a quoted local part ("a b"@example.com).
func unquoteLocal(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		if u, err := strconv.Unquote(s); err == nil {
			return u
		}
		return s[1 : len(s)-1]
	}
	return s
}

type testEnvelope struct {
	node
	m     matcher
	part  addressPart
	parts []str
	keys  []key
}

func buildEnvelope(c *checker, a *callArgs, n node, _ []test) test {
	t := &testEnvelope{node: n, m: c.matcher(a), part: c.addressPart(a), parts: c.strs(a.pos[0])}
	for _, p := range t.parts {
		if p.parts == nil && !validEnvelopePart(p.lit) {
			c.errorf(a.pos[0].Pos, "unknown envelope part %q (from, to or auth)", p.lit)
		}
	}
	t.keys = c.keys(t.m, a.pos[1])
	return t
}

func validEnvelopePart(s string) bool {
	switch strings.ToLower(s) {
	case "from", "to", "auth":
		return true
	}
	return false
}

func (t *testEnvelope) eval(e *eval) (bool, error) {
	ta := tally{m: &t.m, keys: t.keys}
	for _, p := range t.parts {
		for _, addr := range e.envelopePart(strings.ToLower(e.expand(p))) {
			if v, ok := e.addressPart(addr, t.part); ok && !ta.add(e, value{s: v}) {
				return ta.result(e)
			}
		}
	}
	return ta.result(e)
}

// envelopePart gives the addresses of an envelope part. The null reverse path
// is the empty string (RFC 5228 §5.4); an unknown part has none.
func (e *eval) envelopePart(p string) []string {
	env := &e.env.Envelope
	switch p {
	case "from":
		e.one1[0] = strings.Trim(env.From, "<>")
		return e.one1[:]
	case "to":
		return env.To
	case "auth":
		if env.Auth == "" {
			return nil
		}
		e.one1[0] = env.Auth
		return e.one1[:]
	}
	return nil
}

// --- string (RFC 5229 §5) ---

type testString struct {
	node
	m       matcher
	sources []str
	keys    []key
}

func buildString(c *checker, a *callArgs, n node, _ []test) test {
	t := &testString{node: n, m: c.matcher(a), sources: c.strs(a.pos[0])}
	t.keys = c.keys(t.m, a.pos[1])
	return t
}

// eval: for :count, empty strings are not counted (RFC 5229 §5).
func (t *testString) eval(e *eval) (bool, error) {
	ta := tally{m: &t.m, keys: t.keys}
	for _, s := range t.sources {
		v := e.expand(s)
		if v == "" && t.m.mt == mtCount {
			continue
		}
		if !ta.add(e, value{s: v}) {
			break
		}
	}
	return ta.result(e)
}

// --- spamtest, virustest (RFC 5235) ---

type testScore struct {
	node
	m       matcher
	key     []key
	virus   bool
	percent bool
}

func buildSpamTest(c *checker, a *callArgs, n node, _ []test) test {
	t := &testScore{node: n, m: c.matcher(a), percent: a.has("percent")}
	t.key = c.keys(t.m, a.pos[0])
	return t
}

func buildVirusTest(c *checker, a *callArgs, n node, _ []test) test {
	t := &testScore{node: n, m: c.matcher(a), virus: true}
	t.key = c.keys(t.m, a.pos[0])
	return t
}

func (t *testScore) eval(e *eval) (bool, error) {
	ta := tally{m: &t.m, keys: t.key}
	ta.add(e, value{s: e.scoreValue(t.virus, t.percent)})
	return ta.result(e)
}

// scoreValue is what spamtest or virustest compares. Not tested is "0". The
// spam score is rounded and held to 0..10, or 0..100 with :percent (ten times
// the score). As the product does, the scanner's text follows the number after
// a space, so compare with :value and "i;ascii-numeric", which read only the
// leading number.
func (e *eval) scoreValue(virus, percent bool) string {
	if virus {
		v := e.env.Virus
		if v == nil || v.Score <= 0 {
			return "0"
		}
		return withText(strconv.Itoa(min(v.Score, 5)), v.Text)
	}
	if !e.spamTested || e.spam == nil {
		return "0"
	}
	score, top := e.spam.Score, 10.0
	if percent {
		score, top = score*10, 100
	}
	score = max(0, min(top, score))
	return withText(strconv.Itoa(int(score+0.5)), e.spam.Text)
}

func withText(n, text string) string {
	if text == "" {
		return n
	}
	return n + " " + text
}
