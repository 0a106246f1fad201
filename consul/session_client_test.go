package consul_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/nexus/nexus/internal/retry"
	"github.com/nexus/nexus/registry"
)

// These tests drive sessions, locks and transactions with the real Consul
// Go client against the mapping.

func TestClient_Sessions(t *testing.T) {
	h := newHarness(t)
	sess := h.client.Session()
	id, _, err := sess.Create(&consulapi.SessionEntry{Name: "worker 1", TTL: "15s", LockDelay: 2 * time.Second,
		Behavior: consulapi.SessionBehaviorDelete, NodeChecks: []string{"serfHealth"}}, nil)
	if err != nil || id == "" {
		t.Fatalf("Create = %q, %v", id, err)
	}
	info, meta, err := sess.Info(id, nil)
	if err != nil || info == nil {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	if info.ID != id || info.Name != "worker 1" || info.Node != "n1" || info.TTL != "15s" || info.LockDelay != 2*time.Second ||
		info.Behavior != "delete" || len(info.NodeChecks) != 1 || info.NodeChecks[0] != "serfHealth" || info.CreateIndex == 0 ||
		meta.LastIndex < info.CreateIndex {
		t.Fatalf("Info = %+v (meta %+v)", info, meta)
	}
	// Defaults: release, 15s lock delay, no TTL; a LockDelay as a number
	// below 1000 is seconds.
	def, _, err := sess.Create(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, body := h.raw("PUT", "/v1/session/create", `{"LockDelay":3,"Name":"n"}`); code != 200 || !strings.Contains(body, `"ID"`) {
		t.Fatalf("create with a number: %d %s", code, body)
	}
	list, _, err := sess.List(nil)
	if err != nil || len(list) != 3 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	byID := map[string]*consulapi.SessionEntry{}
	for _, e := range list {
		byID[e.ID] = e
	}
	if d := byID[def]; d == nil || d.Behavior != "release" || d.LockDelay != 15*time.Second || d.TTL != "" {
		t.Fatalf("defaults = %+v", d)
	}
	for _, e := range list {
		if e.Name == "n" && e.LockDelay != 3*time.Second {
			t.Fatalf("LockDelay 3 = %v", e.LockDelay)
		}
	}
	if onNode, _, err := sess.Node("n1", nil); err != nil || len(onNode) != 3 {
		t.Fatalf("Node(n1) = %d, %v", len(onNode), err)
	}
	if onNode, _, err := sess.Node("n9", nil); err != nil || len(onNode) != 0 {
		t.Fatalf("Node(n9) = %+v, %v", onNode, err)
	}
	renewed, _, err := sess.Renew(id, nil)
	if err != nil || renewed == nil || renewed.ID != id || renewed.TTL != "15s" {
		t.Fatalf("Renew = %+v, %v", renewed, err)
	}

	// Check lists other than the node's serfHealth are refused, naming them.
	if _, _, err := sess.CreateNoChecks(&consulapi.SessionEntry{Name: "x"}, nil); err == nil || !strings.Contains(err.Error(), "NodeChecks") {
		t.Fatalf("CreateNoChecks: %v", err)
	}
	if _, _, err := sess.Create(&consulapi.SessionEntry{ServiceChecks: []consulapi.ServiceCheck{{ID: "service:web"}}}, nil); err == nil ||
		!strings.Contains(err.Error(), "ServiceChecks") {
		t.Fatalf("ServiceChecks: %v", err)
	}

	// A blocking Info returns when the session ends.
	woke := make(chan *consulapi.SessionEntry, 1)
	errs := make(chan error, 1)
	go func() {
		e, m, err := sess.Info(id, &consulapi.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: time.Minute})
		if err == nil && m.LastIndex <= meta.LastIndex {
			err = fmt.Errorf("index %d did not pass %d", m.LastIndex, meta.LastIndex)
		}
		errs <- err
		woke <- e
	}()
	if _, err := sess.Destroy(id, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if e := <-woke; err != nil || e != nil {
			t.Fatalf("blocking Info after Destroy = %+v, %v", e, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the blocking Info did not return within 30s of the destroy")
	}
	// Gone: Info is empty, Renew says so (404), Destroy is idempotent.
	if e, _, err := sess.Info(id, nil); err != nil || e != nil {
		t.Fatalf("Info of a destroyed session = %+v, %v", e, err)
	}
	if e, _, err := sess.Renew(id, nil); err != nil || e != nil {
		t.Fatalf("Renew of a destroyed session = %+v, %v", e, err)
	}
	if code, _, _ := h.raw("PUT", "/v1/session/renew/"+id, ""); code != 404 {
		t.Fatalf("renew of a destroyed session: %d", code)
	}
	if _, err := sess.Destroy(id, nil); err != nil {
		t.Fatalf("second Destroy: %v", err)
	}
}

// TestClient_AcquireRelease: Consul's answers to acquire and release,
// and the lock fields of every KV answer.
func TestClient_AcquireRelease(t *testing.T) {
	h := newHarness(t)
	kv := h.client.KV()
	newSession := func(delay time.Duration) string {
		id, _, err := h.client.Session().Create(&consulapi.SessionEntry{Name: "s", LockDelay: delay}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	s1, s2 := newSession(0), newSession(30*time.Second)
	acquire := func(sess, value string, flags uint64) bool {
		t.Helper()
		ok, _, err := kv.Acquire(&consulapi.KVPair{Key: "app/leader", Session: sess, Value: []byte(value), Flags: flags}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	release := func(sess, value string) bool {
		t.Helper()
		ok, _, err := kv.Release(&consulapi.KVPair{Key: "app/leader", Session: sess, Value: []byte(value), Flags: 5}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	get := func() *consulapi.KVPair {
		t.Helper()
		p, _, err := kv.Get("app/leader", nil)
		if err != nil || p == nil {
			t.Fatalf("Get = %+v, %v", p, err)
		}
		return p
	}
	steps := []struct {
		name      string
		do        func() bool
		want      bool
		session   string
		lockIndex uint64
		value     string
		flags     uint64
	}{
		{"acquire a new key", func() bool { return acquire(s1, "a", consulapi.LockFlagValue) }, true, s1, 1, "a", consulapi.LockFlagValue},
		{"acquire held by another", func() bool { return acquire(s2, "b", 0) }, false, s1, 1, "a", consulapi.LockFlagValue},
		{"release by a non-holder", func() bool { return release(s2, "c") }, false, s1, 1, "a", consulapi.LockFlagValue},
		{"acquire by the holder updates", func() bool { return acquire(s1, `{"x":1}`, 7) }, true, s1, 1, `{"x":1}`, 7},
		{"a plain put keeps the holder", func() bool {
			_, err := kv.Put(&consulapi.KVPair{Key: "app/leader", Value: []byte("plain")}, nil)
			return err == nil
		}, true, s1, 1, "plain", 0},
		{"release by the holder", func() bool { return release(s1, "") }, true, "", 1, "", 5},
		{"release again", func() bool { return release(s1, "") }, false, "", 1, "", 5},
		{"acquire after a release", func() bool { return acquire(s2, "two", 0) }, true, s2, 2, "two", 0},
	}
	for _, st := range steps {
		if got := st.do(); got != st.want {
			t.Fatalf("%s: %v, want %v", st.name, got, st.want)
		}
		p := get()
		if p.Session != st.session || p.LockIndex != st.lockIndex || string(p.Value) != st.value || p.Flags != st.flags {
			t.Fatalf("%s: pair %+v (value %q)", st.name, p, p.Value)
		}
	}
	// Lists show the lock fields too.
	list, _, err := kv.List("app/", nil)
	if err != nil || len(list) != 1 || list[0].Session != s2 || list[0].LockIndex != 2 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	// s2 ends: the key is released and in its 30s lock delay.
	if _, err := h.client.Session().Destroy(s2, nil); err != nil {
		t.Fatal(err)
	}
	if p := get(); p.Session != "" || p.LockIndex != 2 {
		t.Fatalf("after destroy: %+v", p)
	}
	if acquire(s1, "late", 0) {
		t.Fatal("acquired during the lock delay")
	}
	// Acquiring with a session that is gone is an error naming acquire.
	if _, _, err := kv.Acquire(&consulapi.KVPair{Key: "app/other", Session: s2}, nil); err == nil || !strings.Contains(err.Error(), "acquire") {
		t.Fatalf("acquire by a destroyed session: %v", err)
	}
	// cas with acquire: both must hold, in one entry.
	if code, _, body := h.raw("PUT", "/v1/kv/app/fenced?acquire="+s1+"&cas=0", "v"); code != 200 || body != "true" {
		t.Fatalf("acquire with cas=0 of a new key: %d %s", code, body)
	}
	p, _, _ := kv.Get("app/fenced", nil)
	if code, _, body := h.raw("PUT", fmt.Sprintf("/v1/kv/app/fenced?release=%s&cas=%d", s1, p.ModifyIndex+1), ""); code != 200 || body != "false" {
		t.Fatalf("release with a stale cas: %d %s", code, body)
	}
	if code, _, body := h.raw("PUT", fmt.Sprintf("/v1/kv/app/fenced?release=%s&cas=%d", s1, p.ModifyIndex), ""); code != 200 || body != "true" {
		t.Fatalf("release with the current cas: %d %s", code, body)
	}
	// Each change of hands is audited as the native commands are (the
	// invalidation's release last).
	code, _, body := h.raw("GET", "/audit?resource_type=config&resource=app/leader", "")
	var recs []struct {
		Action string `json:"action"`
	}
	if err := json.Unmarshal([]byte(body), &recs); code != 200 || err != nil {
		t.Fatalf("audit: %d %s", code, body)
	}
	var actions []string
	for _, r := range recs {
		actions = append(actions, r.Action)
	}
	want := "release acquire release set acquire acquire" // newest first
	if got := strings.Join(actions, " "); got != want {
		t.Fatalf("audit actions %q, want %q", got, want)
	}
}

// TestClient_Txn: Consul's transaction verbs, all or nothing.
func TestClient_Txn(t *testing.T) {
	h := newHarness(t)
	sid, _, err := h.client.Session().Create(&consulapi.SessionEntry{Name: "txn"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.KV().Put(&consulapi.KVPair{Key: "t/old", Value: []byte("o")}, nil); err != nil {
		t.Fatal(err)
	}
	old, _, _ := h.client.KV().Get("t/old", nil)
	bin := []byte{0, 0xff, '<', '&'}
	ops := consulapi.TxnOps{
		{KV: &consulapi.KVTxnOp{Verb: consulapi.KVSet, Key: "t/a", Value: bin, Flags: 3}},
		{KV: &consulapi.KVTxnOp{Verb: consulapi.KVCAS, Key: "t/b", Value: []byte(`{"h":"<&>"}`), Index: 0}},
		{KV: &consulapi.KVTxnOp{Verb: consulapi.KVCheckIndex, Key: "t/old", Index: old.ModifyIndex}},
		{KV: &consulapi.KVTxnOp{Verb: consulapi.KVLock, Key: "t/lock", Session: sid, Flags: consulapi.LockFlagValue}},
		{KV: &consulapi.KVTxnOp{Verb: consulapi.KVCheckSession, Key: "t/lock", Session: sid}},
		{KV: &consulapi.KVTxnOp{Verb: consulapi.KVCheckNotExists, Key: "t/none"}},
		{KV: &consulapi.KVTxnOp{Verb: consulapi.KVGet, Key: "t/a"}},
		{KV: &consulapi.KVTxnOp{Verb: consulapi.KVGetTree, Key: "t/"}},
		{KV: &consulapi.KVTxnOp{Verb: consulapi.KVGetOrEmpty, Key: "t/none"}},
		{KV: &consulapi.KVTxnOp{Verb: consulapi.KVDeleteCAS, Key: "t/old", Index: old.ModifyIndex}},
		{KV: &consulapi.KVTxnOp{Verb: consulapi.KVDelete, Key: "t/none"}},
	}
	ok, resp, meta, err := h.client.Txn().Txn(ops, nil)
	if err != nil || !ok || len(resp.Errors) != 0 {
		t.Fatalf("Txn = %v %+v %v", ok, resp, err)
	}
	// set, cas, check-index, lock, check-session: 5 entries without values;
	// get: 1; get-tree: t/a, t/b, t/lock, t/old (before its delete-cas): 4.
	if len(resp.Results) != 10 {
		t.Fatalf("%d results: %+v", len(resp.Results), resp.Results)
	}
	for i, r := range resp.Results[:5] {
		if r.KV == nil || r.KV.Value != nil || r.KV.ModifyIndex == 0 {
			t.Fatalf("result %d = %+v", i, r.KV)
		}
	}
	if r := resp.Results[0].KV; r.Key != "t/a" || r.Flags != 3 || r.ModifyIndex != meta.LastIndex || r.CreateIndex != meta.LastIndex {
		t.Fatalf("set result = %+v (index %d)", r, meta.LastIndex)
	}
	if r := resp.Results[3].KV; r.Session != sid || r.LockIndex != 1 || r.Flags != consulapi.LockFlagValue {
		t.Fatalf("lock result = %+v", r)
	}
	if r := resp.Results[5].KV; r.Key != "t/a" || !bytes.Equal(r.Value, bin) {
		t.Fatalf("get result = %+v", r)
	}
	var tree []string
	for _, r := range resp.Results[6:] {
		tree = append(tree, fmt.Sprintf("%s=%q", r.KV.Key, r.KV.Value))
	}
	if got := strings.Join(tree, " "); got != `t/a="\x00\xff<&" t/b="{\"h\":\"<&>\"}" t/lock="" t/old="o"` {
		t.Fatalf("get-tree = %s", got)
	}
	if p, _, _ := h.client.KV().Get("t/old", nil); p != nil {
		t.Fatal("delete-cas did not delete")
	}

	// A failing op: 409, nothing changed, the op named.
	ok, resp, _, err = h.client.Txn().Txn(consulapi.TxnOps{
		{KV: &consulapi.KVTxnOp{Verb: consulapi.KVSet, Key: "t/new", Value: []byte("x")}},
		{KV: &consulapi.KVTxnOp{Verb: consulapi.KVDelete, Key: "t/a"}},
		{KV: &consulapi.KVTxnOp{Verb: consulapi.KVCheckIndex, Key: "t/b", Index: 1}},
	}, nil)
	if err != nil || ok || len(resp.Errors) != 1 || resp.Errors[0].OpIndex != 2 || !strings.Contains(resp.Errors[0].What, "t/b") ||
		len(resp.Results) != 0 {
		t.Fatalf("conflict = %v %+v %v", ok, resp, err)
	}
	if p, _, _ := h.client.KV().Get("t/new", nil); p != nil {
		t.Fatal("a failed transaction wrote t/new")
	}
	if p, _, _ := h.client.KV().Get("t/a", nil); p == nil {
		t.Fatal("a failed transaction deleted t/a")
	}
	// A lock by a session that is gone fails the transaction too.
	ok, resp, _, err = h.client.Txn().Txn(consulapi.TxnOps{
		{KV: &consulapi.KVTxnOp{Verb: consulapi.KVLock, Key: "t/x", Session: "0b5e6c43-1f9a-4f2e-9d55-0e1c3e3c7a11"}}}, nil)
	if err != nil || ok || len(resp.Errors) != 1 || resp.Errors[0].OpIndex != 0 {
		t.Fatalf("lock by a missing session = %v %+v %v", ok, resp, err)
	}
	// Other kinds of operations are refused, naming them.
	_, _, _, err = h.client.Txn().Txn(consulapi.TxnOps{
		{KV: &consulapi.KVTxnOp{Verb: consulapi.KVGet, Key: "t/a"}},
		{Service: &consulapi.ServiceTxnOp{Verb: consulapi.ServiceGet, Node: "n1", Service: consulapi.AgentService{ID: "web"}}},
	}, nil)
	if err == nil || !strings.Contains(err.Error(), `"field":"[1].Service"`) {
		t.Fatalf("a service operation: %v", err)
	}
	// More than 64 operations: 413, as Consul answers too many.
	many := make(consulapi.TxnOps, registry.MaxTxnOps+1)
	for i := range many {
		many[i] = &consulapi.TxnOp{KV: &consulapi.KVTxnOp{Verb: consulapi.KVGet, Key: "t/a"}}
	}
	body, _ := json.Marshal(many)
	if code, _, got := h.raw("PUT", "/v1/txn", string(body)); code != 413 || !strings.Contains(got, "too many operations (65 ") {
		t.Fatalf("65 ops: %d %s", code, got)
	}
	body, _ = json.Marshal(many[:registry.MaxTxnOps])
	if code, _, got := h.raw("PUT", "/v1/txn", string(body)); code != 200 {
		t.Fatalf("64 ops: %d %s", code, got)
	}
}

// TestClient_LockAndSemaphore: api.LockKey hands over after Unlock, and
// api.SemaphorePrefix lets two of three contenders hold at once.
func TestClient_LockAndSemaphore(t *testing.T) {
	h := newHarness(t)
	l1, err := h.client.LockKey("jobs/nightly")
	if err != nil {
		t.Fatal(err)
	}
	l2, err := h.client.LockKey("jobs/nightly")
	if err != nil {
		t.Fatal(err)
	}
	if lost, err := l1.Lock(nil); err != nil || lost == nil {
		t.Fatalf("l1.Lock = %v", err)
	}
	got2 := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		lost, err := l2.Lock(stop)
		if err == nil && lost == nil {
			err = fmt.Errorf("l2.Lock gave up")
		}
		got2 <- err
	}()
	// l2 waits while l1 holds: the key names l1's session.
	p, _, err := h.client.KV().Get("jobs/nightly", nil)
	if err != nil || p == nil || p.Session == "" || p.Flags != consulapi.LockFlagValue {
		t.Fatalf("held key = %+v, %v", p, err)
	}
	select {
	case err := <-got2:
		t.Fatalf("l2 got the lock while l1 held it: %v", err)
	default:
	}
	if err := l1.Unlock(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got2:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("l2 did not get the lock within 30s of l1's Unlock")
	}
	p, _, _ = h.client.KV().Get("jobs/nightly", nil)
	if p.LockIndex != 2 {
		t.Fatalf("lock index after the handover = %d", p.LockIndex)
	}
	if err := l2.Unlock(); err != nil {
		t.Fatal(err)
	}

	// Semaphore: limit 2, three contenders.
	sems := make([]*consulapi.Semaphore, 3)
	for i := range sems {
		if sems[i], err = h.client.SemaphorePrefix("sem/pool", 2); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range sems[:2] {
		if lost, err := s.Acquire(nil); err != nil || lost == nil {
			t.Fatalf("Acquire: %v", err)
		}
	}
	var mu sync.Mutex
	third := false
	done := make(chan error, 1)
	go func() {
		lost, err := sems[2].Acquire(stop)
		if err == nil && lost == nil {
			err = fmt.Errorf("the third Acquire gave up")
		}
		mu.Lock()
		third = err == nil
		mu.Unlock()
		done <- err
	}()
	// The third contender has made its entry and waits.
	retry.Run(t, func(r *retry.R) {
		keys, _, err := h.client.KV().Keys("sem/pool/", "", nil)
		if err != nil || len(keys) != 4 {
			r.Fatalf("keys = %q, %v", keys, err)
		}
	}, retry.Timeout(30*time.Second))
	mu.Lock()
	if third {
		t.Fatal("a third contender holds a semaphore of limit 2")
	}
	mu.Unlock()
	if err := sems[0].Release(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the third contender did not acquire within 30s of a release")
	}
	for _, s := range sems[1:] {
		if err := s.Release(); err != nil {
			t.Fatal(err)
		}
	}
}
