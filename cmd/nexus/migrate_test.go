package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/nexus/nexus/internal/pgtest"
)

func TestRunMigrate(t *testing.T) {
	pg := pgtest.StartT(t, pgtest.Options{})
	url := pg.NewDB(t)
	env := func(k string) string {
		if k == "NEXUS_POSTGRES_URL" {
			return url
		}
		return ""
	}
	noEnv := func(string) string { return "" }
	for _, tc := range []struct {
		name   string
		args   []string
		getenv func(string) string
		code   int
		out    string // substring of stdout
		errOut string // substring of stderr
	}{
		{"no subcommand", nil, env, 2, "", "Usage: nexus migrate"},
		{"unknown subcommand", []string{"down"}, env, 2, "", "Usage: nexus migrate"},
		{"no url", []string{"status"}, noEnv, 2, "", "--postgres-url (or NEXUS_POSTGRES_URL) is required"},
		{"bad url", []string{"status", "--postgres-url", "postgres://u:hunter2@[::1"}, noEnv, 1, "", "invalid PostgreSQL URL"},
		{"status pending", []string{"status"}, env, 0, "00001_audit_archive.sql  pending", ""},
		{"up", []string{"up"}, env, 0, "applied 00001_audit_archive.sql", ""},
		{"up again", []string{"up", "--postgres-url", url}, noEnv, 0, "schema is current", ""},
		{"status applied", []string{"status"}, env, 0, "00001_audit_archive.sql  applied", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := runMigrate(tc.args, &out, &errOut, tc.getenv)
			if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errOut.String(), tc.errOut) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, out.String(), errOut.String(), tc.code, tc.out, tc.errOut)
			}
			if strings.Contains(errOut.String(), "hunter2") {
				t.Errorf("the password leaked: %s", errOut.String())
			}
		})
	}
}
