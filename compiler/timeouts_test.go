package compiler

import (
	"strings"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	cases := []struct {
		in      string
		bare    time.Duration
		want    time.Duration
		wantErr string // substring; "" = no error
	}{
		{"5", time.Minute, 5 * time.Minute, ""},
		{" 16%A ", time.Minute, 10 * time.Minute, ""}, // b%v integers, as for every integer option
		{"0", time.Minute, 0, ""},
		{"30", time.Second, 30 * time.Second, ""},
		{"30s", time.Minute, 30 * time.Second, ""},
		{"1500ms", time.Minute, 1500 * time.Millisecond, ""},
		{"2m", time.Second, 2 * time.Minute, ""},
		{"1m30s", time.Minute, 90 * time.Second, ""},
		{"1.5h", time.Minute, 90 * time.Minute, ""},
		{"0s", time.Minute, 0, ""},
		{"24h", time.Minute, 24 * time.Hour, ""},
		{"1440", time.Minute, 24 * time.Hour, ""},
		{"1441", time.Minute, 0, "1441 minutes is more than 24h"},
		{"86401", time.Second, 0, "86401 seconds is more than 24h"},
		{"25h", time.Minute, 0, "more than 24h"},
		{"-1", time.Minute, 0, "-1 is negative"},
		{"-5s", time.Minute, 0, "is negative"},
		{"10us", time.Minute, 0, `unit "us" not allowed`},
		{"10ns", time.Minute, 0, `unit "ns" not allowed`},
		{"0.5ms", time.Minute, 0, "less than 1ms"},
		{"five", time.Minute, 0, "neither whole minutes nor a time with a unit"},
		{"5 s", time.Second, 0, "neither whole seconds nor a time with a unit"},
		{"5x", time.Minute, 0, "neither whole minutes"},
		{"", time.Minute, 0, "neither whole minutes"},
		{"99999999999999999999", time.Minute, 0, "neither whole minutes"},
	}
	for _, tc := range cases {
		got, err := ParseTime(tc.in, tc.bare)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("ParseTime(%q, %v): %v", tc.in, tc.bare, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("ParseTime(%q, %v) = %v, %v; want error with %q", tc.in, tc.bare, got, err, tc.wantErr)
		case tc.wantErr == "" && got != tc.want:
			t.Errorf("ParseTime(%q, %v) = %v, want %v", tc.in, tc.bare, got, tc.want)
		}
	}
}

// TestClientTimeouts checks which option file key sets each SMTP client stage:
// its own key, else STATUS_RECEIVE_TIME for reply waits, else unset (zero: the
// client's RFC 5321 default).
func TestClientTimeouts(t *testing.T) {
	const m = time.Minute
	cases := []struct {
		name   string
		option string // tcp_local_option; "" = none
		want   ClientTimeouts
	}{
		{name: "no option file: every stage unset", want: ClientTimeouts{}},
		{
			name:   "product keys in minutes",
			option: "STATUS_MAIL_RECEIVE_TIME=4\nSTATUS_RCPT_TO_RECEIVE_TIME=3\nSTATUS_DATA_RECEIVE_TIME=12\nDATA_TRANSMIT_TIME=6\n",
			want:   ClientTimeouts{Mail: 4 * m, Rcpt: 3 * m, DataEnd: 12 * m, DataBlock: 6 * m},
		},
		{
			name:   "STATUS_RECEIVE_TIME is every reply wait without a key of its own",
			option: "STATUS_RECEIVE_TIME=2\nSTATUS_MAIL_RECEIVE_TIME=30s\n",
			want: ClientTimeouts{Greeting: 2 * m, Ehlo: 2 * m, Mail: 30 * time.Second, Rcpt: 2 * m, DataInit: 2 * m,
				DataEnd: 2 * m, Rset: 2 * m, Quit: 2 * m},
		},
		{
			name: "our keys, with units",
			option: "CONNECT_TIME=5s\nSTATUS_GREETING_RECEIVE_TIME=1500ms\nSTATUS_EHLO_RECEIVE_TIME=20s\n" +
				"STATUS_DATA_INIT_RECEIVE_TIME=1m\nSTATUS_RSET_RECEIVE_TIME=10s\nSTATUS_QUIT_RECEIVE_TIME=2s\nSTATUS_RECEIVE_TIME=7\n",
			want: ClientTimeouts{Connect: 5 * time.Second, Greeting: 1500 * time.Millisecond, Ehlo: 20 * time.Second,
				Mail: 7 * m, Rcpt: 7 * m, DataInit: m, DataEnd: 7 * m, Rset: 10 * time.Second, Quit: 2 * time.Second},
		},
		{
			name:   "zero is unset",
			option: "STATUS_RECEIVE_TIME=0\nSTATUS_EHLO_RECEIVE_TIME=0s\nCONNECT_TIME=0\n",
			want:   ClientTimeouts{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"imta.cnf": baseIMTA}
			if tc.option != "" {
				files["tcp_local_option"] = tc.option
			}
			r := build(t, files)
			if len(r.Errors) > 0 || len(r.Warnings) > 0 {
				t.Fatalf("errors %v warnings %v", messages(r.Errors), messages(r.Warnings))
			}
			if got := r.Image.ChannelOptionsFor("tcp_local").ClientTimeouts(); got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestDNSTimeoutOption(t *testing.T) {
	cases := []struct {
		value   string
		want    time.Duration
		wantErr string
	}{
		{"", 0, ""},
		{"3", 3 * time.Second, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"1m", time.Minute, ""},
		{"soon", 0, `option.dat:1: bad value for option DNS_TIMEOUT: "soon" is neither whole seconds nor a time with a unit`},
	}
	for _, tc := range cases {
		files := map[string]string{"imta.cnf": baseIMTA}
		if tc.value != "" {
			files["option.dat"] = "DNS_TIMEOUT=" + tc.value + "\n"
		}
		r := build(t, files)
		if tc.wantErr != "" {
			if got := strings.Join(messages(r.Errors), "\n"); !strings.Contains(got, tc.wantErr) {
				t.Errorf("DNS_TIMEOUT=%s: errors %q, want %q", tc.value, got, tc.wantErr)
			}
			continue
		}
		if len(r.Errors) > 0 {
			t.Fatalf("DNS_TIMEOUT=%s: %v", tc.value, messages(r.Errors))
		}
		if got := r.Image.Options.DNSTimeout; got != tc.want {
			t.Errorf("DNS_TIMEOUT=%s: %v, want %v", tc.value, got, tc.want)
		}
	}
}
