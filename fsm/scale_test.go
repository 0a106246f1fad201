package fsm_test

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/internal/scaletest"
	"github.com/nexus/nexus/registry"
)

// registrations applies registrations as Raft would (one entry each,
// batches of up to 64), numbered from the FSM's last index, ten instances
// per service like nexus-bench scale's.
type registrations struct {
	f     *fsm.FSM
	codec *command.Codec
	idx   uint64
}

func (r *registrations) entry(t testing.TB, i int) *raft.Log {
	r.idx++
	in := registry.Instance{ID: fmt.Sprintf("i-%07d", i), Service: fmt.Sprintf("svc-%05d", i/10), Type: "http",
		Address: "10.0.0.1", Port: 8080, Tags: []string{"blue", "v1"}, Metadata: map[string]string{"zone": "z1"},
		Node: "n1", Status: registry.StatusPassing, Checks: []registry.Check{}, DependsOn: []string{}}
	data, err := r.codec.Encode(command.TypeRegisterInstance, &command.RegisterInstance{
		Meta: command.Meta{Actor: "anonymous", RequestID: fmt.Sprintf("r%d", r.idx), Node: "n1", Time: int64(r.idx)}, Instance: in})
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: r.idx, Term: 1, Type: raft.LogCommand, Data: data}
}

func (r *registrations) apply(t testing.TB, from, n, batch int) {
	for i := from; i < from+n; {
		var logs []*raft.Log
		for ; i < from+n && len(logs) < batch; i++ {
			logs = append(logs, r.entry(t, i))
		}
		for _, out := range r.f.ApplyBatch(logs) {
			if res, ok := out.(*command.Result); !ok || res.Err != nil {
				t.Fatalf("apply: %#v", out)
			}
		}
	}
}

// applyCost returns the bytes one registration's Apply allocates (audit
// record included) in a catalog of n instances.
func applyCost(t *testing.T, n int) uint64 {
	r := &registrations{f: fsm.New(fsm.Deps{Store: registry.NewStore(), Codec: command.NewCodec()}), codec: command.NewCodec()}
	r.apply(t, 0, n, 64)
	const k = 200
	logs := make([]*raft.Log, k)
	for j := range logs {
		logs[j] = r.entry(t, n+j)
	}
	return scaletest.Allocated(func() {
		for _, l := range logs {
			r.f.ApplyBatch([]*raft.Log{l})
		}
	}) / k
}

// TestApplyCostFlat: applying a registration costs the same in a catalog
// of 1,000 instances as in one of 20,000: no write does work that grows
// with the catalog in the state machine (audit records, indexes, counts
// and the store's change feed included). Measured: 27.5 KB and 28.1 KB.
func TestApplyCostFlat(t *testing.T) {
	small, large := scaletest.Sizes(1000, 20000)
	cs, cl := applyCost(t, small), applyCost(t, large)
	t.Logf("bytes per Apply: %d at %d instances, %d at %d (%.2fx)", cs, small, cl, large, float64(cl)/float64(cs))
	if cl > 3*cs/2 {
		t.Fatalf("an Apply costs %.2fx more at %d instances than at %d", float64(cl)/float64(cs), large, small)
	}
}
