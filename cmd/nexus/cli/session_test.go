package cli

import "testing"

const sessA = `{"id":"5c3e","name":"w","node":"n1","ttl":"15s","behavior":"release","lock_delay":"15s","renew_index":7,"create_index":7,"modify_index":7,"create_time":"2026-12-05T09:00:00Z"}`

func TestSessionCommands(t *testing.T) {
	for _, tc := range []cliCase{
		{
			name: "create prints the id",
			args: []string{"session", "create", "--name", "w", "--ttl", "15s", "--behavior", "delete", "--lock-delay", "1s", "--node", "n2"},
			script: []exchange{{method: "POST", path: "/sessions", status: 201, resp: sessA,
				body: `{"name":"w","ttl":"15s","behavior":"delete","lock_delay":"1s","node":"n2"}`}},
			stdout: "5c3e\n",
		},
		{
			name:   "create with defaults sends an empty object",
			args:   []string{"session", "create"},
			script: []exchange{{method: "POST", path: "/sessions", status: 201, resp: sessA, body: `{}`}},
			stdout: "5c3e\n",
		},
		{
			name:   "create bad ttl",
			args:   []string{"session", "create", "--ttl", "soon"},
			code:   2,
			stderr: []string{"--ttl"},
		},
		{
			name: "create refused",
			args: []string{"session", "create", "--ttl", "1s"},
			script: []exchange{{method: "POST", path: "/sessions", status: 400, body: `{"ttl":"1s"}`,
				resp: `{"error":{"code":"invalid","message":"ttl: 1s is out of range 10s..24h0m0s","field":"ttl"}}`}},
			code:   1,
			stderr: []string{"ttl: 1s is out of range"},
		},
		{
			name:   "list",
			args:   []string{"session", "list", "--node", "n1"},
			script: []exchange{{method: "GET", path: "/sessions", query: "node=n1", resp: `[` + sessA + `]`}},
			stdout: "ID    NAME  NODE  TTL  BEHAVIOR  LOCK_DELAY  RENEW_INDEX\n" +
				"5c3e  w     n1    15s  release   15s         7\n",
		},
		{
			name:       "get",
			args:       []string{"session", "get", "5c3e"},
			script:     []exchange{{method: "GET", path: "/sessions/5c3e", resp: sessA}},
			stdoutHave: []string{"id:", "5c3e", "lock_delay:", "create_time:"},
		},
		{
			name:   "renew",
			args:   []string{"session", "renew", "5c3e"},
			script: []exchange{{method: "PUT", path: "/sessions/5c3e/renew", resp: `{"id":"5c3e","renew_index":9}`}},
			stdout: "renewed 5c3e (renew_index 9)\n",
		},
		{
			name: "renew gone",
			args: []string{"session", "renew", "5c3e"},
			script: []exchange{{method: "PUT", path: "/sessions/5c3e/renew", status: 404,
				resp: `{"error":{"code":"not_found","message":"session \"5c3e\" not found"}}`}},
			code:   1,
			stderr: []string{"not found"},
		},
		{
			name:   "destroy",
			args:   []string{"session", "destroy", "5c3e"},
			script: []exchange{{method: "DELETE", path: "/sessions/5c3e", resp: `{"id":"5c3e","invalidated":true,"reason":"destroy","released":["a","b"]}`}},
			stdout: "destroyed 5c3e (released 2 keys, deleted 0)\n",
		},
		{
			name:   "destroy gone",
			args:   []string{"session", "destroy", "5c3e"},
			script: []exchange{{method: "DELETE", path: "/sessions/5c3e", resp: `{"id":"5c3e","invalidated":false,"reason":"destroy"}`}},
			stdout: "session 5c3e did not exist (already ended)\n",
		},
	} {
		t.Run(tc.name, tc.run)
	}
}

func TestTxnCommand(t *testing.T) {
	ops := `[{"op":"check-index","key":"a","index":3},{"op":"set","key":"a","value":{"x":1}},{"op":"delete-tree","key":"tmp/"}]`
	answer := `{"results":[{"op":"check-index","key":"a"},{"op":"set","key":"a","entry":{"key":"a","value":{"x":1},"modify_index":9}},{"op":"delete-tree","key":"tmp/","deleted":2}],"index":9}`
	for _, tc := range []cliCase{
		{
			name:   "ops object from stdin",
			args:   []string{"txn", "-"},
			stdin:  `{"ops":` + ops + `}`,
			script: []exchange{{method: "POST", path: "/txn", body: `{"ops":` + ops + `}`, resp: answer}},
			stdout: "#  OP           KEY   RESULT\n" +
				"0  check-index  a\n" +
				"1  set          a     {\"x\":1}\n" +
				"2  delete-tree  tmp/  deleted 2\n" +
				"applied at index 9\n",
		},
		{
			name:   "a bare array is wrapped",
			args:   []string{"txn", "-", "--format", "json"},
			stdin:  ops,
			script: []exchange{{method: "POST", path: "/txn", body: `{"ops":` + ops + `}`, resp: `{"results":[],"index":9}`}},
			stdout: "{\n  \"results\": [],\n  \"index\": 9\n}\n",
		},
		{
			name:  "conflict",
			args:  []string{"txn", "-"},
			stdin: ops,
			script: []exchange{{method: "POST", path: "/txn", status: 409, body: `{"ops":` + ops + `}`,
				resp: `{"error":{"code":"txn_conflict","message":"ops[0] (check-index a): config key \"a\" has modify_index 4, not 3"},"errors":[{"op_index":0}]}`}},
			code:   1,
			stderr: []string{"transaction not applied, nothing changed: ops[0] (check-index a)"},
		},
		{
			name:   "not JSON",
			args:   []string{"txn", "-"},
			stdin:  `ops: []`,
			code:   1,
			stderr: []string{"not valid JSON"},
		},
	} {
		t.Run(tc.name, tc.run)
	}
}
