package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nexus/nexus/cluster/peerproto"
	"github.com/nexus/nexus/registry"

	"github.com/nexus/nexus/cluster/member"
)

// TestHeartbeatPassedToOwner: a heartbeat for an instance of another node
// goes to that node's admin API while gossip holds it alive or suspect (a
// suspicion is not a failure), never to a failed or departed one.
func TestHeartbeatPassedToOwner(t *testing.T) {
	var got atomic.Int32
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || r.URL.Path != "/services/ttl/instances/t1/heartbeat" || r.Header.Get(peerproto.HeaderHeartbeatForwarded) != "1" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
			return
		}
		got.Add(1)
		_ = json.NewEncoder(w).Encode(registry.Instance{Service: "ttl", ID: "t1", Node: "n2", Status: registry.StatusPassing})
	}))
	defer owner.Close()
	for _, tc := range []struct {
		status    member.Status
		forwarded bool
	}{
		{"alive", true},
		{"suspect", true},
		{"failed", false},
		{"left", false},
	} {
		t.Run("owner "+string(tc.status), func(t *testing.T) {
			m := newMembership("n1", map[string]member.Status{"n2": tc.status})
			m.addrs = map[string]string{"n2": strings.TrimPrefix(owner.URL, "http://")}
			deps, w := testDeps(t, m)
			in := owned("ttl", "t1", registry.Check{Kind: registry.CheckTTL, TTL: "10s"})
			in.Node = "n2"
			w.register(t, in)
			h := NewHeartbeats(deps, NewRunner(deps))
			before := got.Load()
			res, err := h.Heartbeat(context.Background(), "ttl", "t1", "", "", false)
			if tc.forwarded {
				if err != nil || res == nil || res.Status != registry.StatusPassing || got.Load() != before+1 {
					t.Fatalf("not passed on: %+v %v (owner saw %d)", res, err, got.Load()-before)
				}
			} else if !errors.Is(err, ErrOwnerUnavailable) || got.Load() != before {
				t.Fatalf("owner %s: %v (owner saw %d)", tc.status, err, got.Load()-before)
			}
			if len(w.log()) != 0 {
				t.Fatalf("a passed-on heartbeat proposed %q here", w.logStrings())
			}
		})
	}
}
