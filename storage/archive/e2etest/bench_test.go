package e2etest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus/nexus/internal/pgtest"
	"github.com/nexus/nexus/internal/proccluster"
)

func envSeconds(name string, def int) time.Duration {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return time.Duration(v) * time.Second
	}
	return time.Duration(def) * time.Second
}

// TestAudit_Bench measures, on 3 real agents with 64 concurrent clients
// writing on every node: write throughput with the archive off and on,
// archive throughput (rows/s into a durable PostgreSQL), and the catch-up
// time after a PostgreSQL outage with writes going on.
//
//	NEXUS_AUDIT_BENCH=1 [NEXUS_AUDIT_BENCH_SECONDS=20] [NEXUS_AUDIT_BENCH_OUTAGE=60] \
//	  go test ./storage/archive/e2etest -run TestAudit_Bench -v -timeout 20m
func TestAudit_Bench(t *testing.T) {
	if os.Getenv("NEXUS_AUDIT_BENCH") == "" {
		t.Skip("set NEXUS_AUDIT_BENCH=1 to measure")
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	dur := envSeconds("NEXUS_AUDIT_BENCH_SECONDS", 20)
	outage := envSeconds("NEXUS_AUDIT_BENCH_OUTAGE", 60)
	pg := pgtest.StartT(t, pgtest.Options{Durable: true})
	for _, archiveOn := range []bool{false, true} {
		name := "archive off"
		var extra []string
		var url string
		if archiveOn {
			name = "archive on"
			url = pg.NewDB(t)
			extra = []string{"--postgres-url", url}
		}
		t.Run(name, func(t *testing.T) {
			c := proccluster.StartT(t, proccluster.Options{Binary: nexusBinary, Nodes: 3,
				RaftPort: 20300, GossipPort: 20301, HTTPPort: 20500, GatewayPort: 20080, ExtraArgs: extra})
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
			defer cancel()
			leader, _, err := c.WaitLeader(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.WaitAllReady(ctx); err != nil {
				t.Fatal(err)
			}
			l := &load{c: c, hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil,
				DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext, MaxIdleConnsPerHost: 64}}}
			var conn *pgx.Conn
			rows0 := 0
			if archiveOn {
				if conn, err = pgx.Connect(ctx, url); err != nil {
					t.Fatal(err)
				}
				defer conn.Close(context.Background())
				waitBacklog(t, l, leader, 0, time.Minute)
				rows0 = countRows(t, conn)
			}
			acked, el := l.run(64, dur)
			t.Logf("%s: %d writes acknowledged in %v = %.0f writes/s (64 clients, all nodes)", name, acked, el.Round(time.Millisecond), float64(acked)/el.Seconds())
			if !archiveOn {
				return
			}
			rows1 := countRows(t, conn)
			lag := backlogOf(t, l, leader)
			t.Logf("archive: %d rows during the run = %.0f rows/s; backlog at the end %d records", rows1-rows0, float64(rows1-rows0)/el.Seconds(), lag)
			start := time.Now()
			waitBacklog(t, l, leader, 0, 5*time.Minute)
			t.Logf("backlog drained %v after the writes stopped", time.Since(start).Round(time.Millisecond))

			// Outage: PostgreSQL stops while 64 clients keep writing.
			if err := pg.Stop(); err != nil {
				t.Fatal(err)
			}
			acked, el = l.run(64, outage)
			peak := backlogOf(t, l, leader)
			t.Logf("outage: %d writes acknowledged in %v with PostgreSQL down (%.0f/s); backlog %d records", acked, el.Round(time.Millisecond), float64(acked)/el.Seconds(), peak)
			if err := pg.Start(); err != nil {
				t.Fatal(err)
			}
			start = time.Now()
			waitBacklog(t, l, leader, 0, 10*time.Minute)
			catchup := time.Since(start)
			t.Logf("catch-up: %d records archived in %v after PostgreSQL came back (%.0f records/s, reconnect backoff included)",
				peak, catchup.Round(time.Millisecond), float64(peak)/catchup.Seconds())
		})
	}
}

type load struct {
	c   *proccluster.Cluster
	hc  *http.Client
	seq atomic.Int64
}

// run writes with n clients for d and returns the acknowledged writes.
func (l *load) run(n int, d time.Duration) (int64, time.Duration) {
	var acked atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for time.Now().Before(deadline) {
				s := l.seq.Add(1)
				node := int(s) % l.c.N()
				req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("http://%s/config/bench/%02d/%d", l.c.HTTPAddr(node), g, s), strings.NewReader(`{"v":1}`))
				resp, err := l.hc.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					acked.Add(1)
				}
			}
		}(g)
	}
	wg.Wait()
	return acked.Load(), time.Since(start)
}

func backlogOf(t *testing.T, l *load, node int) int64 {
	t.Helper()
	resp, err := l.hc.Get("http://" + l.c.HTTPAddr(node) + "/audit/settings")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Backlog struct {
			Records int64 `json:"records"`
		} `json:"backlog"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v.Backlog.Records
}

func waitBacklog(t *testing.T, l *load, node int, want int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for backlogOf(t, l, node) != want {
		if time.Now().After(deadline) {
			t.Fatalf("backlog did not reach %d in %v", want, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func countRows(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM audit_events").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
