package fsm_test

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// BenchmarkApplyConfigSet applies single-key config writes (256-byte values,
// 4096 keys, as nexus-bench raft writes them) in batches of the given size
// to an FSM whose audit backlog is already full (registry.DefaultAuditMaxRecords,
// no archive): every write then adds one audit record and evicts one, the
// steady state of a cluster without PostgreSQL.
func BenchmarkApplyConfigSet(b *testing.B) {
	for _, batch := range []int{1, 16} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			f := fsm.New(fsm.Deps{Store: registry.NewStore(), Codec: command.NewCodec()})
			codec := command.NewCodec()
			value := []byte(`"` + string(make([]byte, 254)) + `"`)
			for i := range value[1 : len(value)-1] {
				value[1+i] = 'x'
			}
			idx := uint64(0)
			entry := func() *raft.Log {
				idx++
				data, err := codec.Encode(command.TypeConfigSet, &command.ConfigSet{
					Meta:    command.Meta{Actor: "bench", RequestID: fmt.Sprintf("r%d", idx), Node: "n1", Time: int64(idx)},
					Entries: []command.ConfigOp{{Key: fmt.Sprintf("bench/k%04d", idx%4096), Value: value}},
				})
				if err != nil {
					b.Fatal(err)
				}
				return &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data}
			}
			logs := make([]*raft.Log, 0, 256)
			for idx < registry.DefaultAuditMaxRecords+1000 {
				logs = logs[:0]
				for range 256 {
					logs = append(logs, entry())
				}
				f.ApplyBatch(logs)
			}
			pre := make([][]*raft.Log, 0, b.N/batch+1)
			for n := 0; n < b.N; n += batch {
				var l []*raft.Log
				for range batch {
					l = append(l, entry())
				}
				pre = append(pre, l)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for _, l := range pre {
				for _, r := range f.ApplyBatch(l) {
					if res, ok := r.(*command.Result); !ok || res.Err != nil {
						b.Fatalf("apply: %#v", r)
					}
				}
			}
		})
	}
}

// BenchmarkApplyRegister applies registrations as nexus-bench scale sends
// them (a new instance of one of 1,000 services, two tags, one metadata
// key) in batches of 16, on an FSM already holding 20,000 instances and a
// full audit backlog.
func BenchmarkApplyRegister(b *testing.B) {
	f := fsm.New(fsm.Deps{Store: registry.NewStore(), Codec: command.NewCodec()})
	codec := command.NewCodec()
	idx := uint64(0)
	entry := func() *raft.Log {
		idx++
		data, err := codec.Encode(command.TypeRegisterInstance, &command.RegisterInstance{
			Meta: command.Meta{Actor: "bench", RequestID: fmt.Sprintf("r%d", idx), Node: "n1", Time: int64(idx)},
			Instance: registry.Instance{ID: fmt.Sprintf("i-%d", idx), Service: fmt.Sprintf("svc-%d", idx%1000), Type: "http",
				Address: "10.0.0.1", Port: 8080, Tags: []string{"a", "b"}, Metadata: map[string]string{"k": "v"}, Status: "passing"},
		})
		if err != nil {
			b.Fatal(err)
		}
		return &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data}
	}
	batchOf := func(n int) []*raft.Log {
		l := make([]*raft.Log, 0, n)
		for range n {
			l = append(l, entry())
		}
		return l
	}
	for idx < 20000 {
		f.ApplyBatch(batchOf(256))
	}
	const batch = 16
	pre := make([][]*raft.Log, 0, b.N/batch+1)
	for n := 0; n < b.N; n += batch {
		pre = append(pre, batchOf(batch))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, l := range pre {
		for _, r := range f.ApplyBatch(l) {
			if res, ok := r.(*command.Result); !ok || res.Err != nil {
				b.Fatalf("apply: %#v", r)
			}
		}
	}
}
