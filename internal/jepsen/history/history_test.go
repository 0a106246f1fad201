package history

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

func TestRecorderRoundTrip(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	r := NewRecorder(time.Now(), &buf)
	var wg sync.WaitGroup
	for k := 0; k < 8; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := r.NewProcess()
			for i := 0; i < 50; i++ {
				exp := uint64(i)
				r.Add(Op{Process: p, Workload: "register", F: FCAS, Type: OK, Invoke: r.Now(), Complete: r.Now(), Key: "k", Value: int64(i), Expect: &exp})
			}
		}()
	}
	wg.Wait()
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	ops, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	mem := r.Ops()
	if len(ops) != 400 || len(mem) != 400 {
		t.Fatalf("%d ops read, %d in memory", len(ops), len(mem))
	}
	for i, op := range ops {
		if op.Index != i || op.Expect == nil || *op.Expect != *mem[i].Expect || op.Process != mem[i].Process {
			t.Fatalf("op %d: %+v vs %+v", i, op, mem[i])
		}
	}
	if got := Filter(ops, "set"); len(got) != 0 {
		t.Fatalf("Filter: %d", len(got))
	}
}
