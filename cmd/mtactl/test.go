package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"mtad.dev/mta/compiler"
	"mtad.dev/mta/engine"
	"mtad.dev/mta/intake"
	"mtad.dev/mta/mappings"
	"mtad.dev/mta/status"
)

// testOpts are the options of `mtactl test`; which of -rewrite, -mapping, -match
// is given selects the test.
type testOpts struct {
	rewrite, mapping, match bool
	debug, asJSON, noimage  bool
	from, source, dest      string
	compare, corpus         string
	table, flags            string
	// -rewrite -filter (test_filter.go); -nofilter is the default.
	filter, nofilter bool
	// -exp -mm (test_filter.go).
	exp, mm, block             bool
	input, message, output, to string
}

func cmdTest(a *app, args []string) int {
	if isAuthTest(args) {
		return cmdTestAuth(a, args) // testauth.go
	}
	var o testOpts
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	fs.BoolVar(&o.rewrite, "rewrite", false, "rewrite and route addresses")
	fs.BoolVar(&o.mapping, "mapping", false, "run a mapping table on strings")
	fs.BoolVar(&o.match, "match", false, "match a mapping pattern against strings")
	fs.BoolVar(&o.debug, "debug", false, "-rewrite: print the engine's trace first")
	fs.BoolVar(&o.asJSON, "json", false, "-rewrite: one JSON object per address")
	fs.BoolVar(&o.noimage, "noimage", false, "use the text files, not DIR/"+compiler.ImageName)
	fs.StringVar(&o.from, "from", "", "-rewrite: envelope From for access checks (default RETURN_ADDRESS or postmaster@<local host>)")
	fs.StringVar(&o.source, "source_channel", "l", "-rewrite: the channel the message comes in on")
	fs.StringVar(&o.dest, "destination_channel", "", "-rewrite: destination channel for header rewriting ($C/$Q); default the routed channel")
	fs.StringVar(&o.compare, "compare", "", "-rewrite: compare with this other image `FILE`")
	fs.StringVar(&o.corpus, "corpus", "", "-rewrite -compare: addresses to compare, one per line")
	fs.StringVar(&o.table, "table", "", "-mapping: table `NAME` (prompted when missing)")
	fs.StringVar(&o.flags, "flags", "", "-mapping: input flag letters, e.g. EBI")
	fs.BoolVar(&o.filter, "filter", false, "-rewrite: show the Sieve filters that apply and where each is found")
	fs.BoolVar(&o.nofilter, "nofilter", false, "-rewrite: do not show the filters (the default)")
	fs.BoolVar(&o.exp, "exp", false, "evaluate a Sieve script on a message (with -mm)")
	fs.BoolVar(&o.mm, "mm", false, "-exp: Sieve (the product's mail-filter mode)")
	fs.BoolVar(&o.block, "block", false, "-exp: the input is one script (else each line is one)")
	fs.StringVar(&o.input, "input", "", "-exp: the Sieve `FILE`")
	fs.StringVar(&o.message, "message", "", "-exp: the message `FILE` (RFC 5322)")
	fs.StringVar(&o.output, "output", "", "-exp: write to `FILE` instead of standard output")
	fs.StringVar(&o.to, "to", "", "-exp: envelope recipient (default the message's first To: address)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	n := 0
	for _, b := range []bool{o.rewrite, o.mapping, o.match, o.exp} {
		if b {
			n++
		}
	}
	if n != 1 {
		fmt.Fprintln(a.stderr, "mtactl test: give exactly one of -rewrite, -mapping, -match, -exp")
		return 2
	}
	switch {
	case o.exp:
		return a.testExp(&o)
	case o.rewrite && o.compare != "":
		return a.testCompare(&o)
	case o.rewrite:
		return a.testRewrite(&o, fs.Args())
	case o.mapping:
		return a.testMapping(&o, fs.Args())
	default:
		return a.testMatch(fs.Args())
	}
}

// eachInput calls fn for each command-line string or, with none, for each line
// of stdin as it is read (prompting when stdin is a terminal, so an interactive
// session answers line by line). Blank lines are skipped.
func (a *app) eachInput(args []string, prompt string, fn func(string)) {
	if len(args) > 0 {
		for _, s := range args {
			fn(s)
		}
		return
	}
	sc := bufio.NewScanner(a.stdin)
	for {
		if a.tty {
			fmt.Fprint(a.stdout, prompt)
		}
		if !sc.Scan() {
			break
		}
		if s := strings.TrimSpace(sc.Text()); s != "" {
			fn(s)
		}
	}
	if a.tty {
		fmt.Fprintln(a.stdout)
	}
}

// rewriteReport is everything test -rewrite shows for one address.
type rewriteReport struct {
	Address         string             `json:"address"`
	Channel         string             `json:"channel,omitempty"`
	Official        string             `json:"channel_official_host,omitempty"`
	Flags           []string           `json:"channel_flags,omitempty"`
	Backward        string             `json:"backward_channel,omitempty"`
	HeaderTo        string             `json:"header_to,omitempty"`
	HeaderFrom      string             `json:"header_from,omitempty"`
	EnvelopeTo      string             `json:"envelope_to,omitempty"`
	EnvelopeFrom    string             `json:"envelope_from,omitempty"`
	Mailbox         string             `json:"mbox,omitempty"`
	Rule            string             `json:"rule,omitempty"`
	Recipients      []recipientReport  `json:"recipients,omitempty"`
	Error           *errorReport       `json:"error,omitempty"`
	Trace           []engine.TraceStep `json:"trace,omitempty"`
	channel         *compiler.ChannelConfig
	resolution      engine.Resolution
	accessRefusedAt int // -1: none; else the stage: 0 before expansion, 1 after
}

type recipientReport struct {
	Channel string   `json:"channel"`
	Address string   `json:"address"`
	Host    string   `json:"host"`
	Mailbox string   `json:"mbox,omitempty"`
	Via     []string `json:"via,omitempty"`
	Rule    string   `json:"rule,omitempty"`
	Error   string   `json:"error,omitempty"`
}

type errorReport struct {
	Code     int    `json:"code"`
	Enhanced string `json:"enhanced"`
	Text     string `json:"text"`
}

func newErrorReport(s *status.Status) *errorReport {
	return &errorReport{Code: s.Code, Enhanced: s.Enhanced, Text: s.Text}
}

func (a *app) testRewrite(o *testOpts, args []string) int {
	img, ok := a.image(o.noimage)
	if !ok {
		return 1
	}
	if img.Rules == nil {
		fmt.Fprintln(a.stderr, "mtactl: the configuration has no rule engine")
		return 1
	}
	if _, ok := img.Channel(o.source); !ok {
		fmt.Fprintf(a.stderr, "mtactl test: -source_channel=%s: no such channel\n", o.source)
		return 2
	}
	status := 0
	enc := json.NewEncoder(a.stdout)
	n := 0
	a.eachInput(args, "Address: ", func(addr string) {
		rep := rewriteOne(img, o, addr)
		if n > 0 && !o.asJSON {
			fmt.Fprintln(a.stdout)
		}
		n++
		if rep.Error != nil {
			status = 1
		}
		if o.asJSON {
			if !o.debug {
				rep.Trace = nil
			}
			if err := enc.Encode(rep); err != nil {
				fmt.Fprintf(a.stderr, "mtactl: %v\n", err)
				status = 1
			}
			return
		}
		printRewrite(a.stdout, img, o, rep)
		if o.filter && !o.nofilter {
			printFilters(a.stdout, img, a, o, rep)
		}
	})
	return status
}

// rewriteOne runs the engine (and the access tables) the way an enqueue would.
func rewriteOne(img *compiler.Image, o *testOpts, addr string) *rewriteReport {
	rs := img.Rules
	rep := &rewriteReport{Address: addr, accessRefusedAt: -1}
	res := rs.Resolve(engine.Request{Address: addr, Kind: engine.EnvelopeTo, SourceChannel: o.source, Trace: true})
	rep.resolution = res
	rep.Trace = res.Trace
	rw := res.Rewrite
	if rw.Err != nil && res.Err == nil {
		res.Err = rw.Err
	}
	if res.Err != nil && rw.Channel == "" {
		rep.Error = newErrorReport(res.Err)
		return rep
	}
	rep.Channel, rep.Official, rep.Rule = rw.Channel, rw.Official, rw.Rule
	rep.EnvelopeTo, rep.Mailbox = rw.Address, rw.Mailbox
	if c, ok := img.Channel(rw.Channel); ok {
		rep.channel = c
		for _, k := range c.Keywords {
			rep.Flags = append(rep.Flags, k.String())
		}
	}
	dest := o.dest
	if dest == "" {
		dest = rw.Channel
	}
	other := func(kind engine.Kind) engine.Result {
		return rs.Rewrite(engine.Request{Address: addr, Kind: kind, SourceChannel: o.source, DestChannel: dest})
	}
	show := func(r engine.Result) string {
		if r.Err != nil {
			return "(" + r.Err.Enhanced + " " + r.Err.Text + ")"
		}
		return r.Address
	}
	back := other(engine.EnvelopeFrom)
	rep.Backward = back.Channel
	rep.EnvelopeFrom = show(back)
	rep.HeaderTo = show(other(engine.HeaderTo))
	rep.HeaderFrom = show(other(engine.HeaderFrom))

	// Access tables, as the product applies them: ORIG_SEND_ACCESS on the address as
	// given (after rewriting, before expansion), SEND_ACCESS on each expanded
	// recipient.
	from := senderFor(img, o)
	if st := access(img, "ORIG_SEND_ACCESS", o.source, from, rw.Channel, rw.Address, addr); st != nil {
		rep.Error = newErrorReport(st)
		rep.accessRefusedAt = 0
		return rep
	}
	if res.Err != nil {
		rep.Error = newErrorReport(res.Err)
		return rep
	}
	for _, r := range res.Recipients {
		rr := recipientReport{Channel: r.Channel, Address: r.Address, Host: hostOf(img, r.Channel), Mailbox: r.Mailbox, Via: r.Via, Rule: r.Rule}
		if st := access(img, "SEND_ACCESS", o.source, from, r.Channel, r.Address, addr); st != nil {
			rr.Error = st.Enhanced + " " + st.Text
			if rep.Error == nil {
				rep.Error = newErrorReport(st)
				rep.accessRefusedAt = 1
			}
		}
		rep.Recipients = append(rep.Recipients, rr)
	}
	return rep
}

// senderFor is the envelope From used in access probes: -from rewritten as an
// envelope From, else RETURN_ADDRESS, else postmaster@<local host> (the product's
// documentation says only that the default poster is the postmaster).
func senderFor(img *compiler.Image, o *testOpts) string {
	from := o.from
	if from == "" {
		from = img.Options.ReturnAddress
	}
	if from == "" {
		local := "localhost"
		if l := img.LocalChannel(); l != nil {
			local = l.Official
		}
		from = "postmaster@" + local
	}
	r := img.Rules.Rewrite(engine.Request{Address: from, Kind: engine.EnvelopeFrom, SourceChannel: o.source})
	if r.Err == nil && r.Address != "" {
		return r.Address
	}
	return from
}

// access runs one *_SEND_ACCESS table; nil means allowed (or no such table).
func access(img *compiler.Image, table, src, from, dst, to, orig string) *status.Status {
	// The probe is built as intake builds it for a message, so that what the
	// table is asked here is what it is asked at enqueue time.
	rules := intake.Rules{Access: intake.Tables(img.Mappings, img.General), AccessORCPT: img.Options.AccessORCPT}
	if rules.Access == nil {
		return nil
	}
	probe := rules.WithORCPT(table, intake.SendProbe(src, from, dst, to), "rfc822;"+orig)
	ac, ok := rules.Access.Access(table, probe, 0)
	if !ok || !ac.Reject {
		return nil
	}
	enh := ac.Enhanced
	if enh == "" {
		enh = "5.7.1"
	}
	return status.FromEnhanced(enh, ac.Text)
}

// hostOf is a channel's official host name (the "host" of the submitted list).
func hostOf(img *compiler.Image, channel string) string {
	if c, ok := img.Channel(channel); ok {
		return c.Official
	}
	return ""
}

const fieldWidth = 30

func field(w io.Writer, name, value string) {
	if value == "" {
		fmt.Fprintf(w, "%-*s=\n", fieldWidth, name)
		return
	}
	fmt.Fprintf(w, "%-*s= %s\n", fieldWidth, name, value)
}

func printTrace(w io.Writer, steps []engine.TraceStep) {
	for _, s := range steps {
		ind := strings.Repeat("  ", s.Depth)
		if s.Src != "" && !strings.Contains(s.Text, s.Src) {
			fmt.Fprintf(w, "%s%s: %s\n", ind, s.Src, s.Text)
		} else {
			fmt.Fprintf(w, "%s%s\n", ind, s.Text)
		}
	}
}

// printRewrite prints one address in the layout of the product's imsimta test
// -rewrite.
func printRewrite(w io.Writer, img *compiler.Image, o *testOpts, rep *rewriteReport) {
	if o.debug {
		printTrace(w, rep.Trace)
	}
	errLine := func() {
		e := rep.Error
		fmt.Fprintf(w, "Address list error -- %s %s %s\n", e.Enhanced, e.Text, rep.Address)
	}
	if rep.Channel == "" {
		errLine()
		return
	}
	c := rep.channel
	field(w, "channel", rep.Channel)
	field(w, "channel description", "")
	if o.filter && !o.nofilter {
		filterFields(w, img, o, c)
	}
	const perLine = 6
	for i := 0; i*perLine < len(rep.Flags) || i == 0; i++ {
		end := min((i+1)*perLine, len(rep.Flags))
		field(w, fmt.Sprintf("channel flags #%d", i), strings.Join(rep.Flags[min(i*perLine, end):end], " "))
	}
	field(w, "channel official host", rep.Official)
	if c != nil {
		field(w, "channel local alias", c.Alias)
		pool := img.PoolFor(c.Name)
		field(w, "channel queue name", pool.Name)
		field(w, "channel daemon name", c.DaemonHost())
		field(w, "notices", ints(c.Notices[compiler.Normal]))
		field(w, "channel group ids", strings.Join(c.GroupIDs, " "))
	}
	field(w, "backward channel", rep.Backward)
	field(w, "header To: address", rep.HeaderTo)
	field(w, "header From: address", rep.HeaderFrom)
	field(w, "envelope To: address", fmt.Sprintf("%s (route (%s,%s))", rep.EnvelopeTo, rep.Official, rep.Official))
	field(w, "envelope From: address", rep.EnvelopeFrom)
	field(w, "name", "")
	field(w, "mbox", rep.Mailbox)
	rule := rep.Rule
	if rule == "" {
		rule = "channel table"
	}
	field(w, "decided by", rule)
	fmt.Fprintln(w, "Extracted address action list:")
	fmt.Fprintf(w, "    %s\n", rep.EnvelopeTo)
	fmt.Fprintln(w, "Extracted 733 address action list:")
	fmt.Fprintf(w, "    %s\n", rep.EnvelopeTo)
	if rep.accessRefusedAt == 0 || (rep.Error != nil && rep.accessRefusedAt < 0) {
		errLine()
		return
	}
	fmt.Fprintln(w, "Address list expansion:")
	for _, r := range rep.Recipients {
		if len(r.Via) > 0 {
			fmt.Fprintf(w, "  %s (via %s)\n", r.Address, strings.Join(r.Via, " -> "))
		}
	}
	fmt.Fprintf(w, "  %s total.\n", plural(len(rep.Recipients), "expansion"))
	fmt.Fprintln(w, "Expanded address:")
	fmt.Fprintf(w, "  %s\n", rep.Address)
	fmt.Fprintln(w, "Submitted address list:")
	var order []string
	byChannel := map[string][]recipientReport{}
	for _, r := range rep.Recipients {
		if r.Error != "" {
			continue
		}
		if _, ok := byChannel[r.Channel]; !ok {
			order = append(order, r.Channel)
		}
		byChannel[r.Channel] = append(byChannel[r.Channel], r)
	}
	for _, ch := range order {
		fmt.Fprintf(w, "  %s\n", ch)
		for _, r := range byChannel[ch] {
			fmt.Fprintf(w, "    %s (orig %s, inter %s, host %s) *NOTIFY FAILURES* *NOTIFY DELAYS*\n", r.Address, rep.Address, rep.EnvelopeTo, r.Host)
		}
	}
	fmt.Fprintln(w, "Submitted notifications list:")
	for _, r := range rep.Recipients {
		if r.Error != "" {
			fmt.Fprintf(w, "Address list error -- %s %s\n", r.Error, r.Address)
		}
	}
}

// testCompare rewrites a corpus with the current configuration ("old": DIR's image,
// or the text files) and with another image ("new": -compare FILE) and prints the
// addresses whose channel or rewritten address changed. Exit 1 when any did.
func (a *app) testCompare(o *testOpts) int {
	if o.corpus == "" {
		fmt.Fprintln(a.stderr, "mtactl test: -compare needs -corpus FILE")
		return 2
	}
	old, ok := a.image(o.noimage)
	if !ok {
		return 2
	}
	nw, err := compiler.Load(o.compare)
	if err != nil {
		fmt.Fprintf(a.stderr, "mtactl: %v\n", err)
		return 2
	}
	if old.Rules == nil || nw.Rules == nil {
		fmt.Fprintln(a.stderr, "mtactl: an image has no rule engine")
		return 2
	}
	f, err := os.Open(o.corpus)
	if err != nil {
		fmt.Fprintf(a.stderr, "mtactl: %v\n", err)
		return 2
	}
	defer f.Close()
	changed := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		req := engine.Request{Address: line, Kind: engine.EnvelopeTo, SourceChannel: o.source}
		r1, r2 := old.Rules.Rewrite(req), nw.Rules.Rewrite(req)
		if outcome(r1) == outcome(r2) {
			continue
		}
		changed++
		fmt.Fprintf(a.stdout, "%s: %s -> %s\n", line, outcome(r1)+" "+decider(r1), outcome(r2)+" "+decider(r2))
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(a.stderr, "mtactl: %s: %v\n", o.corpus, err)
		return 2
	}
	if changed > 0 {
		return 1
	}
	return 0
}

func outcome(r engine.Result) string {
	if r.Err != nil {
		return "error " + r.Err.Enhanced + " " + r.Err.Text
	}
	return r.Channel + " " + r.Address
}

func decider(r engine.Result) string {
	if r.Rule == "" {
		return "(channel table)"
	}
	return "(" + r.Rule + ")"
}

// testMapping runs a mapping table on strings (imsimta test -mapping).
func (a *app) testMapping(o *testOpts, args []string) int {
	img, ok := a.image(o.noimage)
	if !ok {
		return 1
	}
	table := o.table
	if table == "" {
		// Prompted like imsimta; the table name is the first line of stdin.
		if a.tty {
			fmt.Fprint(a.stdout, "Enter table name: ")
		}
		rd := bufio.NewReader(a.stdin)
		line, _ := rd.ReadString('\n')
		table = strings.TrimSpace(line)
		a.stdin = rd
	}
	if img.Mappings == nil || !img.Mappings.Has(table) {
		fmt.Fprintf(a.stderr, "mtactl test: no mapping table %q\n", table)
		return 1
	}
	var in mappings.Flags
	for i := 0; i < len(o.flags); i++ {
		in |= mappings.Flag(o.flags[i])
	}
	env := &mappings.Env{General: func(k string) (string, bool) {
		v, ok := img.General[strings.ToLower(k)]
		return v, ok
	}}
	a.eachInput(args, "Input string: ", func(s string) {
		if !a.tty || len(args) > 0 {
			fmt.Fprintf(a.stdout, "Input string: %s\n", s)
		}
		r, _ := img.Mappings.Map(table, s, in, env)
		if !r.Matched {
			fmt.Fprintln(a.stdout, "Input string did not match any entries in the mapping table")
			return
		}
		if r.Output == "" {
			fmt.Fprintln(a.stdout, "Output string:")
		} else {
			fmt.Fprintf(a.stdout, "Output string: %s\n", r.Output)
		}
		fmt.Fprintf(a.stdout, "Output flags: %s\n", flagList(r.Flags))
		if r.Src != "" {
			fmt.Fprintf(a.stdout, "Matched entry: %s\n", r.Src)
		}
	})
	return 0
}

// flagList renders flags the imsimta way: [0, 'N' (78), 'X' (88)].
func flagList(f mappings.Flags) string {
	parts := []string{"0"}
	for _, c := range f.String() {
		parts = append(parts, fmt.Sprintf("'%c' (%d)", c, c))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// testMatch tries a mapping pattern on a target (imsimta test -match).
func (a *app) testMatch(args []string) int {
	var pairs [][2]string
	switch len(args) {
	case 0:
		sc := bufio.NewScanner(a.stdin)
		for {
			if a.tty {
				fmt.Fprint(a.stdout, "Pattern: ")
			}
			if !sc.Scan() {
				break
			}
			p := strings.TrimSpace(sc.Text())
			if a.tty {
				fmt.Fprint(a.stdout, "Target: ")
			}
			if !sc.Scan() {
				break
			}
			pairs = append(pairs, [2]string{p, strings.TrimSpace(sc.Text())})
		}
	case 2:
		pairs = append(pairs, [2]string{args[0], args[1]})
	default:
		fmt.Fprintln(a.stderr, "usage: mtactl test -match PATTERN TARGET (or both on stdin)")
		return 2
	}
	status := 0
	for _, pt := range pairs {
		if len(args) == 0 && !a.tty {
			fmt.Fprintf(a.stdout, "Pattern: %s\nTarget: %s\n", pt[0], pt[1])
		}
		p, err := mappings.CompilePattern(pt[0])
		if err != nil {
			fmt.Fprintf(a.stdout, "Bad pattern: %v\n", err)
			status = 1
			continue
		}
		caps, ok := p.Match(pt[1])
		if !ok {
			fmt.Fprintln(a.stdout, "No match.")
			continue
		}
		fmt.Fprintln(a.stdout, "Match.")
		for i, c := range caps {
			fmt.Fprintf(a.stdout, "%2d - %s\n", i, c)
		}
	}
	return status
}
