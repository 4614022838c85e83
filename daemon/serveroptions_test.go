package daemon

import (
	"net/netip"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"mtad.dev/mta/compiler"
	"mtad.dev/mta/internal/smtptest"
)

// switchCnf: clients at 127.0.0.2 are switched to tcp_intranet; every other
// client stays in tcp_local, the channel connections arrive on.
const switchCnf = `[127.0.0.2]   $U%[127.0.0.2]@tcp_intranet-daemon
.             $U%$H@tcp-daemon

defaults noswitchchannel

l
localhost

tcp_local smtp mx switchchannel
tcp-daemon

tcp_intranet smtp mx allowswitchchannel
tcp_intranet-daemon
`

// TestNewPolicyServerLimits: the service's limits are the arrival channel's
// option file's, each channel carries those of its own file (a key it does not
// set is the arrival channel's), and loopback clients are greeted without the
// banner delay.
func TestNewPolicyServerLimits(t *testing.T) {
	r, err := compiler.CheckFS(fstest.MapFS{
		"imta.cnf":            {Data: []byte(switchCnf)},
		"tcp_local_option":    {Data: []byte("COMMAND_RECEIVE_TIME=5\nMAX_SESSION_TIME=20\nBANNER_DELAY=2\n")},
		"tcp_intranet_option": {Data: []byte("COMMAND_RECEIVE_TIME=30s\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Errors) > 0 || len(r.Warnings) > 0 {
		t.Fatalf("errors %v warnings %v", r.Errors, r.Warnings)
	}
	p := newPolicy(r.Image)
	if p.DefaultSource != "tcp_local" || p.Timeouts.Command != 5*time.Minute || p.Timeouts.Session != 20*time.Minute ||
		p.Timeouts.BannerDelay != 2*time.Second || p.Timeouts.MinDataRate != compiler.DefaultMinDataReceiveRate {
		t.Errorf("service limits %+v", p.Timeouts)
	}
	if p.Channels["tcp_local"].Timeouts != p.Timeouts {
		t.Errorf("tcp_local %+v, want the service's %+v", p.Channels["tcp_local"].Timeouts, p.Timeouts)
	}
	in := p.Channels["tcp_intranet"].Timeouts
	if in.Command != 30*time.Second || in.Session != 20*time.Minute || in.BannerDelay != 0 {
		t.Errorf("tcp_intranet %+v", in)
	}
	for _, ip := range []string{"127.0.0.1", "127.0.0.9", "::1"} {
		if !exempt(p.BannerDelayExempt, ip) {
			t.Errorf("%s is not exempt from the banner delay", ip)
		}
	}
	if exempt(p.BannerDelayExempt, "192.0.2.1") {
		t.Error("192.0.2.1 is exempt from the banner delay")
	}
}

func exempt(nets []netip.Prefix, ip string) bool {
	a := netip.MustParseAddr(ip)
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// idleTimeout connects from local, waits for the server to end the idle
// session, and returns how long that took; it fails the test when the server
// says nothing within limit.
func idleTimeout(t *testing.T, addr, local string, limit time.Duration) time.Duration {
	t.Helper()
	c := smtptest.Dial(t, addr, smtptest.From(local), smtptest.Deadline(limit))
	c.Cmd("EHLO client.test", "250")
	began := time.Now()
	r, err := c.ReadReply()
	if !strings.HasPrefix(r, "421 4.4.2 ") {
		t.Fatalf("from %s after %v: %q (%v), want 421 4.4.2 timeout", local, time.Since(began).Round(time.Millisecond), r, err)
	}
	return time.Since(began)
}

// TestSwitchedChannelOptionsApply: a client switchchannel moves to tcp_intranet
// has tcp_intranet_option's command timeout; a client that stays in tcp_local
// has tcp_local_option's.
func TestSwitchedChannelOptionsApply(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, map[string]string{
		"imta.cnf":            switchCnf,
		"tcp_local_option":    "COMMAND_RECEIVE_TIME=1500ms\n",
		"tcp_intranet_option": "COMMAND_RECEIVE_TIME=300ms\n",
	})
	d, _ := startDaemon(t, dir)
	addr := d.Addr().String()
	if took := idleTimeout(t, addr, "127.0.0.2", 5*time.Second); took > time.Second {
		t.Errorf("tcp_intranet session timed out after %v, want tcp_intranet_option's 300ms", took)
	}
	if took := idleTimeout(t, addr, "127.0.0.3", 5*time.Second); took < time.Second {
		t.Errorf("tcp_local session timed out after %v, want tcp_local_option's 1.5s", took)
	}
}

// TestServiceChannelOptions: without tcp_local, connections arrive on the first
// SMTP channel and get its option file's limits.
func TestServiceChannelOptions(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, map[string]string{
		"imta.cnf":      ".             $U%$H@tcp-daemon\n\nl\nlocalhost\n\ntcp_in smtp mx\ntcp-daemon\n",
		"tcp_in_option": "COMMAND_RECEIVE_TIME=300ms\n",
	})
	d, _ := startDaemon(t, dir)
	if took := idleTimeout(t, d.Addr().String(), "127.0.0.1", 5*time.Second); took > time.Second {
		t.Errorf("session timed out after %v, want tcp_in_option's 300ms", took)
	}
}

// TestBannerDelayLoopbackExempt: a loopback client that stays in tcp_local, whose
// option file asks for a banner delay, is greeted at once and may talk first:
// local programs, and the benchmarks, pay nothing for the early-talker check.
func TestBannerDelayLoopbackExempt(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, map[string]string{
		"imta.cnf":         switchCnf,
		"tcp_local_option": "BANNER_DELAY=3\n",
	})
	d, _ := startDaemon(t, dir)
	began := time.Now()
	c := smtptest.Open(t, d.Addr().String(), smtptest.From("127.0.0.3"))
	c.Write("EHLO early.test\r\n")
	c.Expect("220 ")
	if took := time.Since(began); took > time.Second {
		t.Errorf("banner after %v: a loopback client was delayed", took)
	}
	c.Expect("250")
}
