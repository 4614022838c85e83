package daemon

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"mtad.dev/mta/compiler"
	"mtad.dev/mta/dnsx"
)

// timeoutImage compiles a configuration with one SMTP channel tcp_x and the
// given tcp_x_option and option.dat ("" = no file).
func timeoutImage(t *testing.T, channelOption, optionDat string) *compiler.Image {
	t.Helper()
	var files []string
	if channelOption != "" {
		files = append(files, "tcp_x_option", channelOption)
	}
	if optionDat != "" {
		files = append(files, "option.dat", optionDat)
	}
	return programImage(t, "nomx", files...)
}

// TestSMTPProgramFollowsTimeoutOptions: the SMTP client program of a channel is
// rebuilt on reload when a stage timeout or DNS_TIMEOUT changes, and kept when
// nothing changed (its program spec covers them).
func TestSMTPProgramFollowsTimeoutOptions(t *testing.T) {
	d := &Daemon{log: slog.New(slog.DiscardHandler)}
	key := func(channelOption, optionDat string) programSpec {
		img := timeoutImage(t, channelOption, optionDat)
		c, ok := img.Channel("tcp_x")
		if !ok {
			t.Fatal("no channel tcp_x")
		}
		k, ok := d.programFor(img, c)
		if !ok {
			t.Fatal("tcp_x has no program")
		}
		return k
	}
	base := key("STATUS_GREETING_RECEIVE_TIME=30s\n", "DNS_TIMEOUT=2\n")
	cases := []struct {
		name               string
		channelOption, dat string
		same               bool
	}{
		{"nothing changed", "STATUS_GREETING_RECEIVE_TIME=30s\n", "DNS_TIMEOUT=2\n", true},
		{"same time, other spelling", "STATUS_GREETING_RECEIVE_TIME=30000ms\n", "DNS_TIMEOUT=2s\n", true},
		{"greeting timeout", "STATUS_GREETING_RECEIVE_TIME=31s\n", "DNS_TIMEOUT=2\n", false},
		{"generic reply time", "STATUS_GREETING_RECEIVE_TIME=30s\nSTATUS_RECEIVE_TIME=1\n", "DNS_TIMEOUT=2\n", false},
		{"data block", "STATUS_GREETING_RECEIVE_TIME=30s\nDATA_TRANSMIT_TIME=1\n", "DNS_TIMEOUT=2\n", false},
		{"DNS timeout", "STATUS_GREETING_RECEIVE_TIME=30s\n", "DNS_TIMEOUT=3\n", false},
	}
	for _, tc := range cases {
		if got := key(tc.channelOption, tc.dat) == base; got != tc.same {
			t.Errorf("%s: same program = %v, want %v", tc.name, got, tc.same)
		}
	}
}

// TestResolverUsesDNSTimeout: option.dat's DNS_TIMEOUT reaches the resolver. A
// nameserver that never answers fails the lookup (temporarily) after two short
// timeouts, far sooner than the 2 x 5 s default would.
func TestResolverUsesDNSTimeout(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	d := &Daemon{log: slog.New(slog.DiscardHandler)}
	servers := []string{silent.LocalAddr().String()}
	r := d.resolver(servers, 100*time.Millisecond)
	if r == nil {
		t.Fatal("no resolver")
	}
	if d.resolver(servers, 100*time.Millisecond) != r {
		t.Error("same servers and timeout: a second resolver (and cache) was made")
	}
	if d.resolver(servers, 200*time.Millisecond) == r {
		t.Error("another timeout shares the resolver built for 100ms")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err = r.LookupMX(ctx, "example.test")
	if err == nil || !dnsx.IsTemporary(err) {
		t.Fatalf("LookupMX against a silent server: %v, want a temporary error", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v: DNS_TIMEOUT (100ms) was not used", took)
	}
}
