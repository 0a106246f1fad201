package workload

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexus/nexus/internal/jepsen/checker"
	"github.com/nexus/nexus/internal/jepsen/client"
	"github.com/nexus/nexus/internal/jepsen/history"
)

// Register treats a few config keys as linearizable registers: consistent
// reads, unconditional writes (PUT /config/{key}) and compare-and-set on
// modify_index (PUT /config/{key}?cas=N or POST /config with cas), with a
// unique value per write. Keys are renewed every KeyLifetime (a new
// "generation"), which keeps each key's history short for porcupine.
type Register struct {
	Keys        int           // keys per generation (default 3)
	KeyLifetime time.Duration // default 20s
	Think       time.Duration // mean think time between ops (default 20ms)

	values atomic.Int64 // last value written

	mu     sync.Mutex
	keys   map[string]bool // every key used
	result *checker.RegisterResult
}

// Name implements Workload.
func (*Register) Name() string { return NameRegister }

func (w *Register) defaults() {
	if w.Keys <= 0 {
		w.Keys = 3
	}
	if w.KeyLifetime <= 0 {
		w.KeyLifetime = 20 * time.Second
	}
	if w.Think <= 0 {
		w.Think = 20 * time.Millisecond
	}
}

func (w *Register) key(rec *history.Recorder, k int) string {
	g := time.Duration(rec.Now()) / w.KeyLifetime
	key := fmt.Sprintf("jepsen/register/g%d-k%d", g, k)
	w.mu.Lock()
	if w.keys == nil {
		w.keys = map[string]bool{}
	}
	w.keys[key] = true
	w.mu.Unlock()
	return key
}

// Run implements Workload.
func (w *Register) Run(ctx context.Context, env *Env) {
	w.defaults()
	runClients(ctx, env, w.client)
}

// client k talks to node k mod N. known holds, per key, the modify_index
// it last observed (0: absent), which its CAS operations expect.
func (w *Register) client(ctx context.Context, env *Env, k int) {
	rng := clientRand(env.Seed, NameRegister, k)
	node := env.Nodes[k%len(env.Nodes)]
	proc := env.Rec.NewProcess()
	known := map[string]uint64{}
	// Operations in flight when the run ends complete (bounded by the
	// client timeout) instead of turning into needless info ops.
	opctx := context.WithoutCancel(ctx)
	for ctx.Err() == nil {
		key := w.key(env.Rec, rng.IntN(w.Keys))
		op := history.Op{Process: proc, Workload: NameRegister, Node: node.Name, Key: key}
		var r client.ConfigResult
		switch x := rng.IntN(4); {
		case x < 2:
			op.F = history.FRead
			op.Invoke = env.Rec.Now()
			r = env.Client.ReadConfig(opctx, node.HTTPAddr, key)
		case x == 2:
			op.F, op.Value = history.FWrite, w.values.Add(1)
			op.Invoke = env.Rec.Now()
			r = env.Client.WriteConfig(opctx, node.HTTPAddr, key, op.Value)
		default:
			expect := known[key]
			op.F, op.Value, op.Expect = history.FCAS, w.values.Add(1), &expect
			op.Invoke = env.Rec.Now()
			r = env.Client.CASConfig(opctx, node.HTTPAddr, key, op.Value, expect, rng.IntN(2) == 0)
		}
		op = recordConfig(env.Rec, op, r)
		if op.Type == history.OK {
			known[key] = op.ModIndex
		}
		if op.Type == history.Info {
			proc = env.Rec.NewProcess() // Jepsen: a process with an open op is retired
		}
		pause(ctx, backoff(rng, op.Type, 2*w.Think))
	}
}

// recordConfig records a config op with its result.
func recordConfig(rec *history.Recorder, op history.Op, r client.ConfigResult) history.Op {
	if r.Type == history.OK {
		op.ModIndex = r.Entry.ModifyIndex
		if op.F == history.FRead && r.Present {
			v, err := r.Entry.IntValue()
			if err != nil {
				r.Type, r.Code, r.Err = history.Fail, client.CodeHTTP, fmt.Sprintf("value %s is not an integer", r.Entry.Value)
			}
			op.Present, op.Read = true, v
		}
		if op.F != history.FRead && r.Entry.Key != "" {
			if v, err := r.Entry.IntValue(); err != nil || v != op.Value {
				op.Error = fmt.Sprintf("acknowledged entry holds %s, not the value written", r.Entry.Value)
			}
		}
	}
	return record(rec, op, r.Result)
}

// Final implements Workload: a consistent read of every key used.
func (w *Register) Final(ctx context.Context, env *Env) error {
	w.mu.Lock()
	keys := make([]string, 0, len(w.keys))
	for k := range w.keys {
		keys = append(keys, k)
	}
	w.mu.Unlock()
	sort.Strings(keys)
	proc := env.Rec.NewProcess()
	for _, key := range keys {
		err := finalLoop(ctx, env, key, func(n Node) history.Op {
			op := history.Op{Process: proc, Workload: NameRegister, F: history.FRead, Node: n.Name, Key: key, Final: true,
				Invoke: env.Rec.Now()}
			return recordConfig(env.Rec, op, env.Client.ReadConfig(ctx, n.HTTPAddr, key))
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Check implements Workload.
func (w *Register) Check(ops []history.Op, in CheckInput) Result {
	res := checker.CheckRegister(ops, in.Timeout)
	w.mu.Lock()
	w.result = res
	w.mu.Unlock()
	return Result{Workload: NameRegister, Valid: res.Valid(), Details: res, Anomaly: res.Anomalies,
		Summary: fmt.Sprintf("linearizable=%s keys=%d ops=%d (info %d) anomalies=%d illegal_keys=%v, checked in %s",
			res.Linearizable, res.Keys, res.Ops, res.Info, len(res.Anomalies), res.IllegalKeys, res.CheckTime)}
}

// WriteArtifacts implements Workload: porcupine's visualization.
func (w *Register) WriteArtifacts(dir string, in CheckInput) error {
	w.mu.Lock()
	res := w.result
	w.mu.Unlock()
	if res == nil || res.Linearizable == checker.LinUnknown {
		return nil
	}
	return res.WriteHTML(filepath.Join(dir, "register.html"), in.Windows)
}
