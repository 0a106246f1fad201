package cluster

import (
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/nexus/nexus/cluster/member"
)

// Suspicion: the "suspect" member status.
//
// memberlist keeps its own suspect state to itself: it has no callback for
// it, and the Node.State it exposes through Members() is a pointer into its
// table that it changes under a lock callers cannot take (reading it is a
// data race, hashicorp/memberlist#306). So this node derives suspicion from
// what memberlist does tell it about its own probes:
//
//   - a probe of the member failed (no direct, indirect or TCP ack): memberlist
//     logs "Suspect NAME has failed, no acks received" right before it marks
//     the member suspect itself; the log line is the only signal it gives;
//   - the member sent no direct ack (PingDelegate.NotifyPingComplete) for
//     suspectAckRounds probe rounds of this node, a round being one probe of
//     every member (probe interval x members, scaled by memberlist's health
//     score). memberlist probes one member per interval in a shuffled
//     round-robin, so a healthy member acks at least every 2 x members - 1
//     intervals; 3 x members leaves a margin of members + 1 intervals.
//
// A suspect member is alive again as soon as it acks a probe: memberlist's
// own or the ping this node sends to every suspect member once per probe
// interval. Gossip declaring it failed or left ends the suspicion (the
// gossip status takes over). Time this node itself did not run (a pause
// longer than a probe interval between two ticks: SIGSTOP, a stalled VM) is
// not held against its peers.
//
// The view is this node's own: suspicions other nodes gossip are not seen
// (memberlist does not expose them), so two nodes may briefly disagree.

const (
	// suspectAckRounds is how many probe rounds without a direct ack make a
	// member suspect.
	suspectAckRounds = 3
	// suspectTick is how often the tracker looks at ack ages.
	suspectTick = 100 * time.Millisecond
)

// suspectChange is a change of suspicion of one member.
type suspectChange struct {
	name    string
	suspect bool          // true: alive -> suspect; false: suspect -> alive
	reason  string        // why it became suspect
	lasted  time.Duration // suspect -> alive: how long it was suspect
}

type suspectState struct {
	lastAck time.Time // last direct ack, or when tracking started
	suspect bool
	since   time.Time // when it became suspect
	reason  string
	pinging bool      // a ping of this suspect member is in flight
	pinged  time.Time // when the last ping was sent
}

// suspicion tracks members gossip says are alive. It has no goroutine and
// no network: gossip feeds it acks, probe failures and ticks, with the time
// from now.
type suspicion struct {
	now           func() time.Time
	probeInterval time.Duration

	mu       sync.Mutex
	members  map[string]*suspectState
	lastTick time.Time
}

func newSuspicion(now func() time.Time, probeInterval time.Duration) *suspicion {
	return &suspicion{now: now, probeInterval: probeInterval, members: map[string]*suspectState{}}
}

// alive starts tracking a member gossip says is alive: a new one, or one
// that comes back after failing, starts with a fresh ack clock. A member
// already tracked keeps its state: a metadata update is not an ack.
func (s *suspicion) alive(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.members[name]; !ok {
		s.members[name] = &suspectState{lastAck: s.now()}
	}
}

// forget stops tracking a member gossip says failed or left, and reports
// since when it was suspect, if it was.
func (s *suspicion) forget(name string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.members[name]
	if !ok {
		return time.Time{}, false
	}
	delete(s.members, name)
	return st.since, st.suspect
}

// ack records a direct ack from a member; a suspect member is alive again.
func (s *suspicion) ack(name string) *suspectChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.members[name]
	if !ok {
		return nil
	}
	now := s.now()
	st.lastAck = now
	if !st.suspect {
		return nil
	}
	st.suspect, st.reason = false, ""
	return &suspectChange{name: name, lasted: now.Sub(st.since)}
}

// probeFailed records that memberlist's probe of a member got no ack at
// all: memberlist suspects it from now on, and so does this node.
func (s *suspicion) probeFailed(name string) *suspectChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.members[name]
	if !ok || st.suspect {
		return nil
	}
	return s.markLocked(name, st, "probe failed: no direct, indirect or TCP ack")
}

func (s *suspicion) markLocked(name string, st *suspectState, reason string) *suspectChange {
	st.suspect, st.since, st.reason = true, s.now(), reason
	return &suspectChange{name: name, suspect: true, reason: reason}
}

// threshold is how long a member may go without a direct ack: three probe
// rounds of this node, scaled like memberlist scales its probe interval.
func (s *suspicion) thresholdLocked(health int) time.Duration {
	n := max(len(s.members), 1)
	return time.Duration(suspectAckRounds*n*(health+1)) * s.probeInterval
}

// tick marks members suspect that acked nothing for longer than the
// threshold, and returns the suspect members to ping now (at most one ping
// in flight per member, one per probe interval). health is memberlist's
// health score (0 healthy).
func (s *suspicion) tick(health int) (changes []suspectChange, ping []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if gap := now.Sub(s.lastTick); !s.lastTick.IsZero() && gap > s.probeInterval {
		// This node did not run (paused, starved): neither did its probes.
		// The pause does not count against anyone.
		for _, st := range s.members {
			st.lastAck = st.lastAck.Add(gap)
		}
	}
	s.lastTick = now
	limit := s.thresholdLocked(health)
	names := make([]string, 0, len(s.members))
	for name := range s.members {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		st := s.members[name]
		if !st.suspect && now.Sub(st.lastAck) > limit {
			changes = append(changes, *s.markLocked(name, st, "no direct ack for "+limit.String()))
		}
		if st.suspect && !st.pinging && now.Sub(st.pinged) >= s.probeInterval {
			st.pinging, st.pinged = true, now
			ping = append(ping, name)
		}
	}
	return changes, ping
}

// pingDone records the result of a ping sent by tick.
func (s *suspicion) pingDone(name string, acked bool) *suspectChange {
	s.mu.Lock()
	if st, ok := s.members[name]; ok {
		st.pinging = false
	}
	s.mu.Unlock()
	if !acked {
		return nil
	}
	return s.ack(name)
}

// suspects returns the suspect members and since when.
func (s *suspicion) suspects() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]time.Time{}
	for name, st := range s.members {
		if st.suspect {
			out[name] = st.since
		}
	}
	return out
}

// ---- glue with gossip and memberlist ----------------------------------------

// probeFailureName extracts NAME from memberlist's "Suspect NAME has
// failed, no acks received" (its level and "memberlist: " prefix removed),
// logged by probeNode right before it marks NAME suspect.
func probeFailureName(line string) (string, bool) {
	rest, ok := strings.CutPrefix(line, "Suspect ")
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, " has failed, no acks received")
	if !ok || name == "" {
		return "", false
	}
	return name, true
}

// AckPayload implements memberlist.PingDelegate: acks carry nothing.
func (g *gossip) AckPayload() []byte { return nil }

// NotifyPingComplete implements memberlist.PingDelegate: a direct ack of
// one of memberlist's probes (not indirect or TCP ones).
func (g *gossip) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	if other != nil {
		g.applySuspect(g.susp.ack(other.Name))
	}
}

// memberlistLine sees every line memberlist logs.
func (g *gossip) memberlistLine(line string) {
	if name, ok := probeFailureName(line); ok {
		g.applySuspect(g.susp.probeFailed(name))
	}
}

// applySuspect logs a change of suspicion and signals it as a membership
// change (the health duties ignore suspect members; only failed counts).
func (g *gossip) applySuspect(c *suspectChange) {
	if c == nil {
		return
	}
	addr := ""
	if m, ok := g.member(c.name); ok {
		addr = m.Addr
	}
	if c.suspect {
		g.n.logger.Info("member "+string(StatusSuspect), "member", c.name, "addr", addr, "reason", c.reason)
	} else {
		g.n.logger.Info("member "+string(StatusAlive), "member", c.name, "addr", addr, "was", StatusSuspect, "suspect_for", c.lasted.Round(time.Millisecond).String())
	}
	g.n.notifyChange()
}

// suspectLoop ticks the tracker and pings suspect members until the node
// stops.
func (g *gossip) suspectLoop() {
	defer g.n.wg.Done()
	tick := time.NewTicker(suspectTick)
	defer tick.Stop()
	for {
		select {
		case <-g.n.stopCh:
			return
		case <-tick.C:
		}
		changes, ping := g.susp.tick(g.n.ml.GetHealthScore())
		for i := range changes {
			g.applySuspect(&changes[i])
		}
		for _, name := range ping {
			m, ok := g.member(name)
			addr, err := net.ResolveUDPAddr("udp", m.Addr)
			if !ok || err != nil {
				g.susp.pingDone(name, false)
				continue
			}
			g.n.wg.Add(1)
			go func() {
				defer g.n.wg.Done()
				_, err := g.n.ml.Ping(name, addr) // bounded by the probe timeout
				g.applySuspect(g.susp.pingDone(name, err == nil))
			}()
		}
	}
}

// displayStatus is the status operators see: an alive member this node
// suspects is suspect.
func displayStatus(status member.Status, suspect bool) member.Status {
	if status == StatusAlive && suspect {
		return StatusSuspect
	}
	return status
}
