package breaker

import (
	"sync/atomic"
	"time"
)

// Outlier ejection defaults: after EjectAfter consecutive failures an
// instance is ejected for BaseEjection, doubled on each further ejection up
// to MaxEjection. A success after an ejection expired forgives the history.
const (
	EjectAfter   = 3
	BaseEjection = time.Second
	MaxEjection  = 30 * time.Second
)

// Outlier is the passive outlier detector of one instance, shared by every
// route that uses it.
type Outlier struct {
	consecutive atomic.Int32
	ejections   atomic.Int32
	until       atomic.Int64 // unix ns; ejected while now < until
	onEject     func(d time.Duration)
}

// NewOutlier returns a detector; onEject, if not nil, is called on each ejection.
func NewOutlier(onEject func(d time.Duration)) *Outlier {
	return &Outlier{onEject: onEject}
}

// Ejected reports whether the instance is ejected at now (unix ns).
func (o *Outlier) Ejected(now int64) bool { return now < o.until.Load() }

// Success records a success.
func (o *Outlier) Success() {
	if o.consecutive.Load() != 0 {
		o.consecutive.Store(0)
	}
	if o.ejections.Load() != 0 && time.Now().UnixNano() >= o.until.Load() {
		o.ejections.Store(0)
	}
}

// Failure records a failure at now and ejects the instance when due.
func (o *Outlier) Failure(now int64) {
	if o.Ejected(now) {
		return
	}
	if o.consecutive.Add(1) < EjectAfter {
		return
	}
	o.consecutive.Store(0)
	n := o.ejections.Add(1)
	d := BaseEjection << min(n-1, 5)
	d = min(d, MaxEjection)
	o.until.Store(now + int64(d))
	if o.onEject != nil {
		o.onEject(d)
	}
}
