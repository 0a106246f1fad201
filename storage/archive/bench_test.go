package archive

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/pgtest"
	"github.com/nexus/nexus/internal/retry"
	"github.com/nexus/nexus/registry"
)

// TestArchiveThroughput measures PGStore.Archive alone: records/s into a
// durable (fsync on) PostgreSQL, batches of 1000 config records.
// NEXUS_AUDIT_BENCH=1 go test ./storage/archive -run TestArchiveThroughput -v
func TestArchiveThroughput(t *testing.T) {
	if os.Getenv("NEXUS_AUDIT_BENCH") == "" {
		t.Skip("set NEXUS_AUDIT_BENCH=1 to measure")
	}
	pg := pgtest.StartT(t, pgtest.Options{Durable: true})
	url := pg.NewDB(t)
	r := newFakeRaft(t, 1)
	s, _ := startService(t, r, newLeadership(t), 0, url, nil)
	retry.Run(t, retry.Cond("migrations", s.Ready), retry.Timeout(time.Minute))
	s.Stop() // measure the store alone, on a pool of its own
	pc, err := ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	pool := NewPool(pc)
	defer pool.Close()
	store := NewPGStore(pool)
	for _, batch := range []int{100, 1000} {
		const total = 50_000
		recs := make([]registry.AuditRecord, total)
		after := []byte(`{"id":"web-1","service":"web","type":"http","address":"10.0.0.1","port":9001,"tags":["v1"],"metadata":{"zone":"a"},"node":"n1","status":"passing","checks":[],"depends_on":[],"create_index":10,"modify_index":12}`)
		base := uint64(batch) * 1_000_000
		for i := range recs {
			recs[i] = registry.AuditRecord{Index: base + uint64(i), Time: time.Now().UnixNano(), Actor: "anonymous", Action: "register",
				ResourceType: "instance", Resource: fmt.Sprintf("web/web-%d", i%500), Node: "n1", RequestID: "r", After: after}
		}
		start := time.Now()
		for i := 0; i < total; i += batch {
			if _, err := store.Archive(context.Background(), "bench", recs[i:min(i+batch, total)]); err != nil {
				t.Fatal(err)
			}
		}
		el := time.Since(start)
		t.Logf("batch %d: %d records in %v = %.0f records/s", batch, total, el.Round(time.Millisecond), float64(total)/el.Seconds())
	}
}
