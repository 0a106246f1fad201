package main

import (
	"bytes"
	"strings"
	"testing"
)

// `nexus --help` prints one usage text, which names every command.
func TestHelpPrintsOneUsage(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"-h"}} {
		var out, errb bytes.Buffer
		if rc := run(args, strings.NewReader(""), &out, &errb); rc != 0 {
			t.Fatalf("nexus %v: exit %d: %s", args, rc, errb.String())
		}
		text := out.String()
		if n := strings.Count(text, "Usage:"); n != 1 {
			t.Fatalf("nexus %v printed %d usage texts:\n%s", args, n, text)
		}
		for _, cmd := range []string{"agent", "migrate status|up", "version", "services list", "acl bootstrap"} {
			if !strings.Contains(text, "  "+cmd+" ") {
				t.Errorf("nexus %v does not list %q", args, cmd)
			}
		}
	}
}
