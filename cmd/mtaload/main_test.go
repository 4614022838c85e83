package main

import (
	"bufio"
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestLoadAgainstSink points the generator at its own sink (standing in for an MTA
// that relays instantly): every message must be accepted and arrive exactly once.
func TestLoadAgainstSink(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  config
	}{
		{"lockstep", config{n: 120, c: 4, perSession: 3, rcpts: 2, size: 2000}},
		{"pipelining", config{n: 120, c: 3, perSession: 50, rcpts: 1, size: 100, pipelining: true}},
		{"paced", config{n: 20, c: 2, perSession: 1, rcpts: 1, size: 500, rate: 400}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sk, err := startSink("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer sk.Close()
			cfg := tt.cfg
			cfg.addr, cfg.from, cfg.to = sk.Addr(), "a@src.invalid", "r@dst.invalid"
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			res := load(ctx, cfg, sk)
			if !res.ok() || res.accepted != cfg.n || res.delivered != cfg.n || len(res.e2e) != cfg.n || len(res.submit) != cfg.n {
				t.Fatalf("result %+v", res)
			}
			if cfg.rate > 0 {
				if min := time.Duration(float64(cfg.n-1) / cfg.rate * float64(time.Second)); time.Since(start) < min {
					t.Errorf("paced run took %v, less than %v", time.Since(start), min)
				}
			}
			line := res.line(cfg)
			for _, k := range []string{" accept_msgs_per_s=", " e2e_p99_ms=", " lost=0 dup=0"} {
				if !strings.Contains(line, k) {
					t.Errorf("report lacks %q: %s", k, line)
				}
			}
		})
	}
}

func TestDuplicatesAndLossesCounted(t *testing.T) {
	sk, err := startSink("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sk.Close()
	cfg := config{addr: sk.Addr(), n: 3, c: 1, perSession: 3, rcpts: 1, from: "a@b.invalid", to: "c@d.invalid"}
	sk.arrived(1, time.Now()) // a redelivery of a message from before
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := load(ctx, cfg, sk)
	if res.dup != 1 || res.ok() {
		t.Errorf("dup %d ok %v, want 1 false", res.dup, res.ok())
	}
}

func TestFlagsRefuseNonLoopback(t *testing.T) {
	for _, args := range [][]string{
		{"-addr", "192.0.2.1:25"},
		{"-addr", "example.com:25"},
		{"-sink", "0.0.0.0:2526"},
		{"-n", "0"},
	} {
		var out, errb bytes.Buffer
		if rc := run(args, &out, &errb); rc != 2 {
			t.Errorf("%v: rc %d, want 2 (%s)", args, rc, errb.String())
		}
	}
}

func TestParseID(t *testing.T) {
	for _, tt := range []struct {
		line string
		want int64
	}{
		{"X-Mtaload-Id: 42\r\n", 42},
		{"x-mtaload-id:7\r\n", 7},
		{"X-Mtaload-Id: -1\r\n", -1},
		{"X-Mtaload-Id: 4x\r\n", -1},
		{"Subject: X-Mtaload-Id: 1\r\n", -1},
		{"X-Mtaload", -1},
	} {
		if got := parseID([]byte(tt.line)); got != tt.want {
			t.Errorf("parseID(%q) = %d, want %d", tt.line, got, tt.want)
		}
	}
}

func TestReadMessageOnlyLooksAtHeader(t *testing.T) {
	msg := "Subject: s\r\n\r\nX-Mtaload-Id: 9\r\n.\r\nNEXT"
	r := bufio.NewReaderSize(strings.NewReader(msg), 16)
	id, err := readMessage(r)
	if err != nil || id != -1 {
		t.Fatalf("id %d err %v, want -1 nil", id, err)
	}
	if rest, _ := r.ReadString(0); rest != "NEXT" {
		t.Errorf("read past the end of data: left %q", rest)
	}
}

func TestPct(t *testing.T) {
	d := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for p, want := range map[float64]time.Duration{50: 5, 90: 9, 99: 10, 100: 10, 0: 1} {
		if got := pct(d, p); got != want {
			t.Errorf("pct %v = %v, want %v", p, got, want)
		}
	}
}

// FuzzReadMessage: the sink reads whatever an MTA sends; it must never panic and
// must stop at the first end-of-data line.
func FuzzReadMessage(f *testing.F) {
	f.Add([]byte("X-Mtaload-Id: 1\r\n\r\nbody\r\n.\r\n"))
	f.Add([]byte(".\r\n"))
	f.Add([]byte("X-Mtaload-Id: 99999999999999999999999\r\n.\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, _ := readMessage(bufio.NewReaderSize(bytes.NewReader(b), 16))
		if id < -1 {
			t.Fatalf("id %d", id)
		}
	})
}
