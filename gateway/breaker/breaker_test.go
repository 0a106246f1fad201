package breaker

import (
	"testing"
	"time"
)

func TestBreakerLifecycle(t *testing.T) {
	var changes []State
	b := New(3, 10*time.Second, func(s State) { changes = append(changes, s) })
	sec := int64(time.Second)
	now := int64(1000) * sec
	steps := []struct {
		name      string
		do        func()
		state     State
		available bool
	}{
		{"starts closed", func() {}, Closed, true},
		{"two failures keep it closed", func() { b.Failure(now); b.Failure(now) }, Closed, true},
		{"a success resets the count", func() { b.Success(); b.Failure(now); b.Failure(now) }, Closed, true},
		{"third consecutive failure opens", func() { b.Failure(now) }, Open, false},
		{"still open before open_for", func() { now += 9 * sec }, Open, false},
		{"after open_for a trial is possible", func() { now += sec }, Open, true},
		{"one trial admitted", func() {
			if !b.Acquire(now) {
				t.Fatal("trial refused")
			}
			if b.Acquire(now) {
				t.Fatal("second trial admitted")
			}
		}, HalfOpen, false},
		{"failed trial reopens", func() { b.Failure(now) }, Open, false},
		{"second trial", func() {
			now += 10 * sec
			if !b.Acquire(now) {
				t.Fatal("trial refused")
			}
		}, HalfOpen, false},
		{"released trial stays available", func() { b.Release() }, Open, true},
		{"successful trial closes", func() { b.Acquire(now); b.Success() }, Closed, true},
	}
	for _, s := range steps {
		s.do()
		if b.State() != s.state || b.Available(now) != s.available {
			t.Fatalf("%s: state %v available %v, want %v %v", s.name, b.State(), b.Available(now), s.state, s.available)
		}
	}
	want := []State{Open, HalfOpen, Open, HalfOpen, Open, HalfOpen, Closed}
	if len(changes) != len(want) {
		t.Fatalf("transitions %v, want %v", changes, want)
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Fatalf("transitions %v, want %v", changes, want)
		}
	}
}

func TestOutlierEjection(t *testing.T) {
	var ejections []time.Duration
	o := NewOutlier(func(d time.Duration) { ejections = append(ejections, d) })
	now := time.Now().UnixNano()
	o.Failure(now)
	o.Failure(now)
	if o.Ejected(now) {
		t.Fatal("ejected after 2 failures")
	}
	o.Failure(now)
	if !o.Ejected(now) || o.Ejected(now+int64(BaseEjection)) {
		t.Fatal("want ejected for exactly BaseEjection")
	}
	now += int64(BaseEjection)
	for i := 0; i < 3; i++ {
		o.Failure(now)
	}
	if !o.Ejected(now+int64(BaseEjection)) || len(ejections) != 2 || ejections[1] != 2*BaseEjection {
		t.Fatalf("second ejection not doubled: %v", ejections)
	}
	for i := 0; i < 20; i++ {
		now += int64(MaxEjection)
		for j := 0; j < 3; j++ {
			o.Failure(now)
		}
	}
	if ejections[len(ejections)-1] != MaxEjection {
		t.Fatalf("ejection not capped: %v", ejections[len(ejections)-1])
	}
}
