// Package tokenbucket implements keyed token buckets: one per key (a
// client IP, a token, a header value or JWT claim), held as a GCRA
// theoretical arrival time in a single atomic word, so a check is
// lock-free once the key's cell exists. The gateway limits routes with it
// (and SetShare lets cluster-scope limits run each node at a fraction of
// the route's rate, gateway/ratelimit); the admin API limits client IPs
// and tokens.
package tokenbucket

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

const shardCount = 64

// DefaultMaxKeys bounds the number of keys one limiter tracks.
const DefaultMaxKeys = 1 << 20

// Limiter is a set of token buckets of one rate and burst, one per key.
type Limiter struct {
	rps      float64
	burst    int64
	interval atomic.Int64 // ns between tokens at the current share
	tau      atomic.Int64 // burst tolerance in ns: interval × burst at the current share
	maxShard int
	shards   [shardCount]shard

	// Consumption since the last Drain, for cluster-scope sharing.
	seen atomic.Uint64
}

type shard struct {
	mu sync.RWMutex
	m  map[string]*cell
}

type cell struct{ tat atomic.Int64 }

// Decision is the outcome of Allow.
type Decision struct {
	Allowed    bool
	Limit      int64         // bucket size (burst)
	Remaining  int64         // tokens left after this request
	RetryAfter time.Duration // when refused: until one token is available
	Reset      time.Duration // until the bucket is full again
}

// New returns a limiter of rps tokens per second with bucket size burst,
// tracking at most maxKeys keys (0: DefaultMaxKeys).
func New(rps float64, burst int, maxKeys int) *Limiter {
	if burst < 1 {
		burst = 1
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	l := &Limiter{rps: rps, burst: int64(burst), maxShard: max(maxKeys/shardCount, 1)}
	l.SetShare(1)
	for i := range l.shards {
		l.shards[i].m = map[string]*cell{}
	}
	return l
}

// Rate returns the configured rate and burst.
func (l *Limiter) Rate() (float64, int) { return l.rps, int(l.burst) }

// SetShare makes the limiter enforce share (0 < share <= 1) of its rate.
func (l *Limiter) SetShare(share float64) {
	if share <= 0 || math.IsNaN(share) {
		share = 1e-3
	}
	share = min(share, 1)
	iv := int64(math.Max(float64(time.Second)/(l.rps*share), 1))
	// The bucket shrinks with the share too, so that the nodes' bursts
	// add up to the route's burst.
	b := math.Max(float64(l.burst)*share, 1)
	l.interval.Store(iv)
	l.tau.Store(int64(float64(iv) * b))
}

// Drain returns the requests seen since the previous Drain.
func (l *Limiter) Drain() uint64 { return l.seen.Swap(0) }

// Allow takes one token from key's bucket at now (unix ns).
func (l *Limiter) Allow(key []byte, now int64) Decision {
	l.seen.Add(1)
	c := l.cell(key, now)
	t, tau := l.interval.Load(), l.tau.Load()
	limit := tau / t
	for {
		old := c.tat.Load()
		tat := max(old, now)
		next := tat + t
		if allowAt := next - tau; now < allowAt {
			return Decision{Limit: limit, RetryAfter: time.Duration(allowAt - now), Reset: time.Duration(tat - now)}
		}
		if c.tat.CompareAndSwap(old, next) {
			return Decision{Allowed: true, Limit: limit, Remaining: (now + tau - next) / t, Reset: time.Duration(next - now)}
		}
	}
}

func (l *Limiter) cell(key []byte, now int64) *cell {
	s := &l.shards[fnv(key)%shardCount]
	s.mu.RLock()
	c := s.m[string(key)]
	s.mu.RUnlock()
	if c != nil {
		return c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c = s.m[string(key)]; c != nil {
		return c
	}
	if len(s.m) >= l.maxShard {
		s.evict(now, l.maxShard)
	}
	c = &cell{}
	s.m[string(key)] = c
	return c
}

// evict drops the buckets that are full again (they hold no state); if none
// is, it drops an arbitrary one. Called with s.mu held.
func (s *shard) evict(now int64, limit int) {
	for k, c := range s.m {
		if c.tat.Load() <= now {
			delete(s.m, k)
		}
	}
	if len(s.m) < limit {
		return
	}
	for k := range s.m {
		delete(s.m, k)
		return
	}
}

// Keys returns the number of tracked keys.
func (l *Limiter) Keys() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

func fnv(b []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}
