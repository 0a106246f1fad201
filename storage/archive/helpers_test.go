package archive

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// fakeRaft is a log replicated to several FSMs at once: Apply appends the
// command at the next index on every replica and answers the leader's
// result.
type fakeRaft struct {
	mu       sync.Mutex
	codec    *command.Codec
	replicas []*fsm.FSM
	index    uint64
	// ref sees only user commands and never a watermark: its ring (never
	// attached, default bound) holds every record ever produced.
	ref *fsm.FSM
}

func newFakeRaft(t *testing.T, n int) *fakeRaft {
	t.Helper()
	r := &fakeRaft{codec: command.NewCodec()}
	for i := 0; i < n; i++ {
		r.replicas = append(r.replicas, fsm.New(fsm.Deps{Store: registry.NewStore(), Codec: r.codec}))
	}
	r.ref = fsm.New(fsm.Deps{Store: registry.NewStore(), Codec: r.codec})
	if _, err := r.Apply(context.Background(), r.encode(t, command.TypeClusterInit, &command.ClusterInit{
		Meta: command.Meta{Actor: command.ActorSystem, Node: "n1", Time: 1}, ClusterID: "cluster-" + strings.ToLower(t.Name()), Secret: "s"})); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *fakeRaft) encode(t testing.TB, ty command.Type, msg any) []byte {
	t.Helper()
	b, err := r.codec.Encode(ty, msg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (r *fakeRaft) Apply(_ context.Context, cmd []byte) (*command.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.index++
	l := &raft.Log{Index: r.index, Term: 1, Type: raft.LogCommand, Data: cmd}
	var out *command.Result
	for i, f := range r.replicas {
		res := f.Apply(l).(*command.Result)
		if i == 0 {
			out = res
		}
	}
	if ty, _, _, _ := command.Header(cmd); ty != command.TypeAuditWatermark && ty != command.TypeAuditSettings {
		r.ref.Apply(l)
	}
	return out, nil
}

// leadership runs the archiver duty of the replicas that believe they
// lead, as the cluster's leadership loop does: lead starts a replica's
// Run, depose cancels it (without waiting: a duty may depose itself).
type leadership struct {
	mu      sync.Mutex
	svcs    map[int]*Service
	cancels map[int]context.CancelFunc
	wg      sync.WaitGroup
}

func newLeadership(t *testing.T) *leadership {
	l := &leadership{svcs: map[int]*Service{}, cancels: map[int]context.CancelFunc{}}
	t.Cleanup(l.stop) // before the services' Stop (cleanups run last in, first out)
	return l
}

func (l *leadership) add(i int, s *Service) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.svcs[i] = s
}

// lead starts replica i's duty unless it runs.
func (l *leadership) lead(i int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.cancels[i]; ok {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancels[i] = cancel
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.svcs[i].Run(ctx)
	}()
}

// depose cancels replica i's duty.
func (l *leadership) depose(i int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cancel, ok := l.cancels[i]; ok {
		cancel()
		delete(l.cancels, i)
	}
}

// stop cancels every duty and waits for them.
func (l *leadership) stop() {
	l.mu.Lock()
	for i, cancel := range l.cancels {
		cancel()
		delete(l.cancels, i)
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// write proposes n user writes of mixed kinds from several "nodes"; each
// produces one or more audit records.
func (r *fakeRaft) write(t testing.TB, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		m := command.Meta{Actor: fmt.Sprintf("user-%d", i%3), RequestID: fmt.Sprintf("req-%d", i), Node: fmt.Sprintf("n%d", i%3+1),
			Time: time.Now().UnixNano()}
		var b []byte
		switch i % 5 {
		case 0:
			b = r.encode(t, command.TypeRegisterInstance, &command.RegisterInstance{Meta: m, Instance: registry.Instance{
				ID: fmt.Sprintf("i-%d", i%40), Service: fmt.Sprintf("svc-%d", i%7), Type: "http", Address: "10.0.0.1", Port: 1000 + i,
				Tags: []string{"v1", fmt.Sprintf("t%d", i%4)}, Metadata: map[string]string{"zone": fmt.Sprintf("z%d", i%2), "i": fmt.Sprint(i)},
				Node: m.Node, Status: registry.StatusPassing}})
		case 1:
			b = r.encode(t, command.TypeConfigSet, &command.ConfigSet{Meta: m, Batch: true, Entries: []command.ConfigOp{
				{Key: fmt.Sprintf("app/%d", i%30), Value: []byte(fmt.Sprintf(`{"n":%d}`, i))},
				{Key: fmt.Sprintf("app/x%d", i%11), Value: []byte(`"x"`)}}})
		case 2:
			b = r.encode(t, command.TypeConfigDelete, &command.ConfigDelete{Meta: m, Key: fmt.Sprintf("app/%d", (i+1)%30)})
		case 3:
			rt, e := registry.NormalizeRoute(registry.Route{ID: fmt.Sprintf("r-%d", i%9), Service: fmt.Sprintf("svc-%d", i%7), Paths: []string{"/p/"}})
			if e != nil {
				t.Fatal(e)
			}
			b = r.encode(t, command.TypeRouteUpsert, &command.RouteUpsert{Meta: m, Route: rt})
		case 4:
			if i%10 == 4 {
				b = r.encode(t, command.TypeDeregisterService, &command.DeregisterService{Meta: m, Service: fmt.Sprintf("svc-%d", i%7)})
			} else {
				b = r.encode(t, command.TypeDeregisterInstance, &command.DeregisterInstance{Meta: m, Service: fmt.Sprintf("svc-%d", i%7), ID: fmt.Sprintf("i-%d", (i+1)%40)})
			}
		}
		if _, err := r.Apply(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}

// expected returns every record produced so far (the reference ring).
func (r *fakeRaft) expected() []registry.AuditRecord {
	tx := r.ref.Store().ReadTxn()
	defer tx.Abort()
	return tx.AuditBacklog(nil, registry.AuditKey{}, 1<<30)
}

func (r *fakeRaft) state(i int) registry.AuditState {
	tx := r.replicas[i].Store().ReadTxn()
	defer tx.Abort()
	return tx.AuditState(nil)
}

func (r *fakeRaft) clusterID() string {
	tx := r.replicas[0].Store().ReadTxn()
	defer tx.Abort()
	return tx.ClusterMeta().ClusterID
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startService runs an archive service on replica i; its leader duty runs
// once l.lead(i) says so.
func startService(t *testing.T, r *fakeRaft, l *leadership, i int, url string, mod func(*Service)) (*Service, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := New(Config{URL: url, BatchSize: 50, Poll: 20 * time.Millisecond, BackoffMin: 20 * time.Millisecond, BackoffMax: 300 * time.Millisecond},
		Deps{Store: r.replicas[i].Store, Apply: r.Apply, Codec: r.codec, Node: fmt.Sprintf("n%d", i+1),
			Logger: testLogger(t).With("replica", i), Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if mod != nil {
		mod(s)
	}
	s.Start()
	t.Cleanup(s.Stop)
	l.add(i, s)
	return s, reg
}

func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// archivedKeys returns every (raft_index, position) of the cluster in the
// archive, in order.
func archivedKeys(t testing.TB, conn *pgx.Conn, clusterID string) []registry.AuditKey {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT raft_index, position FROM audit_events WHERE cluster_id = $1 ORDER BY raft_index, position", clusterID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []registry.AuditKey
	for rows.Next() {
		var i int64
		var p int32
		if err := rows.Scan(&i, &p); err != nil {
			t.Fatal(err)
		}
		out = append(out, registry.AuditKey{Index: uint64(i), Position: uint32(p)})
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkExactlyOnce compares the archive with every record produced.
func checkExactlyOnce(t testing.TB, conn *pgx.Conn, r *fakeRaft) {
	t.Helper()
	want := r.expected()
	got := archivedKeys(t, conn, r.clusterID())
	if len(got) != len(want) {
		t.Fatalf("archive holds %d records, %d were produced", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i].Key() {
			t.Fatalf("archive record %d is %v, want %v", i, got[i], want[i].Key())
		}
	}
}

func counterValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matchLabels(m, labels) {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				}
			}
		}
	}
	return 0
}

func matchLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}
