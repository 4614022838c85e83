package compiler

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const filterIMTA = `example.com   $U%$D@mail.example.com
.             $U%$H@tcp-daemon

l filter ssrd:$A fileinto $U+$S@$D
mail.example.com

tcp_local smtp mx sourcefilter file:IMTA_TABLE:in.filter destinationfilter file:out.filter
tcp-daemon
`

// TestFilterChecks: cnbuild reads and compiles every filter the configuration
// names; a script's error is at its own file and line, column first in the
// message, and stops the build; a user's script only warns.
func TestFilterChecks(t *testing.T) {
	good := map[string]string{
		"imta.cnf":        filterIMTA,
		"imta.filter":     `if header :contains "subject" "[spam]" { addtag "[SPAM]"; }` + "\n",
		"in.filter":       "keep;\n",
		"out.filter":      "require \"fileinto\";\nfileinto \"Outbound\";\n",
		"sieve/bob.sieve": "require \"vacation\";\nvacation \"away\";\n",
	}
	cases := []struct {
		name   string
		change map[string]string
		errs   []string
		warns  []string
	}{
		{name: "all good"},
		{name: "imta.filter does not compile", change: map[string]string{"imta.filter": "keep;\nfileinot \"x\";\n"},
			errs: []string{`imta.filter:2: column 1: unknown command "fileinot"`}},
		{name: "vacation is not for system filters", change: map[string]string{"in.filter": "require \"vacation\";\nvacation \"x\";\n"},
			errs: []string{`in.filter:1: column 9: extension "vacation" is not allowed here (sourcefilter of channel tcp_local, imta.cnf:7)`,
				`in.filter:2: column 1: command "vacation" is not available here (extension "vacation" is not allowed) (sourcefilter of channel tcp_local, imta.cnf:7)`}},
		{name: "missing require", change: map[string]string{"out.filter": "fileinto \"x\";\n"},
			errs: []string{`out.filter:1: column 1: command "fileinto" needs require "fileinto" (destinationfilter of channel tcp_local, imta.cnf:7)`}},
		{name: "missing channel filter file", change: map[string]string{"out.filter": ""},
			errs: []string{"imta.cnf:7: channel tcp_local: destinationfilter file:out.filter: open out.filter: file does not exist"}},
		{name: "broken user's filter warns", change: map[string]string{"sieve/bob.sieve": "vacation \"away\";\n"},
			warns: []string{`sieve/bob.sieve:1: column 1: command "vacation" needs require "vacation" (a user's filter: that user's mail passes as if it had none)`}},
		{name: "unsupported substitution", change: map[string]string{"imta.cnf": strings.Replace(filterIMTA, "ssrd:$A", "file:$~/x", 1)},
			errs: []string{`imta.cnf:4: bad argument for channel keyword "filter": substitution $~ in "file:$~/x" is not supported (mtad knows $A $D $H $U $S $$)`}},
		{name: "filter off the local channel", change: map[string]string{"imta.cnf": strings.Replace(filterIMTA, "tcp_local smtp mx", "tcp_local smtp mx filter ssrd:$A", 1)},
			warns: []string{"imta.cnf:7: channel tcp_local: users' filters run when the local channel l delivers; filter has no effect here"}},
		{name: "FILTER_DISCARD", change: map[string]string{"option.dat": "FILTER_DISCARD=2\nFILTER_JETTISON=3\n"},
			errs:  []string{"option.dat:2: bad value for option FILTER_JETTISON: 3 (1 = delete, 2 = park on the filter_discard channel)"},
			warns: []string{"option.dat:1: FILTER_DISCARD=2 parks discarded mail on the filter_discard channel, which the configuration does not have: it is deleted at once"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := map[string]string{}
			for k, v := range good {
				files[k] = v
			}
			for k, v := range c.change {
				if v == "" {
					delete(files, k)
				} else {
					files[k] = v
				}
			}
			r := build(t, files)
			if got := messages(r.Errors); !slices.Equal(got, c.errs) {
				t.Errorf("errors\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.errs, "\n"))
			}
			if got := messages(r.Warnings); !slices.Equal(got, c.warns) {
				t.Errorf("warnings\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.warns, "\n"))
			}
			if len(c.errs) == 0 && (r.Image == nil || r.Image.MTAFilter == nil) {
				t.Fatal("no image, or imta.filter not in it")
			}
		})
	}
}

// TestFilterKeywordsAndImage: the filter keywords set the channel, the last of
// destinationfilter and channelfilter wins, the no- forms clear them, and
// imta.filter and the options survive the image file.
func TestFilterKeywordsAndImage(t *testing.T) {
	imta := strings.Replace(filterIMTA, "destinationfilter file:out.filter", "destinationfilter file:out.filter channelfilter file:in.filter", 1)
	imta += "\nfilter_discard\nfilter_discard-daemon\n\ntcp_x smtp nosourcefilter nofilter\ntcp_x-daemon\n"
	r := build(t, map[string]string{"imta.cnf": imta, "in.filter": "keep;\n", "out.filter": "keep;\n",
		"imta.filter": "discard;\n", "option.dat": "FILTER_DISCARD=2\nSIEVE_REDIRECT_ADD_RESENT=0\nLOG_FILTER=1\n"})
	if len(r.Errors) > 0 || len(r.Warnings) > 0 {
		t.Fatalf("errors %v warnings %v", r.Errors, r.Warnings)
	}
	path := filepath.Join(t.TempDir(), ImageName)
	if err := Write(path, r.Image); err != nil {
		t.Fatal(err)
	}
	img, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := img.Channel("l")
	tcp, _ := img.Channel("tcp_local")
	if l.UserFilter != "ssrd:$A" || l.FileInto != "$U+$S@$D" || tcp.SourceFilter != "file:IMTA_TABLE:in.filter" || tcp.DestinationFilter != "file:in.filter" {
		t.Errorf("channels: l %q %q, tcp_local %q %q", l.UserFilter, l.FileInto, tcp.SourceFilter, tcp.DestinationFilter)
	}
	o := img.Options
	if img.MTAFilter == nil || img.MTAFilter.Text != "discard;\n" || o.FilterDiscard != 2 || o.FilterJettison != 2 || o.SieveRedirectAddResent || !o.LogFilter {
		t.Errorf("image: filter %+v, options %+v", img.MTAFilter, o)
	}
	if def := DefaultOptions(); def.FilterDiscard != 1 || !def.SieveRedirectAddResent {
		t.Errorf("defaults %+v", def)
	}
}
