package channels

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mtad.dev/mta/dnsx"
)

// greetingServer is a scripted server that greets with greeting and then
// answers every command with the reply its verb has in replies (default "250
// ok"); a verb mapped to "" makes it hang up.
func greetingServer(t *testing.T, greeting string, replies map[string]string) int {
	return scripted(t, func(c net.Conn, r *bufio.Reader) {
		io.WriteString(c, greeting)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			verb, _, _ := strings.Cut(strings.ToUpper(strings.TrimSpace(line)), " ")
			rep, ok := replies[verb]
			switch {
			case ok && rep == "":
				return
			case !ok && verb == "DATA":
				io.WriteString(c, "354 go\r\n")
				if skipContent(r) != nil {
					return
				}
				io.WriteString(c, "250 2.0.0 queued\r\n")
			case !ok:
				io.WriteString(c, "250 ok\r\n")
			default:
				io.WriteString(c, rep)
			}
		}
	})
}

// TestConnFailed pins Result.ConnFailed for each kind of outcome of each
// program: set when no server took part or the failure is a 4.4.x, never when
// a server answered something else or the result is not temporary. The job
// controller backs a host off on it.
func TestConnFailed(t *testing.T) {
	closedPort := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	smtpTo := func(port int, tweak func(*SMTPOptions)) func() []Result {
		return func() []Result {
			c := newClient(t, port, func(o *SMTPOptions) {
				o.Timeouts.Greeting = 200 * time.Millisecond
				if tweak != nil {
					tweak(o)
				}
			})
			return c.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@example.org", "a@example.com"))
		}
	}
	withResolver := func(res *fakeResolver) func(*SMTPOptions) {
		return func(o *SMTPOptions) {
			var mu sync.Mutex
			var dials []string
			o.Daemon, o.Resolver = "", res
			o.Dial = dialMap(nil, &dials, &mu)
		}
	}
	const ehlo = "250-ok.test\r\n250 PIPELINING\r\n"
	pipeRun := func(command string, timeout time.Duration) func() []Result {
		return func() []Result {
			needSh(t)
			p := NewPipe(PipeOptions{Command: []string{"/bin/sh", "-c", command}, Timeout: timeout})
			return p.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d"))
		}
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		deliver func() []Result
		want    bool
	}{
		{"smtp delivered", smtpTo(greetingServer(t, "220 ok\r\n", map[string]string{"EHLO": ehlo}), nil), false},
		{"smtp connection refused", smtpTo(closedPort(), nil), true},
		{"smtp no greeting", smtpTo(scripted(t, func(c net.Conn, r *bufio.Reader) { r.ReadString('\n') }), nil), true},
		{"smtp 421 4.3.2 greeting", smtpTo(greetingServer(t, "421 4.3.2 busy\r\n", nil), nil), false},
		{"smtp 554 greeting", smtpTo(greetingServer(t, "554 5.7.1 go away\r\n", nil), nil), true},
		{"smtp garbage greeting", smtpTo(greetingServer(t, "hello there\r\n", nil), nil), false},
		{"smtp EHLO and HELO refused", smtpTo(greetingServer(t, "220 ok\r\n",
			map[string]string{"EHLO": "500 5.5.1 what\r\n", "HELO": "550 5.7.1 not you\r\n"}), nil), true},
		{"smtp MAIL 451 4.3.0", smtpTo(greetingServer(t, "220 ok\r\n",
			map[string]string{"EHLO": ehlo, "MAIL": "451 4.3.0 try later\r\n"}), nil), false},
		{"smtp RCPT 450 4.2.1", smtpTo(greetingServer(t, "220 ok\r\n",
			map[string]string{"EHLO": ehlo, "RCPT": "450 4.2.1 busy mailbox\r\n"}), nil), false},
		{"smtp RCPT 451 4.4.1 from the server", smtpTo(greetingServer(t, "220 ok\r\n",
			map[string]string{"EHLO": ehlo, "RCPT": "451 4.4.1 next hop down\r\n"}), nil), true},
		{"smtp connection lost at RCPT", smtpTo(greetingServer(t, "220 ok\r\n",
			map[string]string{"EHLO": "250 ok.test\r\n", "RCPT": ""}), nil), true},
		{"smtp RCPT 550", smtpTo(greetingServer(t, "220 ok\r\n",
			map[string]string{"EHLO": ehlo, "RCPT": "550 5.1.1 no such user\r\n"}), nil), false},
		{"smtp TLS required, not offered", smtpTo(greetingServer(t, "220 ok\r\n",
			map[string]string{"EHLO": ehlo}), func(o *SMTPOptions) { o.TLS = TLSMust }), false},
		{"smtp MX lookup fails for now", smtpTo(25, withResolver(&fakeResolver{tempf: map[string]bool{"example.com": true}})), true},
		{"smtp no such domain", smtpTo(25, withResolver(&fakeResolver{})), false},
		{"smtp null MX", smtpTo(25, withResolver(&fakeResolver{mx: map[string][]dnsx.MX{"example.com": {{}}}})), false},
		{"smtp MX host refuses", smtpTo(25, withResolver(&fakeResolver{
			mx:    map[string][]dnsx.MX{"example.com": {{Host: "mx.example.com", Pref: 10}}},
			hosts: map[string][]netip.Addr{"mx.example.com": {netip.MustParseAddr("192.0.2.1")}},
		})), true},
		{"smtp no resolver", smtpTo(25, func(o *SMTPOptions) { o.Daemon = "" }), true},
		{"maildir delivered", func() []Result {
			return NewMaildir(t.TempDir(), "h").Deliver(context.Background(), msgOf([]byte("x\r\n"), "s@d", "u@d"))
		}, false},
		{"maildir root not a directory", func() []Result {
			root := filepath.Join(t.TempDir(), "file")
			if err := os.WriteFile(root, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return NewMaildir(root, "h").Deliver(context.Background(), msgOf([]byte("x\r\n"), "s@d", "u@d"))
		}, true},
		{"maildir cancelled", func() []Result {
			return NewMaildir(t.TempDir(), "h").Deliver(cancelled, msgOf([]byte("x\r\n"), "s@d", "u@d"))
		}, true},
		{"pipe delivered", pipeRun("cat >/dev/null", time.Minute), false},
		{"pipe exit 75", pipeRun("exit 75", time.Minute), false},
		{"pipe timeout", pipeRun("sleep 5", 100*time.Millisecond), true},
		{"bitbucket", func() []Result {
			return Bitbucket{}.Deliver(context.Background(), msgOf([]byte("x\r\n"), "s@d", "u@d"))
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.deliver()[0]
			t.Logf("%v (remote %q)", r.Err, r.Remote)
			if r.ConnFailed != tt.want {
				t.Errorf("ConnFailed %v, want %v (%v, remote %q)", r.ConnFailed, tt.want, r.Err, r.Remote)
			}
			if r.ConnFailed && (r.Err == nil || !r.Err.Temporary()) {
				t.Errorf("ConnFailed on a result that is not a temporary failure: %v", r.Err)
			}
		})
	}
}
