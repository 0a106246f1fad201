package nemesis

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func has(calls []string, sub string) bool {
	return slices.ContainsFunc(calls, func(c string) bool { return strings.Contains(c, sub) })
}

func TestNemeses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		nemesis   Nemesis
		afterInj  []string // calls after Inject
		afterHeal []string // calls after Heal
	}{
		{&Kill{}, []string{"kill "}, []string{"restart "}},
		{&Pause{}, []string{"pause "}, []string{"resume "}},
		{&Partition{Modes: []string{PartitionIsolateLeader}}, []string{"exec 0 iptables-restore --noflush <<*filter;-F NJP-PART;-A NJP-PART -s 10.77.0.12 -j DROP"},
			[]string{"exec 0 iptables -F NJP-PART", "exec 4 iptables -F NJP-PART"}},
		{&Membership{Wipe: 1, Modes: []string{MembershipLeave}}, []string{"leave "}, []string{"wipe ", "restart ", "voter "}},
		{&Membership{Wipe: -1, Modes: []string{MembershipLeave}}, []string{"leave "}, []string{"restart ", "voter "}},
		{&Membership{Wipe: 1, Modes: []string{MembershipRemove}}, []string{"kill ", "removepeer "}, []string{"wipe ", "restart ", "voter "}},
	}
	for _, tc := range tests {
		t.Run(tc.nemesis.Name(), func(t *testing.T) {
			t.Parallel()
			c := newFake(5)
			tl := NewTimeline(time.Now(), nil)
			f, err := tc.nemesis.Inject(context.Background(), c, rand.New(rand.NewPCG(3, 4)), tl)
			if err != nil || f == nil {
				t.Fatalf("inject: %v %v", f, err)
			}
			for _, want := range tc.afterInj {
				if !has(c.Calls(), want) {
					t.Fatalf("after inject: no %q in %q", want, c.Calls())
				}
			}
			if err := f.Heal(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.afterHeal {
				if !has(c.Calls(), want) {
					t.Fatalf("after heal: no %q in %q", want, c.Calls())
				}
			}
			if m, ok := tc.nemesis.(*Membership); ok && m.Modes[0] == MembershipLeave && len(tl.Leaves()) != 1 {
				t.Fatalf("leave not on the timeline: %+v", tl.Events())
			}
			if tc.nemesis.Name() == NameMembership && has(c.Calls(), "wipe ") != strings.Contains(f.Detail, "empty data dir") {
				t.Fatalf("detail %q does not match calls %q", f.Detail, c.Calls())
			}
		})
	}
}

func TestMembership_removeFallsBackToLeave(t *testing.T) {
	t.Parallel()
	c := newFake(5)
	c.removeErr = ErrUnsupported
	tl := NewTimeline(time.Now(), nil)
	m := &Membership{Wipe: -1, Modes: []string{MembershipRemove}}
	for k := 0; k < 2; k++ {
		f, err := m.Inject(context.Background(), c, rand.New(rand.NewPCG(1, 1)), tl)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Heal(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	calls := strings.Join(c.Calls(), ";")
	if strings.Count(calls, "removepeer") != 1 || strings.Count(calls, "leave") != 2 || len(tl.Leaves()) != 2 {
		t.Fatalf("calls %s", calls)
	}
}

func TestMembership_failedRemoveNeverWipes(t *testing.T) {
	t.Parallel()
	c := newFake(5)
	c.removeErr = errors.New("409 conflict")
	f, err := (&Membership{Wipe: 1, Modes: []string{MembershipRemove}}).Inject(context.Background(), c, rand.New(rand.NewPCG(1, 1)), NewTimeline(time.Now(), nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Heal(context.Background()); err != nil {
		t.Fatal(err)
	}
	if has(c.Calls(), "wipe ") || !has(c.Calls(), "restart ") {
		t.Fatalf("calls %q", c.Calls())
	}
}

func TestMembership_failedLeaveNeverWipes(t *testing.T) {
	t.Parallel()
	c := newFake(5)
	c.leaveErr = errors.New("504")
	tl := NewTimeline(time.Now(), nil)
	f, err := (&Membership{Wipe: 1, Modes: []string{MembershipLeave}}).Inject(context.Background(), c, rand.New(rand.NewPCG(1, 1)), tl)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Heal(context.Background()); err != nil {
		t.Fatal(err)
	}
	if has(c.Calls(), "wipe ") || !has(c.Calls(), "restart ") {
		t.Fatalf("calls %q", c.Calls())
	}
}

func TestNetSlow_fallsBackWithoutNetem(t *testing.T) {
	t.Parallel()
	c := newFake(3)
	c.execErr = func(argv []string) error {
		if slices.Contains(argv, "netem") {
			return errors.New("Error: Specified qdisc kind is unknown.")
		}
		return nil
	}
	tl := NewTimeline(time.Now(), nil)
	s := &NetSlow{}
	f, err := s.Inject(context.Background(), c, rand.New(rand.NewPCG(1, 1)), tl)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(f.Detail, SlowFallback) || !has(c.Calls(), "tbf rate 2mbit") || !has(c.Calls(), "-m statistic --mode random --probability 0.0500 -j DROP") {
		t.Fatalf("detail %q calls %q", f.Detail, c.Calls())
	}
	if len(tl.Events()) != 1 || tl.Events()[0].Kind != EventNote {
		t.Fatalf("no note about the fallback: %+v", tl.Events())
	}
	if err := f.Heal(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !has(c.Calls(), "exec 2 iptables -F NJP-SLOW") || !has(c.Calls(), "exec 2 tc qdisc del dev eth0 root") {
		t.Fatalf("heal calls %q", c.Calls())
	}
}

func TestNetSlow_netem(t *testing.T) {
	t.Parallel()
	c := newFake(3)
	f, err := (&NetSlow{}).Inject(context.Background(), c, rand.New(rand.NewPCG(1, 1)), NewTimeline(time.Now(), nil))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(f.Detail, "netem") || !has(c.Calls(), "exec 1 tc qdisc replace dev eth0 root netem delay 50ms 25ms loss 5.00%") {
		t.Fatalf("detail %q calls %q", f.Detail, c.Calls())
	}
}

func TestSchedule(t *testing.T) {
	t.Parallel()
	c := newFake(5)
	tl := NewTimeline(time.Now(), nil)
	all, err := Parse("kill,pause,partition")
	if err != nil {
		t.Fatal(err)
	}
	s := &Schedule{Nemeses: all, Cluster: c, Timeline: tl, Rng: rand.New(rand.NewPCG(5, 6)),
		FaultFor: 20 * time.Millisecond, QuietFor: 10 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	st := s.Run(ctx)
	for _, n := range []string{NameKill, NamePause, NamePartition} {
		if st.Faults[n] == 0 {
			t.Fatalf("%s never ran: %v", n, st.Faults)
		}
	}
	ws := tl.Windows(tl.Now())
	total := 0
	for _, n := range st.Faults {
		total += n
	}
	if len(ws) != total || st.InjectErrors != 0 || st.HealErrors != 0 {
		t.Fatalf("windows %d, faults %v, stats %+v", len(ws), st.Faults, st)
	}
	for _, w := range ws {
		if w.End < w.Start {
			t.Fatalf("window %+v", w)
		}
	}
	// Every kill was followed by a restart: the last fault is healed too.
	kills, restarts := 0, 0
	for _, call := range c.Calls() {
		if strings.HasPrefix(call, "kill") {
			kills++
		}
		if strings.HasPrefix(call, "restart") {
			restarts++
		}
	}
	if kills != restarts {
		t.Fatalf("%d kills, %d restarts", kills, restarts)
	}
}

func TestSchedule_membershipFirst(t *testing.T) {
	t.Parallel()
	for seed := uint64(0); seed < 10; seed++ {
		c := newFake(5)
		tl := NewTimeline(time.Now(), nil)
		all, _ := Parse("all")
		s := &Schedule{Nemeses: all, Cluster: c, Timeline: tl, Rng: rand.New(rand.NewPCG(seed, 6)),
			FaultFor: time.Millisecond, QuietFor: time.Millisecond}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		s.Run(ctx)
		cancel()
		ws := tl.Windows(tl.Now())
		if len(ws) == 0 || ws[0].Nemesis != NameMembership {
			t.Fatalf("seed %d: first fault %+v", seed, ws)
		}
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec    string
		want    []string
		wantErr bool
	}{
		{"", nil, false},
		{"none", nil, false},
		{"all", All(), false},
		{"kill, pause,kill", []string{"kill", "pause"}, false},
		{"kill,bogus", nil, true},
	}
	for _, tc := range tests {
		ns, err := Parse(tc.spec)
		if (err != nil) != tc.wantErr {
			t.Fatalf("%q: err %v", tc.spec, err)
		}
		var got []string
		for _, n := range ns {
			got = append(got, n.Name())
		}
		if !slices.Equal(got, tc.want) {
			t.Fatalf("%q: got %v want %v", tc.spec, got, tc.want)
		}
	}
}
