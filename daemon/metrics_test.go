package daemon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"mtad.dev/mta/compiler"
)

// metricsConfig routes route.test to a sink (tcp_a) and held.test to wait_here, a
// channel with no delivery program, so its mail stays queued where the gauges see it.
func metricsConfig(sinkPort, maxJobs int, metricsListen string) map[string]string {
	return map[string]string{
		"imta.cnf": fmt.Sprintf(`route.test       $U%%$D@tcp_a-daemon
held.test        $U%%$D@wait-daemon
.                $U%%$H@tcp-daemon

l
localhost

tcp_local smtp nomx single_sys
tcp-daemon

tcp_a smtp nomx single_sys daemon 127.0.0.1 port %d
tcp_a-daemon

wait_here maxjobs %d pool SLOW
wait-daemon
`, sinkPort, maxJobs),
		"job_controller.cnf": "[POOL=DEFAULT]\nJOB_LIMIT=10\n[POOL=SLOW]\nJOB_LIMIT=2\n",
		"option.dat":         "METRICS_LISTEN=" + metricsListen + "\n",
	}
}

// scrape reads /metrics into series -> value ("name{labels}" as exposed).
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: %s\n%s", resp.Status, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape: bad line %q", line)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// startMetricsDaemon starts a daemon on metricsConfig (sink at sinkPort, metrics on
// a loopback port of its own) and returns it with its configuration directory, the
// image installed there and the metrics address.
func startMetricsDaemon(t *testing.T, sinkPort int) (*Daemon, string, *compiler.Image, string) {
	t.Helper()
	cfg := t.TempDir()
	img := buildImage(t, metricsConfig(sinkPort, 3, "127.0.0.1:0"))
	installImage(t, cfg, img)
	d, _ := startWith(t, Options{ConfigDir: cfg, Listen: "127.0.0.1:0", ReloadDebounce: 20 * time.Millisecond})
	maddr := d.MetricsAddr()
	if maddr == "" {
		t.Fatal("no metrics endpoint")
	}
	return d, cfg, img, maddr
}

func TestMetricsEndpointChannelGauges(t *testing.T) {
	s := newSink(t)
	d, cfg, img, maddr := startMetricsDaemon(t, s.port)

	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	c.Send("me@localhost", []string{"a@held.test"}, msg("held-1"))
	c.Send("me@localhost", []string{"b@held.test", "c@held.test"}, msg("held-2"))
	c.Send("me@localhost", []string{"d@held.test"}, msg("held-3"))
	c.Send("me@localhost", []string{"x@route.test"}, msg("relayed"))
	c.Cmd("QUIT", "221")
	s.wait(t, 1)

	var m map[string]float64
	// the counter moves when the result is recorded, the entry leaves the index just after
	waitFor(t, "the delivery to be counted and its entry gone", func() bool {
		m = scrape(t, maddr)
		return m[`mtad_jobctl_recipients_total{channel="tcp_a",outcome="delivered"}`] == 1 &&
			m[`mtad_queue_recipients{channel="tcp_a"}`] == 0
	})
	want := map[string]float64{
		`mtad_queue_messages{channel="wait_here",state="ready"}`:           3,
		`mtad_queue_messages{channel="wait_here",state="delayed"}`:         0,
		`mtad_queue_messages{channel="wait_here",state="active"}`:          0,
		`mtad_queue_recipients{channel="wait_here"}`:                       4,
		`mtad_queue_messages{channel="tcp_a",state="ready"}`:               0,
		`mtad_queue_recipients{channel="tcp_a"}`:                           0,
		`mtad_queue_oldest_message_age_seconds{channel="tcp_a"}`:           0,
		`mtad_jobctl_max_jobs{channel="wait_here"}`:                        3,
		`mtad_jobctl_jobs{channel="wait_here"}`:                            0,
		`mtad_jobctl_channel_stopped{channel="wait_here"}`:                 0,
		`mtad_jobctl_pool_job_limit{pool="SLOW"}`:                          2,
		`mtad_jobctl_pool_job_limit{pool="DEFAULT"}`:                       10,
		`mtad_jobctl_pool_jobs{pool="SLOW"}`:                               0,
		`mtad_jobctl_recipients_total{channel="tcp_a",outcome="requeued"}`: 0,
		`mtad_queue_quarantined_messages`:                                  0,
		`mtad_config_reloads_total{result="ok"}`:                           0,
		`mtad_config_reloads_total{result="failed"}`:                       0,
		`mtad_config_last_reload_success`:                                  1,
		`mtad_config_image_build_timestamp_seconds`:                        float64(img.Header.BuildTime.UnixNano()) / 1e9,
	}
	for series, v := range want {
		got, ok := m[series]
		if !ok {
			t.Errorf("%s missing", series)
		} else if got != v && !(strings.HasPrefix(series, "mtad_config_image_build") && abs(got-v) < 1e-3) {
			t.Errorf("%s = %v, want %v", series, got, v)
		}
	}
	if age := m[`mtad_queue_oldest_message_age_seconds{channel="wait_here"}`]; age <= 0 || age > 60 {
		t.Errorf("oldest message age on wait_here = %v s", age)
	}

	if err := d.Jobs().Stop("wait_here"); err != nil {
		t.Fatal(err)
	}
	if v := scrape(t, maddr)[`mtad_jobctl_channel_stopped{channel="wait_here"}`]; v != 1 {
		t.Errorf("stopped channel shows %v", v)
	}
	d.Jobs().Start("wait_here")

	// A reload that changes maxjobs and moves the endpoint: the old address closes,
	// the new one serves the new limits and counts the reload.
	newAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	installImage(t, cfg, buildImage(t, metricsConfig(s.port, 5, newAddr)))
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := d.MetricsAddr(); got != newAddr {
		t.Fatalf("metrics endpoint at %s after reload, want %s", got, newAddr)
	}
	if conn, err := net.DialTimeout("tcp", maddr, time.Second); err == nil {
		conn.Close()
		t.Errorf("old metrics address %s still accepts", maddr)
	}
	m = scrape(t, newAddr)
	for series, v := range map[string]float64{
		`mtad_jobctl_max_jobs{channel="wait_here"}`:              5,
		`mtad_config_reloads_total{result="ok"}`:                 1,
		`mtad_queue_messages{channel="wait_here",state="ready"}`: 3,
	} {
		if m[series] != v {
			t.Errorf("after reload %s = %v, want %v", series, m[series], v)
		}
	}
}

func abs(f float64) float64 { return max(f, -f) }

// TestMetricsOffAndClosedOnShutdown: no METRICS_LISTEN, no endpoint; with one, the
// endpoint closes with the daemon.
func TestMetricsOffAndClosedOnShutdown(t *testing.T) {
	d, _ := startDaemon(t, "")
	if a := d.MetricsAddr(); a != "" {
		t.Errorf("embedded configuration serves metrics on %s", a)
	}

	s := newSink(t)
	cfg := t.TempDir()
	installImage(t, cfg, buildImage(t, metricsConfig(s.port, 3, "127.0.0.1:0")))
	d2, err := Start(context.Background(), Options{ConfigDir: cfg, DataDir: t.TempDir(), Listen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	maddr := d2.MetricsAddr()
	scrape(t, maddr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d2.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the metrics endpoint to close", func() bool {
		conn, err := net.DialTimeout("tcp", maddr, time.Second)
		if err != nil {
			return true
		}
		conn.Close()
		return false
	})
}

// TestMetricsEndpointHooks: the metrics counted inside the mail path (sessions,
// DATA results, rejections, commit wait and batch, rewrite time) reach the
// endpoint from a real session, not only from metrics' own unit tests.
func TestMetricsEndpointHooks(t *testing.T) {
	s := newSink(t)
	d, _, _, maddr := startMetricsDaemon(t, s.port)

	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	if v := scrape(t, maddr)["mtad_smtp_sessions_open"]; v != 1 {
		t.Errorf("mtad_smtp_sessions_open with one session = %v, want 1", v)
	}
	c.Send("me@localhost", []string{"x@route.test"}, msg("hooked-1"))
	c.Send("me@localhost", []string{"y@route.test", "z@route.test"}, msg("hooked-2"))
	// SIZE= over the limit is refused at MAIL: one rejection of class "size"
	c.Cmd("MAIL FROM:<me@localhost> SIZE=999999999", "552")
	c.Cmd("QUIT", "221")
	s.wait(t, 2)

	var m map[string]float64
	waitFor(t, "the closed session to be counted", func() bool {
		m = scrape(t, maddr)
		return m["mtad_smtp_sessions_open"] == 0
	})
	for series, want := range map[string]float64{
		`mtad_smtp_messages_total{result="accepted"}`:  2,
		`mtad_smtp_rejections_total{class="size"}`:     1,
		`mtad_queue_commit_duration_seconds_count`:     2,
		`mtad_engine_rewrite_duration_seconds_count`:   3, // one per RCPT
		`mtad_queue_commit_batch_messages_sum`:         2,
		`mtad_smtp_messages_total{result="rejected"}`:  0,
		`mtad_smtp_rejections_total{class="protocol"}`: 0,
	} {
		if got, ok := m[series]; (!ok && want != 0) || got != want {
			t.Errorf("%s = %v (present %t), want %v", series, got, ok, want)
		}
	}
	if m["mtad_queue_commit_batch_messages_count"] < 1 {
		t.Errorf("no group commit observed: mtad_queue_commit_batch_messages_count = %v", m["mtad_queue_commit_batch_messages_count"])
	}
}
