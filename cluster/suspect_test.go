package cluster

import (
	"bytes"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/cluster/member"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// step is one thing that happens to the tracker. Every step lists the
// changes it must produce, as "b suspect (reason)", "b alive after 1.5s",
// "ping b" and, for forget, "b was suspect since 2s".
type step struct {
	do     string // alive, forget, ack, fail, tick, ticks, wait, pingok, pinglost
	name   string
	d      time.Duration // wait, ticks: how long
	health int           // tick, ticks: memberlist's health score
	acking []string      // ticks: members that ack every probe interval
	want   []string
}

func describe(c *suspectChange) string {
	if c == nil {
		return ""
	}
	if c.suspect {
		return fmt.Sprintf("%s suspect (%s)", c.name, c.reason)
	}
	return fmt.Sprintf("%s alive after %s", c.name, c.lasted)
}

func TestSuspicionTracker(t *testing.T) {
	const interval = 500 * time.Millisecond
	noAck := func(d string) string { return "no direct ack for " + d }
	failed := "probe failed: no direct, indirect or TCP ack"
	tests := []struct {
		name     string
		steps    []step
		suspects []string // at the end
	}{
		{
			name: "members that ack every round stay alive",
			steps: []step{
				{do: "alive", name: "b"}, {do: "alive", name: "c"},
				{do: "ticks", d: 30 * time.Second, acking: []string{"b", "c"}},
			},
		},
		{
			// 2 members: a round is 2 probe intervals, 3 rounds are 3 s.
			name: "no direct ack for three probe rounds: suspect",
			steps: []step{
				{do: "alive", name: "b"}, {do: "alive", name: "c"},
				{do: "ticks", d: 3 * time.Second, acking: []string{"c"}},
				{do: "ticks", d: 100 * time.Millisecond, acking: []string{"c"}, want: []string{"b suspect (" + noAck("3s") + ")", "ping b"}},
			},
			suspects: []string{"b"},
		},
		{
			name: "an ack makes a suspect member alive again",
			steps: []step{
				{do: "alive", name: "b"},
				{do: "fail", name: "b", want: []string{"b suspect (" + failed + ")"}},
				{do: "wait", d: 1200 * time.Millisecond},
				{do: "ack", name: "b", want: []string{"b alive after 1.2s"}},
				{do: "ack", name: "b"},
			},
		},
		{
			name: "a failed probe makes a member suspect at once, a second one changes nothing",
			steps: []step{
				{do: "alive", name: "b"}, {do: "alive", name: "c"},
				{do: "wait", d: 200 * time.Millisecond},
				{do: "fail", name: "c", want: []string{"c suspect (" + failed + ")"}},
				{do: "fail", name: "c"},
			},
			suspects: []string{"c"},
		},
		{
			name: "gossip declaring it failed ends the suspicion",
			steps: []step{
				{do: "alive", name: "b"},
				{do: "fail", name: "b", want: []string{"b suspect (" + failed + ")"}},
				{do: "wait", d: 2 * time.Second},
				{do: "forget", name: "b", want: []string{"b was suspect since 2s"}},
				{do: "ack", name: "b"},  // unknown now: ignored
				{do: "fail", name: "b"}, // likewise
				{do: "ticks", d: 10 * time.Second},
			},
		},
		{
			name: "a member back after failing starts with a fresh ack clock",
			steps: []step{
				{do: "alive", name: "b"},
				{do: "forget", name: "b"},
				{do: "wait", d: time.Minute},
				{do: "alive", name: "b"},
				{do: "ticks", d: 1500 * time.Millisecond},
				{do: "ticks", d: 100 * time.Millisecond, want: []string{"b suspect (" + noAck("1.5s") + ")", "ping b"}},
			},
			suspects: []string{"b"},
		},
		{
			name: "a metadata update (alive again from gossip) is not an ack",
			steps: []step{
				{do: "alive", name: "b"},
				{do: "fail", name: "b", want: []string{"b suspect (" + failed + ")"}},
				{do: "alive", name: "b"},
			},
			suspects: []string{"b"},
		},
		{
			name: "the threshold grows with the members",
			steps: []step{
				{do: "alive", name: "b"}, {do: "alive", name: "c"}, {do: "alive", name: "d"},
				{do: "ticks", d: 4500 * time.Millisecond, acking: []string{"c", "d"}},
				{do: "ticks", d: 100 * time.Millisecond, acking: []string{"c", "d"}, want: []string{"b suspect (" + noAck("4.5s") + ")", "ping b"}},
			},
			suspects: []string{"b"},
		},
		{
			// memberlist probes less often when it thinks it is unhealthy.
			name: "the threshold scales with memberlist's health score",
			steps: []step{
				{do: "alive", name: "b"},
				{do: "ticks", d: 4500 * time.Millisecond, health: 2},
				{do: "ticks", d: 100 * time.Millisecond, health: 2, want: []string{"b suspect (" + noAck("4.5s") + ")", "ping b"}},
			},
			suspects: []string{"b"},
		},
		{
			name: "time this node did not run does not count against its peers",
			steps: []step{
				{do: "alive", name: "b"}, {do: "alive", name: "c"},
				{do: "ticks", d: time.Second, acking: []string{"b", "c"}},
				{do: "wait", d: 30 * time.Second}, // SIGSTOP of this node
				{do: "tick"},
				{do: "ticks", d: 2 * time.Second, acking: []string{"b", "c"}},
				// But real silence after the pause still counts.
				{do: "ticks", d: 2900 * time.Millisecond, acking: []string{"c"}},
				{do: "ticks", d: 200 * time.Millisecond, acking: []string{"c"}, want: []string{"b suspect (" + noAck("3s") + ")", "ping b"}},
			},
			suspects: []string{"b"},
		},
		{
			name: "suspect members are pinged once per probe interval until one acks",
			steps: []step{
				{do: "alive", name: "b"},
				{do: "tick"},
				{do: "fail", name: "b", want: []string{"b suspect (" + failed + ")"}},
				{do: "tick", want: []string{"ping b"}},
				{do: "ticks", d: time.Second}, // in flight: no second ping
				{do: "pinglost", name: "b"},
				{do: "tick", want: []string{"ping b"}},
				{do: "wait", d: 100 * time.Millisecond},
				{do: "pinglost", name: "b"},
				{do: "ticks", d: 300 * time.Millisecond},
				{do: "ticks", d: 100 * time.Millisecond, want: []string{"ping b"}},
				{do: "pingok", name: "b", want: []string{"b alive after 1.5s"}},
				{do: "ticks", d: time.Second}, // alive: no more pings
			},
		},
		{
			name: "an ack from a member never seen alive is ignored",
			steps: []step{
				{do: "ack", name: "x"},
				{do: "fail", name: "x"},
				{do: "pingok", name: "x"},
				{do: "ticks", d: 10 * time.Second},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
			s := newSuspicion(clock.now, interval)
			for i, st := range tc.steps {
				var got []string
				add := func(c *suspectChange) {
					if d := describe(c); d != "" {
						got = append(got, d)
					}
				}
				tick := func(health int) {
					changes, ping := s.tick(health)
					for i := range changes {
						add(&changes[i])
					}
					for _, p := range ping {
						got = append(got, "ping "+p)
					}
				}
				switch st.do {
				case "alive":
					s.alive(st.name)
				case "forget":
					if since, ok := s.forget(st.name); ok {
						got = append(got, fmt.Sprintf("%s was suspect since %s", st.name, clock.now().Sub(since)))
					}
				case "ack":
					add(s.ack(st.name))
				case "fail":
					add(s.probeFailed(st.name))
				case "pingok", "pinglost":
					add(s.pingDone(st.name, st.do == "pingok"))
				case "wait":
					clock.advance(st.d)
				case "tick":
					tick(st.health)
				case "ticks":
					// The tracker's loop every 100 ms; acking members ack
					// every probe interval (faster than memberlist would).
					for el := time.Duration(0); el < st.d; el += suspectTick {
						clock.advance(suspectTick)
						if (el+suspectTick)%interval == 0 {
							for _, a := range st.acking {
								add(s.ack(a))
							}
						}
						tick(st.health)
					}
				default:
					t.Fatalf("unknown step %q", st.do)
				}
				if !reflect.DeepEqual(got, st.want) {
					t.Fatalf("step %d (%s %s %v): got %q, want %q", i, st.do, st.name, st.d, got, st.want)
				}
			}
			var sus []string
			for name := range s.suspects() {
				sus = append(sus, name)
			}
			sort.Strings(sus)
			if !reflect.DeepEqual(sus, tc.suspects) {
				t.Fatalf("suspects at the end: %q, want %q", sus, tc.suspects)
			}
		})
	}
}

func TestProbeFailureName(t *testing.T) {
	for _, tc := range []struct {
		line string
		name string
		ok   bool
	}{
		{"Suspect n2 has failed, no acks received", "n2", true},
		{"Suspect node with spaces has failed, no acks received", "node with spaces", true},
		{"Suspect  has failed, no acks received", "", false},
		{"Marking n2 as failed, suspect timeout reached (1 peer confirmations)", "", false},
		{"Failed UDP ping: n2 (timeout reached)", "", false},
		{"Suspect n2 has failed", "", false},
	} {
		name, ok := probeFailureName(tc.line)
		if name != tc.name || ok != tc.ok {
			t.Errorf("probeFailureName(%q) = %q, %v; want %q, %v", tc.line, name, ok, tc.name, tc.ok)
		}
	}
}

// TestLogWriterSeesProbeFailures: memberlist's line, as its logger writes it,
// reaches onLine without level and prefix (and is still logged).
func TestLogWriterSeesProbeFailures(t *testing.T) {
	var buf bytes.Buffer
	var lines []string
	w := &logWriter{logger: slog.New(slog.NewTextHandler(&buf, nil)), onLine: func(l string) { lines = append(lines, l) }}
	fmt.Fprint(w, "[INFO] memberlist: Suspect n3 has failed, no acks received\n")
	if len(lines) != 1 {
		t.Fatalf("onLine got %q", lines)
	}
	if name, ok := probeFailureName(lines[0]); !ok || name != "n3" {
		t.Fatalf("line %q: %q %v", lines[0], name, ok)
	}
	if !strings.Contains(buf.String(), "level=INFO") || !strings.Contains(buf.String(), "Suspect n3 has failed") {
		t.Fatalf("not logged: %s", buf.String())
	}
}

// TestSuspectStatusViews: an alive member this node suspects is suspect in
// Members, MemberStatuses and the gauge; a failed one stays failed; the
// transitions are logged at info.
func TestSuspectStatusViews(t *testing.T) {
	var logs bytes.Buffer
	clock := &fakeClock{t: time.Now()}
	n := &Node{cfg: Config{Node: "a"}, logger: slog.New(slog.NewTextHandler(&logs, nil)), changes: make(chan struct{}, 1)}
	g := &gossip{n: n, members: map[string]*memberState{}, susp: newSuspicion(clock.now, 500*time.Millisecond)}
	n.gossip = g
	for name, status := range map[string]member.Status{"b": StatusAlive, "c": StatusAlive, "d": StatusFailed, "e": StatusLeft} {
		g.members[name] = &memberState{Name: name, Addr: "127.0.0.1:1", Status: status}
		if status == StatusAlive {
			g.susp.alive(name)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(&memberStatusCollector{n: n, desc: prometheus.NewDesc("nexus_gossip_members", "h", []string{"status"}, nil)})
	gauge := func() string {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				out = append(out, fmt.Sprintf("%s=%v", m.GetLabel()[0].GetValue(), m.GetGauge().GetValue()))
			}
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}
	if got, want := gauge(), "alive=3 failed=1 left=1 suspect=0"; got != want {
		t.Fatalf("gauge %s, want %s", got, want)
	}

	g.memberlistLine("Suspect b has failed, no acks received")
	if st := n.MemberStatuses(); st["b"] != StatusSuspect || st["c"] != StatusAlive || st["d"] != StatusFailed || st["a"] != StatusAlive {
		t.Fatalf("MemberStatuses %v", st)
	}
	if got, want := gauge(), "alive=2 failed=1 left=1 suspect=1"; got != want {
		t.Fatalf("gauge %s, want %s", got, want)
	}
	if !strings.Contains(logs.String(), `level=INFO msg="member suspect" member=b`) {
		t.Fatalf("no info line for alive -> suspect:\n%s", logs.String())
	}
	select {
	case <-n.changes:
	default:
		t.Fatal("suspicion not signalled as a membership change")
	}
	// A probe failure of a failed member changes nothing.
	g.memberlistLine("Suspect d has failed, no acks received")
	if st := n.MemberStatuses(); st["d"] != StatusFailed {
		t.Fatalf("failed member shown %q", st["d"])
	}

	clock.advance(700 * time.Millisecond)
	g.applySuspect(g.susp.ack("b"))
	if st := n.MemberStatuses(); st["b"] != StatusAlive {
		t.Fatalf("after an ack b is %q", st["b"])
	}
	if !strings.Contains(logs.String(), `level=INFO msg="member alive" member=b addr=127.0.0.1:1 was=suspect suspect_for=700ms`) {
		t.Fatalf("no info line for suspect -> alive:\n%s", logs.String())
	}
	if got, want := gauge(), "alive=3 failed=1 left=1 suspect=0"; got != want {
		t.Fatalf("gauge %s, want %s", got, want)
	}
}
