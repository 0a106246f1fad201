package registry_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/nexus/nexus/registry"
)

func TestNormalizeSession(t *testing.T) {
	t.Parallel()
	ok := registry.Session{ID: "s-1", Name: "worker-1", Node: "n1"}
	with := func(f func(s *registry.Session)) registry.Session {
		s := ok
		f(&s)
		return s
	}
	cases := []struct {
		name  string
		in    registry.Session
		field string // "" = valid
	}{
		{"defaults", ok, ""},
		{"no name", with(func(s *registry.Session) { s.Name = "" }), ""},
		{"ttl min", with(func(s *registry.Session) { s.TTL = "10s" }), ""},
		{"ttl max", with(func(s *registry.Session) { s.TTL = "24h" }), ""},
		{"ttl too short", with(func(s *registry.Session) { s.TTL = "9s" }), "ttl"},
		{"ttl too long", with(func(s *registry.Session) { s.TTL = "25h" }), "ttl"},
		{"ttl garbage", with(func(s *registry.Session) { s.TTL = "soon" }), "ttl"},
		{"behavior delete", with(func(s *registry.Session) { s.Behavior = "delete" }), ""},
		{"behavior unknown", with(func(s *registry.Session) { s.Behavior = "explode" }), "behavior"},
		{"lock delay zero", with(func(s *registry.Session) { s.LockDelay = "0s" }), ""},
		{"lock delay max", with(func(s *registry.Session) { s.LockDelay = "60s" }), ""},
		{"lock delay too long", with(func(s *registry.Session) { s.LockDelay = "61s" }), "lock_delay"},
		{"lock delay negative", with(func(s *registry.Session) { s.LockDelay = "-1s" }), "lock_delay"},
		{"lock delay garbage", with(func(s *registry.Session) { s.LockDelay = "x" }), "lock_delay"},
		{"bad id", with(func(s *registry.Session) { s.ID = "a b" }), "id"},
		{"empty id", with(func(s *registry.Session) { s.ID = "" }), "id"},
		{"name with spaces", with(func(s *registry.Session) { s.Name = "Consul API Lock" }), ""},
		{"bad name", with(func(s *registry.Session) { s.Name = "has\ttab" }), "name"},
		{"long name", with(func(s *registry.Session) { s.Name = strings.Repeat("a", 129) }), "name"},
		{"bad node", with(func(s *registry.Session) { s.Node = "" }), "node"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, e := registry.NormalizeSession(c.in)
			if c.field == "" {
				wantCode(t, e, "")
				if got.Behavior == "" || got.LockDelay == "" {
					t.Fatalf("defaults not filled: %+v", got)
				}
				return
			}
			wantCode(t, e, registry.CodeInvalid)
			if e.Field != c.field {
				t.Fatalf("field = %q, want %q (%s)", e.Field, c.field, e.Message)
			}
		})
	}
	got, _ := registry.NormalizeSession(ok)
	if got.Behavior != registry.BehaviorRelease || got.LockDelay != "15s" {
		t.Fatalf("defaults = %q %q, want release 15s", got.Behavior, got.LockDelay)
	}
}

func newSession(t *testing.T, s *registry.Store, idx uint64, id, behavior, lockDelay string) {
	t.Helper()
	write(t, s, idx, func(tx *registry.Tx) {
		if _, e := tx.CreateSession(registry.Session{ID: id, Name: "w-" + id, Node: "n1", TTL: "10s", Behavior: behavior, LockDelay: lockDelay}); e != nil {
			t.Fatalf("CreateSession(%s): %v", id, e)
		}
	})
}

func lock(t *testing.T, s *registry.Store, idx uint64, key, session string, release bool) registry.LockOutcome {
	t.Helper()
	var out registry.LockOutcome
	write(t, s, idx, func(tx *registry.Tx) {
		var e *registry.Error
		if release {
			out, e = tx.LockRelease(key, nil, session)
		} else {
			out, e = tx.LockAcquire(key, []byte(`"v"`), session)
		}
		wantCode(t, e, "")
	})
	return out
}

func entryOf(s *registry.Store, key string) *registry.ConfigEntry {
	tx := s.ReadTxn()
	defer tx.Abort()
	return tx.ConfigGet(nil, key)
}

// TestLock_Handovers walks one key through acquire, re-acquire, contention,
// release and a second holder: lock_index grows only when the key changes
// hands, and a refused acquire changes nothing.
func TestLock_Handovers(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	newSession(t, s, 1, "a", "release", "0s")
	newSession(t, s, 2, "b", "release", "0s")

	out := lock(t, s, 3, "k", "a", false)
	if !out.OK || out.Entry.Session != "a" || out.Entry.LockIndex != 1 || out.Entry.ModifyIndex != 3 {
		t.Fatalf("first acquire: %+v %+v", out, out.Entry)
	}
	out = lock(t, s, 4, "k", "a", false)
	if !out.OK || out.Entry.LockIndex != 1 || out.Entry.ModifyIndex != 4 {
		t.Fatalf("re-acquire by the holder must keep lock_index 1: %+v", out.Entry)
	}
	before := entryOf(s, "k")
	out = lock(t, s, 5, "k", "b", false)
	if out.OK || out.Reason != registry.LockHeld || !reflect.DeepEqual(entryOf(s, "k"), before) {
		t.Fatalf("contended acquire: %+v, entry %+v", out, entryOf(s, "k"))
	}
	out = lock(t, s, 6, "k", "b", true)
	if out.OK || out.Reason != registry.LockNotHolder {
		t.Fatalf("release by a non-holder: %+v", out)
	}
	// A plain set keeps the key held.
	write(t, s, 7, func(tx *registry.Tx) {
		_, _, e := tx.ConfigSet([]registry.ConfigWrite{{Key: "k", Value: []byte(`2`)}})
		wantCode(t, e, "")
	})
	if e := entryOf(s, "k"); e.Session != "a" || e.LockIndex != 1 || string(e.Value) != "2" {
		t.Fatalf("a set dropped the lock: %+v", e)
	}
	out = lock(t, s, 8, "k", "a", true)
	if !out.OK || out.Entry.Session != "" || out.Entry.LockIndex != 1 || string(out.Entry.Value) != "2" {
		t.Fatalf("release: %+v", out.Entry)
	}
	out = lock(t, s, 9, "k", "b", false)
	if !out.OK || out.Entry.Session != "b" || out.Entry.LockIndex != 2 {
		t.Fatalf("second holder: %+v", out.Entry)
	}
	write(t, s, 10, func(tx *registry.Tx) {
		_, e := tx.LockAcquire("other", nil, "nope")
		wantCode(t, e, registry.CodeNotFound)
	})
	if entryOf(s, "other") != nil {
		t.Fatal("an acquire by a missing session created the key")
	}
	// An acquire without a value of a new key stores null.
	write(t, s, 11, func(tx *registry.Tx) {
		out, e := tx.LockAcquire("fresh", nil, "a")
		wantCode(t, e, "")
		if string(out.Entry.Value) != "null" {
			t.Fatalf("value = %s", out.Entry.Value)
		}
	})
}

// TestInvalidateSession covers both behaviors, the lock delay they start,
// the renew-index guard of TTL invalidations and not_found.
func TestInvalidateSession(t *testing.T) {
	t.Parallel()
	for _, behavior := range []string{registry.BehaviorRelease, registry.BehaviorDelete} {
		t.Run(behavior, func(t *testing.T) {
			s := registry.NewStore()
			newSession(t, s, 1, "a", behavior, "5s")
			newSession(t, s, 2, "b", behavior, "5s")
			lock(t, s, 3, "x/1", "a", false)
			lock(t, s, 4, "x/2", "a", false)
			lock(t, s, 5, "y", "b", false)

			// A TTL invalidation timed at an older renew index is ignored.
			write(t, s, 6, func(tx *registry.Tx) {
				if _, e := tx.RenewSession("a"); e != nil {
					t.Fatal(e)
				}
			})
			write(t, s, 7, func(tx *registry.Tx) {
				inv, e := tx.InvalidateSession("a", u64(1))
				if inv != nil || e != nil {
					t.Fatalf("stale TTL invalidation applied: %+v %v", inv, e)
				}
			})
			var inv *registry.Invalidation
			write(t, s, 8, func(tx *registry.Tx) {
				var e *registry.Error
				inv, e = tx.InvalidateSession("a", u64(6))
				wantCode(t, e, "")
			})
			tx := s.ReadTxn()
			defer tx.Abort()
			if tx.Session(nil, "a") != nil {
				t.Fatal("session a still exists")
			}
			if tx.Session(nil, "b") == nil || tx.ConfigGet(nil, "y").Session != "b" {
				t.Fatal("session b or its key was touched")
			}
			for _, k := range []string{"x/1", "x/2"} {
				e := tx.ConfigGet(nil, k)
				switch behavior {
				case registry.BehaviorDelete:
					if e != nil {
						t.Fatalf("%s not deleted: %+v", k, e)
					}
				default:
					if e == nil || e.Session != "" || e.ModifyIndex != 8 || e.LockIndex != 1 {
						t.Fatalf("%s not released at 8: %+v", k, e)
					}
				}
				d := tx.LockDelayOf(nil, k)
				if d == nil || d.Index != 8 || d.Session != "a" || d.Delay != 5e9 {
					t.Fatalf("lock delay of %s = %+v", k, d)
				}
			}
			if n := len(inv.Released) + len(inv.Deleted); n != 2 || len(inv.Delays) != 2 {
				t.Fatalf("invalidation = %+v", inv)
			}
			if got := tx.TableIndex(nil, registry.TableSessions); got != 8 {
				t.Fatalf("sessions table index = %d, want 8", got)
			}
			tx.Abort()

			write(t, s, 9, func(tx *registry.Tx) {
				_, e := tx.InvalidateSession("a", nil)
				wantCode(t, e, registry.CodeNotFound)
				_, e = tx.RenewSession("a")
				wantCode(t, e, registry.CodeNotFound)
			})
		})
	}
}

// TestLockDelay: a key in its lock delay refuses every session until the
// delay is ended by the index that started it; an older end is ignored.
func TestLockDelay(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	newSession(t, s, 1, "a", "release", "15s")
	newSession(t, s, 2, "b", "release", "15s")
	lock(t, s, 3, "k", "a", false)
	write(t, s, 4, func(tx *registry.Tx) {
		if _, e := tx.InvalidateSession("a", nil); e != nil {
			t.Fatal(e)
		}
	})
	if out := lock(t, s, 5, "k", "b", false); out.OK || out.Reason != registry.LockDelayed {
		t.Fatalf("acquire in lock delay: %+v", out)
	}
	write(t, s, 6, func(tx *registry.Tx) {
		ended, e := tx.EndLockDelays([]registry.LockDelay{{Key: "k", Index: 3}, {Key: "missing", Index: 4}})
		wantCode(t, e, "")
		if len(ended) != 0 {
			t.Fatalf("ended %v with the wrong index", ended)
		}
	})
	if out := lock(t, s, 7, "k", "b", false); out.OK {
		t.Fatal("a stale end cut the delay short")
	}
	write(t, s, 8, func(tx *registry.Tx) {
		ended, e := tx.EndLockDelays([]registry.LockDelay{{Key: "k", Index: 4}})
		wantCode(t, e, "")
		if !reflect.DeepEqual(ended, []string{"k"}) {
			t.Fatalf("ended = %v", ended)
		}
	})
	if out := lock(t, s, 9, "k", "b", false); !out.OK || out.Entry.LockIndex != 2 {
		t.Fatalf("acquire after the delay: %+v", out)
	}
}

// TestSessionRenewDoesNotWakeLists: a renew moves renew_index but neither
// modify_index nor the sessions table index, while the session's own watch
// fires (the leader's timer watches it).
func TestSessionRenewDoesNotWakeLists(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	newSession(t, s, 1, "a", "release", "0s")
	ws := memdb.NewWatchSet()
	tx := s.ReadTxn()
	tx.Session(ws, "a")
	tx.Abort()
	write(t, s, 2, func(tx *registry.Tx) {
		if _, e := tx.RenewSession("a"); e != nil {
			t.Fatal(e)
		}
	})
	if ws.Watch(time.After(5 * time.Second)) {
		t.Fatal("the session's watch did not fire on renew")
	}
	tx = s.ReadTxn()
	defer tx.Abort()
	got := tx.Session(nil, "a")
	if got.RenewIndex != 2 || got.ModifyIndex != 1 || tx.TableIndex(nil, registry.TableSessions) != 1 {
		t.Fatalf("after renew: %+v, table index %d", got, tx.TableIndex(nil, registry.TableSessions))
	}
}

func TestSessionJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(registry.Session{ID: "a", Name: "n", Node: "n1", Behavior: "release", LockDelay: "15s",
		CreateTime: 1_700_000_000_000_000_000, RenewIndex: 3, CreateIndex: 3, ModifyIndex: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"a","name":"n","node":"n1","behavior":"release","lock_delay":"15s","renew_index":3,"create_index":3,"modify_index":3,"create_time":"2023-11-14T22:13:20Z"}`
	if string(b) != want {
		t.Fatalf("JSON\n got %s\nwant %s", b, want)
	}
}

func TestSessionsSurviveDumpAndLoad(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	newSession(t, s, 1, "a", "release", "5s")
	newSession(t, s, 2, "b", "delete", "0s")
	lock(t, s, 3, "k", "a", false)
	lock(t, s, 4, "j", "a", false)
	lock(t, s, 5, "m", "b", false)
	write(t, s, 6, func(tx *registry.Tx) {
		if _, e := tx.InvalidateSession("b", nil); e != nil {
			t.Fatal(e)
		}
	})
	tx := s.ReadTxn()
	d := tx.Dump()
	tx.Abort()
	if len(d.Sessions) != 1 || len(d.LockDelays) != 0 {
		t.Fatalf("dump: %d sessions, %d delays", len(d.Sessions), len(d.LockDelays))
	}
	s2 := registry.NewStore()
	if err := s2.Restore(func(tx *registry.Tx) error { return tx.Load(d) }); err != nil {
		t.Fatal(err)
	}
	tx = s2.ReadTxn()
	defer tx.Abort()
	if !reflect.DeepEqual(tx.Dump(), d) {
		t.Fatal("dump after load differs")
	}
	keys := tx.SessionKeys(nil, "a")
	if len(keys) != 2 || keys[0].Key != "j" || keys[1].Key != "k" {
		t.Fatalf("held keys after load = %+v", keys)
	}
}

func TestSessionCounts(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	newSession(t, s, 1, "a", "release", "5s")
	newSession(t, s, 2, "b", "release", "5s")
	lock(t, s, 3, "k", "a", false)
	lock(t, s, 4, "j", "b", false)
	lock(t, s, 5, "m", "b", false)
	write(t, s, 6, func(tx *registry.Tx) {
		_, _, e := tx.ConfigSet([]registry.ConfigWrite{{Key: "free", Value: []byte(`1`)}})
		wantCode(t, e, "")
		if _, e := tx.InvalidateSession("a", nil); e != nil {
			t.Fatal(e)
		}
	})
	tx := s.ReadTxn()
	defer tx.Abort()
	if n, held, delayed := tx.SessionCounts(); n != 1 || held != 2 || delayed != 1 {
		t.Fatalf("counts = %d %d %d, want 1 2 1", n, held, delayed)
	}
}
