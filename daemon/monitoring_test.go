package daemon

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"mtad.dev/mta/metrics"
)

var metricName = regexp.MustCompile(`\bmtad_[a-z0-9_]+`)

// dashboardExprs are the PromQL expressions of the shipped Grafana dashboard.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../examples/monitoring/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	return exprs
}

// scrapedNames are the metric names of a scrape's series.
func scrapedNames(series map[string]float64) map[string]bool {
	names := map[string]bool{}
	for s := range series {
		name, _, _ := strings.Cut(s, "{")
		names[name] = true
	}
	return names
}

// TestMonitoringNamesExist scrapes a real mtad's /metrics after a little of
// everything (an SMTP session, deliveries, a rejection, mail queued for a
// destination, a reload) and checks that every metric name the shipped Grafana
// dashboard and alert rules use is one mtad exports: a renamed metric cannot
// leave a blank panel or a silent alert. mtad_dependency_up is exported only
// once a filter or Redis client reports; it is checked against the hooks'
// descriptions instead.
func TestMonitoringNamesExist(t *testing.T) {
	s := newSink(t)
	d, _, _, maddr := startMetricsDaemon(t, s.port)
	c := dial(t, d.Addr().String())
	c.Cmd("EHLO client.test", "250")
	c.Send("me@localhost", []string{"a@route.test"}, msg("delivered"))
	c.Send("me@localhost", []string{"b@held.test"}, msg("queued"))
	c.Cmd("MAIL FROM:<me@localhost> SIZE=999999999", "552")
	s.wait(t, 1)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	var names map[string]bool
	waitFor(t, "a delivery and a destination in the metrics", func() bool {
		names = scrapedNames(scrape(t, maddr))
		m := scrape(t, maddr)
		return m[`mtad_jobctl_recipients_total{channel="tcp_a",outcome="delivered"}`] == 1 && names["mtad_queue_destination_messages"]
	})
	c.Cmd("QUIT", "221")

	used := map[string][]string{}
	for _, e := range dashboardExprs(t) {
		for _, n := range metricName.FindAllString(e, -1) {
			used[n] = append(used[n], "dashboard")
		}
	}
	rules, err := os.ReadFile("../examples/monitoring/mtad.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(rules), "\n") {
		if expr := strings.TrimSpace(line); !strings.HasPrefix(expr, "#") {
			for _, n := range metricName.FindAllString(expr, -1) {
				used[n] = append(used[n], "alert rules")
			}
		}
	}
	if len(used) < 15 {
		t.Fatalf("only %d metric names found in the dashboard and the rules", len(used))
	}
	hooked := hookNames()
	for n, where := range used {
		switch {
		case names[n]:
		case n == "mtad_dependency_up" && hooked[n]:
		default:
			t.Errorf("%s (used by the %s) is not in mtad's /metrics", n, strings.Join(slices.Compact(where), ", "))
		}
	}
}

// hookNames are the names of the hook metrics, registered or not.
func hookNames() map[string]bool {
	out := map[string]bool{}
	ch := make(chan *prometheus.Desc, 64)
	go func() {
		for _, c := range metrics.NewHooks().Collectors() {
			c.Describe(ch)
		}
		close(ch)
	}()
	for d := range ch {
		if m := metricName.FindString(d.String()); m != "" {
			out[m] = true
		}
	}
	return out
}
