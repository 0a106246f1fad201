// Package breaker holds the passive health state of upstream instances: a
// circuit breaker per (route, instance) configured by the route, and an
// outlier detector per instance that ejects an instance after consecutive
// failures for a growing time. Both are lock-free and safe for concurrent use.
package breaker

import (
	"sync/atomic"
	"time"
)

// State of a circuit breaker.
type State uint32

// Breaker states.
const (
	Closed State = iota
	Open
	HalfOpen
)

func (s State) String() string {
	switch s {
	case Open:
		return "open"
	case HalfOpen:
		return "half_open"
	}
	return "closed"
}

// Breaker opens after Threshold consecutive failures, stays open for OpenFor,
// then lets one trial request through (half-open): its success closes the
// breaker, its failure opens it again.
type Breaker struct {
	threshold int32
	openFor   int64 // ns
	onChange  func(State)

	state    atomic.Uint32
	failures atomic.Int32
	until    atomic.Int64 // unix ns at which an open breaker allows a trial
}

// New returns a closed breaker. onChange, if not nil, is called after each
// state transition (from the goroutine that caused it).
func New(threshold int, openFor time.Duration, onChange func(State)) *Breaker {
	if threshold < 1 {
		threshold = 1
	}
	return &Breaker{threshold: int32(threshold), openFor: int64(openFor), onChange: onChange}
}

// State returns the current state.
func (b *Breaker) State() State { return State(b.state.Load()) }

// Available reports whether Acquire could succeed at now (unix ns), without
// claiming the half-open trial.
func (b *Breaker) Available(now int64) bool {
	switch State(b.state.Load()) {
	case Closed:
		return true
	case Open:
		return now >= b.until.Load()
	}
	return false
}

// Acquire admits a request at now. In the open state after OpenFor it moves
// to half-open and admits exactly one trial request.
func (b *Breaker) Acquire(now int64) bool {
	switch State(b.state.Load()) {
	case Closed:
		return true
	case Open:
		if now >= b.until.Load() && b.state.CompareAndSwap(uint32(Open), uint32(HalfOpen)) {
			b.notify(HalfOpen)
			return true
		}
	}
	return false
}

// Success records a successful request.
func (b *Breaker) Success() {
	if b.failures.Load() != 0 {
		b.failures.Store(0)
	}
	if State(b.state.Load()) == HalfOpen && b.state.CompareAndSwap(uint32(HalfOpen), uint32(Closed)) {
		b.notify(Closed)
	}
}

// Failure records a failed request at now.
func (b *Breaker) Failure(now int64) {
	switch State(b.state.Load()) {
	case HalfOpen:
		b.until.Store(now + b.openFor)
		if b.state.CompareAndSwap(uint32(HalfOpen), uint32(Open)) {
			b.notify(Open)
		}
	case Closed:
		if b.failures.Add(1) >= b.threshold {
			b.until.Store(now + b.openFor)
			if b.state.CompareAndSwap(uint32(Closed), uint32(Open)) {
				b.failures.Store(0)
				b.notify(Open)
			}
		}
	}
}

// Release gives back a trial admitted by Acquire that was never sent (for
// example when the client went away): the breaker returns to open with its
// trial available again.
func (b *Breaker) Release() {
	if b.state.CompareAndSwap(uint32(HalfOpen), uint32(Open)) {
		b.notify(Open)
	}
}

func (b *Breaker) notify(s State) {
	if b.onChange != nil {
		b.onChange(s)
	}
}
