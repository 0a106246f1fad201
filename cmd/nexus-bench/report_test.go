package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// --voters and --non-voters size the cluster: the read replicas come after
// the voters with --non-voter, and every node expects only the voters.
func TestClusterSize(t *testing.T) {
	std := func() []string { return []string{"agent", "--node", "nX", "--bootstrap-expect", "3", "--join", "a"} }
	empty, nonEmpty := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(nonEmpty, "node1"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args     []string
		nodes    int
		expect   string
		replicas []int
		err      string
	}{
		{args: nil, nodes: 3, expect: "3"},
		{args: []string{"--voters", "5"}, nodes: 5, expect: "3"}, // proccluster writes --bootstrap-expect 5 itself
		{args: []string{"--voters", "3", "--non-voters", "2"}, nodes: 5, expect: "3", replicas: []int{3, 4}},
		{args: []string{"--voters", "5", "--non-voters", "1"}, nodes: 6, expect: "5", replicas: []int{5}},
		{args: []string{"--voters", "0"}, err: "--voters"},
		{args: []string{"--non-voters", "-1"}, err: "--voters"},
		{args: []string{"--voters", "30", "--non-voters", "11"}, err: "40"},
		{args: []string{"--dir", nonEmpty}, err: "not empty"},
		{args: []string{"--dir", empty}, nodes: 3, expect: "3"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cfg, err := parseRaftFlags(append([]string{"--nexus", "/bin/true"}, tc.args...))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o := cfg.options("/bin/true")
			if o.Nodes != tc.nodes {
				t.Fatalf("Nodes = %d, want %d", o.Nodes, tc.nodes)
			}
			for i := 0; i < o.Nodes; i++ {
				args := std()
				if o.Args != nil {
					args = o.Args(i, args)
				}
				at := slices.Index(args, "--bootstrap-expect")
				if slices.Contains(tc.replicas, i) {
					if at >= 0 {
						t.Fatalf("read replica %d has --bootstrap-expect: %v", i, args)
					}
				} else if at < 0 || args[at+1] != tc.expect {
					t.Fatalf("node %d: %v, want --bootstrap-expect %s", i, args, tc.expect)
				}
				if nv := slices.Contains(args, "--non-voter"); nv != slices.Contains(tc.replicas, i) {
					t.Fatalf("node %d: --non-voter %v, want %v (%v)", i, nv, !nv, args)
				}
			}
		})
	}
}

// chain runs both rewrites in order, and either alone when the other is nil.
func TestChainArgs(t *testing.T) {
	add := func(s string) func(int, []string) []string {
		return func(_ int, a []string) []string { return append(a, s) }
	}
	for _, tc := range []struct {
		a, b func(int, []string) []string
		want string
	}{{add("x"), add("y"), "x y"}, {nil, add("y"), "y"}, {add("x"), nil, "x"}} {
		if got := strings.Join(chain(tc.a, tc.b)(0, nil), " "); got != tc.want {
			t.Fatalf("chain = %q, want %q", got, tc.want)
		}
	}
	if chain(nil, nil) != nil {
		t.Fatal("chain(nil, nil) is not nil")
	}
}
