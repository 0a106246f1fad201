package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/gitbuild"
	"github.com/nexus/nexus/internal/retry"
)

// previousRelease is the commit the rolling-upgrade test upgrades from: the
// first release.
const previousRelease = "3cd8fea"

// gateFixtureFeature is the feature that a binary built with the
// nexus_gate_fixture tag gates (fsm/command/gates_fixture.go): config
// deletes, an existing type treated as new.
const gateFixtureFeature = "gate-fixture"

// buildPreviousRelease builds `nexus` at previousRelease from this
// repository's history into dir (internal/gitbuild). Without git or the
// commit the test skips, unless NEXUS_UPGRADE_REQUIRED=1 makes that a
// failure.
func buildPreviousRelease(t *testing.T, dir string) string {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	root, err := gitbuild.Root(ctx, "")
	var bin string
	if err == nil {
		bin, err = gitbuild.Nexus(ctx, root, previousRelease, dir, previousRelease)
	}
	if errors.Is(err, gitbuild.ErrUnavailable) {
		if os.Getenv("NEXUS_UPGRADE_REQUIRED") == "1" {
			t.Fatalf("rolling upgrade: %v (NEXUS_UPGRADE_REQUIRED=1)", err)
		}
		t.Skipf("rolling upgrade skipped: %v; set NEXUS_UPGRADE_REQUIRED=1 to fail instead", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s in %v", previousRelease, time.Since(start).Round(time.Millisecond))
	return bin
}

// buildCurrentWithGateFixture builds this tree's nexus with the
// nexus_gate_fixture tag.
func buildCurrentWithGateFixture(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "nexus-current")
	start := time.Now()
	out, err := exec.Command("go", "build", "-tags", "nexus_gate_fixture", "-ldflags", "-X main.version=current",
		"-o", bin, "github.com/nexus/nexus/cmd/nexus").CombinedOutput()
	if err != nil {
		t.Fatalf("building the current tree: %v\n%s", err, out)
	}
	t.Logf("built the current tree (gate fixture) in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

// withoutFlag drops a flag and its value from args.
func withoutFlag(args []string, flag string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == flag {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// nodeGate says whether the test counts a node as up. Load requests hold
// it shared for their whole duration, and the test takes it exclusively to
// mark a node down, so no request that began while the node was up is
// still running when it is stopped.
type nodeGate struct {
	mu sync.RWMutex
	up bool
}

// do runs f if the node is up and reports whether it did.
func (g *nodeGate) do(f func()) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if !g.up {
		return false
	}
	f()
	return true
}

func (g *nodeGate) set(up bool) {
	g.mu.Lock()
	g.up = up
	g.mu.Unlock()
}

// upgradeLoad is the bounded write and gateway load of the upgrade.
type upgradeLoad struct {
	a     *api
	gw    *gatewayClient
	gates []*nodeGate
	stop  chan struct{}
	wg    sync.WaitGroup

	mu        sync.Mutex
	acked     map[string]string // key -> value of acknowledged writes
	gwErrors  []string
	writeOuts map[string]int // outcome -> count
	gwOK      atomic.Int64
}

const (
	upgradeWriters      = 4
	upgradeMaxWrites    = 3000 // per writer
	upgradeGatewayLoops = 2
	upgradeMaxRequests  = 20000 // per gateway loop
)

func (l *upgradeLoad) start(ctx context.Context) {
	for w := 0; w < upgradeWriters; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for k := 0; k < upgradeMaxWrites; k++ {
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
				i := (w + k) % len(l.gates)
				key := fmt.Sprintf("up/w%d-%05d", w, k)
				value := fmt.Sprintf(`{"w":%d,"k":%d}`, w, k)
				l.gates[i].do(func() {
					r, err := l.a.do(ctx, i, http.MethodPut, "/config/"+key, []byte(value), 10*time.Second)
					outcome := "error"
					if err == nil {
						outcome = fmt.Sprint(r.status)
					}
					l.mu.Lock()
					defer l.mu.Unlock()
					l.writeOuts[outcome]++
					if err == nil && r.status == http.StatusOK {
						l.acked[key] = value
					}
				})
			}
		}()
	}
	for g := 0; g < upgradeGatewayLoops; g++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for k := 0; k < upgradeMaxRequests; k++ {
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
				i := (g + k) % len(l.gates)
				l.gates[i].do(func() {
					status, body, err := l.gw.get(i, "/up/ping")
					if err == nil && status == http.StatusOK && body == "echo /ping" {
						l.gwOK.Add(1)
						return
					}
					l.mu.Lock()
					defer l.mu.Unlock()
					l.gwErrors = append(l.gwErrors, fmt.Sprintf("%s at %s: %d %q %v", l.a.c.Node(i).Name,
						time.Now().Format("15:04:05.000"), status, body, err))
				})
			}
		}()
	}
}

// Rolling upgrade (docs/operations.md, "Rolling upgrade"): three nodes of
// the previous release are replaced one by one, followers first, by the
// current build under write and gateway load. No acknowledged write is
// lost, no gateway request fails on a node that is up, and a gated
// feature (the fixture: config deletes) is refused with 409
// feature_unavailable naming the old nodes while versions are mixed and
// accepted once every node runs the current build.
func TestRollingUpgradeFromPreviousRelease(t *testing.T) {
	requireBinary(t)
	dir := t.TempDir()
	oldBin := buildPreviousRelease(t, dir)
	newBin := buildCurrentWithGateFixture(t, dir)

	o := baseOptions(t)
	o.Binary = oldBin
	o.RaftPort, o.GossipPort, o.HTTPPort, o.GatewayPort = 31300, 31301, 31500, 31080
	// The previous release has no DNS interface and no --dns-addr flag.
	o.Args = func(_ int, args []string) []string { return withoutFlag(args, "--dns-addr") }
	c := startCluster(t, o)
	a := newAPI(t, c)
	gw := newGatewayClient(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	leader := mustLeader(t, ctx, c)
	mustAllReady(t, ctx, c)

	// An upstream behind three instances, one owned by each node (a node's
	// instances turn critical while it is down: two stay passing), and a
	// route to them.
	host, port := startEcho(t)
	for i := 0; i < c.N(); i++ {
		reg := jsonValue(map[string]any{"name": "up", "id": "up-" + c.Node(i).Name, "type": "http", "address": host, "port": port})
		if r, err := a.do(ctx, i, http.MethodPost, "/services/register", reg, 10*time.Second); err != nil || r.status >= 300 {
			t.Fatalf("register on %s: %v %v", c.Node(i).Name, err, r)
		}
	}
	route := jsonValue(map[string]any{"id": "r-up", "paths": []string{"/up/"}, "service": "up", "strip_path": true})
	if r, err := a.do(ctx, leader, http.MethodPost, "/gateway/routes", route, 10*time.Second); err != nil || r.status != http.StatusCreated {
		t.Fatalf("POST /gateway/routes: %v %v", err, r)
	}
	gatewayServes := func(i int) error {
		return retry.Until(ctxFor(ctx, 30*time.Second), "gateway of "+c.Node(i).Name, func() error {
			status, body, err := gw.get(i, "/up/ping")
			if err != nil || status != http.StatusOK {
				return fmt.Errorf("%d %q %v", status, body, err)
			}
			return nil
		})
	}
	allPassing := func() error {
		return retry.Until(ctxFor(ctx, 60*time.Second), "three passing instances", func() error {
			r, err := a.do(ctx, leader, http.MethodGet, "/services/up/health", nil, 5*time.Second)
			if err != nil {
				return err
			}
			var h struct{ Passing int }
			if err := json.Unmarshal(r.body, &h); err != nil || h.Passing != 3 {
				return fmt.Errorf("%s", r)
			}
			return nil
		})
	}
	gates := make([]*nodeGate, c.N())
	for i := range gates {
		if err := gatewayServes(i); err != nil {
			t.Fatal(err)
		}
		gates[i] = &nodeGate{up: true}
	}
	if err := allPassing(); err != nil {
		t.Fatal(err)
	}
	// Keys the gated command (config delete) is tried on.
	for k := 0; k < 4; k++ {
		if _, _, err := a.putConfig(ctx, 0, fmt.Sprintf("gated/%d", k), jsonValue(k)); err != nil {
			t.Fatal(err)
		}
	}

	load := &upgradeLoad{a: a, gw: gw, gates: gates, stop: make(chan struct{}), acked: map[string]string{}, writeOuts: map[string]int{}}
	load.start(ctx)
	stopLoad := sync.OnceFunc(func() { close(load.stop); load.wg.Wait() })
	defer stopLoad()

	// Followers first, the leader last (one leader change instead of two).
	order := others(c, leader)
	order = append(order, leader)
	for step, i := range order {
		name := c.Node(i).Name
		gates[i].set(false)
		if _, err := c.Stop(i); err != nil {
			t.Fatal(err)
		}
		if err := c.SetBinary(i, newBin, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Restart(i); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitReady(ctxFor(ctx, 60*time.Second), i); err != nil {
			t.Fatal(err)
		}
		if err := gatewayServes(i); err != nil {
			t.Fatal(err)
		}
		gates[i].set(true)
		if _, _, err := c.WaitLeader(ctxFor(ctx, 60*time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := allPassing(); err != nil {
			t.Fatal(err)
		}
		t.Logf("step %d: %s runs the current build", step+1, name)
		if step == len(order)-1 {
			break
		}

		// Mixed versions: every upgraded node refuses the gated write and
		// names the nodes that still run the previous release.
		for _, j := range order[:step+1] {
			r, err := a.do(ctx, j, http.MethodDelete, fmt.Sprintf("/config/gated/%d", step), nil, 10*time.Second)
			if err != nil || r.status != http.StatusConflict || r.errorCode() != "feature_unavailable" {
				t.Fatalf("gated write on %s while mixed: %v %v", c.Node(j).Name, err, r)
			}
			for _, old := range order[step+1:] {
				if want := c.Node(old).Name + " (version " + previousRelease; !strings.Contains(string(r.body), want) {
					t.Fatalf("refusal does not name %q: %s", want, r)
				}
			}
		}
	}

	// Every node runs the current build: the gated write is accepted once
	// gossip carries the last node's command types.
	err := retry.Until(ctxFor(ctx, 30*time.Second), "the gated write accepted", func() error {
		r, err := a.do(ctx, order[0], http.MethodDelete, "/config/gated/3", nil, 10*time.Second)
		if err != nil || r.status != http.StatusOK {
			return fmt.Errorf("%v %v", err, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < c.N(); i++ {
		r, err := a.do(ctx, i, http.MethodGet, "/metrics", nil, 5*time.Second)
		if err != nil || !strings.Contains(string(r.body), `nexus_feature_available{feature="`+gateFixtureFeature+`"} 1`) {
			t.Fatalf("nexus_feature_available on %s: %v", c.Node(i).Name, err)
		}
	}

	stopLoad()
	load.mu.Lock()
	defer load.mu.Unlock()
	t.Logf("writes by outcome %v; %d acknowledged; %d gateway requests served", load.writeOuts, len(load.acked), load.gwOK.Load())
	if len(load.gwErrors) > 0 {
		t.Errorf("%d gateway errors on nodes that were up, first: %s", len(load.gwErrors), strings.Join(load.gwErrors[:min(5, len(load.gwErrors))], "; "))
	}
	if len(load.acked) == 0 || load.gwOK.Load() == 0 {
		t.Fatalf("the load did nothing: %d writes, %d gateway requests", len(load.acked), load.gwOK.Load())
	}
	for i := 0; i < c.N(); i++ {
		err := retry.Until(ctxFor(ctx, 30*time.Second), "every acknowledged write on "+c.Node(i).Name, func() error {
			entries, err := a.listConfig(ctx, i, "up/")
			if err != nil {
				return err
			}
			got := map[string]string{}
			for _, e := range entries {
				got[e.Key] = canon(e.Value)
			}
			for k, v := range load.acked {
				if got[k] != canon([]byte(v)) {
					return fmt.Errorf("acknowledged %s=%s, found %q", k, v, got[k])
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
