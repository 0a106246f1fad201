package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
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
	"testing"
	"time"

	"github.com/nexus/nexus/internal/proccluster"
)

var (
	nexusBinary string // set by TestMain
	buildErr    error
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if testing.Short() {
			return m.Run() // every test skips itself
		}
		if b := os.Getenv("NEXUS_E2E_BINARY"); b != "" {
			nexusBinary = b
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "nexus-e2e-bin-")
		if err != nil {
			buildErr = err
			return m.Run()
		}
		defer os.RemoveAll(dir)
		nexusBinary = filepath.Join(dir, "nexus")
		start := time.Now()
		out, err := exec.Command("go", "build", "-o", nexusBinary, "github.com/nexus/nexus/cmd/nexus").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build github.com/nexus/nexus/cmd/nexus: %v\n%s", err, out)
		} else {
			fmt.Fprintf(os.Stderr, "e2e: built %s in %v\n", nexusBinary, time.Since(start).Round(time.Millisecond))
		}
		return m.Run()
	}()
	os.Exit(code)
}

// requireBinary skips in -short mode and fails if the agent did not build.
func requireBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: skipped in -short mode")
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return nexusBinary
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

// baseOptions are the cluster options of every e2e test: ports that do not
// clash with a dev cluster on the defaults.
func baseOptions(t *testing.T) proccluster.Options {
	return proccluster.Options{
		Binary:      requireBinary(t),
		Nodes:       3,
		BaseIP:      os.Getenv("NEXUS_E2E_BASE_IP"),
		RaftPort:    envInt("NEXUS_E2E_RAFT_PORT", 18300),
		GossipPort:  envInt("NEXUS_E2E_GOSSIP_PORT", 18301),
		HTTPPort:    envInt("NEXUS_E2E_HTTP_PORT", 18500),
		GatewayPort: envInt("NEXUS_E2E_GATEWAY_PORT", 18080),
	}
}

// startCluster starts a cluster for t; with NEXUS_E2E_LOGS set it prints
// every node's log at the end even when the test passes.
func startCluster(t *testing.T, o proccluster.Options) *proccluster.Cluster {
	t.Helper()
	c := proccluster.StartT(t, o)
	if os.Getenv("NEXUS_E2E_LOGS") != "" {
		t.Cleanup(func() {
			if !t.Failed() {
				c.DumpLogs(t.Logf)
			}
		})
	}
	return c
}

// ---- HTTP ------------------------------------------------------------------

// api talks to the nodes of one cluster.
type api struct {
	c  *proccluster.Cluster
	hc *http.Client
	// token, when set, goes with every request (X-Nexus-Token).
	token string
}

func newAPI(t *testing.T, c *proccluster.Cluster) *api {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     30 * time.Second,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &api{c: c, hc: &http.Client{Transport: tr}}
}

type response struct {
	status int
	body   []byte
	header http.Header
}

func (r response) String() string {
	b := strings.TrimSpace(string(r.body))
	if len(b) > 400 {
		b = b[:400] + "..."
	}
	return fmt.Sprintf("%d %s", r.status, b)
}

// errorCode returns the "code" of a JSON error body, or "".
func (r response) errorCode() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

// do sends one request to node i with a per-request timeout.
func (a *api) do(ctx context.Context, i int, method, path string, body []byte, timeout time.Duration) (response, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.c.URL(i, path), rd)
	if err != nil {
		return response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("X-Nexus-Token", a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, body: b, header: resp.Header}, nil
}

// entry is a config entry.
type entry struct {
	Key         string          `json:"key"`
	Value       json.RawMessage `json:"value"`
	ModifyIndex uint64          `json:"modify_index"`
}

// canon re-encodes a JSON value so that equal values compare equal as strings.
func canon(raw []byte) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "INVALID:" + string(raw)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func jsonValue(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// retryable reports a write outcome that may be retried: connection
// errors, 503 (no leader) and 504 (outcome unknown; only for idempotent
// writes such as PUT of a fixed value).
func retryable(r response, err error) bool {
	return err != nil || r.status == http.StatusServiceUnavailable || r.status == http.StatusGatewayTimeout
}

// putConfig writes key=value on node i, retrying retryable outcomes until ctx
// ends, and returns the acknowledged entry.
func (a *api) putConfig(ctx context.Context, i int, key string, value []byte) (entry, response, error) {
	var last string
	for {
		r, err := a.do(ctx, i, http.MethodPut, "/config/"+key, value, 5*time.Second)
		if err == nil && r.status == http.StatusOK {
			var e entry
			if err := json.Unmarshal(r.body, &e); err != nil {
				return e, r, fmt.Errorf("PUT /config/%s on %s: bad body: %v: %s", key, a.c.Node(i).Name, err, r)
			}
			return e, r, nil
		}
		if !retryable(r, err) {
			return entry{}, r, fmt.Errorf("PUT /config/%s on %s: %s", key, a.c.Node(i).Name, r)
		}
		if err != nil {
			last = err.Error()
		} else {
			last = r.String()
		}
		select {
		case <-ctx.Done():
			return entry{}, r, fmt.Errorf("PUT /config/%s on %s: %w (last: %s)", key, a.c.Node(i).Name, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// getConfig reads one key from node i's local replica. found=false on 404.
func (a *api) getConfig(ctx context.Context, i int, key string) (e entry, found bool, err error) {
	r, err := a.do(ctx, i, http.MethodGet, "/config/"+key, nil, 5*time.Second)
	if err != nil {
		return e, false, err
	}
	switch r.status {
	case http.StatusOK:
		if err := json.Unmarshal(r.body, &e); err != nil {
			return e, false, fmt.Errorf("GET /config/%s: %v: %s", key, err, r)
		}
		return e, true, nil
	case http.StatusNotFound:
		return e, false, nil
	default:
		return e, false, fmt.Errorf("GET /config/%s on %s: %s", key, a.c.Node(i).Name, r)
	}
}

// listConfig reads every entry under prefix on node i, following pages.
func (a *api) listConfig(ctx context.Context, i int, prefix string) ([]entry, error) {
	var all []entry
	after := ""
	for page := 0; page < 1000; page++ {
		q := url.Values{"prefix": {prefix}, "limit": {"10000"}}
		if after != "" {
			q.Set("after", after)
		}
		r, err := a.do(ctx, i, http.MethodGet, "/config?"+q.Encode(), nil, 10*time.Second)
		if err != nil {
			return nil, err
		}
		if r.status != http.StatusOK {
			return nil, fmt.Errorf("GET /config?prefix=%s on %s: %s", prefix, a.c.Node(i).Name, r)
		}
		var es []entry
		if err := json.Unmarshal(r.body, &es); err != nil {
			return nil, fmt.Errorf("GET /config?prefix=%s: %v: %s", prefix, err, r)
		}
		all = append(all, es...)
		next := r.header.Get("X-Nexus-Next")
		if next == "" || len(es) == 0 {
			return all, nil
		}
		after = next
	}
	return nil, errors.New("listConfig: too many pages")
}

// waitFor polls f every 100ms until it returns nil or ctx ends.
func waitFor(ctx context.Context, what string, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: timed out: %v", what, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitConfigEverywhere waits until every node in idx has key with value and
// the same modify_index as want.
func (a *api) waitConfigEverywhere(ctx context.Context, idx []int, want entry) error {
	for _, i := range idx {
		err := waitFor(ctx, fmt.Sprintf("%s on %s", want.Key, a.c.Node(i).Name), func() error {
			e, found, err := a.getConfig(ctx, i, want.Key)
			switch {
			case err != nil:
				return err
			case !found:
				return errors.New("404")
			case canon(e.Value) != canon(want.Value) || e.ModifyIndex != want.ModifyIndex:
				return fmt.Errorf("got %s@%d, want %s@%d", e.Value, e.ModifyIndex, want.Value, want.ModifyIndex)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// raftServers returns the server ids of GET /cluster/raft on node i.
func (a *api) raftServers(ctx context.Context, i int) ([]string, error) {
	r, err := a.do(ctx, i, http.MethodGet, "/cluster/raft", nil, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if r.status != http.StatusOK {
		return nil, fmt.Errorf("GET /cluster/raft: %s", r)
	}
	var body struct {
		Servers []struct {
			ID string `json:"id"`
		} `json:"servers"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		return nil, fmt.Errorf("GET /cluster/raft: %v: %s", err, r)
	}
	var ids []string
	for _, s := range body.Servers {
		ids = append(ids, s.ID)
	}
	return ids, nil
}

func all(c *proccluster.Cluster) []int {
	out := make([]int, c.N())
	for i := range out {
		out[i] = i
	}
	return out
}

func others(c *proccluster.Cluster, i int) []int {
	var out []int
	for j := 0; j < c.N(); j++ {
		if j != i {
			out = append(out, j)
		}
	}
	return out
}
