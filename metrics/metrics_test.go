package metrics

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestCheckListen(t *testing.T) {
	tests := []struct {
		addr        string
		allowRemote bool
		wantErr     string // substring; "" = accepted
		notLoopback bool
	}{
		{"127.0.0.1:9100", false, "", false},
		{"127.0.0.2:0", false, "", false},
		{"[::1]:9100", false, "", false},
		{"localhost:9100", false, "", false},
		{"LOCALHOST:9100", false, "", false},
		{"0.0.0.0:9100", false, "not a loopback address", true},
		{":9100", false, "not a loopback address", true},
		{"[::]:9100", false, "not a loopback address", true},
		{"192.0.2.7:9100", false, "not a loopback address", true},
		{"metrics.example:9100", false, "not a loopback address", true},
		{"0.0.0.0:9100", true, "", false},
		{"192.0.2.7:9100", true, "", false},
		{"127.0.0.1", false, "missing port", false},
		{"127.0.0.1:http", false, "bad port", false},
		{"127.0.0.1:70000", false, "bad port", false},
		{"127.0.0.1:", false, "bad port", false},
	}
	for _, tt := range tests {
		err := CheckListen(tt.addr, tt.allowRemote)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("CheckListen(%q, %v) = %v, want nil", tt.addr, tt.allowRemote, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("CheckListen(%q, %v) = %v, want error containing %q", tt.addr, tt.allowRemote, err, tt.wantErr)
		case tt.notLoopback != errors.Is(err, ErrNotLoopback):
			t.Errorf("CheckListen(%q, %v) = %v: errors.Is(ErrNotLoopback) = %v", tt.addr, tt.allowRemote, err, !tt.notLoopback)
		}
	}
}

// FuzzCheckListen: METRICS_LISTEN comes from option.dat. Whatever it says, the check
// must not panic, and an accepted address without allowRemote is loopback.
func FuzzCheckListen(f *testing.F) {
	for _, s := range []string{"127.0.0.1:9100", "[::1]:0", "localhost:1", ":9100", "0.0.0.0:1", "[fe80::1%lo]:9", "a:b:c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		if CheckListen(addr, false) != nil {
			return
		}
		host, _, _ := strings.Cut(addr[:strings.LastIndex(addr, ":")], "%")
		host = strings.Trim(host, "[]")
		if strings.EqualFold(host, "localhost") {
			return
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.IsLoopback() {
			t.Fatalf("accepted %q, which is not loopback", addr)
		}
	})
}

func sampleStats() Stats {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	return Stats{
		Now: now,
		Channels: []ChannelStats{
			{Name: "l", Ready: 2, Delayed: 1, Active: 1, Recipients: 5, Oldest: now.Add(-90 * time.Second),
				Jobs: 1, IdleJobs: 0, MaxJobs: 4, Delivered: 10, Requeued: 2, Returned: 1, Held: 3},
			{Name: "tcp_local", MaxJobs: 10, Stopped: true},
		},
		Pools:       []PoolStats{{Name: "LOCAL_POOL", Jobs: 1, JobLimit: 4}, {Name: "SMTP_POOL", JobLimit: 10}},
		Quarantined: 1,
		Config: ConfigStats{
			ImageBuildTime: now.Add(-time.Hour), ReloadsOK: 3, ReloadsFailed: 1, ReloadsUnchanged: 2,
			LastReload: now.Add(-time.Minute), LastReloadOK: false,
		},
	}
}

func TestCollectorGolden(t *testing.T) {
	// a pedantic registry also checks that Collect matches Describe
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(sampleStats))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	got := buf.Bytes()
	golden := filepath.Join("testdata", "collector.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("collector output differs from %s:\n%s", golden, got)
	}
}

func TestCollectorEdgeCases(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name   string
		stats  Stats
		metric string
		want   float64
	}{
		{"empty channel has age 0", Stats{Now: now, Channels: []ChannelStats{{Name: "l"}}}, "mtad_queue_oldest_message_age_seconds", 0},
		{"arrival in the future has age 0", Stats{Now: now, Channels: []ChannelStats{{Name: "l", Oldest: now.Add(time.Hour)}}}, "mtad_queue_oldest_message_age_seconds", 0},
		{"never reloaded counts as success", Stats{Now: now}, "mtad_config_last_reload_success", 1},
		{"refused reload", Stats{Now: now, Config: ConfigStats{LastReload: now}}, "mtad_config_last_reload_success", 0},
		{"no build time", Stats{Now: now}, "mtad_config_image_build_timestamp_seconds", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			reg.MustRegister(NewCollector(func() Stats { return tt.stats }))
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				if mf.GetName() == tt.metric {
					if got := mf.GetMetric()[0].GetGauge().GetValue(); got != tt.want {
						t.Errorf("%s = %v, want %v", tt.metric, got, tt.want)
					}
					return
				}
			}
			t.Errorf("%s missing", tt.metric)
		})
	}
}

var nameRE = regexp.MustCompile(`^mtad_(queue|jobctl|config|smtp|engine|dns|dependency)_[a-z_]+$`)

// TestNamesAndLint checks every metric against promlint and our naming rule.
func TestNamesAndLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(sampleStats))
	h := NewHooks()
	reg.MustRegister(h.Collectors()...)
	// vectors show only once they have a child
	h.SMTPMessages.WithLabelValues("accepted").Inc()
	h.SMTPRejections.WithLabelValues("relay").Inc()
	h.DNSCacheLookups.WithLabelValues("hit").Inc()
	h.DependencyUp("filter", "spamd", true)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if len(mfs) < 20 {
		t.Errorf("only %d metric families gathered", len(mfs))
	}
	for _, mf := range mfs {
		if !nameRE.MatchString(mf.GetName()) {
			t.Errorf("metric %q does not follow mtad_<subsystem>_<what>_<unit>", mf.GetName())
		}
	}
}

func TestEndpoint(t *testing.T) {
	reg, err := Registry(sampleStats, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Listen("127.0.0.1:0", false, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Error(err)
		}
	}()
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) (int, string) {
		resp, err := client.Get("http://" + s.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`mtad_queue_messages{channel="l",state="ready"} 2`,
		`mtad_config_reloads_total{result="failed"} 1`,
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, _ := get("/"); code != http.StatusNotFound {
		t.Errorf("/: %d, want 404", code)
	}
	if _, err := Listen("0.0.0.0:0", false, reg, nil); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("Listen on 0.0.0.0 without allowRemote: %v", err)
	}
}

func TestHooksNilSafe(t *testing.T) {
	var h *Hooks
	h.SessionOpened()
	h.SessionClosed()
	h.Message(250)
	h.Rejection("relay")
	h.CommitWait(time.Millisecond)
	h.CommitBatch(3)
	h.Rewrite(time.Microsecond)
	h.DNSLookup(true)
	h.DependencyUp("redis", "r1", false)
	(&Hooks{}).Message(550) // nil fields: nothing either
}

func TestHooksMethods(t *testing.T) {
	h := NewHooks()
	h.SessionOpened()
	h.SessionOpened()
	h.SessionClosed()
	for _, c := range []int{250, 250, 451, 554} {
		h.Message(c)
	}
	h.DNSLookup(true)
	h.DNSLookup(false)
	h.DNSLookup(false)
	h.CommitBatch(4)
	for _, tt := range []struct {
		name string
		got  float64
		want float64
	}{
		{"open", metricValue(t, h.SMTPSessionsOpen), 1},
		{"accepted", metricValue(t, h.SMTPMessages.WithLabelValues("accepted")), 2},
		{"deferred", metricValue(t, h.SMTPMessages.WithLabelValues("deferred")), 1},
		{"rejected", metricValue(t, h.SMTPMessages.WithLabelValues("rejected")), 1},
		{"hit", metricValue(t, h.DNSCacheLookups.WithLabelValues("hit")), 1},
		{"miss", metricValue(t, h.DNSCacheLookups.WithLabelValues("miss")), 2},
		{"filter down", dependency(h, "filter", "clamd", false), 0},
		{"filter up again", dependency(h, "filter", "clamd", true), 1},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

// metricValue reads one gauge or counter (testutil would need a module go.sum lacks).
func metricValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	t.Fatalf("not a gauge or counter: %v", c.Desc())
	return 0
}

// dependency sets a dependency's state and reads it back.
func dependency(h *Hooks, kind, name string, up bool) float64 {
	h.DependencyUp(kind, name, up)
	var m dto.Metric
	h.Dependencies.WithLabelValues(kind, name).Write(&m)
	return m.GetGauge().GetValue()
}

// TestCollectorDestinationsAndNotices: the per-destination gauges and the
// channel's first notice age appear when the daemon gives them, pass promlint,
// and are absent otherwise.
func TestCollectorDestinationsAndNotices(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	stats := Stats{Now: now, Channels: []ChannelStats{
		{Name: "tcp_local", FirstNotice: 72 * time.Hour, Destinations: []DestinationStats{
			{Host: "yahoo.example", Messages: 40, Oldest: now.Add(-2 * time.Hour)}, {Host: "b.example", Messages: 1, Oldest: now}}},
		{Name: "l"},
	}}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(func() Stats { return stats }))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if problems, _ := promlint.NewWithMetricFamilies(mfs).Lint(); len(problems) > 0 {
		t.Errorf("lint: %v", problems)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetValue()
			}
			got[key] = m.GetGauge().GetValue()
		}
	}
	for key, want := range map[string]float64{
		"mtad_queue_destination_messages,tcp_local,yahoo.example":                   40,
		"mtad_queue_destination_oldest_message_age_seconds,tcp_local,yahoo.example": 7200,
		"mtad_queue_destination_messages,tcp_local,b.example":                       1,
		"mtad_jobctl_first_notice_age_seconds,tcp_local":                            259200,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
	if _, ok := got["mtad_jobctl_first_notice_age_seconds,l"]; ok {
		t.Error("a channel without a notice age exports one")
	}
}
