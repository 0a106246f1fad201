// Package deploy tests the deployment files beside it (systemd/, docker/,
// kubernetes/, grafana/, prometheus/) with the tools that consume them:
// systemd-analyze, docker-compose, promtool and a real Prometheus, the
// Kubernetes API types, and real nexus processes (internal/proccluster).
//
// A test whose tool is missing skips with the Debian package to install,
// unless NEXUS_DEPLOY_REQUIRED=1 (CI), where it fails. `go test -short`
// skips the tests that start nexus processes. Environment:
//
//	NEXUS_DEPLOY_REQUIRED=1  a missing tool fails the test
//	NEXUS_DEPLOY_BINARY      use this nexus binary instead of building one
//
// The nodes listen on 127.0.0.11-13 (the 3-node cluster) and 127.0.1.11
// (single nodes), on ports 27300, 27301, 27500 and 27080, apart from the
// development cluster's and the e2e tests'.
package deploy

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus/nexus/cmd/nexus/agentconfig"
	"github.com/nexus/nexus/internal/proccluster"
)

// Ports of the nodes these tests start.
const (
	raftPort    = 27300
	gossipPort  = 27301
	httpPort    = 27500
	gatewayPort = 27080
)

var (
	binDir string // removed by TestMain

	buildOnce sync.Once
	binPath   string
	buildErr  error

	clusterOnce sync.Once
	shared      *proccluster.Cluster
	sharedErr   error
	sharedLogs  func(func(string, ...any)) // dumps the shared cluster's logs
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		dir, err := os.MkdirTemp("", "nexus-deploy-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		binDir = dir
		defer os.RemoveAll(dir)
		defer func() {
			if shared != nil {
				shared.Close()
			}
		}()
		return m.Run()
	}()
	os.Exit(code)
}

// required reports whether a missing tool fails instead of skipping.
func required() bool { return os.Getenv("NEXUS_DEPLOY_REQUIRED") == "1" }

// requireTool returns the path of a command, or skips (fails with
// NEXUS_DEPLOY_REQUIRED=1) naming the Debian package that brings it.
func requireTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found: install the Debian package %s (apt-get install %s)", name, debianPackage, debianPackage)
	if required() {
		t.Fatal(msg + "; NEXUS_DEPLOY_REQUIRED=1")
	}
	t.Skip(msg + "; set NEXUS_DEPLOY_REQUIRED=1 to fail instead")
	return ""
}

// buildVersion is the VERSION build argument of the binary these tests
// build.
const buildVersion = "deploy-test"

// nexusBinary builds the agent once with the Dockerfile's own build command
// (TestDockerfileBuildCommand checks the result), or takes
// NEXUS_DEPLOY_BINARY; it skips in -short mode.
func nexusBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts nexus processes: skipped in -short mode")
	}
	buildOnce.Do(func() {
		if b := os.Getenv("NEXUS_DEPLOY_BINARY"); b != "" {
			binPath, buildErr = filepath.Abs(b)
			return
		}
		var cmd string
		if cmd, buildErr = dockerBuildCommand(); buildErr != nil {
			return
		}
		cmd = strings.ReplaceAll(cmd, "/out/", binDir+"/")
		cmd = strings.ReplaceAll(cmd, "${VERSION}", buildVersion)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		c := exec.CommandContext(ctx, "sh", "-c", cmd)
		c.Dir = ".."
		if out, err := c.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("the Dockerfile's build command %q: %v\n%s", cmd, err, out)
			return
		}
		binPath = filepath.Join(binDir, "nexus")
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// dockerBuildCommand is the `go build` command of the Dockerfile's build
// stage (up to its first &&).
func dockerBuildCommand() (string, error) {
	b, err := os.ReadFile("docker/Dockerfile")
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 .*go build [^&]*-o /out/nexus [^&]*?)\s*(&&|$)`).FindStringSubmatch(string(b))
	if m == nil {
		return "", errors.New("docker/Dockerfile: no RUN CGO_ENABLED=0 ... go build ... -o /out/nexus")
	}
	return strings.TrimSpace(strings.ReplaceAll(m[1], "\\", "")), nil
}

// clusterOptions are the options of the nodes of these tests.
func clusterOptions(t *testing.T, nodes int, baseIP string) proccluster.Options {
	return proccluster.Options{
		Binary: nexusBinary(t), Nodes: nodes, BaseIP: baseIP,
		RaftPort: raftPort, GossipPort: gossipPort, HTTPPort: httpPort, GatewayPort: gatewayPort,
		ExtraArgs: []string{"--enable-debug"},
	}
}

// sharedCluster is one 3-node cluster (127.0.0.11-13) for the tests that
// only read from it or add what they need; TestMain closes it. It waits for
// a leader and every node ready.
func sharedCluster(t *testing.T) *proccluster.Cluster {
	t.Helper()
	opts := clusterOptions(t, 3, "")
	clusterOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared, sharedErr = proccluster.Start(ctx, opts)
		if sharedErr != nil {
			return
		}
		sharedLogs = shared.DumpLogs
		if _, _, err := shared.WaitLeader(ctx); err != nil {
			sharedErr = err
		} else {
			sharedErr = shared.WaitAllReady(ctx)
		}
	})
	if sharedErr != nil {
		if sharedLogs != nil {
			sharedLogs(t.Logf)
		}
		t.Fatalf("shared cluster: %v", sharedErr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			shared.DumpLogs(t.Logf)
		}
	})
	return shared
}

// httpDo sends one request and returns the status and body.
func httpDo(t *testing.T, method, url, body string, hdr ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp.StatusCode, string(b)
}

// mustDo is httpDo that fails unless the status is want.
func mustDo(t *testing.T, want int, method, url, body string, hdr ...string) string {
	t.Helper()
	code, b := httpDo(t, method, url, body, hdr...)
	if code != want {
		t.Fatalf("%s %s: %d %s, want %d", method, url, code, b, want)
	}
	return b
}

// run runs a command and returns its combined output, failing the test if
// it exits non-zero.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(dir, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(dir string, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// isSetting reports whether the environment variable k is a setting of
// `nexus agent` (its usage lists each as [$NEXUS_...]).
func isSetting(k string) bool {
	return strings.Contains(agentconfig.Usage(), "[$"+k+"]") || strings.Contains(agentconfig.Usage(), "[$"+k+";")
}

// readFile reads a file of this directory.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
