package gateway

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/nexus/nexus/registry"
)

// watcher collects what the store's commits changed (registry.Listener)
// for the goroutine that updates the table. Its methods run on Raft's
// apply goroutine: they record and signal, nothing more.
type watcher struct {
	mu   sync.Mutex
	c    changes
	wake chan struct{}
}

func newWatcher() *watcher { return &watcher{wake: make(chan struct{}, 1)} }

func (w *watcher) Changed(index uint64, cs []registry.Change) {
	w.mu.Lock()
	for _, c := range cs {
		if b, a := c.InstanceChange(); b != nil || a != nil {
			for _, in := range [...]*registry.Instance{b, a} {
				if in != nil {
					w.mark(&w.c.services, in.Service)
				}
			}
			continue
		}
		if r := either(c.RouteChange()); r != nil {
			w.mark(&w.c.routes, r.ID)
			continue
		}
		if e := either(c.ConfigChange()); e != nil && strings.HasPrefix(e.Key, ConfigPrefix) {
			w.c.config = true
		}
	}
	w.c.index = max(w.c.index, index)
	w.mu.Unlock()
	w.signal()
}

// either returns the object of a change: after, or before for a deletion.
func either[T any](before, after *T) *T {
	if after != nil {
		return after
	}
	return before
}

func (w *watcher) mark(m *map[string]bool, k string) {
	if *m == nil {
		*m = map[string]bool{}
	}
	(*m)[k] = true
}

func (w *watcher) Reset() {
	w.mu.Lock()
	w.c.reset = true
	w.mu.Unlock()
	w.signal()
}

func (w *watcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// take returns what changed since the last take.
func (w *watcher) take() changes {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.c
	w.c = changes{}
	return c
}

// maxSpacing bounds the pause after a costly router rebuild (below).
const maxSpacing = 50 * time.Millisecond

// watch applies the store's changes to the table until ctx ends. No
// polling: it waits for the watcher's signal; bursts of changes coalesce,
// since each update takes everything that changed since the last. After a
// router rebuild that took d (a few ms with thousands of routes) it waits
// 3d (at most 50 ms) before the next update, so that adding thousands of
// routes one by one costs the gateway a bounded share of the CPU instead
// of a rebuild per route; a change is still served within ~4d + 50 ms.
func (g *Gateway) watch(ctx context.Context, w *watcher) {
	var sweep <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-sweep:
			sweep = nil
			g.builder.sweep()
			continue
		}
		c := w.take()
		if c.empty() {
			continue
		}
		start := time.Now()
		t, rebuilt := g.builder.apply(&c, g.table.Load())
		g.publish(t, start, rebuilt)
		d := time.Since(start)
		if g.builder.released && sweep == nil {
			sweep = time.After(max(time.Until(g.builder.swept.Add(sweepEvery)), 0))
		}
		if rebuilt && d > time.Millisecond {
			pause := time.NewTimer(min(3*d, maxSpacing))
			select {
			case <-ctx.Done():
				pause.Stop()
				return
			case <-pause.C:
			}
		}
	}
}
