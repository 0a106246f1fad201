package health

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"

	"github.com/nexus/nexus/cluster/member"
	"github.com/nexus/nexus/internal/retry"
)

// fakeMembership is the cluster as the health duties see it.
type fakeMembership struct {
	name    string
	mu      sync.Mutex
	members map[string]member.Status
	addrs   map[string]string // admin API of members
	changes chan struct{}
}

func newMembership(name string, members map[string]member.Status) *fakeMembership {
	m := map[string]member.Status{name: member.Alive}
	maps.Copy(m, members)
	return &fakeMembership{name: name, members: m, changes: make(chan struct{}, 1)}
}

func (m *fakeMembership) NodeName() string { return m.name }
func (m *fakeMembership) MemberStatuses() map[string]member.Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.members)
}
func (m *fakeMembership) MemberHTTPAddr(name string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.addrs[name]
	return a, ok
}
func (m *fakeMembership) Changes() <-chan struct{} { return m.changes }

// proposal is one command a health duty proposed.
type proposal struct {
	typ                         command.Type
	service, id, status, output string
}

func (p proposal) String() string {
	if p.typ == command.TypeSetStatus {
		return fmt.Sprintf("%s/%s %s", p.service, p.id, p.status)
	}
	return fmt.Sprintf("%s %s/%s", p.typ, p.service, p.id)
}

// storeWriter stands for Raft: it applies each proposed command to the
// store at the next index and remembers it.
type storeWriter struct {
	store *registry.Store
	codec *command.Codec

	mu        sync.Mutex
	index     uint64
	proposals []proposal
}

func (w *storeWriter) Apply(ctx context.Context, b []byte) (*command.Result, error) {
	t, msg, err := w.codec.Decode(b)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.index++
	res := &command.Result{Index: w.index}
	tx := w.store.WriteTxn(w.index)
	defer tx.Abort()
	var e *registry.Error
	switch m := msg.(type) {
	case *command.SetStatus:
		w.proposals = append(w.proposals, proposal{typ: t, service: m.Service, id: m.ID, status: m.Status, output: m.Output})
		_, _, e = tx.SetStatus(m.Service, m.ID, m.Status, m.Output)
	case *command.DeregisterInstance:
		w.proposals = append(w.proposals, proposal{typ: t, service: m.Service, id: m.ID})
		_, e = tx.DeregisterInstance(m.Service, m.ID)
	default:
		return nil, fmt.Errorf("unexpected command %s", t)
	}
	if e != nil {
		res.Err = &command.Error{Code: e.Code, Message: e.Message}
		return res, nil
	}
	tx.Commit()
	return res, nil
}

func (w *storeWriter) log() []proposal {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]proposal(nil), w.proposals...)
}

func (w *storeWriter) logStrings() []string {
	var out []string
	for _, p := range w.log() {
		out = append(out, p.String())
	}
	return out
}

// register puts instances straight into the store in one transaction, as
// an applied registration would.
func (w *storeWriter) register(t *testing.T, ins ...registry.Instance) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.index++
	tx := w.store.WriteTxn(w.index)
	defer tx.Abort()
	for _, in := range ins {
		if _, _, e := tx.RegisterInstance(in); e != nil {
			t.Fatal(e)
		}
	}
	tx.Commit()
}

func testDeps(t *testing.T, m *fakeMembership) (Deps, *storeWriter) {
	store := registry.NewStore()
	w := &storeWriter{store: store, codec: command.NewCodec()}
	return Deps{
		Store: store, Codec: w.codec, Writer: w, Membership: m, Registerer: prometheus.NewRegistry(),
		AntiEntropyInterval: 50 * time.Millisecond,
	}, w
}

func instanceStatus(store *registry.Store, service, id string) (string, string) {
	tx := store.ReadTxn()
	defer tx.Abort()
	in := tx.Instance(nil, service, id)
	if in == nil {
		return "", ""
	}
	out := ""
	if len(in.Checks) > 0 {
		out = in.Checks[0].Output
	}
	return in.Status, out
}

// waitInstance waits until the instance has status in the store.
func waitInstance(t *testing.T, store *registry.Store, service, id, status string, timeout time.Duration) {
	t.Helper()
	retry.Run(t, func(r *retry.R) {
		if st, out := instanceStatus(store, service, id); st != status {
			r.Fatalf("%s/%s is %s (%q), not %s", service, id, st, out, status)
		}
	}, retry.Timeout(timeout))
}

// waitRounds waits until the runner has made n more anti-entropy rounds
// than it had made before: what it would change by then, it has.
func waitRounds(t *testing.T, r *Runner, n int) {
	t.Helper()
	target := counter(r.m.rounds) + float64(n)
	retry.Run(t, retry.Cond(fmt.Sprintf("%d anti-entropy rounds", n), func() bool {
		return counter(r.m.rounds) >= target
	}))
}

func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

// fakeClock is a Clock that moves only when the test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c    chan time.Time
	when time.Time
	clk  *fakeClock
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1700000000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: make(chan time.Time, 1), when: c.now.Add(d), clk: c}
	if d <= 0 {
		t.c <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves the clock and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.when.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.c <- c.now
	}
	c.timers = kept
}

// armedFor reports whether a timer waits for exactly when.
func (c *fakeClock) armedFor(when time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.timers {
		if t.when.Equal(when) {
			return true
		}
	}
	return false
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	for i, x := range t.clk.timers {
		if x == t {
			t.clk.timers = append(t.clk.timers[:i], t.clk.timers[i+1:]...)
			return true
		}
	}
	return false
}

// runRunner runs a runner until the test ends.
func runRunner(t *testing.T, deps Deps) *Runner {
	r := NewRunner(deps)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}
