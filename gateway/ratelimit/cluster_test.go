package ratelimit

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/tokenbucket"
)

// bus delivers broadcasts between in-process sharers at once.
type bus struct {
	handlers map[string]func(string, []byte)
	bytes    int
	msgs     int
}

type busEx struct {
	b    *bus
	name string
}

func (e busEx) Broadcast(msg []byte) {
	e.b.bytes += len(msg)
	e.b.msgs++
	for n, h := range e.b.handlers {
		if n != e.name {
			h(e.name, msg)
		}
	}
}
func (e busEx) OnMessage(h func(string, []byte)) { e.b.handlers[e.name] = h }
func (e busEx) Peers() int                       { return len(e.b.handlers) }

func TestAllocate(t *testing.T) {
	cases := []struct {
		rate    float64
		demands []float64
		want    []float64
	}{
		{300, []float64{600, 600, 600}, []float64{100, 100, 100}},
		{300, []float64{600, 60, 0}, []float64{235, 60, 5}},
		{300, []float64{10, 10, 10}, []float64{100, 100, 100}},
		{300, []float64{1000, 0, 0}, []float64{290, 5, 5}},
		{100, []float64{50}, []float64{100}},
	}
	for _, c := range cases {
		got := allocate(c.rate, c.demands)
		sum := 0.0
		for i := range got {
			sum += got[i]
			if math.Abs(got[i]-c.want[i]) > 0.01 {
				t.Errorf("allocate(%v, %v) = %v, want %v", c.rate, c.demands, got, c.want)
			}
		}
		if math.Abs(sum-c.rate) > 1e-6 {
			t.Errorf("allocate(%v, %v) sums to %v", c.rate, c.demands, sum)
		}
	}
}

func TestCodec(t *testing.T) {
	ids := make([]string, 200)
	demand := map[string]float64{}
	for i := range ids {
		ids[i] = fmt.Sprintf("route-with-a-long-id-%03d", i)
		demand[ids[i]] = float64(i) * 1.5
	}
	msgs := encode(42, ids, demand)
	if len(msgs) < 2 {
		t.Fatalf("%d messages for 200 routes, want a split", len(msgs))
	}
	got := map[string]float64{}
	for _, m := range msgs {
		if len(m) > MaxMessage {
			t.Fatalf("message of %d bytes", len(m))
		}
		epoch, d, err := decode(m)
		if err != nil || epoch != 42 {
			t.Fatal(epoch, err)
		}
		for k, v := range d {
			got[k] = v
		}
	}
	for k, v := range demand {
		if got[k] != v {
			t.Fatalf("%s: %v, want %v", k, got[k], v)
		}
	}
	for _, bad := range [][]byte{nil, {9}, {msgVersion}, {msgVersion, 1, 200}, {msgVersion, 1, 2, 'a'}} {
		if _, _, err := decode(bad); err == nil {
			t.Errorf("decode(%v) accepted", bad)
		}
	}
}

// TestClusterShareAccuracy simulates three gateway nodes on a virtual clock:
// one client key hits every node with shifting demand; the limit is 300/s
// for the whole cluster. It reports the admitted rate per interval.
func TestClusterShareAccuracy(t *testing.T) {
	const rate, burst = 300.0, 30
	b := &bus{handlers: map[string]func(string, []byte){}}
	clock := time.Unix(1_000_000, 0) // on an epoch boundary
	type node struct {
		name  string
		l     *tokenbucket.Limiter
		s     *Sharer
		carry float64
	}
	var nodes []*node
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, name := range []string{"n1", "n2", "n3"} {
		n := &node{name: name, l: tokenbucket.New(rate, burst, 0)}
		n.s = NewSharer(busEx{b, name}, name, time.Second, logger)
		n.s.now = func() time.Time { return clock }
		n.s.ex.OnMessage(n.s.receive)
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		n.s.SetLimiters(map[string]*tokenbucket.Limiter{"r": n.l})
	}
	// Demand per node (req/s) in phases of 5 s.
	phases := [][3]float64{
		{600, 100, 0},   // skewed
		{600, 100, 400}, // a third node starts
		{50, 50, 50},    // everybody under the limit
		{2000, 0, 0},    // one node only
		{500, 500, 500}, // even overload
	}
	const stepMs = 1
	var worst float64
	for p, demand := range phases {
		for sec := 0; sec < 5; sec++ {
			admitted := 0
			for ms := 0; ms < 1000; ms += stepMs {
				clock = clock.Add(stepMs * time.Millisecond)
				for i, n := range nodes {
					n.carry += demand[i] * stepMs / 1000
					for ; n.carry >= 1; n.carry-- {
						if n.l.Allow([]byte("client"), clock.UnixNano()).Allowed {
							admitted++
						}
					}
				}
			}
			for _, n := range nodes {
				for _, m := range n.s.Report(clock) {
					n.s.ex.Broadcast(m)
				}
			}
			for _, n := range nodes {
				n.s.Apply(clock, nil)
			}
			offered := demand[0] + demand[1] + demand[2]
			want := math.Min(offered, rate)
			dev := (float64(admitted) - want) / rate
			t.Logf("phase %d second %d: offered %4.0f/s admitted %4d/s (limit %.0f, deviation %+5.1f%%)", p, sec, offered, admitted, rate, dev*100)
			// The first second of a phase runs on the previous demand.
			if sec > 0 {
				worst = math.Max(worst, math.Abs(dev))
				if float64(admitted) > rate*1.1+burst || (offered > rate*1.2 && float64(admitted) < rate*0.85) {
					t.Errorf("phase %d second %d: admitted %d with limit %.0f", p, sec, admitted, rate)
				}
			}
		}
	}
	t.Logf("worst steady-state deviation %.1f%% of the limit; %d messages, %d bytes exchanged", worst*100, b.msgs, b.bytes)
}
