package api

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/registry"
)

// TestBlockingQueryWakesOnWrite starts a blocking read per endpoint, writes,
// and expects the read to return with a higher index well before its wait.
func TestBlockingQueryWakesOnWrite(t *testing.T) {
	cases := []struct {
		name  string
		path  string // the read; index and wait are appended
		write func(h *harness)
	}{
		{"services", "/services", func(h *harness) { h.register(reg("api", "http", "127.0.0.1", 81)) }},
		{"service", "/services/web", func(h *harness) { h.register(reg("web", "http", "127.0.0.1", 82)) }},
		{"service health", "/services/web/health", func(h *harness) {
			h.must(h.do("PUT", "/services/web/instances/web-127.0.0.1-80/heartbeat", `{"status":"critical"}`), 200, nil)
		}},
		{"discover", "/discover/http", func(h *harness) {
			h.must(h.do("DELETE", "/services/web", nil), 200, nil)
		}},
		{"config list", "/config?prefix=app/", func(h *harness) { h.must(h.do("PUT", "/config/app/x", "1"), 200, nil) }},
		{"config key", "/config/app/k", func(h *harness) { h.must(h.do("PUT", "/config/app/k", "2"), 200, nil) }},
		{"config key created", "/config/app/new", func(h *harness) { h.must(h.do("PUT", "/config/app/new", "2"), 200, nil) }},
		{"routes", "/gateway/routes", func(h *harness) {
			h.must(h.do("DELETE", "/gateway/routes/r1", nil), 200, nil)
		}},
		{"route", "/gateway/routes/r1", func(h *harness) {
			h.must(h.do("PUT", "/gateway/routes/r1", map[string]any{"service": "other"}), 200, nil)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			h.register(reg("web", "http", "127.0.0.1", 80))
			h.must(h.do("PUT", "/config/app/k", "1"), 200, nil)
			h.must(h.do("PUT", "/gateway/routes/r1", map[string]any{"service": "web"}), 201, nil)

			sep := "?"
			if strings.Contains(c.path, "?") {
				sep = "&"
			}
			cur := indexOf(t, h.do("GET", c.path, nil))

			type out struct {
				r   *resp
				dur time.Duration
			}
			ch := make(chan out, 1)
			start := time.Now()
			go func() {
				r := h.do("GET", fmt.Sprintf("%s%sindex=%d&wait=10s", c.path, sep, cur), nil)
				ch <- out{r, time.Since(start)}
			}()
			// The read must still be blocked before the write.
			select {
			case o := <-ch:
				t.Fatalf("returned before the write: %d %s", o.r.status, o.r.body)
			case <-time.After(100 * time.Millisecond):
			}
			c.write(h)
			select {
			case o := <-ch:
				if got := indexOf(t, o.r); got <= cur {
					t.Fatalf("index %d not above %d", got, cur)
				}
				if o.dur > 5*time.Second {
					t.Fatalf("took %v", o.dur)
				}
			case <-time.After(8 * time.Second):
				t.Fatal("blocking query did not wake up")
			}
		})
	}
}

func TestBlockingQueryTimesOut(t *testing.T) {
	h := newHarness(t)
	h.must(h.do("PUT", "/config/k", "1"), 200, nil)
	// An unrelated write wakes the watch but not the answer.
	go func() {
		time.Sleep(50 * time.Millisecond)
		h.register(reg("web", "http", "127.0.0.1", 80))
	}()
	start := time.Now()
	r := h.do("GET", "/config/k?index=1&wait=300ms", nil)
	d := time.Since(start)
	var en registry.ConfigEntry
	h.must(r, 200, &en)
	if d < 300*time.Millisecond || d > 5*time.Second {
		t.Fatalf("returned after %v", d)
	}
	if indexOf(t, r) != 1 || en.Key != "k" {
		t.Fatalf("answer %d %s", indexOf(t, r), r.body)
	}
	// An index already passed answers at once.
	start = time.Now()
	h.must(h.do("GET", "/config/k?index=0&wait=10s", nil), 200, nil)
	if time.Since(start) > 2*time.Second {
		t.Fatal("index already passed still blocked")
	}
	// Bare seconds and values over the maximum are accepted.
	if d, e := parseWait("2"); e != nil || d != 2*time.Second {
		t.Fatalf("parseWait(2) = %v %v", d, e)
	}
	if d, e := parseWait("1h"); e != nil || d != MaxWait {
		t.Fatalf("parseWait(1h) = %v %v", d, e)
	}
}

// TestBlockingQueryRestore wakes a blocking read when the store is restored.
func TestBlockingQueryRestore(t *testing.T) {
	h := newHarness(t)
	h.must(h.do("PUT", "/config/k", "1"), 200, nil)
	ch := make(chan *resp, 1)
	go func() { ch <- h.do("GET", "/config/k?index=1&wait=10s", nil) }()
	time.Sleep(100 * time.Millisecond)
	err := h.store.Restore(func(tx *registry.Tx) error {
		return tx.Load(&registry.Dump{
			Config:  []registry.ConfigEntry{{Key: "k", Value: []byte("9"), CreateIndex: 7, ModifyIndex: 7}},
			Indexes: []registry.IndexValue{{Key: "config", Value: 7}},
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ch:
		if indexOf(t, r) != 7 {
			t.Fatalf("after restore: %d %s", indexOf(t, r), r.body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("restore did not wake the blocking query")
	}
}

// TestShutdownEndsBlockingQuery: Shutdown answers blocking reads at once
// instead of waiting for their wait to pass.
func TestShutdownEndsBlockingQuery(t *testing.T) {
	h := newHarness(t)
	h.must(h.do("PUT", "/config/k", "1"), 200, nil)
	ch := make(chan *resp, 1)
	go func() { ch <- h.do("GET", "/config/k?index=1&wait=60s", nil) }()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	select {
	case r := <-ch:
		h.must(r, 200, nil)
	case <-time.After(5 * time.Second):
		t.Fatal("blocking query still running after Shutdown")
	}
}
