package workload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexus/nexus/internal/jepsen/checker"
	"github.com/nexus/nexus/internal/jepsen/history"
)

// Set registers and deregisters service instances with unique ids
// ("e<N>"), with consistent reads of the whole service now and then, and a
// final consistent read after every fault healed. The service is renewed
// every Lifetime (a new generation), which keeps reads small.
type Set struct {
	Lifetime    time.Duration // default 30s
	Think       time.Duration // mean think time (default 20ms)
	ReadRatio   float64       // share of reads (default 0.05)
	RemoveRatio float64       // share of removes (default 0.3)

	elems atomic.Int64

	mu       sync.Mutex
	services map[string]bool
	pool     []poolElem // acknowledged adds not yet removed
	result   *checker.SetResult
}

type poolElem struct {
	id      int64
	service string
}

// Name implements Workload.
func (*Set) Name() string { return NameSet }

func (w *Set) defaults() {
	if w.Lifetime <= 0 {
		w.Lifetime = 15 * time.Second
	}
	if w.Think <= 0 {
		w.Think = 20 * time.Millisecond
	}
	if w.ReadRatio <= 0 {
		w.ReadRatio = 0.05
	}
	if w.RemoveRatio <= 0 {
		w.RemoveRatio = 0.3
	}
}

func (w *Set) service(rec *history.Recorder) string {
	g := time.Duration(rec.Now()) / w.Lifetime
	s := "jepsen-set-g" + strconv.Itoa(int(g))
	w.mu.Lock()
	if w.services == nil {
		w.services = map[string]bool{}
	}
	w.services[s] = true
	w.mu.Unlock()
	return s
}

// ElementID is the instance id of element e.
func ElementID(e int64) string { return "e" + strconv.FormatInt(e, 10) }

// ParseElementID is the inverse of ElementID; -1 for anything else.
func ParseElementID(id string) int64 {
	n, err := strconv.ParseInt(strings.TrimPrefix(id, "e"), 10, 64)
	if err != nil || !strings.HasPrefix(id, "e") || n <= 0 {
		return -1
	}
	return n
}

// Run implements Workload.
func (w *Set) Run(ctx context.Context, env *Env) {
	w.defaults()
	runClients(ctx, env, w.client)
}

func (w *Set) takeFromPool(rng *rand.Rand) (poolElem, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pool) == 0 {
		return poolElem{}, false
	}
	k := rng.IntN(len(w.pool))
	e := w.pool[k]
	w.pool[k] = w.pool[len(w.pool)-1]
	w.pool = w.pool[:len(w.pool)-1]
	return e, true
}

func (w *Set) client(ctx context.Context, env *Env, k int) {
	rng := clientRand(env.Seed, NameSet, k)
	node := env.Nodes[k%len(env.Nodes)]
	proc := env.Rec.NewProcess()
	opctx := context.WithoutCancel(ctx)
	for ctx.Err() == nil {
		op := history.Op{Process: proc, Workload: NameSet, Node: node.Name}
		x := rng.Float64()
		switch {
		case x < w.ReadRatio:
			op = w.read(opctx, env, node, op, w.service(env.Rec))
		case x < w.ReadRatio+w.RemoveRatio:
			e, ok := w.takeFromPool(rng)
			if !ok {
				continue
			}
			op.F, op.Key, op.Value = history.FRemove, e.service, e.id
			op.Invoke = env.Rec.Now()
			op = record(env.Rec, op, env.Client.DeregisterInstance(opctx, node.HTTPAddr, e.service, ElementID(e.id)))
		default:
			op.F, op.Key, op.Value = history.FAdd, w.service(env.Rec), w.elems.Add(1)
			op.Invoke = env.Rec.Now()
			op = record(env.Rec, op, env.Client.RegisterInstance(opctx, node.HTTPAddr, op.Key, ElementID(op.Value), int(op.Value%60000)+1))
			if op.Type == history.OK {
				w.mu.Lock()
				w.pool = append(w.pool, poolElem{id: op.Value, service: op.Key})
				w.mu.Unlock()
			}
		}
		if op.Type == history.Info {
			proc = env.Rec.NewProcess()
		}
		pause(ctx, backoff(rng, op.Type, 2*w.Think))
	}
}

// read records a consistent read of service through node.
func (w *Set) read(ctx context.Context, env *Env, node Node, op history.Op, service string) history.Op {
	op.F, op.Key, op.Node = history.FSetRead, service, node.Name
	op.Invoke = env.Rec.Now()
	r := env.Client.ReadService(ctx, node.HTTPAddr, service)
	if r.Type == history.OK {
		op.Elements = make([]int64, 0, len(r.IDs))
		for _, id := range r.IDs {
			op.Elements = append(op.Elements, ParseElementID(id))
		}
		sort.Slice(op.Elements, func(i, j int) bool { return op.Elements[i] < op.Elements[j] })
	}
	return record(env.Rec, op, r.Result)
}

// Final implements Workload: a consistent read of every service used.
func (w *Set) Final(ctx context.Context, env *Env) error {
	w.mu.Lock()
	services := make([]string, 0, len(w.services))
	for s := range w.services {
		services = append(services, s)
	}
	w.mu.Unlock()
	sort.Strings(services)
	proc := env.Rec.NewProcess()
	for _, s := range services {
		err := finalLoop(ctx, env, s, func(n Node) history.Op {
			return w.read(ctx, env, n, history.Op{Process: proc, Workload: NameSet, Final: true}, s)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Check implements Workload.
func (w *Set) Check(ops []history.Op, in CheckInput) Result {
	res := checker.CheckSet(ops, in.Removals)
	w.mu.Lock()
	w.result = res
	w.mu.Unlock()
	return Result{Workload: NameSet, Valid: res.Valid, Details: res, Anomaly: res.Anomalies,
		Summary: fmt.Sprintf("attempted=%d acknowledged=%d removed=%d final=%d lost=%d unexpected=%d resurrected=%d anomalies=%v",
			res.Attempted, res.Acknowledged, res.Removed, res.FinalSize, len(res.Lost), len(res.Unexpected), len(res.Resurrected), res.Counts)}
}

// WriteArtifacts implements Workload (nothing beyond summary.json).
func (w *Set) WriteArtifacts(string, CheckInput) error { return nil }
