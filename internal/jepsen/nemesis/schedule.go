package nemesis

import (
	"context"
	"math/rand/v2"
	"strings"
	"time"
)

// Schedule runs faults one at a time: a quiet period, a fault (each of
// Nemeses in turn, in a random order per round; membership, the slowest,
// first in the first round), held for a while, then healed. It always heals the
// active fault before returning, also when ctx is cancelled.
type Schedule struct {
	Nemeses  []Nemesis
	Cluster  Cluster
	Timeline *Timeline
	Rng      *rand.Rand
	// FaultFor and QuietFor are mean durations; each is drawn uniformly
	// from [d/2, 3d/2].
	FaultFor, QuietFor time.Duration
	// HealTimeout bounds one heal (default 2m).
	HealTimeout time.Duration
	Logf        func(string, ...any)
}

// ScheduleStats counts what the schedule did.
type ScheduleStats struct {
	Faults       map[string]int `json:"faults"`
	InjectErrors int            `json:"inject_errors"`
	HealErrors   int            `json:"heal_errors"`
}

// Run injects faults until ctx is done.
func (s *Schedule) Run(ctx context.Context) ScheduleStats {
	st := ScheduleStats{Faults: map[string]int{}}
	if len(s.Nemeses) == 0 {
		return st
	}
	healTimeout := s.HealTimeout
	if healTimeout <= 0 {
		healTimeout = 2 * time.Minute
	}
	var order []Nemesis
	for id := 1; ; id++ {
		if !sleep(ctx, s.jitter(s.QuietFor)) {
			return st
		}
		// Every nemesis in turn, in a fresh random order each round, so
		// that a short run still exercises all of them.
		if len(order) == 0 {
			order = append(order, s.Nemeses...)
			s.Rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			if id == 1 {
				order = slowFirst(order)
			}
		}
		n := order[0]
		order = order[1:]
		t0 := s.Timeline.Now()
		f, err := n.Inject(ctx, s.Cluster, s.Rng, s.Timeline)
		if err != nil {
			st.InjectErrors++
			s.Timeline.Add(Event{Kind: EventError, ID: id, Nemesis: n.Name(), Detail: "inject: " + err.Error()})
			s.logf("nemesis %s: inject failed: %v", n.Name(), err)
		}
		if f != nil {
			st.Faults[n.Name()]++
			s.Timeline.Add(Event{Time: t0, Kind: EventStart, ID: id, Nemesis: n.Name(), Detail: f.Detail, Nodes: f.Nodes})
			s.logf("nemesis %s: %s", n.Name(), f.Detail)
			sleep(ctx, s.jitter(s.FaultFor))
			hctx, cancel := context.WithTimeout(context.Background(), healTimeout)
			err := f.Heal(hctx)
			cancel()
			if err != nil {
				st.HealErrors++
				s.Timeline.Add(Event{Kind: EventError, ID: id, Nemesis: n.Name(), Detail: "heal: " + err.Error(), Nodes: f.Nodes})
				s.logf("nemesis %s: heal failed: %v", n.Name(), err)
			}
			s.Timeline.Add(Event{Kind: EventEnd, ID: id, Nemesis: n.Name(), Detail: "healed " + f.Detail, Nodes: f.Nodes})
		}
		if ctx.Err() != nil {
			return st
		}
	}
}

// slowFirst moves the membership nemesis, whose leave can take tens of
// seconds, to the front of the first round, so that a short run still gets
// through every nemesis.
func slowFirst(order []Nemesis) []Nemesis {
	for i, n := range order {
		if n.Name() == NameMembership {
			return append(append([]Nemesis{n}, order[:i]...), order[i+1:]...)
		}
	}
	return order
}

func (s *Schedule) jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + time.Duration(s.Rng.Int64N(int64(d)))
}

func (s *Schedule) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Parse turns "kill,partition" or "all" or "none" into nemeses.
func Parse(spec string) ([]Nemesis, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" || spec == "none" {
		return nil, nil
	}
	names := strings.Split(spec, ",")
	if spec == "all" {
		names = All()
	}
	var out []Nemesis
	seen := map[string]bool{}
	for _, name := range names {
		name = strings.TrimSpace(name)
		n := New(name)
		if n == nil {
			return nil, &UnknownError{Name: name}
		}
		if !seen[name] {
			out = append(out, n)
			seen[name] = true
		}
	}
	return out, nil
}

// UnknownError names a nemesis that does not exist.
type UnknownError struct{ Name string }

func (e *UnknownError) Error() string {
	return "unknown nemesis " + `"` + e.Name + `"` + " (known: " + strings.Join(All(), ", ") + ", all, none)"
}
