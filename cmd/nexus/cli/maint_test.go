package cli

import "testing"

func TestMaintCommands(t *testing.T) {
	const rec = `{"scope":"instance","service":"web","id":"web-1","reason":"disk swap","since":"2026-12-05T09:00:00Z","actor":"ops","create_index":7,"modify_index":7,"instances":1}`
	for _, tc := range []cliCase{
		{
			name: "enable an instance with a reason",
			args: []string{"maint", "enable", "--service", "web", "--id", "web-1", "--reason", "disk swap"},
			script: []exchange{{method: "PUT", path: "/maintenance/services/web/instances/web-1", body: `{"reason":"disk swap"}`,
				resp: rec}},
			stdout: "instance web/web-1 in maintenance (1 instances changed)\n",
		},
		{
			name: "enable a node",
			args: []string{"maint", "enable", "--node", "n2"},
			script: []exchange{{method: "PUT", path: "/maintenance/nodes/n2", body: `{"reason":""}`,
				resp: `{"scope":"node","node":"n2","reason":"","instances":4}`}},
			stdout: "node n2 in maintenance (4 instances changed)\n",
		},
		{
			name:   "no target",
			args:   []string{"maint", "enable"},
			code:   2,
			stderr: []string{"--node NODE, or --service NAME"},
		},
		{
			name:   "node and service",
			args:   []string{"maint", "enable", "--node", "n1", "--service", "web"},
			code:   2,
			stderr: []string{"--node excludes --service"},
		},
		{
			name:   "id without service",
			args:   []string{"maint", "disable", "--id", "web-1"},
			code:   2,
			stderr: []string{"--id needs --service"},
		},
		{
			name: "unknown node",
			args: []string{"maint", "enable", "--node", "nope"},
			script: []exchange{{method: "PUT", path: "/maintenance/nodes/nope", status: 404, body: `{"reason":""}`,
				resp: `{"error":{"code":"not_found","message":"node \"nope\" is not a member of the cluster","field":"node"}}`}},
			code:   1,
			stderr: []string{`node "nope" is not a member`},
		},
		{
			name:   "disable a service",
			args:   []string{"maint", "disable", "--service", "web"},
			script: []exchange{{method: "DELETE", path: "/maintenance/services/web", resp: `{"ended":true,"instances":2}`}},
			stdout: "maintenance ended (2 instances changed)\n",
		},
		{
			name:   "disable what is not in maintenance",
			args:   []string{"maint", "disable", "--node", "n1"},
			script: []exchange{{method: "DELETE", path: "/maintenance/nodes/n1", resp: `{"ended":false,"instances":0}`}},
			stdout: "not in maintenance (nothing changed)\n",
		},
		{
			name:   "list",
			args:   []string{"maint", "list"},
			script: []exchange{{method: "GET", path: "/maintenance", resp: `[` + rec + `,{"scope":"node","node":"n2","reason":"rack","since":"2026-12-05T10:00:00Z","actor":"ops"}]`}},
			stdout: "SCOPE     TARGET     REASON     SINCE                 ACTOR\n" +
				"instance  web/web-1  disk swap  2026-12-05T09:00:00Z  ops\n" +
				"node      n2         rack       2026-12-05T10:00:00Z  ops\n",
		},
	} {
		t.Run(tc.name, tc.run)
	}
}
