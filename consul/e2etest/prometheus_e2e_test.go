package e2etest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/nexus/nexus/internal/retry"
)

// TestConsul_PrometheusDiscovers: a real Prometheus-compatible scraper
// with consul_sd_configs pointing at one Nexus node discovers the instances
// registered through the Consul API, scrapes them (each is a Nexus node's
// /metrics), and drops one once it is deregistered. The scraper is
// Prometheus when its build has Consul discovery; Debian's prometheus
// package is built without it ("Disable Consul SD until its Debian package
// is back in shape"), so on Debian it is VictoriaMetrics (Debian's
// victoria-metrics package), whose scraper reads the same
// consul_sd_configs and serves the same /api/v1/targets.
func TestConsul_PrometheusDiscovers(t *testing.T) {
	c := startCluster(t)
	cl := client(t, c, 1)
	for i := range 3 {
		host, port, _ := net.SplitHostPort(c.HTTPAddr(i))
		p, _ := strconv.Atoi(port)
		if err := cl.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{ID: fmt.Sprintf("nexus-%d", i+1), Name: "nexus-metrics",
			Address: host, Port: p, Tags: []string{"metrics"}, Meta: map[string]string{"node": c.Node(i).Name}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{ID: "other-1", Name: "other", Address: "127.0.0.1", Port: 1}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: nexus
    consul_sd_configs:
      - server: %q
        services: ["nexus-metrics"]
    relabel_configs:
      - source_labels: [__meta_consul_service_metadata_node]
        target_label: node
`, c.HTTPAddr(0))
	cfgPath := filepath.Join(dir, "scrape.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	promAddr := freeAddr(t)
	startScraper(t, cfgPath, filepath.Join(dir, "data"), promAddr)

	// Every registered instance is discovered with Consul's labels, and
	// scraped (up).
	retry.Run(t, func(r *retry.R) {
		ts, err := targets(promAddr)
		if err != nil {
			r.Fatal(err)
		}
		var up []string
		for _, tg := range ts {
			d := tg.DiscoveredLabels
			if d["__meta_consul_service"] != "nexus-metrics" || d["__meta_consul_tags"] != ",metrics," ||
				d["__meta_consul_dc"] != "dc1" || d["__meta_consul_health"] != "passing" || tg.Labels["node"] == "" {
				r.Fatalf("target %+v", tg)
			}
			if tg.Health == "up" {
				up = append(up, d["__meta_consul_service_id"])
			}
		}
		slices.Sort(up)
		if !slices.Equal(up, []string{"nexus-1", "nexus-2", "nexus-3"}) {
			r.Fatalf("%d targets, up: %v", len(ts), up)
		}
	}, retry.Timeout(90*time.Second))

	// A deregistered instance leaves the targets (Prometheus watches with
	// blocking queries).
	if err := client(t, c, 2).Agent().ServiceDeregister("nexus-2"); err != nil {
		t.Fatal(err)
	}
	retry.Run(t, func(r *retry.R) {
		ts, err := targets(promAddr)
		if err != nil {
			r.Fatal(err)
		}
		var ids []string
		for _, tg := range ts {
			ids = append(ids, tg.DiscoveredLabels["__meta_consul_service_id"])
		}
		slices.Sort(ids)
		if !slices.Equal(ids, []string{"nexus-1", "nexus-3"}) {
			r.Fatalf("targets %v", ids)
		}
	}, retry.Timeout(60*time.Second))
}

// startScraper runs Prometheus, or VictoriaMetrics when this Prometheus
// has no Consul discovery, on cfgPath until the test ends.
func startScraper(t *testing.T, cfgPath, dataDir, addr string) {
	t.Helper()
	var args []string
	if bin, err := exec.LookPath("prometheus"); err == nil && promHasConsulSD(cfgPath) {
		args = []string{bin, "--config.file=" + cfgPath, "--storage.tsdb.path=" + dataDir, "--web.listen-address=" + addr}
	} else if bin, err := exec.LookPath("victoria-metrics"); err == nil {
		t.Logf("prometheus is missing or built without consul_sd_configs (Debian's package): using %s", bin)
		args = []string{bin, "-promscrape.config=" + cfgPath, "-storageDataPath=" + dataDir, "-httpListenAddr=" + addr,
			"-promscrape.consulSDCheckInterval=1s", "-promscrape.consul.waitTime=30s"}
	} else {
		t.Skip("neither a prometheus with consul_sd_configs nor victoria-metrics is installed (apt-get install -y victoria-metrics)")
	}
	logPath := filepath.Join(filepath.Dir(cfgPath), "scraper.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", filepath.Base(args[0]), b)
		}
	})
}

// promHasConsulSD: promtool accepts a config with consul_sd_configs.
func promHasConsulSD(cfgPath string) bool {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		return false
	}
	return exec.Command(promtool, "check", "config", "--syntax-only", cfgPath).Run() == nil
}

type target struct {
	DiscoveredLabels map[string]string `json:"discoveredLabels"`
	Labels           map[string]string `json:"labels"`
	Health           string            `json:"health"`
}

// targets are Prometheus's active targets.
func targets(addr string) ([]target, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/v1/targets?state=active", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			ActiveTargets []target `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("targets: status %q", body.Status)
	}
	return body.Data.ActiveTargets, nil
}

// freeAddr is a free loopback port for Prometheus.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
