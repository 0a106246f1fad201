package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/metrictest"
	"github.com/nexus/nexus/internal/retry"
	"github.com/nexus/nexus/registry"
)

type sessionView struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Node       string `json:"node"`
	TTL        string `json:"ttl"`
	Behavior   string `json:"behavior"`
	LockDelay  string `json:"lock_delay"`
	RenewIndex uint64 `json:"renew_index"`
	CreateTime string `json:"create_time"`
}

type lockView struct {
	Key         string `json:"key"`
	Acquired    *bool  `json:"acquired"`
	Released    *bool  `json:"released"`
	Reason      string `json:"reason"`
	Session     string `json:"session"`
	LockIndex   uint64 `json:"lock_index"`
	ModifyIndex uint64 `json:"modify_index"`
}

func (h *harness) session(body any, hdr ...string) sessionView {
	h.t.Helper()
	var s sessionView
	h.must(h.do("POST", "/sessions", body, hdr...), 201, &s)
	if s.ID == "" {
		h.t.Fatalf("no id in %+v", s)
	}
	return s
}

func (h *harness) lock(key, op, session string, body any, hdr ...string) lockView {
	h.t.Helper()
	var l lockView
	h.must(h.do("PUT", "/config/"+key+"?"+op+"="+session, body, hdr...), 200, &l)
	return l
}

// waitBlocking waits until one blocking query waits for a change.
func waitBlocking(t *testing.T, h *harness) {
	t.Helper()
	retry.Run(t, func(r *retry.R) {
		if n := metrictest.Value(r, h.reg, "nexus_api_blocking_queries", nil); n != 1 {
			r.Fatalf("%v blocking queries", n)
		}
	}, retry.What("the blocking query to wait"))
}

func TestSessions_Lifecycle(t *testing.T) {
	h := newHarness(t)
	s := h.session(map[string]any{"name": "worker-1", "ttl": "15s"})
	if s.Node != "n1" || s.Behavior != "release" || s.LockDelay != "15s" || s.TTL != "15s" || s.CreateTime != "2023-11-14T22:13:20Z" {
		t.Fatalf("created %+v", s)
	}
	h.session(nil) // an empty body takes every default
	var list []sessionView
	h.must(h.do("GET", "/sessions", nil), 200, &list)
	if len(list) != 2 {
		t.Fatalf("list = %+v", list)
	}
	r := h.do("GET", "/sessions?limit=1", nil)
	h.must(r, 200, &list)
	if len(list) != 1 || r.get(HeaderNext) != list[0].ID {
		t.Fatalf("page 1 = %+v, next %q", list, r.get(HeaderNext))
	}
	r = h.do("GET", "/sessions?limit=1&after="+list[0].ID, nil)
	h.must(r, 200, &list)
	if len(list) != 1 || r.get(HeaderNext) != "" {
		t.Fatalf("page 2 = %+v, next %q", list, r.get(HeaderNext))
	}
	h.must(h.do("GET", "/sessions?node=n2", nil), 200, &list)
	if len(list) != 0 {
		t.Fatalf("list of n2 = %+v", list)
	}
	var got sessionView
	h.must(h.do("GET", "/sessions/"+s.ID, nil), 200, &got)
	if got.ID != s.ID || got.Name != "worker-1" {
		t.Fatalf("get = %+v", got)
	}
	var renewed sessionView
	h.must(h.do("PUT", "/sessions/"+s.ID+"/renew", nil), 200, &renewed)
	if renewed.RenewIndex <= s.RenewIndex {
		t.Fatalf("renew index %d after %d", renewed.RenewIndex, s.RenewIndex)
	}
	var end struct {
		Invalidated bool   `json:"invalidated"`
		Reason      string `json:"reason"`
	}
	h.must(h.do("DELETE", "/sessions/"+s.ID, nil), 200, &end)
	if !end.Invalidated || end.Reason != "destroy" {
		t.Fatalf("destroy = %+v", end)
	}
	h.must(h.do("DELETE", "/sessions/"+s.ID, nil), 200, &end)
	if end.Invalidated {
		t.Fatal("a second destroy invalidated something")
	}
	var recs []struct {
		Action string          `json:"action"`
		After  json.RawMessage `json:"after"`
	}
	h.must(h.do("GET", "/audit?resource_type=session&resource="+s.ID, nil), 200, &recs)
	if len(recs) != 2 || recs[0].Action != "destroy" || string(recs[0].After) != `{"id":"`+s.ID+`","reason":"destroy"}` || recs[1].Action != "create" {
		t.Fatalf("audit of the session = %+v", recs)
	}
	h.mustErr(h.do("PUT", "/sessions/"+s.ID+"/renew", nil), 404, "not_found")
	h.mustErr(h.do("GET", "/sessions/"+s.ID, nil), 404, "not_found")
	h.mustErr(h.do("POST", "/sessions/"+s.ID+"/renew", nil), 405, "method_not_allowed")
}

// TestSessions_Validation: bad input is a 400 naming the field (404 for a
// missing session) and changes nothing.
func TestSessions_Validation(t *testing.T) {
	h := newHarness(t)
	s := h.session(map[string]any{"name": "w"})
	many := `{"ops":[` + strings.TrimSuffix(strings.Repeat(`{"op":"get","key":"k"},`, 65), ",") + `]}`
	cases := []struct {
		name, method, path, body string
		status                   int
		code, field              string
	}{
		{"malformed", "POST", "/sessions", `{"name":`, 400, "invalid_json", ""},
		{"ttl type", "POST", "/sessions", `{"ttl":15}`, 400, "invalid", "ttl"},
		{"ttl garbage", "POST", "/sessions", `{"ttl":"soon"}`, 400, "invalid", "ttl"},
		{"ttl short", "POST", "/sessions", `{"ttl":"5s"}`, 400, "invalid", "ttl"},
		{"ttl long", "POST", "/sessions", `{"ttl":"48h"}`, 400, "invalid", "ttl"},
		{"behavior", "POST", "/sessions", `{"behavior":"drop"}`, 400, "invalid", "behavior"},
		{"lock delay", "POST", "/sessions", `{"lock_delay":"2m"}`, 400, "invalid", "lock_delay"},
		{"name", "POST", "/sessions", `{"name":"a$b"}`, 400, "invalid", "name"},
		{"unknown node", "POST", "/sessions", `{"node":"n9"}`, 400, "invalid", "node"},
		{"bad node", "POST", "/sessions", `{"node":"-x"}`, 400, "invalid", "node"},
		{"acquire without session", "PUT", "/config/k?acquire=", `1`, 400, "invalid", "acquire"},
		{"acquire bad session", "PUT", "/config/k?acquire=a%20b", `1`, 400, "invalid", "acquire"},
		{"acquire and release", "PUT", "/config/k?acquire=" + s.ID + "&release=" + s.ID, `1`, 400, "invalid", "release"},
		{"acquire with cas", "PUT", "/config/k?acquire=" + s.ID + "&cas=0", `1`, 400, "invalid", "cas"},
		{"acquire bad value", "PUT", "/config/k?acquire=" + s.ID, `{x`, 400, "invalid_json", ""},
		{"acquire bad key", "PUT", "/config/a%20b?acquire=" + s.ID, `1`, 400, "invalid", "key"},
		{"acquire missing session", "PUT", "/config/k?acquire=nope", `1`, 404, "not_found", "acquire"},
		{"txn empty body", "POST", "/txn", ``, 400, "invalid_json", ""},
		{"txn no ops", "POST", "/txn", `{"ops":[]}`, 400, "invalid", "ops"},
		{"txn too many", "POST", "/txn", many, 400, "invalid", "ops"},
		{"txn ops type", "POST", "/txn", `{"ops":{}}`, 400, "invalid", "ops"},
		{"txn unknown op", "POST", "/txn", `{"ops":[{"op":"get","key":"a"},{"op":"upsert","key":"a"}]}`, 400, "invalid", "ops[1].op"},
		{"txn bad key", "POST", "/txn", `{"ops":[{"op":"get","key":"/a"}]}`, 400, "invalid", "ops[0].key"},
		{"txn set without value", "POST", "/txn", `{"ops":[{"op":"set","key":"a"}]}`, 400, "invalid", "ops[0].value"},
		{"txn cas without index", "POST", "/txn", `{"ops":[{"op":"cas","key":"a","value":1}]}`, 400, "invalid", "ops[0].index"},
		{"txn index type", "POST", "/txn", `{"ops":[{"op":"check-index","key":"a","index":"1"}]}`, 400, "invalid", "ops.index"},
		{"txn lock without session", "POST", "/txn", `{"ops":[{"op":"lock","key":"a"}]}`, 400, "invalid", "ops[0].session"},
		{"txn value on a check", "POST", "/txn", `{"ops":[{"op":"check-not-exists","key":"a","value":1}]}`, 400, "invalid", "ops[0].value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := h.dump()
			e := h.mustErr(h.do(c.method, c.path, c.body), c.status, c.code)
			if e.Error.Field != c.field {
				t.Fatalf("field = %q, want %q (%s)", e.Error.Field, c.field, e.Error.Message)
			}
			if e.Error.Message == "" {
				t.Fatal("no message")
			}
			h.assertUnchanged(before)
		})
	}
}

func TestLocks_AcquireRelease(t *testing.T) {
	h := newHarness(t)
	a := h.session(map[string]any{"name": "a", "lock_delay": "0s"})
	b := h.session(map[string]any{"name": "b"})
	l := h.lock("app/leader", "acquire", a.ID, `{"host":"a"}`)
	if !*l.Acquired || l.Session != a.ID || l.LockIndex != 1 {
		t.Fatalf("acquire = %+v", l)
	}
	var en registry.ConfigEntry
	h.must(h.do("GET", "/config/app/leader", nil), 200, &en)
	if en.Session != a.ID || en.LockIndex != 1 || string(en.Value) != `{"host":"a"}` {
		t.Fatalf("entry = %+v", en)
	}
	before := h.dump()
	if l := h.lock("app/leader", "acquire", b.ID, `{"host":"b"}`); *l.Acquired || l.Reason != "held" || l.Session != a.ID {
		t.Fatalf("contended acquire = %+v", l)
	}
	if l := h.lock("app/leader", "release", b.ID, nil); *l.Released || l.Reason != "not_holder" {
		t.Fatalf("release by b = %+v", l)
	}
	h.assertUnchanged(before)
	if l := h.lock("app/leader", "release", a.ID, nil); !*l.Released || l.Session != "" {
		t.Fatalf("release = %+v", l)
	}
	en = registry.ConfigEntry{}
	h.must(h.do("GET", "/config/app/leader", nil), 200, &en)
	if en.Session != "" || string(en.Value) != `{"host":"a"}` || strings.Contains(string(h.do("GET", "/config/app/leader", nil).body), "session") {
		t.Fatalf("released entry = %+v", en)
	}
	if l := h.lock("app/leader", "acquire", b.ID, nil); !*l.Acquired || l.LockIndex != 2 {
		t.Fatalf("second holder = %+v", l)
	}
	// Destroying b starts its 15s lock delay on the key.
	h.must(h.do("DELETE", "/sessions/"+b.ID, nil), 200, nil)
	if l := h.lock("app/leader", "acquire", a.ID, nil); *l.Acquired || l.Reason != "lock_delay" {
		t.Fatalf("acquire in the lock delay = %+v", l)
	}
}

// TestLocks_BlockingQueryWakesOnHandover: a blocking read of a held key
// returns when the lock changes hands: released by an invalidation, then
// acquired by another session.
func TestLocks_BlockingQueryWakesOnHandover(t *testing.T) {
	h := newHarness(t)
	a := h.session(map[string]any{"name": "a", "lock_delay": "0s"})
	b := h.session(map[string]any{"name": "b"})
	h.lock("k", "acquire", a.ID, `1`)
	for _, change := range []struct {
		name  string
		write func()
		want  string // holder after
	}{
		{"released by destroy", func() { h.must(h.do("DELETE", "/sessions/"+a.ID, nil), 200, nil) }, ""},
		{"acquired", func() { h.lock("k", "acquire", b.ID, nil) }, b.ID},
	} {
		cur := indexOf(t, h.do("GET", "/config/k", nil))
		ch := make(chan *resp, 1)
		go func() { ch <- h.do("GET", fmt.Sprintf("/config/k?index=%d&wait=20s", cur), nil) }()
		waitBlocking(t, h)
		change.write()
		select {
		case r := <-ch:
			var en registry.ConfigEntry
			h.must(r, 200, &en)
			if indexOf(t, r) <= cur || en.Session != change.want {
				t.Fatalf("%s: index %d (was %d), holder %q", change.name, indexOf(t, r), cur, en.Session)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: the blocking query did not wake", change.name)
		}
	}
}

// TestSessions_BlockingGetWakesOnInvalidation: a client blocking on its
// own session learns of its end.
func TestSessions_BlockingGetWakesOnInvalidation(t *testing.T) {
	h := newHarness(t)
	s := h.session(map[string]any{"name": "a"})
	cur := indexOf(t, h.do("GET", "/sessions/"+s.ID, nil))
	ch := make(chan *resp, 1)
	go func() { ch <- h.do("GET", fmt.Sprintf("/sessions/%s?index=%d&wait=20s", s.ID, cur), nil) }()
	waitBlocking(t, h)
	h.must(h.do("PUT", "/sessions/"+s.ID+"/renew", nil), 200, nil) // not a change: stays blocked
	h.must(h.do("DELETE", "/sessions/"+s.ID, nil), 200, nil)
	select {
	case r := <-ch:
		h.mustErr(r, 404, "not_found")
		if indexOf(t, r) <= cur {
			t.Fatalf("index %d not above %d", indexOf(t, r), cur)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the blocking query did not wake")
	}
}

// TestTxn_ConflictChangesNothing: a failed check answers 409 txn_conflict
// naming the op; the store and the audit backlog (full dumps) are unchanged.
func TestTxn_ConflictChangesNothing(t *testing.T) {
	h := newHarness(t)
	var en registry.ConfigEntry
	h.must(h.do("PUT", "/config/a", "1"), 200, &en)
	s := h.session(map[string]any{"name": "w"})
	before := h.dump()
	r := h.do("POST", "/txn", map[string]any{"ops": []map[string]any{
		{"op": "set", "key": "b", "value": map[string]int{"x": 1}},
		{"op": "lock", "key": "l", "session": s.ID},
		{"op": "check-index", "key": "a", "index": en.ModifyIndex + 5},
	}})
	var body struct {
		Error struct {
			Code, Message string
		}
		Errors []struct {
			OpIndex int    `json:"op_index"`
			Op      string `json:"op"`
			Key     string `json:"key"`
			Message string `json:"message"`
		}
	}
	h.must(r, 409, &body)
	if body.Error.Code != "txn_conflict" || len(body.Errors) != 1 || body.Errors[0].OpIndex != 2 ||
		body.Errors[0].Op != "check-index" || !strings.Contains(body.Error.Message, "ops[2]") {
		t.Fatalf("answer %s", r.body)
	}
	h.assertUnchanged(before)

	var ok struct {
		Results []struct {
			Op    string                `json:"op"`
			Entry *registry.ConfigEntry `json:"entry"`
		} `json:"results"`
		Index uint64 `json:"index"`
	}
	h.must(h.do("POST", "/txn", map[string]any{"ops": []map[string]any{
		{"op": "check-index", "key": "a", "index": en.ModifyIndex},
		{"op": "set", "key": "b", "value": "two"},
		{"op": "lock", "key": "l", "session": s.ID},
		{"op": "get", "key": "b"},
	}}), 200, &ok)
	if len(ok.Results) != 4 || ok.Results[3].Entry == nil || string(ok.Results[3].Entry.Value) != `"two"` ||
		ok.Results[2].Entry.Session != s.ID || ok.Index == 0 {
		t.Fatalf("results %+v", ok)
	}
	rec := h.do("GET", "/audit?resource_type=config&action=acquire", nil)
	var recs []map[string]any
	h.must(rec, 200, &recs)
	if len(recs) != 1 || recs[0]["resource"] != "l" {
		t.Fatalf("acquire audit records = %v", recs)
	}
}

// TestSessions_ACL: the session resource by name, keys of acquires and
// of transactions, lists filtered.
func TestSessions_ACL(t *testing.T) {
	h, root := aclHarness(t)
	jobs, _ := h.token(root, "jobs", registry.ACLRule{Resource: "session", Prefix: "jobs-", Access: "write"},
		registry.ACLRule{Resource: "config", Prefix: "jobs/", Access: "write"})
	tok := []string{"X-Nexus-Token", jobs}
	mine := h.session(map[string]any{"name": "jobs-1"}, tok...)
	other := h.session(map[string]any{"name": "web-1"}, "X-Nexus-Token", root)
	before := h.dump()
	h.mustErr(h.do("POST", "/sessions", map[string]any{"name": "web-2"}, tok...), 403, CodePermissionDenied)
	h.mustErr(h.do("PUT", "/sessions/"+other.ID+"/renew", nil, tok...), 403, CodePermissionDenied)
	h.mustErr(h.do("DELETE", "/sessions/"+other.ID, nil, tok...), 403, CodePermissionDenied)
	h.mustErr(h.do("GET", "/sessions/"+other.ID, nil, tok...), 403, CodePermissionDenied)
	h.mustErr(h.do("PUT", "/config/web/x?acquire="+mine.ID, `1`, tok...), 403, CodePermissionDenied)
	e := h.mustErr(h.do("POST", "/txn", map[string]any{"ops": []map[string]any{
		{"op": "set", "key": "jobs/a", "value": 1}, {"op": "get", "key": "web/b"}}}, tok...), 403, CodePermissionDenied)
	if e.Error.Field != "ops[1].key" {
		t.Fatalf("field %q", e.Error.Field)
	}
	h.mustErr(h.do("GET", "/sessions", nil), 401, CodeUnauthenticated)
	h.assertUnchanged(before)
	var list []sessionView
	h.must(h.do("GET", "/sessions", nil, tok...), 200, &list)
	if len(list) != 1 || list[0].ID != mine.ID {
		t.Fatalf("filtered list = %+v", list)
	}
	if l := h.lock("jobs/lock", "acquire", mine.ID, `1`, tok...); !*l.Acquired {
		t.Fatalf("acquire = %+v", l)
	}
	h.must(h.do("PUT", "/sessions/"+mine.ID+"/renew", nil, tok...), 200, nil)
	h.must(h.do("DELETE", "/sessions/"+mine.ID, nil, tok...), 200, nil)
}

func TestSessions_JSONShape(t *testing.T) {
	h := newHarness(t)
	r := h.do("POST", "/sessions", map[string]any{"name": "x", "ttl": "10s", "behavior": "delete", "lock_delay": "1s"})
	var m map[string]json.RawMessage
	h.must(r, 201, &m)
	for _, k := range []string{"id", "name", "node", "ttl", "behavior", "lock_delay", "renew_index", "create_index", "modify_index", "create_time"} {
		if _, ok := m[k]; !ok {
			t.Errorf("session JSON lacks %q: %s", k, r.body)
		}
	}
	if _, ok := m["CreateTime"]; ok {
		t.Errorf("Go field name in JSON: %s", r.body)
	}
}

// TestConfig_SessionFilter: GET /config?session=ID lists the keys the
// session holds (with prefix and paging), a blocking query on it wakes
// when the session ends, and a bad id is a 400 naming "session".
func TestConfig_SessionFilter(t *testing.T) {
	h := newHarness(t)
	a := h.session(map[string]any{"name": "a"})
	b := h.session(map[string]any{"name": "b"})
	for _, k := range []string{"app/a", "app/b", "x/c"} {
		h.lock(k, "acquire", a.ID, `1`)
	}
	h.lock("app/d", "acquire", b.ID, `2`)
	h.must(h.do("PUT", "/config/app/e", `3`), 200, nil)
	keys := func(r *resp) string {
		t.Helper()
		var list []registry.ConfigEntry
		h.must(r, 200, &list)
		out := make([]string, 0, len(list))
		for _, en := range list {
			out = append(out, en.Key+"@"+en.Session[:4])
		}
		return strings.Join(out, " ")
	}
	tag := func(s sessionView, k ...string) string {
		out := make([]string, len(k))
		for i := range k {
			out[i] = k[i] + "@" + s.ID[:4]
		}
		return strings.Join(out, " ")
	}
	cases := []struct {
		name, query, want, next string
	}{
		{"all of a", "session=" + a.ID, tag(a, "app/a", "app/b", "x/c"), ""},
		{"b", "session=" + b.ID, tag(b, "app/d"), ""},
		{"with a prefix", "session=" + a.ID + "&prefix=app/", tag(a, "app/a", "app/b"), ""},
		{"a page", "session=" + a.ID + "&limit=2", tag(a, "app/a", "app/b"), "app/b"},
		{"the next page", "session=" + a.ID + "&limit=2&after=app/b", tag(a, "x/c"), ""},
		{"a session that does not exist", "session=0000-nope", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.do("GET", "/config?"+c.query, nil)
			if got := keys(r); got != c.want {
				t.Fatalf("keys %q, want %q", got, c.want)
			}
			if got := r.get(HeaderNext); got != c.next {
				t.Fatalf("next %q, want %q", got, c.next)
			}
		})
	}
	for _, bad := range []string{"session=", "session=a%20b", "session=-x"} {
		t.Run("bad "+bad, func(t *testing.T) {
			if e := h.mustErr(h.do("GET", "/config?"+bad, nil), 400, "invalid"); e.Error.Field != "session" {
				t.Fatalf("field %q", e.Error.Field)
			}
		})
	}

	t.Run("a blocking query wakes when the session ends", func(t *testing.T) {
		cur := indexOf(t, h.do("GET", "/config?session="+a.ID, nil))
		ch := make(chan *resp, 1)
		go func() { ch <- h.do("GET", fmt.Sprintf("/config?session=%s&index=%d&wait=20s", a.ID, cur), nil) }()
		waitBlocking(t, h)
		h.must(h.do("DELETE", "/sessions/"+a.ID, nil), 200, nil)
		select {
		case r := <-ch:
			if got := keys(r); got != "" || indexOf(t, r) <= cur {
				t.Fatalf("after the destroy: keys %q at index %d (was %d)", got, indexOf(t, r), cur)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the blocking query did not wake")
		}
	})
}
