package compiler

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/jobctl"
	"mtad.dev/mta/smtpserver"
)

// TestSettingsAreValues: the settings the compiler hands the subsystems hold no
// pointer, interface, function, slice, map or channel, at any depth. So == on
// them compares what they say (never which allocation they came from), and a
// reload that changed nothing is seen as such. netip.Addr is comparable by
// design (its zone is interned).
func TestSettingsAreValues(t *testing.T) {
	addr := reflect.TypeOf(netip.Addr{})
	var check func(path string, typ reflect.Type)
	check = func(path string, typ reflect.Type) {
		switch typ.Kind() {
		case reflect.Pointer, reflect.Interface, reflect.Func, reflect.Slice, reflect.Map, reflect.Chan, reflect.UnsafePointer:
			t.Errorf("%s is a %s: the settings would not compare by value", path, typ.Kind())
		case reflect.Array:
			check(path+"[]", typ.Elem())
		case reflect.Struct:
			if typ == addr {
				return
			}
			for i := range typ.NumField() {
				check(path+"."+typ.Field(i).Name, typ.Field(i).Type)
			}
		}
	}
	for _, v := range []any{channels.SMTPSettings{}, channels.PipeSettings{}, smtpserver.ChannelPolicy{}, jobctl.Channel{}} {
		typ := reflect.TypeOf(v)
		check(typ.String(), typ)
	}
}

const subsystemsIMTA = `.             $U%$H@tcp-daemon

l
mail.example.com

tcp_local smtp mx
tcp-daemon

tcp_bound smtp nomx daemon [127.0.0.1] port 2525 interfaceaddress 127.0.0.2 nameservers 192.0.2.1 192.0.2.2 musttlsclient sevenbit master_debug
tcp_bound-daemon

tcp_nodns smtp nodns daemon [192.0.2.7]
tcp_nodns-daemon

lmtp_store lmtp daemon /run/store.sock
lmtp_store-daemon
`

func subsystemsImage(t *testing.T) *Image {
	t.Helper()
	r := build(t, map[string]string{"imta.cnf": subsystemsIMTA, "option.dat": "DNS_TIMEOUT=3\nLOG_CONNECTION=3\n",
		"tcp_bound_option": "STATUS_GREETING_RECEIVE_TIME=30s\nATTEMPT_TRANSACTIONS_PER_SESSION=7\n"})
	if len(r.Errors) > 0 || len(r.Warnings) > 0 {
		t.Fatalf("errors %v warnings %v", messages(r.Errors), messages(r.Warnings))
	}
	return r.Image
}

func TestSMTPClientSettings(t *testing.T) {
	img := subsystemsImage(t)
	get := func(name string) channels.SMTPSettings {
		c, ok := img.Channel(name)
		if !ok {
			t.Fatalf("no channel %s", name)
		}
		return img.SMTPClient(c)
	}
	want := channels.SMTPSettings{
		Daemon: "[127.0.0.1]", Port: 2525, HeloName: "mail.example.com", MX: channels.MXNone,
		Timeouts:           channels.Timeouts{Greeting: 30 * time.Second},
		MaxMessagesPerConn: 7,
		LocalAddr:          netip.MustParseAddr("127.0.0.2"),
		SevenBit:           true,
		TLS:                channels.TLSMust,
		Nameservers:        "192.0.2.1 192.0.2.2",
		DNSTimeout:         3 * time.Second,
		Channel:            "tcp_bound",
		LogConnection:      3,
		MasterDebug:        true,
	}
	if got := get("tcp_bound"); got != want {
		t.Errorf("tcp_bound:\n got %+v\nwant %+v", got, want)
	}
	// nodns: no resolver, and no MX lookup that would need one.
	if got := get("tcp_nodns"); !got.NoDNS || got.MX != channels.MXNone || got.LocalAddr.IsValid() {
		t.Errorf("tcp_nodns: %+v", got)
	}
	if got := get("tcp_local"); got.NoDNS || got.MX != channels.MXNonRandom || got.Nameservers != "" || got.LocalAddr.IsValid() {
		t.Errorf("tcp_local: %+v", got)
	}
	if got := get("lmtp_store"); got.Network != "unix" || got.Daemon != "/run/store.sock" || !got.LMTP {
		t.Errorf("lmtp_store: %+v", got)
	}
	// The same configuration built again gives == settings; one keyword more does not.
	again := subsystemsImage(t)
	c, _ := again.Channel("tcp_bound")
	if again.SMTPClient(c) != want {
		t.Error("the same configuration gives other settings")
	}
	c.InterfaceAddress = "127.0.0.3"
	if again.SMTPClient(c) == want {
		t.Error("another interfaceaddress gives == settings")
	}
}

// TestInterfaceAddressChecked: interfaceaddress takes an IP address, and has no
// meaning for a Unix socket; both mistakes are errors at the keyword.
func TestInterfaceAddressChecked(t *testing.T) {
	for _, tc := range []struct{ keywords, want string }{
		{"smtp interfaceaddress mail.example.com", `imta.cnf:6: bad argument for channel keyword "interfaceaddress": "mail.example.com" is not an IP address`},
		{"lmtp daemon /run/x.sock interfaceaddress 127.0.0.2", `imta.cnf:6: channel tcp_local: interfaceaddress has no meaning with a Unix socket (daemon /run/x.sock)`},
	} {
		r := build(t, map[string]string{"imta.cnf": ".  $U%$H@tcp-daemon\n\nl\nlocalhost\n\ntcp_local " + tc.keywords + "\ntcp-daemon\n"})
		if got := messages(r.Errors); !slices.Equal(got, []string{tc.want}) {
			t.Errorf("%s: errors %q, want %q", tc.keywords, got, tc.want)
		}
	}
}

// TestKeywordsNotImplementedWarn: the keywords that were accepted and then
// ignored now say so, each at its own line; nodeferred is what mtad does.
func TestKeywordsNotImplementedWarn(t *testing.T) {
	r := build(t, map[string]string{"imta.cnf": strings.Replace(baseIMTA, "tcp_local smtp mx",
		"tcp_local smtp mx urgentblocklimit 10 normalblocklimit 20 nonurgentblocklimit 30 \\\n deferred nodeferred returnaddress postmaster@example.com \\\n urgentnotices 1 2 normalnotices 3 nonurgentnotices 4", 1)})
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %v", messages(r.Errors))
	}
	want := []string{
		`imta.cnf:7: channel keyword "urgentblocklimit" is not implemented in this version; it has no effect (a message keeps its priority whatever its size)`,
		`imta.cnf:7: channel keyword "normalblocklimit" is not implemented in this version; it has no effect (a message keeps its priority whatever its size)`,
		`imta.cnf:7: channel keyword "nonurgentblocklimit" is not implemented in this version; it has no effect (a message keeps its priority whatever its size)`,
		`imta.cnf:8: channel keyword "deferred" is not implemented in this version; it has no effect (a Deferred-delivery: header field is not honoured; the message is delivered at once)`,
		`imta.cnf:8: channel keyword "returnaddress" is not implemented in this version; it has no effect (notices come from option.dat's RETURN_ADDRESS for every channel)`,
		`imta.cnf:9: channel keyword "urgentnotices" is not implemented in this version; it has no effect (every priority follows the normal notices schedule (notices, normalnotices))`,
		`imta.cnf:9: channel keyword "nonurgentnotices" is not implemented in this version; it has no effect (every priority follows the normal notices schedule (notices, normalnotices))`,
	}
	if got := messages(r.Warnings); !slices.Equal(got, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestJobChannelSettings(t *testing.T) {
	r := build(t, map[string]string{
		"imta.cnf":           strings.Replace(baseIMTA, "tcp_local smtp mx", `tcp_local smtp mx pool SMTP_POOL maxjobs 9 threaddepth 4 addrsperfile 20 backoff pt5m pt10m normalbackoff pt1h notices 1 2 urgentnotices 5`, 1),
		"job_controller.cnf": basePools + "[CHANNEL=tcp_*]\nJOB_LIMIT=6\nTHREAD_DEPTH=3\nNORMAL_DELIVERY=08:00-20:00\n",
	})
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %v", messages(r.Errors))
	}
	c, _ := r.Image.Channel("tcp_local")
	want := jobctl.Channel{
		MaxJobs: 6, Pool: "SMTP_POOL", ThreadDepth: 3, AddrsPerFile: 20,
		Backoff: [3]jobctl.Backoff{
			jobctl.Urgent:    jobctl.BackoffOf(5*time.Minute, 10*time.Minute),
			jobctl.Normal:    jobctl.BackoffOf(time.Hour),
			jobctl.NonUrgent: jobctl.BackoffOf(5*time.Minute, 10*time.Minute),
		},
		Notices: jobctl.NoticesOf(1, 2),
		Windows: [3]jobctl.Window{jobctl.Normal: {Start: 8 * 60, End: 20 * 60}},
	}
	if got := r.Image.JobChannel(c); got != want {
		t.Errorf("JobChannel:\n got %+v\nwant %+v", got, want)
	}
	l, _ := r.Image.Channel("l")
	if got := r.Image.JobChannel(l); got.Backoff[jobctl.Normal] != jobctl.BackoffOf(DefaultBackoff(Normal)...) || got.Notices != jobctl.NoticesOf(3, 6, 9, 12) {
		t.Errorf("l gets the default schedules: %+v", got)
	}
}

func TestServerPolicySettings(t *testing.T) {
	r := build(t, map[string]string{"imta.cnf": strings.Replace(baseIMTA, "tcp_local smtp mx",
		`tcp_local smtp mx switchchannel saslswitchchannel tcp_local musttlsserver maysaslserver blocklimit 5 recipientcutoff 9 slave_debug`, 1)})
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %v", messages(r.Errors))
	}
	c, _ := r.Image.Channel("tcp_local")
	want := smtpserver.ChannelPolicy{Name: "tcp_local", SwitchChannel: true, SASLSwitchChannel: "tcp_local",
		RequireTLS: true, SASL: smtpserver.SASLMay, BlockLimit: 5, RecipientCutoff: 9, DisconnectBadAuthLimit: 3, SlaveDebug: true}
	if got := c.ServerPolicy(); got != want {
		t.Errorf("ServerPolicy:\n got %+v\nwant %+v", got, want)
	}
}

func TestPipeSettings(t *testing.T) {
	r := build(t, map[string]string{"imta.cnf": baseIMTA,
		"tcp_local_option": "PIPE_COMMAND=/usr/bin/deliver ${recipients}\nPIPE_MODE=message\nPIPE_TIMEOUT=9\nPIPE_TEMPORARY_EXITS=69 67\nPIPE_PERMANENT_EXITS=1-2\n"})
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %v", messages(r.Errors))
	}
	c, _ := r.Image.Channel("tcp_local")
	want := channels.PipeSettings{Command: "/usr/bin/deliver ${recipients}", PerMessage: true, Timeout: 9 * time.Second,
		TemporaryExits: channels.ExitStatusesOf(67, 69), PermanentExits: channels.ExitStatusesOf(1, 2)}
	if got, ok := r.Image.Pipe(c); !ok || got != want {
		t.Errorf("Pipe = %+v, %v; want %+v", got, ok, want)
	}
	if l, _ := r.Image.Channel("l"); func() bool { _, ok := r.Image.Pipe(l); return ok }() {
		t.Error("l is no pipe channel")
	}
}
