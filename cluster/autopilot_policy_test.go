package cluster

import (
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"
)

func TestFilterRemovals(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	grace := time.Minute
	srv := func(id string, st autopilot.NodeStatus) *autopilot.Server {
		return &autopilot.Server{ID: raft.ServerID(id), NodeStatus: st}
	}
	failed, left := autopilot.NodeFailed, autopilot.NodeLeft
	// Down since: "old" past the grace, "new" within it, "gone" unknown.
	since := func(id raft.ServerID) (time.Time, bool) {
		switch id[0] {
		case 'o':
			return now.Add(-2 * grace), true
		case 'n':
			return now.Add(-grace / 2), true
		case 'e':
			return now.Add(-grace), true // exactly the grace
		}
		return time.Time{}, false
	}
	ids := func(ss []*autopilot.Server) []string {
		var out []string
		for _, s := range ss {
			out = append(out, string(s.ID))
		}
		return out
	}
	tests := []struct {
		name          string
		in            *autopilot.FailedServers
		voters, quota int
		wantVoters    []string
		wantNonVoters []string
	}{
		{name: "nil", in: nil, voters: 3, quota: 3},
		{name: "voter within grace stays", in: &autopilot.FailedServers{FailedVoters: []*autopilot.Server{srv("n1", failed)}},
			voters: 5, quota: 3},
		{name: "voter past grace goes", in: &autopilot.FailedServers{FailedVoters: []*autopilot.Server{srv("o1", failed)}},
			voters: 5, quota: 3, wantVoters: []string{"o1"}},
		{name: "exactly the grace goes", in: &autopilot.FailedServers{FailedVoters: []*autopilot.Server{srv("e1", failed)}},
			voters: 5, quota: 3, wantVoters: []string{"e1"}},
		{name: "two of five down to min quorum 3", in: &autopilot.FailedServers{FailedVoters: []*autopilot.Server{srv("o1", failed), srv("o2", failed)}},
			voters: 5, quota: 3, wantVoters: []string{"o1", "o2"}},
		{name: "never below min quorum", in: &autopilot.FailedServers{FailedVoters: []*autopilot.Server{srv("o1", failed), srv("o2", failed), srv("o3", failed)}},
			voters: 5, quota: 3, wantVoters: []string{"o1", "o2"}},
		{name: "three voters min quorum 3 keep all", in: &autopilot.FailedServers{FailedVoters: []*autopilot.Server{srv("o1", failed)}},
			voters: 3, quota: 3},
		{name: "min quorum above voters", in: &autopilot.FailedServers{FailedVoters: []*autopilot.Server{srv("o1", failed)}},
			voters: 3, quota: 5},
		{name: "unknown down time stays", in: &autopilot.FailedServers{FailedVoters: []*autopilot.Server{srv("x1", failed)}},
			voters: 5, quota: 1},
		{name: "left voter goes at once and counts", in: &autopilot.FailedServers{FailedVoters: []*autopilot.Server{srv("n1", left), srv("o2", failed)}},
			voters: 4, quota: 3, wantVoters: []string{"n1"}},
		{name: "left voter goes even at min quorum", in: &autopilot.FailedServers{FailedVoters: []*autopilot.Server{srv("x1", left)}},
			voters: 3, quota: 3, wantVoters: []string{"x1"}},
		{name: "non-voters ignore min quorum, respect grace", in: &autopilot.FailedServers{FailedNonVoters: []*autopilot.Server{srv("o1", failed), srv("n2", failed), srv("x3", left)}},
			voters: 3, quota: 3, wantNonVoters: []string{"o1", "x3"}},
		{name: "stale servers are never removed", in: &autopilot.FailedServers{StaleVoters: []raft.ServerID{"s1"}, StaleNonVoters: []raft.ServerID{"s2"}},
			voters: 9, quota: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := filterRemovals(tt.in, tt.voters, tt.quota, grace, since, now)
			if len(got.StaleVoters)+len(got.StaleNonVoters) != 0 {
				t.Errorf("stale servers kept: %v %v", got.StaleVoters, got.StaleNonVoters)
			}
			if g := ids(got.FailedVoters); !reflect.DeepEqual(g, tt.wantVoters) {
				t.Errorf("voters removed %v, want %v", g, tt.wantVoters)
			}
			if g := ids(got.FailedNonVoters); !reflect.DeepEqual(g, tt.wantNonVoters) {
				t.Errorf("non-voters removed %v, want %v", g, tt.wantNonVoters)
			}
		})
	}
}

func TestPromotable(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	stable := 10 * time.Second
	st := func(state autopilot.RaftState, healthy bool, since time.Duration) *autopilot.ServerState {
		return &autopilot.ServerState{State: state, Health: autopilot.ServerHealth{Healthy: healthy, StableSince: now.Add(-since)}}
	}
	s := &autopilot.State{Servers: map[raft.ServerID]*autopilot.ServerState{
		"leader":   st(autopilot.RaftLeader, true, time.Hour),
		"voter":    st(autopilot.RaftVoter, true, time.Hour),
		"z-stable": st(autopilot.RaftNonVoter, true, stable),
		"a-stable": st(autopilot.RaftNonVoter, true, 2*stable),
		"young":    st(autopilot.RaftNonVoter, true, stable-time.Millisecond),
		"sick":     st(autopilot.RaftNonVoter, false, time.Hour),
		"staging":  st(autopilot.RaftStaging, true, time.Hour),
		"replica":  st(autopilot.RaftNonVoter, true, time.Hour),
	}}
	s.Servers["replica"].Server.NodeType = NodeReadReplica
	got := promotable(s, stable, now)
	if want := []raft.ServerID{"a-stable", "z-stable"}; !reflect.DeepEqual(got, want) {
		t.Errorf("promotable %v, want %v", got, want)
	}
}

// Read replicas that are voters are demoted, never below the minimum
// quorum, never the leader.
func TestDemotable(t *testing.T) {
	srv := func(state autopilot.RaftState, replica bool) *autopilot.ServerState {
		s := &autopilot.ServerState{State: state}
		s.Server.NodeType = autopilot.NodeVoter
		if replica {
			s.Server.NodeType = NodeReadReplica
		}
		s.Server.IsLeader = state == autopilot.RaftLeader
		return s
	}
	for _, c := range []struct {
		name      string
		servers   map[raft.ServerID]*autopilot.ServerState
		minQuorum int
		want      []raft.ServerID
	}{
		{"none", map[raft.ServerID]*autopilot.ServerState{"a": srv(autopilot.RaftLeader, false), "b": srv(autopilot.RaftVoter, false)}, 1, nil},
		{"two replicas voting, room for both", map[raft.ServerID]*autopilot.ServerState{
			"a": srv(autopilot.RaftLeader, false), "b": srv(autopilot.RaftVoter, false), "c": srv(autopilot.RaftVoter, false),
			"r2": srv(autopilot.RaftVoter, true), "r1": srv(autopilot.RaftVoter, true), "r3": srv(autopilot.RaftNonVoter, true)}, 3, []raft.ServerID{"r1", "r2"}},
		{"min quorum keeps one", map[raft.ServerID]*autopilot.ServerState{
			"a": srv(autopilot.RaftLeader, false), "b": srv(autopilot.RaftVoter, false),
			"r2": srv(autopilot.RaftVoter, true), "r1": srv(autopilot.RaftVoter, true)}, 3, []raft.ServerID{"r1"}},
		{"the leader is never demoted", map[raft.ServerID]*autopilot.ServerState{
			"r": srv(autopilot.RaftLeader, true), "b": srv(autopilot.RaftVoter, false), "c": srv(autopilot.RaftVoter, false)}, 1, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &autopilot.State{Servers: c.servers}
			for id, st := range c.servers {
				if st.State == autopilot.RaftVoter || st.State == autopilot.RaftLeader {
					s.Voters = append(s.Voters, id)
				}
			}
			if got := demotable(s, c.minQuorum); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("demotable %v, want %v", got, c.want)
			}
		})
	}
}

func TestAutopilotConfigDefaults(t *testing.T) {
	var c AutopilotConfig
	c.setDefaults()
	want := AutopilotConfig{StabilizationTime: 10 * time.Second, DeadServerGrace: 5 * time.Minute, MaxTrailingLogs: 250,
		LastContactThreshold: time.Second, UpdateInterval: time.Second, ReconcileInterval: time.Second}
	if c != want {
		t.Errorf("defaults %+v, want %+v", c, want)
	}
	c = AutopilotConfig{StabilizationTime: time.Millisecond, DeadServerGrace: 2 * time.Second, MinQuorum: 3}
	c.setDefaults()
	if c.StabilizationTime != time.Millisecond || c.DeadServerGrace != 2*time.Second || c.MinQuorum != 3 {
		t.Errorf("explicit values changed: %+v", c)
	}
}

func TestOpErrorIs(t *testing.T) {
	err := &OpError{Code: "member_alive", Msg: "n2 is alive"}
	if !isErr(err, ErrMemberAlive) || isErr(err, ErrPeerNotFound) {
		t.Errorf("errors.Is by code broken")
	}
	if err.ErrorCode() != "member_alive" || err.Error() != "n2 is alive" {
		t.Errorf("accessors: %q %q", err.ErrorCode(), err.Error())
	}
}
