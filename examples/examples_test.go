package examples_test

import (
	"io/fs"
	"os"
	"testing"

	"mtad.dev/mta/compiler"
	"mtad.dev/mta/engine"
	"mtad.dev/mta/examples"
	"mtad.dev/mta/mappings"
)

// TestExamplesBuildClean guards the promise of doc.go: every shipped configuration
// compiles with zero errors and zero warnings.
func TestExamplesBuildClean(t *testing.T) {
	cases := []struct {
		name string
		fsys fs.FS
	}{
		{"embedded default", examples.Default},
		{"default", os.DirFS("default")},
		{"site", os.DirFS("site")},
		{"bench-relay", os.DirFS("bench-relay")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := compiler.CheckFS(tc.fsys)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range r.Errors {
				t.Errorf("error: %v", e)
			}
			for _, w := range r.Warnings {
				t.Errorf("warning: %v", w)
			}
			if r.Image == nil && len(r.Errors) == 0 {
				t.Fatal("no image and no errors")
			}
		})
	}
}

// TestExamplesPolicy checks what the example configurations promise: loopback (and
// in site, 10/8) clients are switched to tcp_intranet the way the SMTP server looks
// them up (postmaster@[ip], envelope To, source tcp_local); others stay on tcp_local;
// tcp_local may not relay to tcp_local; local addresses stay local.
func TestExamplesPolicy(t *testing.T) {
	cases := []struct {
		name     string
		fsys     fs.FS
		switches map[string]string // client IP -> channel its literal routes to
		local    []string
	}{
		{"default", examples.Default,
			map[string]string{"127.0.0.1": "tcp_intranet", "127.1.2.3": "tcp_intranet", "192.0.2.1": "tcp_local"},
			[]string{"root@localhost", "root@[127.0.0.1]", "postmaster"}},
		{"site", os.DirFS("site"),
			map[string]string{"127.0.0.1": "tcp_intranet", "10.9.8.7": "tcp_intranet", "192.0.2.1": "tcp_local"},
			[]string{"joe@example.com", "joe@mail.example.com", "root@[127.0.0.1]", "postmaster"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := compiler.CheckFS(tc.fsys)
			if err != nil || r.Image == nil {
				t.Fatalf("%v %v", err, r.Errors)
			}
			img := r.Image
			for ip, want := range tc.switches {
				res := img.Rules.Rewrite(engine.Request{Address: "postmaster@[" + ip + "]", Kind: engine.EnvelopeTo, SourceChannel: "tcp_local"})
				if res.Channel != want {
					t.Errorf("client %s: channel %q (%v), want %q", ip, res.Channel, res.Err, want)
				}
				if c, ok := img.Channel(want); want == "tcp_intranet" && (!ok || c.Switch != compiler.AllowSwitch) {
					t.Errorf("%s cannot be switched to", want)
				}
			}
			if c, _ := img.Channel("tcp_local"); c.Switch != compiler.Switch {
				t.Error("tcp_local does not switchchannel")
			}
			for _, a := range tc.local {
				res := img.Rules.Resolve(engine.Request{Address: a, Kind: engine.EnvelopeTo, SourceChannel: "tcp_intranet"})
				if res.Err != nil || len(res.Recipients) == 0 || res.Recipients[0].Channel != "l" {
					t.Errorf("%s: %+v, want local delivery", a, res)
				}
			}
			m, ok := img.Mappings.Map("ORIG_SEND_ACCESS", "tcp_local|a@outside.example|tcp_local|b@elsewhere.example", 0, &mappings.Env{})
			ac := mappings.DecodeAccess(m)
			if !ok || !ac.Reject || ac.Enhanced != "5.7.1" || ac.Text != "Relaying denied" {
				t.Errorf("relay from tcp_local: %+v", ac)
			}
			m, _ = img.Mappings.Map("ORIG_SEND_ACCESS", "tcp_intranet|a@example.com|tcp_local|b@elsewhere.example", 0, &mappings.Env{})
			if mappings.DecodeAccess(m).Reject {
				t.Error("relay from tcp_intranet refused")
			}
		})
	}
}
