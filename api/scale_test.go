package api

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nexus/nexus/internal/retry"
	"github.com/nexus/nexus/internal/scaletest"
	"github.com/nexus/nexus/registry"
)

// fill writes n instances over n/2 services of type http, n config keys
// under app/ and n/10 routes straight into the store, in one transaction.
func (h *harness) fill(n int) {
	h.t.Helper()
	h.writer.mu.Lock()
	defer h.writer.mu.Unlock()
	h.writer.index++
	tx := h.store.WriteTxn(h.writer.index)
	defer tx.Abort()
	var cfg []registry.ConfigWrite
	for i := range n {
		in := registry.Instance{
			ID: fmt.Sprintf("i-%06d", i), Service: fmt.Sprintf("svc-%05d", i/2), Type: "http", Address: "10.0.0.1", Port: 8080,
			Node: "n1", Status: registry.StatusPassing, Tags: []string{"a", "b"}, Metadata: map[string]string{"k": "v"},
			Checks: []registry.Check{}, DependsOn: []string{},
		}
		if _, _, e := tx.RegisterInstance(in); e != nil {
			h.t.Fatal(e)
		}
		cfg = append(cfg, registry.ConfigWrite{Key: fmt.Sprintf("app/k%06d", i), Value: []byte(`"v"`)})
		if i%10 == 0 {
			r, e := registry.NormalizeRoute(registry.Route{ID: fmt.Sprintf("r-%05d", i/10), Service: in.Service})
			if e != nil {
				h.t.Fatal(e)
			}
			if _, _, _, e := tx.UpsertRoute(r, false); e != nil {
				h.t.Fatal(e)
			}
		}
	}
	if _, _, e := tx.ConfigSet(cfg); e != nil {
		h.t.Fatal(e)
	}
	tx.Commit()
}

// TestListFirstPageCostFlat: the first page of each list, and a page from a
// cursor, cost the same over 1,000 as over 20,000 instances (and keys):
// the lists walk from the cursor and stop after the page. Before, each
// copied the whole list (every service, every instance of the type, every
// key of the prefix) before paging it; at 20,000 instances GET
// /services?limit=10 allocated 2.36 MB (30 KB now), /discover/http?limit=100
// 22.5 MB (131 KB), /config?prefix=app/&limit=100 5.97 MB (26 KB).
func TestListFirstPageCostFlat(t *testing.T) {
	small, large := scaletest.Sizes(1000, 20000)
	paths := []string{
		"/services?limit=10",
		"/services?limit=10&after=svc-00020",
		"/discover/http?limit=100",
		"/discover/http?limit=100&after=svc-00050/i-000100",
		"/discover/http?limit=100&service=svc-00050",
		"/config?prefix=app/&limit=100",
		"/config?prefix=app/&limit=100&after=app/k000100",
		"/gateway/routes?limit=100",
		"/metrics",
		"/status",
	}
	cost := func(n int) map[string]uint64 {
		h := newHarness(t)
		h.fill(n)
		out := map[string]uint64{}
		for _, p := range paths {
			h.must(h.do("GET", p, nil), 200, nil) // warm up
			// Many rounds: the first after the GC that Allocated runs
			// refills the pools the GC emptied.
			out[p] = scaletest.LeastAllocated(3, func() {
				for range 25 {
					h.must(h.do("GET", p, nil), 200, nil)
				}
			}) / 25
		}
		return out
	}
	cs, cl := cost(small), cost(large)
	for _, p := range paths {
		t.Logf("%s: %d bytes at %d instances, %d at %d", p, cs[p], small, cl[p], large)
		if cl[p] > 3*cs[p] {
			t.Errorf("GET %s costs %.1fx more at %d instances than at %d", p, float64(cl[p])/float64(cs[p]), large, small)
		}
	}
}

func (s *Server) wakeupCount() float64 {
	var m dto.Metric
	_ = s.metrics.wakeups.Write(&m)
	return m.GetCounter().GetValue()
}

func testGauge(g prometheus.Gauge) int {
	var m dto.Metric
	_ = g.Write(&m)
	return int(m.GetGauge().GetValue())
}

// TestBlockingWakesOnlyItsWatchers: watchers of different services (the
// service, its health, its discovery) sleep through writes to other
// services, and a write to one service wakes its watchers only.
// X-Nexus-Index is the highest index that changed the answer, and the
// watch follows it.
func TestBlockingWakesOnlyItsWatchers(t *testing.T) {
	h := newHarness(t)
	h.fill(200) // svc-00000 .. svc-00099
	const watched = 30
	kinds := []string{"/services/%s", "/services/%s/health", "/discover/http?service=%s"}
	type answer struct {
		path   string
		status int
	}
	// Buffered for every watcher: those still blocked when the test ends
	// are answered by the server's shutdown and leave.
	answers := make(chan answer, watched*len(kinds))
	for i := range watched {
		svc := fmt.Sprintf("svc-%05d", i)
		for _, k := range kinds {
			p := fmt.Sprintf(k, svc)
			idx := indexOf(t, h.do("GET", p, nil))
			sep := "?"
			if k == kinds[2] {
				sep = "&"
			}
			go func() {
				r, err := h.tryDo("GET", fmt.Sprintf("%s%sindex=%d&wait=9s", p, sep, idx), nil)
				if err != nil {
					answers <- answer{p + ": " + err.Error(), 0}
					return
				}
				answers <- answer{p, r.status}
			}()
		}
	}
	retry.Run(t, func(r *retry.R) {
		if got := testGauge(h.srv.metrics.blocking); got != watched*len(kinds) {
			r.Fatalf("%v blocking queries, want %d", got, watched*len(kinds))
		}
	})
	before := h.srv.wakeupCount()
	// Writes to services nobody watches, of the same type.
	for i := range 50 {
		h.register(reg(fmt.Sprintf("svc-%05d", 50+i%50), "http", "10.0.0.2", 9000+i))
	}
	if got := h.srv.wakeupCount() - before; got != 0 {
		t.Fatalf("%v wakeups from writes to unwatched services", got)
	}
	select {
	case a := <-answers:
		t.Fatalf("%s answered (%d) after writes to other services", a.path, a.status)
	default:
	}
	// One write to svc-00007 wakes its three watchers, and only them.
	h.register(reg("svc-00007", "http", "10.0.0.3", 9999))
	want := map[string]bool{}
	for _, k := range kinds {
		want[fmt.Sprintf(k, "svc-00007")] = true
	}
	for range len(kinds) {
		select {
		case a := <-answers:
			if !want[a.path] || a.status != 200 {
				t.Fatalf("%s answered %d", a.path, a.status)
			}
			delete(want, a.path)
		case <-time.After(10 * time.Second):
			t.Fatalf("still waiting for %v", want)
		}
	}
	if got := h.srv.wakeupCount() - before; got != float64(len(kinds)) {
		t.Fatalf("%v wakeups, want %d", got, len(kinds))
	}
}

// TestServicesPageEndsAtInstanceBudget: a page of GET /services ends at
// its limit of services or once it holds PageInstances instances, and the
// cursor still walks every service exactly once.
func TestServicesPageEndsAtInstanceBudget(t *testing.T) {
	h := newHarness(t)
	h.fill(3 * PageInstances) // 1,500 services of 2 instances
	cases := []struct {
		query     string
		wantFirst int // services on the first page
	}{
		{"", PageInstances / 2},
		{"limit=10", 10},
		{"limit=10000", PageInstances / 2},
	}
	for _, c := range cases {
		seen, pages, after := 0, 0, ""
		for {
			uri := "/services?" + c.query
			if after != "" {
				uri += "&after=" + after
			}
			r := h.do("GET", uri, nil)
			h.must(r, 200, nil)
			var page []struct {
				Name      string `json:"name"`
				Instances []any  `json:"instances"`
			}
			if err := json.Unmarshal(r.body, &page); err != nil {
				t.Fatal(err)
			}
			if pages == 0 && len(page) != c.wantFirst {
				t.Errorf("%s: first page has %d services, want %d", uri, len(page), c.wantFirst)
			}
			for i, s := range page {
				if want := fmt.Sprintf("svc-%05d", seen+i); s.Name != want || len(s.Instances) != 2 {
					t.Fatalf("%s: item %d is %s with %d instances, want %s with 2", uri, i, s.Name, len(s.Instances), want)
				}
			}
			seen += len(page)
			pages++
			if after = r.get(HeaderNext); after == "" {
				break
			}
			if pages > 200 {
				t.Fatalf("%s: too many pages", c.query)
			}
		}
		if seen != 3*PageInstances/2 {
			t.Errorf("%s: walked %d services, want %d", c.query, seen, 3*PageInstances/2)
		}
	}
}
