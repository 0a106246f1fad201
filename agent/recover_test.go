package agent_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/agent"
	"github.com/nexus/nexus/agent/agenttest"
	"github.com/nexus/nexus/cluster"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
	"github.com/nexus/nexus/storage"
)

func waitReady(t *testing.T, a *agent.Agent, what string) {
	t.Helper()
	select {
	case <-a.Ready():
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: the node did not become ready", what)
	}
}

func setKey(t *testing.T, a *agent.Agent, key, value string) uint64 {
	t.Helper()
	b, err := command.NewCodec().Encode(command.TypeConfigSet, &command.ConfigSet{
		Meta: command.Meta{Actor: "test", Time: time.Now().UnixNano()}, Entries: []command.ConfigOp{{Key: key, Value: []byte(value)}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := a.Node().Apply(ctx, b)
	if err != nil || res.Err != nil {
		t.Fatalf("set %s: %v %v", key, err, res)
	}
	return res.Index
}

func configOf(a *agent.Agent) []registry.ConfigEntry {
	tx := a.FSM().Store().ReadTxn()
	defer tx.Abort()
	return tx.ConfigList(nil, "")
}

// Recover rewrites the configuration and keeps the data: a node given a
// second voter that never existed has lost its quorum (no leader); after
// a recovery to itself alone it leads again with every key, and takes
// writes.
func TestRecoverKeepsDataAndRestoresQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	pp := agenttest.NewPorts(t)
	p := pp.Node()
	dir := t.TempDir()
	start := func() *agent.Agent {
		return agenttest.Start(t, agenttest.Node{Name: "n1", Dir: dir, Ports: p, Expect: 1})
	}
	a := start()
	waitReady(t, a, "first start")
	for i := 0; i < 20; i++ {
		setKey(t, a, "k/"+strconv.Itoa(i), strconv.Itoa(i))
	}
	want := configOf(a)
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Two voters, one of which will never answer: quorum lost.
	ghost := cluster.ServerInfo{ID: "ghost", Address: "127.0.0.1:" + strconv.Itoa(pp.Port())}
	rec, err := agent.Recover(agent.RecoverOptions{DataDir: dir, Voters: []cluster.ServerInfo{ghost, {ID: "n1", Address: p.RaftAddr()}}})
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if cluster.DescribeServers(rec.Previous) != "n1="+p.RaftAddr()+" (voter)" ||
		cluster.DescribeServers(rec.Voters) != "ghost="+ghost.Address+" (voter), n1="+p.RaftAddr()+" (voter)" {
		t.Fatalf("recovery %+v", rec)
	}
	a = start()
	raftInfo := a.Node().Raft()
	if len(raftInfo.Servers) != 2 {
		t.Fatalf("servers after the first recovery: %+v", raftInfo.Servers)
	}
	select {
	case <-a.Ready():
		t.Fatal("ready with one of two voters")
	case <-time.After(3 * time.Second):
	}
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Back to this node alone (the default): it leads with all its data.
	var logs strings.Builder
	rec, err = agent.Recover(agent.RecoverOptions{DataDir: dir, LogOutput: io.Discard,
		Logger: slogTo(&logs)})
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if len(rec.Previous) != 2 || cluster.DescribeServers(rec.Voters) != "n1="+p.RaftAddr()+" (voter)" || rec.Index == 0 || rec.Term == 0 {
		t.Fatalf("recovery %+v", rec)
	}
	if !strings.Contains(logs.String(), "recovered the Raft configuration") || !strings.Contains(logs.String(), "voters=\"n1=") {
		t.Fatalf("no recovery log line with the voters: %s", logs.String())
	}
	a = start()
	waitReady(t, a, "after the recovery")
	got := configOf(a)
	if len(got) != len(want) {
		t.Fatalf("%d keys after recovery, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Key != want[i].Key || string(got[i].Value) != string(want[i].Value) || got[i].ModifyIndex != want[i].ModifyIndex {
			t.Fatalf("key %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if idx := setKey(t, a, "after", "1"); idx <= want[len(want)-1].ModifyIndex {
		t.Fatalf("write after recovery at index %d, not after the recovered state", idx)
	}
}

// Recover refuses, changing nothing: a data dir a running agent holds, a
// directory that is not a data dir, one without Raft state, and voters
// that leave this node out or repeat a node.
func TestRecoverRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	p := agenttest.NewPorts(t).Node()
	dir := t.TempDir()
	a := agenttest.Start(t, agenttest.Node{Name: "n1", Dir: dir, Ports: p, Expect: 1})
	waitReady(t, a, "start")
	_, err := agent.Recover(agent.RecoverOptions{DataDir: dir})
	if !errors.Is(err, storage.ErrInUse) || !strings.Contains(err.Error(), "stop the agent first") {
		t.Fatalf("recover of a running agent's dir: %v", err)
	}
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	self := cluster.ServerInfo{ID: "n1", Address: p.RaftAddr()}
	for _, tc := range []struct {
		name   string
		voters []cluster.ServerInfo
		want   string
	}{
		{"without this node", []cluster.ServerInfo{{ID: "n2", Address: "127.0.0.1:1"}}, "must include this data dir's node n1"},
		{"node twice", []cluster.ServerInfo{self, self}, "node n1 named twice"},
		{"address twice", []cluster.ServerInfo{self, {ID: "n2", Address: p.RaftAddr()}}, "given to two nodes"},
		{"bad address", []cluster.ServerInfo{{ID: "n1", Address: "127.0.0.1"}}, "not HOST:PORT"},
		{"bad port", []cluster.ServerInfo{{ID: "n1", Address: "127.0.0.1:0"}}, "not in 1..65535"},
	} {
		_, err := agent.Recover(agent.RecoverOptions{DataDir: dir, Voters: tc.voters})
		if !errors.Is(err, cluster.ErrBadVoters) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrBadVoters %q", tc.name, err, tc.want)
		}
	}
	// Nothing changed: the node still leads its one-voter configuration.
	a = agenttest.Start(t, agenttest.Node{Name: "n1", Dir: dir, Ports: p, Expect: 1})
	waitReady(t, a, "after refused recoveries")
	if s := a.Node().Raft().Servers; len(s) != 1 || s[0].ID != "n1" {
		t.Fatalf("servers %+v", s)
	}
	_ = a.Shutdown(context.Background())

	plain := t.TempDir()
	if err := os.WriteFile(filepath.Join(plain, "notes.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{plain, filepath.Join(plain, "missing"), filepath.Join(plain, "notes.txt")} {
		if _, err := agent.Recover(agent.RecoverOptions{DataDir: d}); !errors.Is(err, storage.ErrNotDataDir) {
			t.Errorf("recover %s: %v, want ErrNotDataDir", d, err)
		}
	}
	if entries, _ := os.ReadDir(plain); len(entries) != 1 {
		t.Errorf("recover wrote into a directory that is not a data dir: %v", entries)
	}

	empty := t.TempDir()
	dd, err := storage.Open(empty, "n9", storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dd.Close()
	if _, err := agent.Recover(agent.RecoverOptions{DataDir: empty}); !errors.Is(err, cluster.ErrNoRaftState) {
		t.Errorf("recover of a data dir without Raft state: %v", err)
	}
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
