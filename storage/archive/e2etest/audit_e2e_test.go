// Package e2etest runs the audit archive end to end: three real `nexus
// agent` processes with --postgres-url and a throwaway PostgreSQL.
// `go test -short` skips it; NEXUS_E2E_BINARY uses a prebuilt binary.
package e2etest

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus/nexus/internal/pgtest"
	"github.com/nexus/nexus/internal/proccluster"
)

var (
	nexusBinary string
	buildErr    error
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(func() int {
		if testing.Short() {
			return m.Run()
		}
		if b := os.Getenv("NEXUS_E2E_BINARY"); b != "" {
			nexusBinary = b
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "nexus-audit-e2e-")
		if err != nil {
			buildErr = err
			return m.Run()
		}
		defer os.RemoveAll(dir)
		nexusBinary = filepath.Join(dir, "nexus")
		if out, err := exec.Command("go", "build", "-o", nexusBinary, "github.com/nexus/nexus/cmd/nexus").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
		return m.Run()
	}())
}

// write is one attempted write and what its client saw.
type write struct {
	key, requestID string
	node           int
	acked          bool
}

// Three agents archive to one PostgreSQL; clients write on every node while
// the leader is killed with SIGKILL mid-stream. Afterwards the archive holds
// exactly one row per acknowledged write, none for a write that surely
// failed, at most one for a write whose outcome was unknown, and the
// backlog is empty on the survivors.
func TestAudit_ThreeNodesLeaderKilledMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: skipped in -short mode")
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	pg := pgtest.StartT(t, pgtest.Options{})
	url := pg.NewDB(t)
	c := proccluster.StartT(t, proccluster.Options{
		Binary: nexusBinary, Nodes: 3,
		RaftPort: 20300, GossipPort: 20301, HTTPPort: 20500, GatewayPort: 20080,
		ExtraArgs: []string{"--postgres-url", url},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	leader, leaderName, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitAllReady(ctx); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: nil,
		DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext, MaxIdleConnsPerHost: 16}}
	defer hc.CloseIdleConnections()

	const workers, total = 16, 1000
	var (
		mu      sync.Mutex
		writes  []write
		next    atomic.Int64
		acked   atomic.Int64
		killed  atomic.Bool
		wg      sync.WaitGroup
		killErr error
	)
	dead := func(i int) bool { return killed.Load() && i == leader }
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for {
				seq := int(next.Add(1))
				if seq > total {
					return
				}
				node := seq % 3
				for dead(node) {
					node = (node + 1) % 3
				}
				w := write{key: fmt.Sprintf("e2e/w%02d/%04d", g, seq), requestID: fmt.Sprintf("e2e-%04d", seq), node: node}
				// 503 means surely not applied: the client retries the same
				// write (on another node once the leader is dead) until a
				// leader answers. Anything else is final.
				for attempt := 0; attempt < 100; attempt++ {
					req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+c.HTTPAddr(w.node)+"/config/"+w.key, strings.NewReader(fmt.Sprint(seq)))
					req.Header.Set("X-Request-ID", w.requestID)
					resp, err := hc.Do(req)
					if err != nil {
						if dead(w.node) && strings.Contains(err.Error(), "connection refused") {
							w.node = (w.node + 1) % 3 // never sent: safe to send elsewhere
							continue
						}
						break
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusServiceUnavailable {
						time.Sleep(100 * time.Millisecond)
						if dead(w.node) {
							w.node = (w.node + 1) % 3
						}
						continue
					}
					w.acked = resp.StatusCode == http.StatusOK
					break
				}
				if w.acked && acked.Add(1) == 300 {
					// Kill the leader with SIGKILL mid-stream.
					killed.Store(true)
					mu.Lock()
					killErr = c.Kill(leader)
					mu.Unlock()
					t.Logf("killed leader %s after 300 acknowledged writes", leaderName)
				}
				mu.Lock()
				writes = append(writes, w)
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	if killErr != nil {
		t.Fatal(killErr)
	}
	if !killed.Load() {
		t.Fatalf("only %d writes were acknowledged: the leader was never killed", acked.Load())
	}
	t.Logf("%d writes, %d acknowledged", len(writes), acked.Load())
	if acked.Load() < total/2 {
		t.Fatalf("only %d of %d writes were acknowledged", acked.Load(), total)
	}

	// The survivors drain the backlog into PostgreSQL.
	newLeader, _, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var backlog struct {
		Backlog struct {
			Records int64 `json:"records"`
		} `json:"backlog"`
		Watermark struct {
			RaftIndex uint64 `json:"raft_index"`
		} `json:"watermark"`
	}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := hc.Get("http://" + c.HTTPAddr(newLeader) + "/audit/settings?consistent")
		if err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&backlog)
			resp.Body.Close()
			if resp.StatusCode == 200 && backlog.Backlog.Records == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlog not drained: %+v (%v)", backlog, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT resource, request_id, raft_index, position FROM audit_events
		WHERE resource_type = 'config' AND resource LIKE 'e2e/%' ORDER BY raft_index, position`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		rid   string
		index int64
	}
	archived := map[string][]row{}
	var lastIndex int64
	for rows.Next() {
		var res, rid string
		var idx int64
		var pos int32
		if err := rows.Scan(&res, &rid, &idx, &pos); err != nil {
			t.Fatal(err)
		}
		if idx <= lastIndex {
			t.Errorf("rows not in Raft order: %d after %d", idx, lastIndex)
		}
		lastIndex = idx
		archived[res] = append(archived[res], row{rid, idx})
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var missing, doubled, unknownArchived int
	for _, w := range writes {
		got := archived[w.key]
		switch {
		case len(got) > 1:
			doubled++
			t.Errorf("write %s archived %d times", w.key, len(got))
		case w.acked && len(got) == 0:
			missing++
			t.Errorf("acknowledged write %s (request %s, node %d) is not in the archive", w.key, w.requestID, w.node)
		case len(got) == 1 && got[0].rid != w.requestID:
			t.Errorf("write %s archived with request id %q, want %q", w.key, got[0].rid, w.requestID)
		case !w.acked && len(got) == 1:
			unknownArchived++
		}
	}
	t.Logf("archive: %d e2e rows; %d acknowledged writes missing, %d doubled; %d unacknowledged writes applied anyway (outcome unknown to the client)",
		len(archived), missing, doubled, unknownArchived)
	var dupes int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT request_id FROM audit_events WHERE request_id LIKE 'e2e-%'
		GROUP BY request_id HAVING count(*) > 1) d`).Scan(&dupes); err != nil || dupes != 0 {
		t.Errorf("%d request ids archived more than once (%v)", dupes, err)
	}
}
