package compiler

import (
	"slices"
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/smtpserver"
)

// switchIMTA: tcp_local switches internal clients to tcp_intranet, TLS sessions
// to tcp_tls and authenticated ones to tcp_auth; l and tcp_slow are never a
// session's source channel.
const switchIMTA = `.             $U%$H@tcp-daemon

defaults noswitchchannel

l
mail.example.com

tcp_local smtp mx switchchannel tlsswitchchannel tcp_tls saslswitchchannel tcp_auth maysaslserver
tcp-daemon

tcp_intranet smtp mx allowswitchchannel
tcp_intranet-daemon

tcp_tls smtp mx
tcp_tls-daemon

tcp_auth smtp mx mustsaslserver
tcp_auth-daemon

tcp_slow smtp mx
tcp_slow-daemon
`

// TestServerTimeoutsFollowTheSessionChannel: the server's limits of a channel's
// option file apply to sessions that have it as their source channel, key by
// key; a key its file does not set is the arrival channel's, except the banner
// delay, which a channel switched to at admission (an internal client) only has
// when its own file sets it.
func TestServerTimeoutsFollowTheSessionChannel(t *testing.T) {
	r := build(t, map[string]string{
		"imta.cnf":            switchIMTA,
		"tcp_local_option":    "COMMAND_RECEIVE_TIME=5\nMIN_DATA_RECEIVE_RATE=1000\nBANNER_DELAY=2\nALLOW_RECIPIENTS_PER_TRANSACTION=50\n",
		"tcp_intranet_option": "COMMAND_RECEIVE_TIME=20\nALLOW_RECIPIENTS_PER_TRANSACTION=500\n",
		"tcp_auth_option":     "DATA_RECEIVE_TIME=30s\nMAX_SESSION_TIME=0\n",
	})
	if len(r.Errors) > 0 || len(r.Warnings) > 0 {
		t.Fatalf("errors %v warnings %v", messages(r.Errors), messages(r.Warnings))
	}
	img := r.Image
	if got := img.DefaultSMTPSource(); got != "tcp_local" {
		t.Fatalf("DefaultSMTPSource = %q", got)
	}
	local := smtpserver.Timeouts{Command: 5 * time.Minute, DataBlock: time.Hour, MinDataRate: 1000,
		Session: DefaultMaxSessionTime, BannerDelay: 2 * time.Second}
	inherited := local
	inherited.BannerDelay = 0
	intranet := inherited
	intranet.Command = 20 * time.Minute
	auth := inherited
	auth.DataBlock, auth.Session = 30*time.Second, 0
	tests := []struct {
		channel string
		want    smtpserver.Timeouts
		rcpts   int
	}{
		{"tcp_local", local, 50},
		{"tcp_intranet", intranet, 500},
		{"tcp_tls", inherited, 50},
		{"tcp_auth", auth, 50},
	}
	for _, tt := range tests {
		c, ok := img.Channel(tt.channel)
		if !ok {
			t.Fatalf("no channel %s", tt.channel)
		}
		p := img.ServerChannelPolicy(c)
		if p.Timeouts != tt.want || p.MaxRecipients != tt.rcpts {
			t.Errorf("%s: timeouts %+v, %d recipients; want %+v, %d", tt.channel, p.Timeouts, p.MaxRecipients, tt.want, tt.rcpts)
		}
		if kw := c.ServerPolicy(); p.RecipientCutoff != kw.RecipientCutoff || p.SASL != kw.SASL || p.Name != kw.Name {
			t.Errorf("%s: the keywords' policy changed: %+v", tt.channel, p)
		}
	}
}

// TestServerTimeoutsDefaults: without option files every session has the
// documented defaults, the banner delay on the arrival channel only.
func TestServerTimeoutsDefaults(t *testing.T) {
	r := build(t, map[string]string{"imta.cnf": switchIMTA})
	if len(r.Errors) > 0 {
		t.Fatalf("errors %v", messages(r.Errors))
	}
	want := smtpserver.Timeouts{Command: 10 * time.Minute, DataBlock: time.Hour, MinDataRate: 500,
		Session: time.Hour, BannerDelay: time.Second}
	if got := r.Image.ServerTimeouts("tcp_local"); got != want {
		t.Errorf("tcp_local: %+v, want %+v", got, want)
	}
	want.BannerDelay = 0
	if got := r.Image.ServerTimeouts("tcp_intranet"); got != want {
		t.Errorf("tcp_intranet: %+v, want %+v", got, want)
	}
}

// TestServiceChannelWithoutTcpLocal: when there is no tcp_local, connections
// arrive on the first SMTP channel, and the service's limits are that channel's
// option file's.
func TestServiceChannelWithoutTcpLocal(t *testing.T) {
	r := build(t, map[string]string{
		"imta.cnf":      ".             $U%$H@tcp-daemon\n\nl\nmail.example.com\n\nbitbucket\nbitbucket-daemon\n\ntcp_in smtp mx\ntcp-daemon\n",
		"tcp_in_option": "COMMAND_RECEIVE_TIME=3\nBANNER_DELAY=500ms\n",
	})
	if len(r.Errors) > 0 || len(r.Warnings) > 0 {
		t.Fatalf("errors %v warnings %v", messages(r.Errors), messages(r.Warnings))
	}
	if got := r.Image.DefaultSMTPSource(); got != "tcp_in" {
		t.Fatalf("DefaultSMTPSource = %q, want tcp_in", got)
	}
	if got := r.Image.ServerTimeouts("tcp_in"); got.Command != 3*time.Minute || got.BannerDelay != 500*time.Millisecond {
		t.Errorf("tcp_in: %+v", got)
	}
}

// TestServerOptionWarnings: a server key where it cannot take effect warns at
// its line, saying why; everywhere else it is silent.
func TestServerOptionWarnings(t *testing.T) {
	r := build(t, map[string]string{
		"imta.cnf":            switchIMTA,
		"tcp_local_option":    "BANNER_HOST=mx.example.com\nBANNER_DELAY=2\n",
		"tcp_intranet_option": "BANNER_DELAY=0\nBANNER_ADDITION=intranet\n",
		"tcp_auth_option":     "COMMAND_RECEIVE_TIME=20\nBANNER_DELAY=3\n",
		"tcp_slow_option":     "STATUS_RECEIVE_TIME=2\nDATA_RECEIVE_TIME=30\nALLOW_TRANSACTIONS_PER_SESSION=5\n",
		"l_option":            "COMMAND_RECEIVE_TIME=1\n",
	})
	if len(r.Errors) > 0 {
		t.Fatalf("errors %v", messages(r.Errors))
	}
	want := []string{
		"l_option:1: option COMMAND_RECEIVE_TIME has no effect: no SMTP session has l as its source channel (connections arrive on tcp_local; l is no switchchannel, tlsswitchchannel or saslswitchchannel target)",
		"tcp_auth_option:2: option BANNER_DELAY has no effect in tcp_auth: it becomes a session's source channel only after STARTTLS or AUTH, when the banner has been sent",
		"tcp_intranet_option:2: option BANNER_ADDITION has no effect in tcp_intranet: the banner and the server's host name are those of tcp_local, the channel SMTP connections arrive on",
		"tcp_slow_option:2: option DATA_RECEIVE_TIME has no effect: no SMTP session has tcp_slow as its source channel (connections arrive on tcp_local; tcp_slow is no switchchannel, tlsswitchchannel or saslswitchchannel target)",
		"tcp_slow_option:3: option ALLOW_TRANSACTIONS_PER_SESSION has no effect: no SMTP session has tcp_slow as its source channel (connections arrive on tcp_local; tcp_slow is no switchchannel, tlsswitchchannel or saslswitchchannel target)",
	}
	if got := messages(r.Warnings); !slices.Equal(got, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestBannerDelayBounds: BANNER_DELAY counts whole seconds, and a delay a client
// would not wait out is an error.
func TestBannerDelayBounds(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  time.Duration
		err   string
	}{
		{"2", 2 * time.Second, ""},
		{"1500ms", 1500 * time.Millisecond, ""},
		{"0", 0, ""},
		{"5m", 0, "tcp_local_option:1: bad value for option BANNER_DELAY: 5m0s is not under 5m0s, the time a client waits for the banner"},
	} {
		r := build(t, map[string]string{"imta.cnf": baseIMTA, "tcp_local_option": "BANNER_DELAY=" + tt.value + "\n"})
		switch {
		case tt.err != "":
			if got := messages(r.Errors); !slices.Equal(got, []string{tt.err}) {
				t.Errorf("BANNER_DELAY=%s: errors %q, want %q", tt.value, got, tt.err)
			}
		case len(r.Errors) > 0:
			t.Errorf("BANNER_DELAY=%s: errors %v", tt.value, messages(r.Errors))
		case r.Image.ServerTimeouts("tcp_local").BannerDelay != tt.want:
			t.Errorf("BANNER_DELAY=%s: %v, want %v", tt.value, r.Image.ServerTimeouts("tcp_local").BannerDelay, tt.want)
		}
	}
}
