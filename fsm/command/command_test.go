package command_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

func u64(n uint64) *uint64 { return &n }
func i64(n int64) *int64   { return &n }
func str(s string) *string { return &s }
func intp(n int) *int      { return &n }

func testMeta() command.Meta {
	return command.Meta{Actor: "alice", RequestID: "req-1", Node: "n1", Time: 1_700_000_000_123_456_789}
}

func fullInstance() registry.Instance {
	md := map[string]string{}
	for i := 0; i < 30; i++ {
		md[fmt.Sprintf("k%02d", i)] = fmt.Sprintf("v%d", i)
	}
	return registry.Instance{
		ID: "web-1", Service: "web", Type: "http", Address: "10.0.0.1", Port: 9001,
		Tags: []string{"a", "v1"}, Metadata: md, Node: "n1", Status: registry.StatusPassing,
		Checks: []registry.Check{{Kind: registry.CheckHTTP, HTTP: "http://10.0.0.1:9001/h", Interval: "5s",
			Timeout: "1s", Status: registry.StatusWarning, Output: "slow"}},
		DependsOn: []string{"db"}, DeregisterCriticalAfter: "1h", CreateIndex: 3, ModifyIndex: 9,
	}
}

func fullRoute() registry.Route {
	return registry.Route{
		ID: "r-web", Hosts: []string{"api.example", "*.example"}, Paths: []string{"/web/"}, Match: "prefix",
		Methods: []string{"GET", "POST"}, Service: "web", StripPath: true, PreserveHost: true, Priority: -3,
		LoadBalancer: "consistent_hash", HashOn: "header:X-User", Timeout: "5s", Retries: intp(0),
		RateLimit:      &registry.RateLimit{RPS: 12.5, Burst: 20, Key: "jwt:sub", Scope: "cluster"},
		CircuitBreaker: &registry.CircuitBreaker{ConsecutiveFailures: 5, OpenFor: "30s"},
		Cache:          &registry.CachePolicy{TTL: "10s"},
		CORS: &registry.CORSPolicy{Origins: []string{"https://app.example"}, Methods: []string{"GET"},
			Headers: []string{"X-A"}, Credentials: true, MaxAge: "1h", ExposeHeaders: []string{"X-B"}},
		Auth:        &registry.AuthPolicy{Type: "jwt", ForwardClaims: []string{"sub", "email"}},
		Compression: &registry.Compression{Enabled: true},
		Metadata:    map[string]string{"owner": "team-a", "tier": "1"},
		CreateIndex: 4, ModifyIndex: 8,
	}
}

func value256() []byte {
	// A 256-byte JSON value.
	v := []byte(`"` + strings.Repeat("x", 254) + `"`)
	if len(v) != 256 {
		panic(len(v))
	}
	return v
}

type sample struct {
	name string
	t    command.Type
	msg  any
}

// samples returns, for every command type, a fully populated message and a
// zero one.
func samples() []sample {
	return []sample{
		{"register full", command.TypeRegisterInstance, &command.RegisterInstance{Meta: testMeta(), Instance: fullInstance()}},
		{"register zero", command.TypeRegisterInstance, &command.RegisterInstance{}},
		{"deregister instance", command.TypeDeregisterInstance, &command.DeregisterInstance{Meta: testMeta(), Service: "web", ID: "web-1"}},
		{"deregister instance zero", command.TypeDeregisterInstance, &command.DeregisterInstance{}},
		{"deregister service", command.TypeDeregisterService, &command.DeregisterService{Meta: testMeta(), Service: "web"}},
		{"deregister service zero", command.TypeDeregisterService, &command.DeregisterService{}},
		{"set status", command.TypeSetStatus, &command.SetStatus{Meta: testMeta(), Service: "web", ID: "web-1", Status: "critical", Output: "dial tcp: refused"}},
		{"set status zero", command.TypeSetStatus, &command.SetStatus{}},
		{"config set", command.TypeConfigSet, &command.ConfigSet{Meta: testMeta(), Batch: true, Entries: []command.ConfigOp{
			{Key: "app/a", Value: []byte(`{"x":1}`), CAS: nil},
			{Key: "app/b", Value: value256(), CAS: u64(0)},
			{Key: "app/c", Value: []byte(`"\u00e9\n"`), CAS: u64(1<<64 - 1)},
		}}},
		{"config set zero", command.TypeConfigSet, &command.ConfigSet{}},
		{"config delete cas", command.TypeConfigDelete, &command.ConfigDelete{Meta: testMeta(), Key: "app/a", CAS: u64(42)}},
		{"config delete cas 0", command.TypeConfigDelete, &command.ConfigDelete{Meta: testMeta(), Key: "app/a", CAS: u64(0)}},
		{"config delete zero", command.TypeConfigDelete, &command.ConfigDelete{}},
		{"route upsert", command.TypeRouteUpsert, &command.RouteUpsert{Meta: testMeta(), Route: fullRoute(), CreateOnly: true}},
		{"route upsert zero", command.TypeRouteUpsert, &command.RouteUpsert{}},
		{"route delete", command.TypeRouteDelete, &command.RouteDelete{Meta: testMeta(), ID: "r-web"}},
		{"route delete zero", command.TypeRouteDelete, &command.RouteDelete{}},
		{"cluster init", command.TypeClusterInit, &command.ClusterInit{Meta: testMeta(), ClusterID: "c-1", Secret: "s3cret"}},
		{"cluster init zero", command.TypeClusterInit, &command.ClusterInit{}},
		{"audit settings", command.TypeAuditSettings, &command.AuditSettings{Meta: testMeta(), MaxRecords: i64(5), MaxBytes: i64(1 << 20), OnFull: str("drop_oldest"), Archive: str("on")}},
		{"audit settings zero", command.TypeAuditSettings, &command.AuditSettings{}},
		{"audit watermark", command.TypeAuditWatermark, &command.AuditWatermark{Meta: testMeta(), Index: 1<<64 - 1, Position: 7, Attach: true}},
		{"audit watermark zero", command.TypeAuditWatermark, &command.AuditWatermark{}},
		{"noop", command.TypeNoop, &command.Noop{Meta: testMeta()}},
		{"noop zero", command.TypeNoop, &command.Noop{}},
		{"meta negative time", command.TypeNoop, &command.Noop{Meta: command.Meta{Time: -1}}},
		{"meta with auth", command.TypeConfigDelete, &command.ConfigDelete{Meta: command.Meta{Actor: "a", Time: 1,
			Auth: &command.Auth{Enforce: true, Kind: 2, Subject: "alice", Roles: []string{"ops", "dev"}, Expires: 99}}, Key: "k"}},
		{"acl bootstrap", command.TypeACLBootstrap, &command.ACLBootstrap{Meta: testMeta(), Token: registry.ACLToken{AccessorID: "a",
			SecretHash: "h", Policies: []string{"global-management"}, CreateTime: 5, CreateIndex: 1, ModifyIndex: 2}}},
		{"acl policy upsert", command.TypeACLPolicyUpsert, &command.ACLPolicyUpsert{Meta: testMeta(), CreateOnly: true,
			Policy: registry.ACLPolicy{Name: "p", Description: "d", Rules: []registry.ACLRule{{Resource: "service", Prefix: "web", Access: "write"}}}}},
		{"acl policy delete", command.TypeACLPolicyDelete, &command.ACLPolicyDelete{Meta: testMeta(), Name: "p"}},
		{"acl role upsert", command.TypeACLRoleUpsert, &command.ACLRoleUpsert{Meta: testMeta(), Role: registry.ACLRole{Name: "r", Policies: []string{"p"}}}},
		{"acl role delete", command.TypeACLRoleDelete, &command.ACLRoleDelete{Meta: testMeta(), Name: "r"}},
		{"acl token create", command.TypeACLTokenCreate, &command.ACLTokenCreate{Meta: testMeta(), Token: registry.ACLToken{AccessorID: "t",
			SecretHash: "h", Roles: []string{"r"}, ExpirationTime: 7}}},
		{"acl token update", command.TypeACLTokenUpdate, &command.ACLTokenUpdate{Meta: testMeta(), Accessor: "t",
			Description: str("x"), Policies: &[]string{"p"}}},
		{"acl token delete", command.TypeACLTokenDelete, &command.ACLTokenDelete{Meta: testMeta(), Accessor: "t"}},
		{"session create", command.TypeSessionCreate, &command.SessionCreate{Meta: testMeta(), Session: registry.Session{
			ID: "5c3e", Name: "worker-1", Node: "n2", TTL: "15s", Behavior: "delete", LockDelay: "0s", CreateTime: 9,
			RenewIndex: 3, CreateIndex: 3, ModifyIndex: 3}}},
		{"session create zero", command.TypeSessionCreate, &command.SessionCreate{}},
		{"session renew", command.TypeSessionRenew, &command.SessionRenew{Meta: testMeta(), ID: "5c3e"}},
		{"session invalidate ttl", command.TypeSessionInvalidate, &command.SessionInvalidate{Meta: testMeta(), ID: "5c3e",
			Reason: "ttl", RenewIndex: u64(1<<64 - 1)}},
		{"session invalidate zero", command.TypeSessionInvalidate, &command.SessionInvalidate{}},
		{"config lock acquire", command.TypeConfigLock, &command.ConfigLock{Meta: testMeta(), Key: "app/lock", Session: "5c3e", Value: []byte(`{"a":1}`)}},
		{"config lock release", command.TypeConfigLock, &command.ConfigLock{Meta: testMeta(), Key: "app/lock", Session: "5c3e", Release: true}},
		{"txn", command.TypeTxn, &command.Txn{Meta: testMeta(), Ops: []registry.TxnOp{
			{Op: "check-index", Key: "a", Index: u64(12)}, {Op: "set", Key: "a", Value: []byte(`1`)},
			{Op: "lock", Key: "b", Session: "s"}, {Op: "delete-tree", Key: "c/"}}}},
		{"txn zero", command.TypeTxn, &command.Txn{}},
		{"lock delay end", command.TypeLockDelayEnd, &command.LockDelayEnd{Meta: testMeta(), Delays: []registry.LockDelay{
			{Key: "a", Index: 7}, {Key: "b", Session: "s", Delay: 15e9, Index: 8}}}},
		{"maintenance enable", command.TypeMaintenance, &command.Maintenance{Meta: testMeta(), Enable: true,
			Record: registry.Maintenance{Key: "instance/web/web-1", Scope: "instance", Service: "web", ID: "web-1", Reason: "disk swap"}}},
		{"config set raw", command.TypeConfigSetRaw, &command.ConfigSet{Meta: testMeta(), Entries: []command.ConfigOp{
			{Key: "k", Value: []byte("not json"), Raw: true, Flags: 42}}}},
		{"maintenance disable", command.TypeMaintenance, &command.Maintenance{Meta: testMeta(),
			Record: registry.Maintenance{Key: "node/n1", Scope: "node", Node: "n1"}}},
	}
}

func TestCodec_RoundTripEveryType(t *testing.T) {
	t.Parallel()
	c := command.NewCodec()
	covered := map[command.Type]bool{}
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			b, err := c.Encode(s.t, s.msg)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if b[0] != byte(s.t) || b[1] != command.Version {
				t.Fatalf("header = % x, want type %d version %d", b[:2], s.t, command.Version)
			}
			ty, got, err := c.Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if ty != s.t {
				t.Fatalf("type = %s, want %s", ty, s.t)
			}
			if reflect.TypeOf(got) != reflect.TypeOf(s.msg) {
				t.Fatalf("decoded %T, want %T", got, s.msg)
			}
			if !reflect.DeepEqual(got, s.msg) {
				t.Fatalf("round trip differs:\n got  %#v\n want %#v", got, s.msg)
			}
			// Encoding is deterministic: same message, same bytes.
			b2, err := c.Encode(s.t, got)
			if err != nil || !bytes.Equal(b, b2) {
				t.Fatalf("re-encoding differs (%v)", err)
			}
		})
		covered[s.t] = true
	}
	for ty := 0; ty < 256; ty++ {
		if command.Type(ty).Known() && !covered[command.Type(ty)] {
			t.Errorf("type %s has no round-trip sample", command.Type(ty))
		}
	}
}

// The difference between "no CAS" and "create only" must survive the wire.
func TestCodec_CASNilVersusZero(t *testing.T) {
	t.Parallel()
	c := command.NewCodec()
	for _, cas := range []*uint64{nil, u64(0), u64(1), u64(1 << 40)} {
		b, err := c.Encode(command.TypeConfigDelete, &command.ConfigDelete{Key: "k", CAS: cas})
		if err != nil {
			t.Fatal(err)
		}
		_, msg, err := c.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		got := msg.(*command.ConfigDelete).CAS
		if (got == nil) != (cas == nil) || (got != nil && *got != *cas) {
			t.Errorf("CAS %v decoded as %v", cas, got)
		}
	}
	for _, retries := range []*int{nil, intp(0), intp(3)} {
		b, err := c.Encode(command.TypeRouteUpsert, &command.RouteUpsert{Route: registry.Route{ID: "r", Retries: retries}})
		if err != nil {
			t.Fatal(err)
		}
		_, msg, err := c.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		got := msg.(*command.RouteUpsert).Route.Retries
		if (got == nil) != (retries == nil) || (got != nil && *got != *retries) {
			t.Errorf("retries %v decoded as %v", retries, got)
		}
	}
}

// Map order must never reach the bytes: snapshots compare equal states by bytes.
func TestCodec_CanonicalMaps(t *testing.T) {
	t.Parallel()
	c := command.NewCodec()
	first, err := c.Encode(command.TypeRegisterInstance, &command.RegisterInstance{Instance: fullInstance()})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		in := fullInstance() // a fresh map each time
		b, err := c.Encode(command.TypeRegisterInstance, &command.RegisterInstance{Instance: in})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, first) {
			t.Fatal("encoding depends on map iteration order")
		}
	}
}

func TestCodec_ConcurrentUse(t *testing.T) {
	t.Parallel()
	c := command.NewCodec()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				s := samples()[i%len(samples())]
				b, err := c.Encode(s.t, s.msg)
				if err != nil {
					t.Error(err)
					return
				}
				if _, got, err := c.Decode(b); err != nil || !reflect.DeepEqual(got, s.msg) {
					t.Errorf("concurrent round trip of %s: %v", s.name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      []byte
		ty      command.Type
		ver     uint8
		payload []byte
		err     error
	}{
		{"nil", nil, 0, 0, nil, command.ErrShort},
		{"empty", []byte{}, 0, 0, nil, command.ErrShort},
		{"one byte", []byte{1}, 0, 0, nil, command.ErrShort},
		{"header only", []byte{1, 1}, 1, 1, []byte{}, nil},
		{"with payload", []byte{5, 7, 0x80, 0x90}, 5, 7, []byte{0x80, 0x90}, nil},
		{"skippable", []byte{0x81, 1, 0xc0}, command.TypeNoop, 1, []byte{0xc0}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ty, ver, payload, err := command.Header(tc.in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if ty != tc.ty || ver != tc.ver || !bytes.Equal(payload, tc.payload) {
				t.Fatalf("got (%d, %d, % x), want (%d, %d, % x)", ty, ver, payload, tc.ty, tc.ver, tc.payload)
			}
		})
	}
}

func TestDecode_Errors(t *testing.T) {
	t.Parallel()
	c := command.NewCodec()
	valid, err := c.Encode(command.TypeSetStatus, &command.SetStatus{Meta: testMeta(), Service: "web", ID: "w", Status: "passing"})
	if err != nil {
		t.Fatal(err)
	}
	with := func(ty, ver byte) []byte { return append([]byte{ty, ver}, valid[2:]...) }
	tests := []struct {
		name string
		in   []byte
		want error // nil: any non-nil error
	}{
		{"nil", nil, command.ErrShort},
		{"one byte", []byte{byte(command.TypeSetStatus)}, command.ErrShort},
		{"type 0", with(0, command.Version), command.ErrUnknownType},
		{"type 28 (next to be assigned)", with(28, command.Version), command.ErrUnknownType},
		{"type 127", with(127, command.Version), command.ErrUnknownType},
		{"skippable unknown", with(byte(command.SkippableFlag|2), command.Version), command.ErrUnknownType},
		{"type 255", with(255, command.Version), command.ErrUnknownType},
		{"unknown type wins over unknown version", with(77, 9), command.ErrUnknownType},
		{"version 0", with(byte(command.TypeSetStatus), 0), command.ErrUnknownVersion},
		{"version 2", with(byte(command.TypeSetStatus), command.Version+1), command.ErrUnknownVersion},
		{"version 255 on noop", with(byte(command.TypeNoop), 255), command.ErrUnknownVersion},
		{"empty payload", []byte{byte(command.TypeSetStatus), command.Version}, nil},
		{"truncated payload", valid[:len(valid)-4], nil},
		{"reserved byte 0xc1", []byte{byte(command.TypeSetStatus), command.Version, 0xc1}, nil},
		{"string where struct", []byte{byte(command.TypeRouteDelete), command.Version, 0xa3, 'a', 'b', 'c'}, nil},
		{"int where string", []byte{byte(command.TypeRouteDelete), command.Version, 0x81, 0xa2, 'i', 'd', 0x05}, nil},
		{"huge array length", []byte{byte(command.TypeConfigSet), command.Version, 0x81, 0xa7, 'e', 'n', 't', 'r', 'i', 'e', 's', 0xdd, 0xff, 0xff, 0xff, 0xff}, nil},
		{"huge string length", []byte{byte(command.TypeRouteDelete), command.Version, 0x81, 0xa2, 'i', 'd', 0xdb, 0x7f, 0xff, 0xff, 0xff}, nil},
		{"huge map length", []byte{byte(command.TypeRegisterInstance), command.Version, 0xdf, 0xff, 0xff, 0xff, 0xff}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var (
				msg any
				err error
			)
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("Decode panicked: %v", p)
					}
				}()
				_, msg, err = c.Decode(tc.in)
			}()
			if err == nil {
				t.Fatalf("Decode accepted % x as %#v", tc.in, msg)
			}
			if msg != nil {
				t.Errorf("Decode returned a message with an error: %#v", msg)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want == nil {
				for _, s := range []error{command.ErrShort, command.ErrUnknownType, command.ErrUnknownVersion} {
					if errors.Is(err, s) {
						t.Errorf("malformed payload reported as %v", s)
					}
				}
			}
		})
	}
}

func TestType_StringAndKnown(t *testing.T) {
	t.Parallel()
	known := map[command.Type]string{
		command.TypeRegisterInstance: "register_instance", command.TypeDeregisterInstance: "deregister_instance",
		command.TypeDeregisterService: "deregister_service", command.TypeSetStatus: "set_status",
		command.TypeConfigSet: "config_set", command.TypeConfigDelete: "config_delete",
		command.TypeRouteUpsert: "route_upsert", command.TypeRouteDelete: "route_delete",
		command.TypeClusterInit: "cluster_init", command.TypeNoop: "noop",
		command.TypeAuditSettings: "audit_settings", command.TypeAuditWatermark: "audit_watermark",
		command.TypeACLBootstrap: "acl_bootstrap", command.TypeACLPolicyUpsert: "acl_policy_upsert",
		command.TypeACLPolicyDelete: "acl_policy_delete", command.TypeACLRoleUpsert: "acl_role_upsert",
		command.TypeACLRoleDelete: "acl_role_delete", command.TypeACLTokenCreate: "acl_token_create",
		command.TypeACLTokenUpdate: "acl_token_update", command.TypeACLTokenDelete: "acl_token_delete",
		command.TypeSessionCreate: "session_create", command.TypeSessionRenew: "session_renew",
		command.TypeSessionInvalidate: "session_invalidate", command.TypeConfigLock: "config_lock",
		command.TypeTxn: "txn", command.TypeLockDelayEnd: "lock_delay_end",
		command.TypeMaintenance: "maintenance", command.TypeConfigSetRaw: "config_set_raw",
	}
	for i := 0; i < 256; i++ {
		ty := command.Type(i)
		name, ok := known[ty]
		if ty.Known() != ok {
			t.Errorf("Type(%d).Known() = %v", i, ty.Known())
		}
		if ok && ty.String() != name {
			t.Errorf("Type(%d).String() = %q, want %q", i, ty.String(), name)
		}
		if !ok && ty.String() != fmt.Sprintf("unknown(%d)", i) {
			t.Errorf("Type(%d).String() = %q", i, ty.String())
		}
	}
	if command.TypeNoop&command.SkippableFlag == 0 {
		t.Error("noop must be skippable")
	}
	for ty := range known {
		if ty != command.TypeNoop && ty&command.SkippableFlag != 0 {
			t.Errorf("%s must not be skippable", ty)
		}
	}
}

func TestResult_RawValueAndError(t *testing.T) {
	t.Parallel()
	r := &command.Result{Value: map[string]int{"deregistered": 2}}
	b, err := r.RawValue()
	if err != nil || string(b) != `{"deregistered":2}` {
		t.Fatalf("RawValue = %s, %v", b, err)
	}
	raw := json.RawMessage(`{"already":"json"}`)
	r = &command.Result{Value: raw}
	if b, err := r.RawValue(); err != nil || string(b) != string(raw) {
		t.Fatalf("RawValue passthrough = %s, %v", b, err)
	}
	r = &command.Result{Value: func() {}}
	if _, err := r.RawValue(); err == nil {
		t.Fatal("RawValue of a func should fail")
	}
	e := &command.Error{Code: command.CodeCASConflict, Message: "k has modify_index 3, not 2"}
	if e.Error() != "cas_conflict: k has modify_index 3, not 2" {
		t.Fatalf("Error() = %q", e.Error())
	}
	// A forwarded result keeps its shape through JSON.
	in := command.Result{Index: 7, Created: true, Value: map[string]string{"id": "x"}, Err: nil}
	jb, _ := json.Marshal(in)
	var out struct {
		Index   uint64          `json:"index"`
		Created bool            `json:"created"`
		Value   json.RawMessage `json:"value"`
		Err     *command.Error  `json:"error"`
	}
	if err := json.Unmarshal(jb, &out); err != nil || out.Index != 7 || !out.Created || string(out.Value) != `{"id":"x"}` || out.Err != nil {
		t.Fatalf("json shape %s", jb)
	}
}

func TestCodec_ValueHelpers(t *testing.T) {
	t.Parallel()
	c := command.NewCodec()
	var buf bytes.Buffer
	want := fullRoute()
	if err := c.EncodeValue(&buf, &want); err != nil {
		t.Fatal(err)
	}
	var got registry.Route
	if err := c.DecodeValue(bytes.NewReader(buf.Bytes()), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("value round trip differs")
	}
	for _, bad := range [][]byte{nil, {0xc1}, {0xa3, 'a'}, {0x81, 0xa2, 'i', 'd', 0x93}} {
		var r registry.Route
		if err := c.DecodeValue(bytes.NewReader(bad), &r); err == nil {
			t.Errorf("DecodeValue(% x) accepted garbage", bad)
		}
		if err := c.DecodePayload(bad, &r); err == nil {
			t.Errorf("DecodePayload(% x) accepted garbage", bad)
		}
	}
}

// TestResult_AppendJSONAsMarshal: a forwarded write's answer (AppendJSON)
// is json.Marshal's document for the Result, whatever the value, and the
// value appends itself when it can (a config entry) with the same bytes.
func TestResult_AppendJSONAsMarshal(t *testing.T) {
	t.Parallel()
	entry := registry.ConfigEntry{Key: "a<b>", Value: []byte(`{"x":[1,2]}`), CreateIndex: 4, ModifyIndex: 5, Flags: 7}
	cases := []struct {
		name string
		r    command.Result
	}{
		{"empty", command.Result{}},
		{"index only", command.Result{Index: 12}},
		{"created", command.Result{Index: 3, Created: true, Value: map[string]string{"id": "x"}}},
		{"config entry", command.Result{Index: 5, Value: entry}},
		{"config entry pointer", command.Result{Index: 5, Value: &entry}},
		{"nil config entry pointer", command.Result{Index: 5, Value: (*registry.ConfigEntry)(nil)}},
		{"raw config entry", command.Result{Index: 5, Value: registry.ConfigEntry{Key: "r", Value: []byte{0, 1}, Raw: true}}},
		{"raw message", command.Result{Index: 6, Value: json.RawMessage(`{"already":"json"}`)}},
		{"nil raw message", command.Result{Index: 6, Value: json.RawMessage(nil)}},
		{"business error", command.Result{Index: 8, Err: &command.Error{Code: command.CodeCASConflict, Message: `k has "modify_index" 3 <not 2>`}}},
		{"list", command.Result{Index: 9, Value: []registry.ConfigEntry{entry, entry}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want, err := json.Marshal(c.r)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.r.AppendJSON([]byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "x"+string(want) {
				t.Fatalf("got  %s\nwant x%s", got, want)
			}
			if c.r.Value == nil {
				return
			}
			raw, err := c.r.RawValue()
			if err != nil {
				t.Fatal(err)
			}
			wantValue, _ := json.Marshal(c.r.Value)
			if _, ok := c.r.Value.(json.RawMessage); ok && c.r.Value.(json.RawMessage) == nil {
				wantValue = nil // RawValue passes a raw message through as it is
			}
			if !bytes.Equal(raw, wantValue) {
				t.Fatalf("RawValue %s, want %s", raw, wantValue)
			}
		})
	}
	if _, err := (&command.Result{Value: func() {}}).AppendJSON(nil); err == nil {
		t.Fatal("AppendJSON of a func value should fail")
	}
}
