package consul_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/nexus/nexus/api"
	"github.com/nexus/nexus/cluster/member"
	"github.com/nexus/nexus/consul"
	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/health"
	"github.com/nexus/nexus/registry"
)

// The harness is one real node without Raft: the registry store, the FSM,
// the admin API with the Consul mapping mounted, and the health runner
// (TTL heartbeats), behind an in-memory listener. Writes apply straight to
// the FSM with increasing indexes, as a single-node Raft would.

type directWriter struct {
	mu    sync.Mutex
	fsm   *fsm.FSM
	index uint64
}

func (w *directWriter) Apply(_ context.Context, cmd []byte) (*command.Result, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.index++
	res, ok := w.fsm.Apply(&raft.Log{Index: w.index, Type: raft.LogCommand, Data: cmd}).(*command.Result)
	if !ok {
		return nil, errors.New("fsm returned no result")
	}
	return res, nil
}

type storeReader struct{ s *registry.Store }

func (r storeReader) Store() *registry.Store { return r.s }

// apiCluster is the admin API's view of a one-node cluster.
type apiCluster struct{ name string }

func (c apiCluster) NodeName() string { return c.name }
func (c apiCluster) Raft() api.RaftStatus {
	return api.RaftStatus{State: "Leader", Leader: c.name}
}
func (c apiCluster) Members() []api.Member {
	return []api.Member{{Name: c.name, Address: "127.0.0.1:8301", Status: "alive", Raft: "leader"}}
}
func (c apiCluster) Leader() (api.LeaderInfo, bool) {
	return api.LeaderInfo{Node: c.name, RaftAddr: "127.0.0.1:8300"}, true
}
func (c apiCluster) Ready() bool                            { return true }
func (c apiCluster) Leave(context.Context, api.Relay) error { return errors.New("not in tests") }
func (c apiCluster) Contact() (bool, time.Duration)         { return true, 0 }
func (c apiCluster) RemovePeer(context.Context, string, api.Relay) (uint64, error) {
	return 0, errors.New("not in tests")
}
func (c apiCluster) Snapshot(io.Writer) (uint64, error) { return 0, errors.New("not in tests") }
func (c apiCluster) RestoreSnapshot(context.Context, []byte, api.Relay) (uint64, error) {
	return 0, errors.New("not in tests")
}

// consulCluster is the mapping's view of the same cluster.
type consulCluster struct {
	name   string
	leader string
}

func (c consulCluster) NodeName() string               { return c.name }
func (c consulCluster) Contact() (bool, time.Duration) { return c.leader != "", 25 * time.Millisecond }
func (c consulCluster) LeaderRaftAddr() string         { return c.leader }
func (c consulCluster) RaftPeers() []string            { return []string{"127.0.0.1:8300"} }
func (c consulCluster) Members() []consul.Member {
	return []consul.Member{{Name: c.name, Addr: "127.0.0.2", Port: 8301, Status: "alive"}}
}

// membership is the health runner's view: one node, the leader.
type membership struct {
	name    string
	changes chan struct{}
}

func (m membership) NodeName() string { return m.name }
func (m membership) IsLeader() bool   { return true }
func (m membership) MemberStatuses() map[string]member.Status {
	return map[string]member.Status{m.name: member.Alive}
}
func (m membership) MemberHTTPAddr(string) (string, bool) { return "", false }
func (m membership) Changes() <-chan struct{}             { return m.changes }

type harness struct {
	t      testing.TB
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	v1     *consul.Server
	store  *registry.Store
	reg    *prometheus.Registry
	client *consulapi.Client
	http   *http.Client
}

type harnessOpts struct {
	acl    api.ACLOptions
	leader string // "" = no known leader
}

func newHarness(t testing.TB, opts ...func(*harnessOpts)) *harness {
	t.Helper()
	o := harnessOpts{leader: "127.0.0.1:8300"}
	for _, f := range opts {
		f(&o)
	}
	store := registry.NewStore()
	codec := command.NewCodec()
	f := fsm.New(fsm.Deps{Store: store, Codec: codec})
	w := &directWriter{fsm: f}
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	hdeps := health.Deps{Store: store, Codec: codec, Writer: w, Membership: membership{name: "n1", changes: make(chan struct{})},
		Logger: logger, Registerer: reg}
	runner := health.NewRunner(hdeps)
	ctx, cancel := context.WithCancel(context.Background())
	go runner.Run(ctx)

	srv, err := api.New(api.Deps{Writer: w, Reader: storeReader{store}, Cluster: apiCluster{name: "n1"}, Codec: codec,
		Logger: logger, Registry: reg, Gatherer: reg, Version: "test", Heartbeats: health.NewHeartbeats(hdeps, runner), ACL: o.acl})
	if err != nil {
		t.Fatal(err)
	}
	v1, err := consul.New(consul.Deps{Native: srv, Cluster: consulCluster{name: "n1", leader: o.leader}, Datacenter: "dc1",
		Version: "test", Logger: logger, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv.MountV1(v1)
	ln := fasthttputil.NewInmemoryListener()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	dial := func(context.Context, string, string) (net.Conn, error) { return ln.Dial() }
	tr := &http.Transport{DialContext: dial}
	client, err := consulapi.NewClient(&consulapi.Config{Address: "nexus.test", Scheme: "http", Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The client's idle connections first: the server then sees them
		// close rather than waiting on them.
		tr.CloseIdleConnections()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		<-done
		cancel()
		tr.CloseIdleConnections()
	})
	return &harness{t: t, dial: dial, v1: v1, store: store, reg: reg, client: client, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// raw sends a request and returns the status, headers and body.
func (h *harness) raw(method, path, body string, hdr ...string) (int, http.Header, string) {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://nexus.test"+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := h.http.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// bootstrap bootstraps ACLs and returns the management token's secret.
func (h *harness) bootstrap() string {
	h.t.Helper()
	code, _, body := h.raw("POST", "/acl/bootstrap", "")
	var boot struct {
		SecretID string `json:"secret_id"`
	}
	if err := json.Unmarshal([]byte(body), &boot); code != 200 || err != nil || boot.SecretID == "" {
		h.t.Fatalf("bootstrap: %d %s", code, body)
	}
	return boot.SecretID
}

// token creates the policy (its JSON) and a token holding it, as root;
// it returns the token's secret.
func (h *harness) token(root, policy string) string {
	h.t.Helper()
	var p struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal([]byte(policy), &p)
	if code, _, body := h.raw("POST", "/acl/policies", policy, "X-Nexus-Token", root); code != 201 {
		h.t.Fatalf("policy: %d %s", code, body)
	}
	code, _, body := h.raw("POST", "/acl/tokens", `{"policies":["`+p.Name+`"]}`, "X-Nexus-Token", root)
	var tok struct {
		SecretID string `json:"secret_id"`
	}
	if err := json.Unmarshal([]byte(body), &tok); code != 201 || err != nil || tok.SecretID == "" {
		h.t.Fatalf("token: %d %s", code, body)
	}
	return tok.SecretID
}
