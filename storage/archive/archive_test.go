package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/internal/pgtest"
	"github.com/nexus/nexus/internal/retry"
	"github.com/nexus/nexus/registry"
)

// A leader's archiver dies after PostgreSQL committed a batch and before
// its watermark reached Raft; a new leader resumes from the replicated
// watermark, replays that batch harmlessly, and every record ends up in the
// archive exactly once. A window where both believe they lead (a deposed
// leader that has not noticed) changes nothing either.
func TestArchive_ExactlyOnceAcrossLeaderChangeMidBatch(t *testing.T) {
	pg := pgtest.StartT(t, pgtest.Options{})
	url := pg.NewDB(t)
	r := newFakeRaft(t, 2)
	r.write(t, 0, 200)

	var crashed atomic.Bool
	var batches atomic.Int32
	crashedAt := make(chan registry.AuditKey, 1)
	l := newLeadership(t)
	startService(t, r, l, 0, url, func(s *Service) {
		s.afterCommit = func(last registry.AuditKey) bool {
			if batches.Add(1) == 3 {
				crashed.Store(true)
				crashedAt <- last
				l.depose(0) // replica 0 dies before proposing the watermark
				l.lead(1)   // and the cluster elects replica 1
				return false
			}
			return true
		}
	})
	_, reg1 := startService(t, r, l, 1, url, nil)
	l.lead(0)

	var last registry.AuditKey
	select {
	case last = <-crashedAt:
	case <-time.After(time.Minute):
		t.Fatal("the first archiver never reached its third batch")
	}
	if wm := r.state(1).Watermark; !wm.Less(last) {
		t.Fatalf("watermark %v already covers the crashed batch ending at %v", wm, last)
	}
	// Writes go on under the new leader, then both believe they lead for a
	// while: replica 0 archives (and proposes watermarks) beside replica 1
	// until the backlog is empty.
	r.write(t, 200, 200)
	l.lead(0)
	r.write(t, 400, 100)
	retry.Run(t, retry.Cond("both archivers to drain the backlog", func() bool { return r.state(0).Records == 0 }), retry.Timeout(time.Minute))
	l.depose(0)
	r.write(t, 500, 50)

	conn := connect(t, url)
	retry.Run(t, retry.Cond("the backlog to drain", func() bool { return r.state(0).Records == 0 && r.state(1).Records == 0 }), retry.Timeout(time.Minute))
	checkExactlyOnce(t, conn, r)
	if d := counterValue(t, reg1, "nexus_audit_archive_duplicate_records_total", nil); d < 1 {
		t.Errorf("the new leader replayed no record of the crashed batch (duplicates = %v)", d)
	}
	if wm, want := r.state(1).Watermark, r.expected(); wm != want[len(want)-1].Key() {
		t.Errorf("watermark = %v, want the last record %v", wm, want[len(want)-1].Key())
	}
	checkHistory(t, conn, r)
}

// checkHistory compares the live rows of the history tables with the
// replica's catalog.
func checkHistory(t *testing.T, conn *pgx.Conn, r *fakeRaft) {
	t.Helper()
	tx := r.replicas[0].Store().ReadTxn()
	defer tx.Abort()
	want := map[string][]string{}
	for _, svc := range tx.Services(nil) {
		want["services"] = append(want["services"], svc.Name)
		for _, in := range tx.ServiceInstances(nil, svc.Name) {
			want["service_instances"] = append(want["service_instances"], fmt.Sprintf("%s/%s:%d:%s", in.Service, in.ID, in.Port, strings.Join(in.Tags, ",")))
		}
	}
	for _, e := range tx.ConfigList(nil, "") {
		var v any
		if err := json.Unmarshal(e.Value, &v); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(v)
		want["config_entries"] = append(want["config_entries"], e.Key+"="+string(b))
	}
	for _, rt := range tx.Routes(nil) {
		want["gateway_routes"] = append(want["gateway_routes"], rt.ID+">"+rt.Service)
	}
	queries := map[string]string{
		"services":          "SELECT name FROM services WHERE cluster_id = $1 AND deleted_at IS NULL ORDER BY name",
		"service_instances": "SELECT service || '/' || instance_id || ':' || port || ':' || array_to_string(tags, ',') FROM service_instances WHERE cluster_id = $1 AND deleted_at IS NULL ORDER BY service, instance_id",
		"config_entries":    "SELECT key || '=' || value::text FROM config_entries WHERE cluster_id = $1 AND deleted_at IS NULL ORDER BY key",
		"gateway_routes":    "SELECT id || '>' || service FROM gateway_routes WHERE cluster_id = $1 AND deleted_at IS NULL ORDER BY id",
	}
	for table, q := range queries {
		rows, err := conn.Query(context.Background(), q, r.clusterID())
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if table == "config_entries" {
			for i, g := range got {
				k, v, _ := strings.Cut(g, "=")
				var x any
				if err := json.Unmarshal([]byte(v), &x); err != nil {
					t.Fatal(err)
				}
				b, _ := json.Marshal(x)
				got[i] = k + "=" + string(b)
			}
		}
		w := want[table]
		sort.Strings(w)
		sort.Strings(got)
		if strings.Join(got, "|") != strings.Join(w, "|") {
			t.Errorf("%s: history has\n%v\nthe catalog has\n%v", table, got, w)
		}
	}
}

// PostgreSQL is down when the node starts and again while writes go on:
// the agent keeps taking writes, the backlog grows and the lag shows,
// errors are counted, and once PostgreSQL is back the backlog drains to
// exactly the records produced.
func TestArchive_PostgresDownThenBack(t *testing.T) {
	pg := pgtest.StartT(t, pgtest.Options{})
	url := pg.NewDB(t)
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	r := newFakeRaft(t, 1)
	l := newLeadership(t)
	s, reg := startService(t, r, l, 0, url, nil)
	l.lead(0)
	r.write(t, 0, 100)
	retry.Run(t, retry.Cond("connect errors to be counted", func() bool {
		return counterValue(t, reg, "nexus_audit_archive_errors_total", map[string]string{"stage": "connect"}) >= 2
	}), retry.Timeout(30*time.Second))
	if s.Ready() || r.state(0).Records == 0 {
		t.Fatalf("ready=%v records=%d while PostgreSQL is down", s.Ready(), r.state(0).Records)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	retry.Run(t, retry.Cond("the backlog to drain after the first outage", func() bool { return r.state(0).Records == 0 }), retry.Timeout(time.Minute))

	// Second outage, mid-stream.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var n atomic.Int64
	n.Store(100)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r.write(t, int(n.Add(10))-10, 10)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	outage := time.Now()
	time.Sleep(2 * time.Second)
	lag := counterValue(t, reg, "nexus_audit_archive_lag_records", nil)
	lagSec := counterValue(t, reg, "nexus_audit_archive_lag_seconds", nil)
	if lag == 0 || lagSec < 1 {
		t.Errorf("during the outage: lag %v records, %v s; want both above 0 (1 s)", lag, lagSec)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	start := time.Now()
	retry.Run(t, retry.Cond("the backlog to drain after the second outage", func() bool { return r.state(0).Records == 0 }), retry.Timeout(time.Minute))
	t.Logf("outage %v, backlog %v records; drained %v after PostgreSQL came back", start.Sub(outage).Round(time.Millisecond), lag, time.Since(start).Round(time.Millisecond))
	checkExactlyOnce(t, connect(t, url), r)
	if e := counterValue(t, reg, "nexus_audit_archive_errors_total", map[string]string{"stage": "insert"}); e < 1 {
		t.Errorf("no insert error counted during the second outage")
	}
}

// A full backlog refuses user writes while the archive is down; system
// writes pass; after the archive catches up, writes pass again and every
// accepted write is archived.
func TestArchive_BacklogFullRejectsUntilArchived(t *testing.T) {
	pg := pgtest.StartT(t, pgtest.Options{})
	url := pg.NewDB(t)
	r := newFakeRaft(t, 1)
	apply := func(ty command.Type, msg any) *command.Result {
		res, err := r.Apply(context.Background(), r.encode(t, ty, msg))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	l := newLeadership(t)
	s, _ := startService(t, r, l, 0, url, nil)
	l.lead(0)
	retry.Run(t, retry.Cond("the archiver to attach", func() bool { return s.Ready() && r.state(0).Attached }), retry.Timeout(30*time.Second))
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	if res := apply(command.TypeAuditSettings, &command.AuditSettings{MaxRecords: ptr[int64](10)}); res.Err != nil {
		t.Fatal(res.Err)
	}
	accepted, refused := 0, 0
	for i := 0; i < 30; i++ {
		res := apply(command.TypeConfigSet, &command.ConfigSet{Meta: command.Meta{Actor: "u", Node: "n1", Time: time.Now().UnixNano()},
			Entries: []command.ConfigOp{{Key: "k/" + string(rune('a'+i)), Value: []byte(`1`)}}})
		switch {
		case res.Err == nil:
			accepted++
		case res.Err.Code == registry.CodeAuditBacklogFull:
			refused++
		default:
			t.Fatal(res.Err)
		}
	}
	if refused == 0 || accepted == 0 {
		t.Fatalf("accepted %d, refused %d: want both", accepted, refused)
	}
	sys := apply(command.TypeSetStatus, &command.SetStatus{Service: "none", ID: "x", Status: "critical"})
	if sys.Err != nil && sys.Err.Code == registry.CodeAuditBacklogFull {
		t.Fatal("a system write was refused for a full backlog")
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	retry.Run(t, retry.Cond("the backlog to drain", func() bool { return r.state(0).Records == 0 }), retry.Timeout(time.Minute))
	res := apply(command.TypeConfigSet, &command.ConfigSet{Meta: command.Meta{Actor: "u", Node: "n1", Time: time.Now().UnixNano()},
		Entries: []command.ConfigOp{{Key: "k/after", Value: []byte(`1`)}}})
	if res.Err != nil {
		t.Fatalf("after draining: %s", res.Err)
	}
	retry.Run(t, retry.Cond("the backlog to drain", func() bool { return r.state(0).Records == 0 }), retry.Timeout(time.Minute))
	var n int
	if err := connect(t, url).QueryRow(context.Background(),
		"SELECT count(*) FROM audit_events WHERE cluster_id = $1 AND resource_type = 'config'", r.clusterID()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != accepted+1 {
		t.Errorf("archive holds %d config records, %d writes were accepted", n, accepted+1)
	}
}

func ptr[T any](v T) *T { return &v }
