package e2e

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// snapshotState splits a GET /cluster/snapshot body into the index its
// header records, the cluster identity, and the rest of the state encoded
// canonically without the identity (which a restore keeps from the target
// cluster).
func snapshotState(t *testing.T, b []byte) (uint64, *registry.ClusterMeta, []byte) {
	t.Helper()
	codec := command.NewCodec()
	idx, d, err := fsm.DecodeSnapshot(bytes.NewReader(b), codec)
	if err != nil {
		t.Fatalf("not a snapshot: %v", err)
	}
	id := d.Cluster
	d.Cluster = nil
	var buf bytes.Buffer
	if err := codec.EncodeValue(&buf, d); err != nil {
		t.Fatal(err)
	}
	return idx, id, buf.Bytes()
}

func (a *api) getOK(ctx context.Context, t *testing.T, i int, path string) []byte {
	t.Helper()
	r, err := a.do(ctx, i, http.MethodGet, path, nil, 30*time.Second)
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("GET %s on %s: %v %s", path, a.c.Node(i).Name, err, r)
	}
	return r.body
}

// apiViewPaths are the answers that show services, config and routes.
func apiViewPaths() []string {
	return []string{"/services?consistent", "/config?consistent", "/gateway/routes?consistent"}
}

func (a *api) views(ctx context.Context, t *testing.T, i int) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range apiViewPaths() {
		out[p] = string(a.getOK(ctx, t, i, p))
	}
	return out
}

// Save a snapshot of one cluster, restore it on a new one (through a
// follower, with the CLI), and every node of the new cluster holds the
// same state, byte for byte, except the cluster identity, which stays the
// new cluster's.
func TestSnapshotSaveRestoreOnNewCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	file := filepath.Join(dir, "a.snap")

	// --- cluster A: some state, then a snapshot --------------------------
	ca := startCluster(t, apOptions(t, 3))
	aa := newAPI(t, ca)
	leader := mustLeader(t, ctx, ca)
	mustAllReady(t, ctx, ca)
	follower := others(ca, leader)[0]
	writes := []struct {
		method, path, body string
	}{
		{http.MethodPost, "/services/register", `{"name":"web","type":"http","address":"10.0.0.1","port":8080,"tags":["v1"],"metadata":{"zone":"a"}}`},
		{http.MethodPost, "/services/register", `{"name":"web","type":"http","address":"10.0.0.2","port":8080}`},
		{http.MethodPost, "/services/register", `{"name":"db","type":"tcp","address":"10.0.1.1","port":5432,"depends_on":["web"]}`},
		{http.MethodPut, "/config/app/db/pool", `20`},
		{http.MethodPut, "/config/app/name", `{"nested":["x",1,true,null]}`},
		{http.MethodPut, "/config/app/gone", `"soon deleted"`},
		{http.MethodDelete, "/config/app/gone", ``},
		{http.MethodPost, "/gateway/routes", `{"id":"r-web","paths":["/web/"],"service":"web","strip_path":true}`},
	}
	for k, w := range writes {
		i := []int{leader, follower}[k%2]
		var body []byte
		if w.body != "" {
			body = []byte(w.body)
		}
		r, err := aa.do(ctx, i, w.method, w.path, body, 10*time.Second)
		if err != nil || r.status/100 != 2 {
			t.Fatalf("%s %s: %v %s", w.method, w.path, err, r)
		}
	}
	want := aa.views(ctx, t, leader)
	snapA := aa.getOK(ctx, t, follower, "/cluster/snapshot?consistent")
	indexA, idA, stateA := snapshotState(t, snapA)
	if out, err := nexusCLI(ctx, t, ca, leader, "snapshot", "save", file); err != nil {
		t.Fatalf("nexus snapshot save: %v %s", err, out)
	}
	saved, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, s := snapshotState(t, saved); !bytes.Equal(s, stateA) {
		t.Fatalf("the CLI's snapshot (leader) and the follower's ?consistent snapshot differ")
	}
	t.Logf("cluster A: snapshot of %d bytes at index %d", len(saved), indexA)
	ca.Close()

	// --- cluster B: fresh, with a write of its own -----------------------
	cb := startCluster(t, apOptions(t, 3))
	ab := newAPI(t, cb)
	leader = mustLeader(t, ctx, cb)
	mustAllReady(t, ctx, cb)
	follower = others(cb, leader)[0]
	if _, r, err := ab.putConfig(ctx, leader, "b-only", []byte(`1`)); err != nil {
		t.Fatalf("write on B: %v %s", err, r)
	}
	_, idB, _ := snapshotState(t, ab.getOK(ctx, t, leader, "/cluster/snapshot?consistent"))
	if idB == nil || idA == nil || idB.ClusterID == idA.ClusterID {
		t.Fatalf("cluster ids A %+v B %+v", idA, idB)
	}

	// Bad input changes nothing.
	r, err := ab.do(ctx, follower, http.MethodPut, "/cluster/snapshot", []byte("NEXUS-SNAPSHOT-1\ngarbage"), 30*time.Second)
	if err != nil || r.status != http.StatusBadRequest || r.errorCode() != "invalid_snapshot" {
		t.Fatalf("restore of garbage: %v %s", err, r)
	}
	if _, found, err := ab.getConfig(ctx, leader, "b-only"); err != nil || !found {
		t.Fatalf("b-only after a refused restore: %v %v", found, err)
	}

	// Restore through a follower with the CLI.
	// A restore is idempotent, so a client may retry one whose outcome is
	// unknown (a leader change during it: 504) or that found no leader.
	start := time.Now()
	var out string
	for attempt := 1; ; attempt++ {
		out, err = nexusCLI(ctx, t, cb, follower, "--format", "json", "snapshot", "restore", file)
		if err == nil {
			break
		}
		if attempt == 3 || !(strings.Contains(out, "HTTP 503") || strings.Contains(out, "HTTP 504")) {
			t.Fatalf("nexus snapshot restore: %v %s", err, out)
		}
		t.Logf("restore attempt %d: %s; retrying", attempt, out)
		time.Sleep(time.Second)
	}
	t.Logf("restore of %d bytes through a follower took %v: %s", len(saved), time.Since(start).Round(time.Millisecond), out)

	check := func(when string) {
		t.Helper()
		for _, i := range all(cb) {
			got := ab.views(ctx, t, i)
			for _, p := range apiViewPaths() {
				if got[p] != want[p] {
					t.Errorf("%s: GET %s on %s:\n got %s\nwant %s", when, p, cb.Node(i).Name, got[p], want[p])
				}
			}
			idx, id, state := snapshotState(t, ab.getOK(ctx, t, i, "/cluster/snapshot?consistent"))
			if !bytes.Equal(state, stateA) {
				t.Errorf("%s: the state of %s differs from A's snapshot (%d vs %d bytes)", when, cb.Node(i).Name, len(state), len(stateA))
			}
			if id == nil || *id != *idB {
				t.Errorf("%s: %s has cluster identity %+v, want B's %+v", when, cb.Node(i).Name, id, idB)
			}
			if idx <= indexA {
				t.Errorf("%s: %s applied index %d, not above the snapshot's %d", when, cb.Node(i).Name, idx, indexA)
			}
		}
	}
	check("after restore")

	// B still works: a write through a follower (forwarding needs B's
	// secret, kept by the restore) lands above the restored indexes.
	e, r, err := ab.putConfig(ctx, follower, "after-restore", []byte(`"ok"`))
	if err != nil {
		t.Fatalf("write after restore: %v %s", err, r)
	}
	if e.ModifyIndex <= indexA {
		t.Errorf("write after restore at index %d, not above the snapshot's %d", e.ModifyIndex, indexA)
	}
	if err := ab.waitConfigEverywhere(ctxFor(ctx, 20*time.Second), all(cb), e); err != nil {
		t.Fatal(err)
	}
	r, err = ab.do(ctx, leader, http.MethodDelete, "/config/after-restore", nil, 10*time.Second)
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("delete: %v %s", err, r)
	}

	// A restarted node comes back with the restored state (from its own
	// snapshot store and log).
	if _, err := cb.Stop(follower); err != nil {
		t.Fatal(err)
	}
	if err := cb.Restart(follower); err != nil {
		t.Fatal(err)
	}
	if err := cb.WaitReady(ctxFor(ctx, 60*time.Second), follower); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/services?consistent", "/gateway/routes?consistent"} {
		if got := string(ab.getOK(ctx, t, follower, p)); got != want[p] {
			t.Errorf("after restart: GET %s on %s:\n got %s\nwant %s", p, cb.Node(follower).Name, got, want[p])
		}
	}
	if _, found, _ := ab.getConfig(ctx, follower, "b-only"); found {
		t.Errorf("b-only survived the restore on restarted %s", cb.Node(follower).Name)
	}
}

// A 16 MiB state: save it, change it, restore it through a follower into
// the same cluster, and every node holds the saved state again. Logs the
// times (docs: restore cost).
func TestSnapshotRestoreLarge(t *testing.T) {
	const entries, batch, valueSize = 16000, 500, 1000
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := startCluster(t, apOptions(t, 3))
	a := newAPI(t, c)
	leader := mustLeader(t, ctx, c)
	mustAllReady(t, ctx, c)
	follower := others(c, leader)[0]

	value := `"` + strings.Repeat("v", valueSize) + `"`
	start := time.Now()
	for b := 0; b < entries/batch; b++ {
		var sb strings.Builder
		sb.WriteString(`{"entries":[`)
		for k := 0; k < batch; k++ {
			if k > 0 {
				sb.WriteString(",")
			}
			sb.WriteString(`{"key":"big/` + strconv.Itoa(b*batch+k) + `","value":` + value + `}`)
		}
		sb.WriteString(`]}`)
		r, err := a.do(ctx, leader, http.MethodPost, "/config", []byte(sb.String()), 30*time.Second)
		if err != nil || r.status != http.StatusOK {
			t.Fatalf("batch %d: %v %s", b, err, r)
		}
	}
	t.Logf("wrote %d entries of %d bytes in %v", entries, valueSize, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	snap := a.getOK(ctx, t, follower, "/cluster/snapshot?consistent")
	_, _, want := snapshotState(t, snap)
	t.Logf("GET /cluster/snapshot: %d bytes in %v", len(snap), time.Since(start).Round(time.Millisecond))

	if r, err := a.do(ctx, leader, http.MethodDelete, "/config/big/0", nil, 10*time.Second); err != nil || r.status != http.StatusOK {
		t.Fatalf("delete: %v %s", err, r)
	}
	if _, r, err := a.putConfig(ctx, follower, "big/extra", []byte(`1`)); err != nil {
		t.Fatalf("write: %v %s", err, r)
	}

	start = time.Now()
	var r response
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		r, err = a.do(ctx, follower, http.MethodPut, "/cluster/snapshot", snap, 3*time.Minute)
		if err == nil && r.status == http.StatusOK {
			break
		}
		t.Logf("restore attempt %d: %v %s", attempt, err, r)
	}
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("restore: %v %s", err, r)
	}
	took := time.Since(start)
	for _, i := range all(c) {
		_, _, got := snapshotState(t, a.getOK(ctx, t, i, "/cluster/snapshot?consistent"))
		if !bytes.Equal(got, want) {
			t.Errorf("%s: state differs from the snapshot after the restore", c.Node(i).Name)
		}
	}
	t.Logf("PUT /cluster/snapshot of %d bytes through a follower: %v (every node consistent after %v)",
		len(snap), took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}
