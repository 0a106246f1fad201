package deploy

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nexus/nexus/internal/proccluster"
	"github.com/nexus/nexus/internal/retry"
)

// ---- what the dashboard and the alerts query -------------------------------

// dashboard is the part of the Grafana dashboard JSON these tests read.
type dashboard struct {
	UID        string                   `json:"uid"`
	Title      string                   `json:"title"`
	Panels     []dashPanel              `json:"panels"`
	Templating struct{ List []dashVar } `json:"templating"`
}

type dashPanel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource *dashDatasource          `json:"datasource"`
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		RefID      string          `json:"refId"`
		Expr       string          `json:"expr"`
		Datasource *dashDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"` // of a collapsed row
}

type dashDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashVar struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Query      any    `json:"query"`
	Definition string `json:"definition"`
}

const dashboardFile = "grafana/dashboards/nexus.json"

func loadDashboard(t *testing.T) *dashboard {
	t.Helper()
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(readFile(t, dashboardFile)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return &d
}

// allPanels flattens rows.
func (d *dashboard) allPanels() []dashPanel {
	var out []dashPanel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// queries returns each PromQL expression of the dashboard by where it is.
func (d *dashboard) queries() map[string]string {
	q := map[string]string{}
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			q[fmt.Sprintf("panel %q %s", p.Title, tg.RefID)] = tg.Expr
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			q["variable "+v.Name] = strings.NewReplacer("label_values(", "", ", instance)", "").Replace(v.Definition)
		}
	}
	return q
}

// alertRules returns each alert's expression of prometheus/alerts.yml.
func alertRules(t *testing.T) map[string]string {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, "prometheus/alerts.yml")), &f); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || out[r.Alert] != "" {
				t.Fatalf("alerts.yml: rule %q with expression %q (every rule an alert, named once)", r.Alert, r.Expr)
			}
			out[r.Alert] = r.Expr
		}
	}
	return out
}

// instantQuery makes a dashboard expression a plain PromQL one: Grafana's
// variables get values.
func instantQuery(expr string) string {
	return strings.NewReplacer("$__rate_interval", "1m", "$instance", ".*").Replace(expr)
}

// matcher is one label matcher of a selector.
type matcher struct{ metric, label, op, value string }

var (
	stringLit = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	metricTok = regexp.MustCompile(`\b((?:nexus|go|process)_[a-zA-Z0-9_]+)\b`)
	selector  = regexp.MustCompile(`\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}`)
	matcherRe = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|!~|=)\s*"((?:[^"\\]|\\.)*)"`)
)

// metricRefs lists the exported metric names (nexus_, go_, process_) and
// the label matchers of the selectors of a PromQL expression.
func metricRefs(expr string) ([]string, []matcher) {
	names := map[string]bool{}
	for _, m := range metricTok.FindAllStringSubmatch(stringLit.ReplaceAllString(expr, `""`), -1) {
		names[m[1]] = true
	}
	var out []string
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	var ms []matcher
	for _, s := range selector.FindAllStringSubmatch(expr, -1) {
		if !metricTok.MatchString(s[1]) {
			continue
		}
		for _, m := range matcherRe.FindAllStringSubmatch(s[2], -1) {
			ms = append(ms, matcher{metric: s[1], label: m[1], op: m[2], value: m[3]})
		}
	}
	return out, ms
}

// TestGrafanaDashboard checks the dashboard's shape (Grafana reads it
// without complaint: unique ids, a data source on every query, a grid of
// 24 columns) and that it covers what issue 18 asks for.
func TestGrafanaDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q title %q", d.UID, d.Title)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	if !vars["datasource"] || !vars["instance"] {
		t.Errorf("variables %v, want datasource and instance", vars)
	}
	ids := map[int]bool{}
	known := map[string]bool{"row": true, "timeseries": true, "stat": true}
	for _, p := range d.allPanels() {
		if ids[p.ID] || p.ID == 0 {
			t.Errorf("panel %q: id %d missing or not unique", p.Title, p.ID)
		}
		ids[p.ID] = true
		if !known[p.Type] || p.Title == "" {
			t.Errorf("panel %d: type %q title %q", p.ID, p.Type, p.Title)
		}
		if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside 24 columns", p.Title, g)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 || p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: %d queries, data source %+v (want the ${datasource} variable)", p.Title, len(p.Targets), p.Datasource)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.RefID == "" || refs[tg.RefID] || tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: query %q refId %q", p.Title, tg.Expr, tg.RefID)
			}
			refs[tg.RefID] = true
		}
	}
	// Panels do not overlap.
	type cell struct{ x, y int }
	used := map[cell]string{}
	for _, p := range d.allPanels() {
		for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				if other, ok := used[cell{x, y}]; ok {
					t.Fatalf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
				}
				used[cell{x, y}] = p.Title
			}
		}
	}
	// What the issue lists, each by the metric that shows it.
	all := ""
	for _, q := range d.queries() {
		all += q + "\n"
	}
	for what, metric := range map[string]string{
		"Raft leader": `nexus_raft_state{instance=~"$instance",state="leader"}`, "term": "nexus_raft_term",
		"commit/apply latency": "nexus_raft_apply_duration_seconds_bucket", "elections": "nexus_raft_leadership_changes_total",
		"last contact": "nexus_raft_last_contact_seconds", "gossip members by state": "max by (status) (nexus_gossip_members",
		"autopilot health": "nexus_autopilot_healthy", "failure tolerance": "nexus_autopilot_failure_tolerance",
		"admin API rate by endpoint": "sum by (route) (rate(nexus_api_requests_total",
		"admin API latency":          "nexus_api_request_duration_seconds_bucket", "admin API errors": `code=~"5.."`,
		"blocking queries": "nexus_api_blocking_queries", "gateway requests and status classes": "sum by (route, class) (rate(nexus_gateway_requests_total",
		"gateway latency per route": "sum by (route, le) (rate(nexus_gateway_upstream_duration_seconds_bucket",
		"upstream errors":           "nexus_gateway_retries_total", "breaker states": "nexus_gateway_breaker_state",
		"ejections": "nexus_gateway_outlier_ejections_total", "rate-limited requests": "nexus_gateway_rate_limited_total",
		"audit archive lag": "nexus_audit_archive_lag_seconds", "audit backlog": "nexus_audit_backlog_max_records",
		"Go runtime": "go_goroutines", "scheduler latency": "go_sched_latencies_seconds_bucket",
	} {
		if !strings.Contains(all, metric) {
			t.Errorf("no panel for %s (%s)", what, metric)
		}
	}
}

// ---- a node's /metrics -----------------------------------------------------

// exposition is the samples of some /metrics answers: metric name (with
// _bucket, _sum, _count) → the label sets seen.
type exposition map[string][]map[string]string

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? `)

func (e exposition) add(text string) {
	for _, l := range strings.Split(text, "\n") {
		m := sampleLine.FindStringSubmatch(l)
		if m == nil || strings.HasPrefix(l, "#") {
			continue
		}
		labels := map[string]string{}
		for _, kv := range matcherRe.FindAllStringSubmatch(m[2], -1) {
			v, err := strconv.Unquote(`"` + kv[3] + `"`)
			if err != nil {
				v = kv[3]
			}
			labels[kv[1]] = v
		}
		e[m[1]] = append(e[m[1]], labels)
	}
}

// check reports what of names and matchers the samples do not show. A
// matcher on instance or exported_instance is Prometheus' target label
// (exported_instance is the metric's own instance label, renamed).
func (e exposition) check(names []string, ms []matcher) []string {
	var missing []string
	for _, n := range names {
		if len(e[n]) == 0 {
			missing = append(missing, "metric "+n)
		}
	}
	for _, m := range ms {
		label := m.label
		switch label {
		case "instance", "job":
			continue
		case "exported_instance":
			label = "instance"
		}
		seen := false
		for _, ls := range e[m.metric] {
			v, ok := ls[label]
			if ok && (m.op != "=" || v == m.value) {
				seen = true
				break
			}
		}
		if !seen && len(e[m.metric]) > 0 {
			missing = append(missing, fmt.Sprintf("%s{%s%s%q}", m.metric, m.label, m.op, m.value))
		}
	}
	return missing
}

// scrapeAll reads every running node's /metrics.
func scrapeAll(t *testing.T, c *proccluster.Cluster) exposition {
	t.Helper()
	e := exposition{}
	for _, i := range c.Live() {
		e.add(mustDo(t, 200, "GET", c.URL(i, "/metrics"), ""))
	}
	return e
}

// ---- a little traffic ------------------------------------------------------

var trafficOnce sync.Once

// driveTraffic makes the shared cluster export the series that appear only
// with use: a registration with an HTTP check, a config write, a consistent
// read, a blocking query, gateway requests through a rate-limited route
// with a breaker, and through a route whose upstream refuses connections
// (errors, then an outlier ejection after 3 failures, before its breaker
// opens after 5).
func driveTraffic(t *testing.T, c *proccluster.Cluster) {
	t.Helper()
	trafficOnce.Do(func() { trafficFor(t, c) })
}

func trafficFor(t *testing.T, c *proccluster.Cluster) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "hello %s", r.URL.Path)
	}))
	t.Cleanup(up.Close)
	host, port, _ := net.SplitHostPort(up.Listener.Addr().String())
	// An address nothing listens on: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	api := func(path string) string { return c.URL(0, path) }
	mustDo(t, 201, "POST", api("/services/register"), fmt.Sprintf(
		`{"name":"web","type":"http","id":"web-1","address":%q,"port":%s,"check":{"http":"http://%s/health","interval":"500ms","timeout":"1s"}}`,
		host, port, up.Listener.Addr().String()))
	mustDo(t, 201, "POST", api("/services/register"), fmt.Sprintf(
		`{"name":"down","type":"http","id":"down-1","address":"127.0.0.1","port":%d}`, deadPort))
	mustDo(t, 200, "PUT", api("/config/app/feature"), `{"value":true}`)
	mustDo(t, 200, "GET", api("/config/app/feature?consistent"), "")
	// A compare-and-set on a stale index is refused (a rejected write).
	mustDo(t, 409, "PUT", api("/config/app/feature?cas=1"), `{"value":false}`)
	mustDo(t, 200, "GET", api("/services?index=1&wait=100ms"), "")
	mustDo(t, 201, "POST", api("/gateway/routes"), `{"id":"r-web","paths":["/web/"],"service":"web","strip_path":true,`+
		`"rate_limit":{"rps":1,"burst":1},"circuit_breaker":{"consecutive_failures":3,"open_for":"30s"}}`)
	mustDo(t, 201, "POST", api("/gateway/routes"), `{"id":"r-down","paths":["/down/"],"service":"down","retries":0,`+
		`"circuit_breaker":{"consecutive_failures":5,"open_for":"30s"}}`)

	gw := "http://" + c.Node(0).GatewayAddr
	retry.Run(t, func(r *retry.R) {
		if code, body := httpDo(t, "GET", gw+"/web/x", ""); code != 200 {
			r.Fatalf("GET /web/x through the gateway: %d %s", code, body)
		}
	}, retry.Timeout(60*time.Second), retry.What("the gateway to serve route r-web"))
	// The bucket holds one request: the next ones are 429.
	limited := false
	for i := 0; i < 5 && !limited; i++ {
		code, _ := httpDo(t, "GET", gw+"/web/x", "")
		limited = code == http.StatusTooManyRequests
	}
	if !limited {
		t.Fatal("route r-web with rps 1, burst 1 answered no 429 in 5 requests")
	}
	retry.Run(t, func(r *retry.R) {
		if code, _ := httpDo(t, "GET", gw+"/down/x", ""); code < 500 {
			r.Fatalf("GET /down/x answered %d", code)
		}
		m := mustDo(t, 200, "GET", c.URL(0, "/metrics"), "")
		if !strings.Contains(m, "nexus_gateway_outlier_ejections_total{") {
			r.Fatalf("no outlier ejection yet")
		}
	}, retry.Timeout(60*time.Second), retry.What("an outlier ejection of the refusing upstream"))
	retry.Run(t, func(r *retry.R) {
		m := mustDo(t, 200, "GET", c.URL(0, "/metrics"), "")
		if !strings.Contains(m, `nexus_health_checks_total{kind="http",status="passing"}`) {
			r.Fatalf("no passing HTTP check counted yet")
		}
	}, retry.Timeout(60*time.Second), retry.What("the HTTP check of web-1 to run"))
}

// TestDashboardAndAlertMetricsExported starts a real cluster, drives a
// little traffic through it, and checks that every metric the dashboard and
// the alert rules query is exported by the nodes' /metrics, with the label
// values their selectors name.
func TestDashboardAndAlertMetricsExported(t *testing.T) {
	c := sharedCluster(t)
	driveTraffic(t, c)
	e := scrapeAll(t, c)
	sources := map[string]string{}
	for where, q := range loadDashboard(t).queries() {
		sources["dashboard "+where] = q
	}
	for name, expr := range alertRules(t) {
		sources["alert "+name] = expr
	}
	checked := 0
	for where, q := range sources {
		names, ms := metricRefs(q)
		if len(names) == 0 && !strings.Contains(q, "up{") {
			t.Errorf("%s queries no nexus metric: %s", where, q)
		}
		checked += len(names)
		if missing := e.check(names, ms); len(missing) > 0 {
			t.Errorf("%s: not exported by the nodes: %v\n  query: %s", where, missing, q)
		}
	}
	if checked < 50 {
		t.Errorf("only %d metric references checked", checked)
	}
	// The check is real: a name or label value the nodes do not export
	// is reported.
	if got := e.check(metricRefs(`rate(nexus_gateway_request_total{class="5XX"}[1m]) + nexus_raft_state{state="boss"}`)); len(got) != 2 {
		t.Errorf("misspelt metric and label value: reported %v", got)
	}

	// --enable-debug (the test nodes run with it) serves pprof on the admin API.
	if code, _ := httpDo(t, "GET", c.URL(0, "/debug/pprof/heap"), ""); code != 200 {
		t.Errorf("GET /debug/pprof/heap with --enable-debug: %d", code)
	}
}
