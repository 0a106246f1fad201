package cluster

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/internal/metrictest"
	"github.com/nexus/nexus/registry"
)

// TestResolveLost: a write in flight when its leader lost leadership is
// answered by what the next leader did with its entry: its result when the
// entry committed, ErrNoLeader (sent again) when another entry took its
// index, and outcome unknown only when neither can be known.
func TestResolveLost(t *testing.T) {
	codec := command.NewCodec()
	set := func(key string) []byte {
		b, err := codec.Encode(command.TypeConfigSet, &command.ConfigSet{
			Meta:    command.Meta{Actor: "test", RequestID: "r-" + key, Node: "n1", Time: 1},
			Entries: []command.ConfigOp{{Key: key, Value: []byte(`"v"`)}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mine, theirs := set("mine"), set("theirs")
	const idx = 5
	type step struct {
		// before: the entry at idx in this node's log when leadership is
		// lost (nil: none); after: the one the next leader commits there
		// (nil: no leader commits past idx before the deadline).
		before, after         []byte
		beforeTerm, afterTerm uint64
		forget                bool // the result is no longer kept
	}
	for _, tc := range []struct {
		name    string
		s       step
		outcome string
		wantErr error
	}{
		{"committed by the next leader", step{before: mine, beforeTerm: 2, after: mine, afterTerm: 2}, lostApplied, nil},
		{"replaced before it could be read back", step{before: theirs, beforeTerm: 3}, lostNotApplied, ErrNoLeader},
		{"replaced after", step{before: mine, beforeTerm: 2, after: theirs, afterTerm: 3}, lostNotApplied, ErrNoLeader},
		{"same bytes, another term", step{before: mine, beforeTerm: 2, after: mine, afterTerm: 3}, lostNotApplied, ErrNoLeader},
		{"truncated at once, then committed", step{after: mine, afterTerm: 2}, lostApplied, nil},
		{"truncated at once, then replaced", step{after: theirs, afterTerm: 3}, lostNotApplied, ErrNoLeader},
		{"no leader commits in time", step{before: mine, beforeTerm: 2}, lostUnknown, ErrOutcomeUnknown},
		{"committed, result forgotten", step{before: mine, beforeTerm: 2, after: mine, afterTerm: 2, forget: true}, lostUnknown, ErrOutcomeUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := raft.NewInmemStore()
			f := fsm.New(fsm.Deps{Store: registry.NewStore(), Codec: codec})
			// Entries 1..idx-1 are committed and applied everywhere.
			var prefix []*raft.Log
			for i := uint64(1); i < idx; i++ {
				prefix = append(prefix, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: set("p" + string(rune('a'+i)))})
			}
			if err := logs.StoreLogs(prefix); err != nil {
				t.Fatal(err)
			}
			f.ApplyBatch(prefix)
			if tc.s.before != nil {
				if err := logs.StoreLog(&raft.Log{Index: idx, Term: tc.s.beforeTerm, Type: raft.LogCommand, Data: tc.s.before}); err != nil {
					t.Fatal(err)
				}
			}
			n := &Node{cfg: Config{FSM: f}, logs: logs, logger: slog.New(slog.DiscardHandler)}
			n.m = newMetrics(prometheus.NewRegistry(), n)
			reg := prometheus.NewRegistry() // the counter alone: the rest needs gossip
			reg.MustRegister(n.m.leadershipLost)

			type answer struct {
				res *command.Result
				err error
			}
			done := make(chan answer, 1)
			wait := 200 * time.Millisecond
			if tc.s.after != nil {
				wait = 30 * time.Second
			}
			lost := n.readLost(idx, mine) // at once, as applyLocal does
			go func() {
				res, err := n.settleLost(context.Background(), lost, time.Now().Add(wait))
				done <- answer{res, err}
			}()
			if tc.s.after != nil {
				// The next leader's entry replaces this node's and commits.
				if err := logs.DeleteRange(idx, idx); err != nil {
					t.Fatal(err)
				}
				next := &raft.Log{Index: idx, Term: tc.s.afterTerm, Type: raft.LogCommand, Data: tc.s.after}
				if err := logs.StoreLog(next); err != nil {
					t.Fatal(err)
				}
				batch := []*raft.Log{next}
				if tc.s.forget {
					// As many entries applied since as the FSM keeps results of.
					for i := uint64(idx + 1); i <= idx+4096; i++ {
						batch = append(batch, &raft.Log{Index: i, Term: tc.s.afterTerm, Type: raft.LogCommand, Data: set("later")})
					}
				}
				f.ApplyBatch(batch)
			}
			a := <-done
			if tc.wantErr == nil {
				if a.err != nil {
					t.Fatalf("resolveLost: %v", a.err)
				}
				if a.res == nil || a.res.Index != idx || a.res.Err != nil {
					t.Fatalf("result %#v, want the applied entry's", a.res)
				}
				if _, ok := a.res.Value.(registry.ConfigEntry); !ok {
					t.Fatalf("result value %#v, want the config entry this replica applied", a.res.Value)
				}
			} else if !errors.Is(a.err, tc.wantErr) {
				t.Fatalf("resolveLost: %v, want %v", a.err, tc.wantErr)
			}
			for _, o := range []string{lostApplied, lostNotApplied, lostUnknown} {
				want := 0.0
				if o == tc.outcome {
					want = 1
				}
				if got := metrictest.Value(t, reg, "nexus_write_leadership_lost_total", map[string]string{"outcome": o}); got != want {
					t.Errorf("nexus_write_leadership_lost_total{outcome=%q} = %v, want %v", o, got, want)
				}
			}
		})
	}
}
