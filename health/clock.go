package health

import "time"

// Clock is the time of the health duties: TTL deadlines and the timers that
// watch them, the leader's critical-since times, the time stamped into
// commands. Tests drive a fake one, so TTLs do not run in wall-clock time.
// (HTTP and TCP probes run in real time: they talk to real servers.)
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is a Clock's one-shot timer.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// realClock is the system clock.
type realClock struct{}

func (realClock) Now() time.Time                 { return time.Now() }
func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }
