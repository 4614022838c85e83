package compiler

import (
	"reflect"
	"strings"
	"testing"
)

// lmtpIMTA is a site whose lmtp.example domain goes to the lmtp channel "store",
// whose keywords the cases fill in.
func lmtpIMTA(keywords string) string {
	return `lmtp.example  $U%$D@store-daemon
.             $U%$H@tcp-daemon

l
mail.example.com

tcp_local smtp mx
tcp-daemon

store ` + keywords + `
store-daemon
`
}

func TestLMTPKeyword(t *testing.T) {
	cases := []struct {
		name     string
		keywords string
		errs     []string
		socket   string // LMTPSocket()
		daemon   string // DaemonHost() for TCP
		port     int
	}{
		{name: "unix socket", keywords: "lmtp daemon /run/lmtp.sock", socket: "/run/lmtp.sock", daemon: "/run/lmtp.sock", port: 25},
		{name: "tcp", keywords: "lmtp daemon 127.0.0.1 port 2424", daemon: "127.0.0.1", port: 2424},
		{name: "tcp, non-FQDN daemon is the official host", keywords: "lmtp daemon router port 24", daemon: "store-daemon", port: 24},
		{name: "smtp then lmtp in defaults is fine: the later wins", keywords: "lmtp daemon /s", socket: "/s", daemon: "/s", port: 25},
		{
			name:     "lmtp without daemon",
			keywords: "lmtp port 2424",
			errs:     []string{`imta.cnf:10: channel store: lmtp needs "daemon HOST" (TCP, with "port N") or "daemon /path/to/socket" (Unix socket)`},
		},
		{
			name:     "tcp without port",
			keywords: "lmtp daemon 127.0.0.1",
			errs:     []string{`imta.cnf:10: channel store: lmtp over TCP needs "port N" (LMTP has no standard port)`},
		},
		{
			name:     "tcp on port 25",
			keywords: "lmtp daemon 127.0.0.1 port 25",
			errs:     []string{`imta.cnf:10: channel store: lmtp must not use port 25 (RFC 2033 §5)`},
		},
		{
			name:     "port with a socket",
			keywords: "lmtp daemon /run/lmtp.sock port 24",
			errs:     []string{`imta.cnf:10: channel store: port has no meaning with a Unix socket (daemon /run/lmtp.sock)`},
		},
		{
			name:     "smtp and lmtp in one block",
			keywords: "smtp lmtp daemon /run/lmtp.sock",
			errs:     []string{`imta.cnf:10: channel store: smtp and lmtp exclude each other (one delivery protocol per channel)`},
		},
		{
			name:     "socket path on an smtp channel",
			keywords: "smtp daemon /run/lmtp.sock",
			errs:     []string{`imta.cnf:10: channel store: daemon "/run/lmtp.sock" is a Unix socket path, which only an lmtp channel can use`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			imta := lmtpIMTA(tc.keywords)
			if strings.HasPrefix(tc.name, "smtp then lmtp") {
				imta = strings.Replace(imta, "\nstore ", "\ndefaults smtp\n\nstore ", 1)
			}
			r := build(t, map[string]string{"imta.cnf": imta})
			if got := messages(r.Errors); !reflect.DeepEqual(got, tc.errs) {
				t.Fatalf("errors:\n got %q\nwant %q", got, tc.errs)
			}
			if len(tc.errs) > 0 {
				return
			}
			c, ok := r.Image.Channel("store")
			if !ok {
				t.Fatal("no channel store")
			}
			if !c.LMTP || c.SMTP {
				t.Errorf("LMTP %v SMTP %v", c.LMTP, c.SMTP)
			}
			if c.LMTPSocket() != tc.socket || c.DaemonHost() != tc.daemon || c.Port != tc.port {
				t.Errorf("socket %q daemon %q port %d", c.LMTPSocket(), c.DaemonHost(), c.Port)
			}
		})
	}
}

func TestLMTPOnLocalChannel(t *testing.T) {
	r := build(t, map[string]string{"imta.cnf": strings.Replace(baseIMTA, "\nl\n", "\nl lmtp daemon /run/s\n", 1)})
	want := []string{`imta.cnf:4: channel l: lmtp is not supported on the local channel; route the domain to an lmtp channel of its own`}
	if got := messages(r.Errors); !reflect.DeepEqual(got, want) {
		t.Fatalf("errors:\n got %q\nwant %q", got, want)
	}
}

func TestPipeOptions(t *testing.T) {
	imta := baseIMTA + "\npipe\npipe-daemon\n"
	cases := []struct {
		name    string
		option  string
		errs    []string
		mode    string
		temp    []int
		perm    []int
		command string
	}{
		{name: "defaults", option: "PIPE_COMMAND=/bin/deliver ${recipient}\n", mode: PipeModeRecipient, command: "/bin/deliver ${recipient}"},
		{
			name:   "message mode with overrides",
			option: "PIPE_COMMAND=/bin/deliver -f ${sender} ${recipients}\nPIPE_MODE=Message\nPIPE_TEMPORARY_EXITS=67,69\nPIPE_PERMANENT_EXITS=1 2-4\n",
			mode:   PipeModeMessage, temp: []int{67, 69}, perm: []int{1, 2, 3, 4}, command: "/bin/deliver -f ${sender} ${recipients}",
		},
		{
			name:   "bad mode",
			option: "PIPE_COMMAND=/bin/x\nPIPE_MODE=batch\n",
			errs:   []string{`pipe_option:2: bad value for option PIPE_MODE: "batch" is neither "recipient" nor "message"`},
		},
		{
			name:   "bad exit lists",
			option: "PIPE_COMMAND=/bin/x\nPIPE_TEMPORARY_EXITS=0,75\nPIPE_PERMANENT_EXITS=64-x\n",
			errs: []string{
				`pipe_option:2: bad value for option PIPE_TEMPORARY_EXITS: "0": exit statuses are 1 to 255 (0 means delivered)`,
				`pipe_option:3: bad value for option PIPE_PERMANENT_EXITS: "64-x" is not an exit status or a range N-M`,
			},
		},
		{
			name:   "out of range, reversed, empty",
			option: "PIPE_COMMAND=/bin/x\nPIPE_TEMPORARY_EXITS=256\nPIPE_PERMANENT_EXITS=78-64\n",
			errs: []string{
				`pipe_option:2: bad value for option PIPE_TEMPORARY_EXITS: "256": exit statuses are 1 to 255 (0 means delivered)`,
				`pipe_option:3: bad value for option PIPE_PERMANENT_EXITS: "78-64": exit statuses are 1 to 255 (0 means delivered)`,
			},
		},
		{
			name:   "empty list",
			option: "PIPE_COMMAND=/bin/x\nPIPE_PERMANENT_EXITS= , \n",
			errs:   []string{`pipe_option:2: bad value for option PIPE_PERMANENT_EXITS: empty list (exit statuses such as 67,69 or 64-78)`},
		},
		{
			name:   "status in both lists",
			option: "PIPE_COMMAND=/bin/x\nPIPE_TEMPORARY_EXITS=67\nPIPE_PERMANENT_EXITS=64-70\n",
			errs:   []string{`pipe_option:3: bad value for option PIPE_PERMANENT_EXITS: exit status 67 is also in PIPE_TEMPORARY_EXITS`},
		},
		{
			name:   "per-recipient name in message mode",
			option: "PIPE_MODE=message\nPIPE_COMMAND=/bin/x ${user}@${domain}\n",
			errs: []string{
				`pipe_option:2: bad value for option PIPE_COMMAND: ${user} names one recipient, but PIPE_MODE=message runs once for all of them (use ${recipients} or $RECIPIENTS)`,
				`pipe_option:2: bad value for option PIPE_COMMAND: ${domain} names one recipient, but PIPE_MODE=message runs once for all of them (use ${recipients} or $RECIPIENTS)`,
			},
		},
		{
			name:   "recipients inside an argument",
			option: "PIPE_MODE=message\nPIPE_COMMAND=/bin/x --to=${recipients}\n",
			errs:   []string{`pipe_option:2: bad value for option PIPE_COMMAND: "--to=${recipients}": ${recipients} must be a whole argument (it becomes one argument per recipient)`},
		},
		{
			name:   "recipients in recipient mode",
			option: "PIPE_COMMAND=/bin/x ${recipients}\n",
			errs:   []string{`pipe_option:1: bad value for option PIPE_COMMAND: ${recipients} needs PIPE_MODE=message (this channel runs once per recipient: use ${recipient})`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := build(t, map[string]string{"imta.cnf": imta, "pipe_option": tc.option})
			if got := messages(r.Errors); !reflect.DeepEqual(got, tc.errs) {
				t.Fatalf("errors:\n got %q\nwant %q", got, tc.errs)
			}
			if len(tc.errs) > 0 {
				return
			}
			o := r.Image.ChannelOptionsFor("pipe")
			if o.PipeMode != tc.mode || !reflect.DeepEqual(o.PipeTemporaryExits, tc.temp) ||
				!reflect.DeepEqual(o.PipePermanentExits, tc.perm) || o.PipeCommand != tc.command {
				t.Errorf("mode %q temp %v perm %v command %q", o.PipeMode, o.PipeTemporaryExits, o.PipePermanentExits, o.PipeCommand)
			}
		})
	}
}
