package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nexus/nexus/internal/retry"
)

// copyFiles copies files of this directory into dir under their base names.
func copyFiles(t *testing.T, dir string, files ...string) {
	t.Helper()
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), []byte(readFile(t, f)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPrometheusRules runs promtool: `check rules` on alerts.yml, `test
// rules` on alerts_test.yml, `check config` on the two scrape configs; and
// checks that alerts_test.yml has, for every alert, a case where it fires
// and one where it stays quiet.
func TestPrometheusRules(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	run(t, "prometheus", nil, promtool, "check", "rules", "alerts.yml")
	out := run(t, "prometheus", nil, promtool, "test", "rules", "alerts_test.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules: %s", out)
	}
	for _, cfg := range []string{"prometheus/prometheus.yml", "docker/prometheus.yml"} {
		dir := t.TempDir()
		copyFiles(t, dir, cfg, "prometheus/alerts.yml")
		run(t, dir, nil, promtool, "check", "config", "prometheus.yml")
	}

	var tests struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			Name      string `yaml:"name"`
			AlertTest []struct {
				Alertname string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, "prometheus/alerts_test.yml")), &tests); err != nil {
		t.Fatal(err)
	}
	if len(tests.RuleFiles) != 1 || tests.RuleFiles[0] != "alerts.yml" {
		t.Errorf("alerts_test.yml tests %v, want alerts.yml", tests.RuleFiles)
	}
	fires, quiet := map[string]int{}, map[string]int{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname]++
			} else {
				quiet[a.Alertname]++
			}
		}
	}
	rules := alertRules(t)
	for name := range rules {
		if fires[name] == 0 || quiet[name] == 0 {
			t.Errorf("alert %s: %d firing and %d quiet cases in alerts_test.yml, want at least one of each", name, fires[name], quiet[name])
		}
	}
	for name := range fires {
		if rules[name] == "" {
			t.Errorf("alerts_test.yml tests %s, which alerts.yml does not have", name)
		}
	}

	// The checks are real: a broken expression and a wrong expectation fail.
	dir := t.TempDir()
	copyFiles(t, dir, "prometheus/alerts.yml", "prometheus/alerts_test.yml")
	good := readFile(t, filepath.Join(dir, "alerts.yml"))
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(strings.Replace(good, "sum by (job) (nexus_raft_state", "sum by (job (nexus_raft_state", 1))
	if out, err := runErr(dir, nil, promtool, "check", "rules", "alerts.yml"); err == nil {
		t.Errorf("promtool check rules passed a syntax error: %s", out)
	}
	write(strings.Replace(good, "nexus_audit_archive_lag_seconds) > 300", "nexus_audit_archive_lag_seconds) > 3000", 1))
	if out, err := runErr(dir, nil, promtool, "test", "rules", "alerts_test.yml"); err == nil || !strings.Contains(out, "NexusAuditArchiveLag") {
		t.Errorf("promtool test rules passed an alert that no longer fires (%v): %s", err, out)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// promResult is the answer of Prometheus' HTTP API.
type promResult struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

type promVector []struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// promAPI asks Prometheus at base for path with query q.
func promAPI(t *testing.T, base, path string, q url.Values) (promResult, error) {
	t.Helper()
	code, body := httpDo(t, "GET", base+path+"?"+q.Encode(), "")
	var r promResult
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return r, fmt.Errorf("%d %s: %v", code, body, err)
	}
	if r.Status != "success" {
		return r, fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	return r, nil
}

func instant(t *testing.T, base, expr string) (promVector, error) {
	t.Helper()
	r, err := promAPI(t, base, "/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return nil, err
	}
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(r.Data, &d); err != nil {
		return nil, err
	}
	if d.ResultType != "vector" {
		return nil, nil // a scalar: evaluated, no series
	}
	var v promVector
	return v, json.Unmarshal(d.Result, &v)
}

// TestPrometheusScrapesCluster runs a real Prometheus (the Debian package's
// binary, on a free loopback port, storage in a temporary directory) with
// the alert rules, scraping a real 3-node cluster. It answers instant
// queries on nexus_ series; every dashboard and alert expression evaluates
// without error; the rules load and none fires on a healthy cluster.
func TestPrometheusScrapesCluster(t *testing.T) {
	promBin := requireTool(t, "prometheus", "prometheus")
	c := sharedCluster(t)
	driveTraffic(t, c)

	dir := t.TempDir()
	copyFiles(t, dir, "prometheus/alerts.yml")
	var targets []string
	for i := 0; i < c.N(); i++ {
		targets = append(targets, strconv.Quote(c.HTTPAddr(i)))
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [alerts.yml]
scrape_configs:
  - job_name: nexus
    static_configs:
      - targets: [%s]
`, strings.Join(targets, ", "))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	logPath := filepath.Join(dir, "prometheus.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr,
		"--web.console.templates="+dir, "--web.console.libraries="+dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", readFile(t, logPath))
		}
	})
	base := "http://" + addr
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := retry.Until(ctx, "prometheus ready", func() error {
		select {
		case err := <-exited:
			return fmt.Errorf("prometheus exited: %v", err)
		default:
		}
		code, body, err := get(base + "/-/ready")
		if err != nil {
			return err
		}
		if code != 200 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// Every node scraped, and a nexus_ series answers an instant query.
	retry.Run(t, func(r *retry.R) {
		v, err := instant(t, base, `up{job="nexus"} == 1`)
		r.Check(err)
		if len(v) != c.N() {
			r.Fatalf("%d nodes up, want %d", len(v), c.N())
		}
		v, err = instant(t, base, `sum(nexus_raft_state{job="nexus",state="leader"})`)
		r.Check(err)
		if len(v) != 1 || v[0].Value[1] != "1" {
			r.Fatalf("sum of leaders: %v, want 1", v)
		}
		v, err = instant(t, base, `nexus_gateway_requests_total{route="r-web",class="2xx"} > 0`)
		r.Check(err)
		if len(v) == 0 {
			r.Fatalf("no 2xx gateway request of route r-web in Prometheus yet")
		}
	}, retry.Timeout(90*time.Second), retry.What("Prometheus to scrape the cluster"))

	// Every expression of the dashboard and of the alerts evaluates.
	exprs := map[string]string{}
	for where, q := range loadDashboard(t).queries() {
		exprs["dashboard "+where] = instantQuery(q)
	}
	for name, q := range alertRules(t) {
		exprs["alert "+name] = q
	}
	for where, q := range exprs {
		if _, err := instant(t, base, q); err != nil {
			t.Errorf("%s: %v\n  query: %s", where, err, q)
		}
	}

	// The rules loaded and were evaluated; none fires on a healthy cluster.
	retry.Run(t, func(r *retry.R) {
		res, err := promAPI(t, base, "/api/v1/rules", url.Values{"type": {"alert"}})
		r.Check(err)
		var d struct {
			Groups []struct {
				Rules []struct {
					Name, Health, State, LastError string
				} `json:"rules"`
			} `json:"groups"`
		}
		r.Check(json.Unmarshal(res.Data, &d))
		n := 0
		for _, g := range d.Groups {
			for _, rule := range g.Rules {
				n++
				if rule.Health != "ok" {
					r.Fatalf("rule %s: health %q %s", rule.Name, rule.Health, rule.LastError)
				}
				if rule.State == "firing" {
					t.Errorf("alert %s fires on a healthy cluster", rule.Name)
				}
			}
		}
		if n != len(alertRules(t)) {
			r.Fatalf("%d alerting rules loaded, alerts.yml has %d", n, len(alertRules(t)))
		}
	}, retry.Timeout(30*time.Second), retry.What("the alert rules to be evaluated"))
}

// get is a GET that returns errors instead of failing the test.
func get(u string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
