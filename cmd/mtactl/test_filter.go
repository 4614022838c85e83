package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"strings"
	"time"

	"mtad.dev/mta/compiler"
	"mtad.dev/mta/filter"
	"mtad.dev/mta/mailheader"
	"mtad.dev/mta/sieve"
)

// The test commands of Sieve filters: `test -rewrite -filter` shows which
// filters apply to an address and where each is found; `test -exp -mm`
// evaluates a script on a message and prints every test and action with its
// position. Neither sends or delivers anything.

// filterFields are the product's channel filter lines of test -rewrite, after
// "channel description".
func filterFields(w io.Writer, img *compiler.Image, o *testOpts, c *compiler.ChannelConfig) {
	src, _ := img.Channel(o.source)
	user, dest, source := "", "", ""
	if c != nil {
		user, dest = c.UserFilter, c.DestinationFilter
	}
	if src != nil {
		source = src.SourceFilter
	}
	field(w, "channel user filter", user)
	field(w, "dest channel filter", dest)
	field(w, "source channel filter", source)
}

// printFilters lists, for each recipient an address expands to, the filters
// that apply in the order they run, and whether each was found.
func printFilters(w io.Writer, img *compiler.Image, a *app, o *testOpts, rep *rewriteReport) {
	cache := filter.NewCache(nil, -1)
	src, _ := img.Channel(o.source)
	for _, r := range rep.Recipients {
		if r.Error != "" {
			continue
		}
		fmt.Fprintf(w, "Filters for %s (channel %s), in the order they run:\n", r.Address, r.Channel)
		if img.MTAFilter != nil {
			fmt.Fprintf(w, "  %-28s= %s (compiled into the image)\n", "MTA-wide filter", img.MTAFilter.Name)
		} else {
			fmt.Fprintf(w, "  %-28s=\n", "MTA-wide filter")
		}
		if src != nil {
			showFilter(w, a, o, cache, "source channel filter", src.SourceFilter, filter.LevelSystem)
		}
		c, _ := img.Channel(r.Channel)
		if c == nil {
			continue
		}
		showFilter(w, a, o, cache, "dest channel filter", c.DestinationFilter, filter.LevelSystem)
		if c.Local() && c.UserFilter != "" {
			url, err := filter.ExpandURL(c.UserFilter, r.Address, img.Options.SubaddressChar)
			if err != nil {
				fmt.Fprintf(w, "  %-28s= %s: %v\n", "channel user filter", c.UserFilter, err)
				continue
			}
			showFilter(w, a, o, cache, "channel user filter", url, filter.LevelUser)
		}
	}
}

// showFilter prints one filter URL, the product's lines about opening it with
// -debug, and whether it was obtained.
func showFilter(w io.Writer, a *app, o *testOpts, cache *filter.Cache, what, url string, l filter.Level) {
	if url == "" {
		fmt.Fprintf(w, "  %-28s=\n", what)
		return
	}
	fmt.Fprintf(w, "  %-28s= %s\n", what, url)
	loc, err := filter.Locate(url, a.configDir, "")
	if o.debug {
		for _, line := range loc.Trace() {
			fmt.Fprintf(w, "    %s\n", line)
		}
	}
	var sc *sieve.Script
	if err == nil {
		sc, err = cache.Script(loc, l)
	}
	switch {
	case err != nil:
		fmt.Fprintf(w, "    Filter not obtained: %s\n", strings.ReplaceAll(err.Error(), "\n", "\n    "))
	case sc == nil:
		fmt.Fprintf(w, "    No filter: %s does not exist.\n", loc.Path)
	default:
		fmt.Fprintf(w, "    Filter successfully obtained: %s\n", sc.Name())
	}
}

// testExp is `mtactl test -exp -mm`: evaluate Sieve on a message. Without
// -block each line of the input is a script of its own, as in the product.
func (a *app) testExp(o *testOpts) int {
	if !o.mm || o.input == "" || o.message == "" {
		fmt.Fprintln(a.stderr, "usage: mtactl test -exp -mm [-block] -input=SIEVEFILE -message=FILE [-from=ADDR] [-to=ADDR] [-output=FILE]")
		return 2
	}
	src, err := os.ReadFile(o.input)
	if err != nil {
		fmt.Fprintf(a.stderr, "mtactl: %v\n", err)
		return 1
	}
	msg, err := os.ReadFile(o.message)
	if err != nil {
		fmt.Fprintf(a.stderr, "mtactl: %v\n", err)
		return 1
	}
	out := a.stdout
	if o.output != "" {
		f, err := os.Create(o.output)
		if err != nil {
			fmt.Fprintf(a.stderr, "mtactl: %v\n", err)
			return 1
		}
		defer f.Close()
		out = f
	}
	env := a.expEnv(o, msg)
	scripts := []string{string(src)}
	if !o.block {
		scripts = strings.Split(string(src), "\n")
	}
	rc := 0
	for i, text := range scripts {
		if strings.TrimSpace(text) == "" {
			continue
		}
		// A line keeps its line number: the lines before it become empty.
		if !o.block {
			text = strings.Repeat("\n", i) + text
		}
		if !expOne(out, o.input, []byte(text), msg, env) {
			rc = 1
		}
	}
	return rc
}

// expEnv is the envelope of test -exp: -from (default RETURN_ADDRESS, else
// postmaster@ our name) and -to (default the message's first To: address).
func (a *app) expEnv(o *testOpts, msg []byte) sieve.Env {
	from := o.from
	img, ok := a.image(o.noimage)
	if from == "" && ok {
		from = img.Options.ReturnAddress
		if from == "" {
			from = "postmaster@" + img.Hostname()
		}
	}
	to := o.to
	if to == "" {
		mailheader.Walk(msg, func(f mailheader.Field) bool {
			if f.Is("To") {
				if l, err := mail.ParseAddressList(f.Value()); err == nil && len(l) > 0 {
					to = l[0].Address
				}
				return false
			}
			return true
		})
	}
	env := sieve.Env{Envelope: sieve.Envelope{From: from}, Now: a.now()}
	if to != "" {
		env.Envelope.To = []string{to}
	}
	if ok {
		env.SubaddressSeparator = img.Options.SubaddressChar
	}
	return env
}

// expOptions are test -exp's: every extension, and the product's own without
// require, so that a user's script and a system scriptlet both compile.
var expOptions = sieve.Options{Implicit: []string{"addheader", "addtag", "jettison"}}

// expOne evaluates one script and prints the trace, the actions and the
// outcome; false when it does not compile or fails.
func expOne(w io.Writer, name string, src, msg []byte, env sieve.Env) bool {
	sc, err := sieve.Compile(name, src, expOptions)
	if err != nil {
		var el sieve.ErrorList
		if errors.As(err, &el) {
			for _, e := range el {
				fmt.Fprintln(w, e.Error())
			}
		} else {
			fmt.Fprintln(w, err)
		}
		return false
	}
	env.Trace = func(ev sieve.TraceEvent) { fmt.Fprintln(w, ev.String()) }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := sc.Evaluate(ctx, msg, env)
	if err != nil {
		fmt.Fprintf(w, "%v\nResult: the script failed; the message would be delivered as if there were no filter\n", err)
		return false
	}
	fmt.Fprintln(w, "Actions:")
	for _, act := range res.Actions {
		fmt.Fprintf(w, "  %s: %s\n", act.Position().Short(), act.String())
	}
	if res.ImplicitKeep {
		fmt.Fprintf(w, "  implicit keep%s\n", flagsNote(res.KeepFlags))
	}
	if res.Header != nil {
		fmt.Fprintln(w, "Header after the script's edits:")
		var b strings.Builder
		res.Header.WriteTo(&b)
		for _, l := range strings.Split(strings.TrimRight(b.String(), "\r\n"), "\n") {
			fmt.Fprintf(w, "  %s\n", strings.TrimRight(l, "\r"))
		}
	}
	fmt.Fprintf(w, "Result: %s (nothing was delivered or sent)\n", expOutcome(res))
	return true
}

func flagsNote(flags []string) string {
	if len(flags) == 0 {
		return ""
	}
	return " with flags " + strings.Join(flags, " ")
}

// expOutcome is the last statement's value in words: where the message would go.
func expOutcome(res *sieve.Result) string {
	switch {
	case res.Jettisoned():
		return "jettisoned"
	case len(res.Actions) == 0 && res.ImplicitKeep:
		return "kept (implicit keep)"
	}
	var parts []string
	for _, a := range res.Actions {
		switch a := a.(type) {
		case *sieve.Reject:
			return "rejected: " + filter.RejectStatus(a).Error()
		case *sieve.Keep, *sieve.FileInto, *sieve.Redirect, *sieve.Discard, *sieve.Vacation:
			parts = append(parts, strings.SplitN(a.String(), " ", 2)[0])
		}
	}
	if res.ImplicitKeep {
		parts = append(parts, "implicit keep")
	}
	if len(parts) == 0 {
		return "no delivery"
	}
	return strings.Join(parts, ", ")
}
