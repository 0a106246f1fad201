package fsm_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// restoreSize is the state BenchmarkSnapshotRestore restores: instances
// (ten per service) and config keys of 256 bytes, with a full audit
// backlog. NEXUS_RESTORE_SCALE multiplies it (10 is issue 21's full size:
// 100,000 instances and 1,000,000 keys).
func restoreSize(b *testing.B) (instances, keys int) {
	scale := 1
	if s := os.Getenv("NEXUS_RESTORE_SCALE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("NEXUS_RESTORE_SCALE=%q: want a positive integer", s)
		}
		scale = n
	}
	return 10_000 * scale, 100_000 * scale
}

// snapshotFSM builds an FSM holding the given state.
func snapshotFSM(b *testing.B, instances, keys int) *fsm.FSM {
	f := fsm.New(fsm.Deps{Store: registry.NewStore(), Codec: command.NewCodec()})
	r := &registrations{f: f, codec: command.NewCodec()}
	r.apply(b, 0, instances, 64)
	value := []byte(`"` + string(bytes.Repeat([]byte{'x'}, 254)) + `"`)
	for k := 0; k < keys; {
		var logs []*raft.Log
		for len(logs) < 64 && k < keys {
			var ops []command.ConfigOp
			for ; len(ops) < 16 && k < keys; k++ {
				ops = append(ops, command.ConfigOp{Key: fmt.Sprintf("app/%03d/key-%07d", k%1000, k), Value: value})
			}
			r.idx++
			data, err := r.codec.Encode(command.TypeConfigSet, &command.ConfigSet{
				Meta: command.Meta{Actor: "bench", RequestID: fmt.Sprintf("r%d", r.idx), Node: "n1", Time: int64(r.idx)}, Entries: ops})
			if err != nil {
				b.Fatal(err)
			}
			logs = append(logs, &raft.Log{Index: r.idx, Term: 1, Type: raft.LogCommand, Data: data})
		}
		for _, out := range f.ApplyBatch(logs) {
			if res, ok := out.(*command.Result); !ok || res.Err != nil {
				b.Fatalf("apply: %#v", out)
			}
		}
	}
	return f
}

// BenchmarkSnapshotRestore restores a snapshot of instances, config keys
// and a full audit backlog into a fresh FSM, in each snapshot format: what
// a restarted or joining node does before it serves (issue 21: ready
// within 15 s at full size).
func BenchmarkSnapshotRestore(b *testing.B) {
	instances, keys := restoreSize(b)
	src := snapshotFSM(b, instances, keys)
	for _, format := range []int{fsm.SnapshotFormat1, fsm.SnapshotFormat2} {
		b.Run(fmt.Sprintf("format=%d", format), func(b *testing.B) {
			w := writerOf(src.Store(), format)
			var buf bytes.Buffer
			if err := w.WriteSnapshot(&buf); err != nil {
				b.Fatal(err)
			}
			snap := buf.Bytes()
			b.ResetTimer()
			for range b.N {
				f := fsm.New(fsm.Deps{Store: registry.NewStore(), Codec: command.NewCodec()})
				if err := f.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(snap))/(1<<20), "MiB")
		})
	}
}

// BenchmarkSnapshotWrite encodes the state of BenchmarkSnapshotRestore in
// each format (what every node spends on each snapshot it takes).
func BenchmarkSnapshotWrite(b *testing.B) {
	instances, keys := restoreSize(b)
	src := snapshotFSM(b, instances, keys)
	for _, format := range []int{fsm.SnapshotFormat1, fsm.SnapshotFormat2} {
		b.Run(fmt.Sprintf("format=%d", format), func(b *testing.B) {
			w := writerOf(src.Store(), format)
			var n countWriter
			b.ResetTimer()
			for range b.N {
				if err := w.WriteSnapshot(&n); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/float64(b.N)/(1<<20), "MiB")
		})
	}
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }
