package cli

import "testing"

func TestLock_Usage(t *testing.T) {
	for _, tc := range []cliCase{
		{name: "no command", args: []string{"lock", "jobs/x"}, code: 2, stderr: []string{"missing CMD"}},
		{name: "empty prefix", args: []string{"lock", "/", "--", "true"}, code: 2, stderr: []string{"PREFIX must not be empty"}},
		{name: "bad lock delay", args: []string{"lock", "--lock-delay", "x", "p", "--", "true"}, code: 2, stderr: []string{"--lock-delay"}},
	} {
		t.Run(tc.name, tc.run)
	}
}
