package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nexus/nexus/storage"
)

// nexus recover: usage mistakes are exit 2 naming the flag, refusals exit
// 1; neither changes the directory.
func TestRecoverCommandRefusals(t *testing.T) {
	plain := t.TempDir()
	held := t.TempDir()
	dd, err := storage.Open(held, "n1", storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dd.Close()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no data dir", nil, 2, "--data-dir is required"},
		{"argument", []string{"--data-dir", plain, "extra"}, 2, `unexpected argument "extra"`},
		{"voter without =", []string{"--data-dir", plain, "--voter", "n1"}, 2, `--voter: "n1" is not NODE=HOST:RAFTPORT`},
		{"voter bad name", []string{"--data-dir", plain, "--voter", "n 1=127.0.0.1:8300"}, 2, `--voter: "n 1=127.0.0.1:8300": node name "n 1" is not valid`},
		{"voter no port", []string{"--data-dir", plain, "--voter", "n1=127.0.0.1"}, 2, `--voter: "n1=127.0.0.1": address "127.0.0.1" is not HOST:PORT`},
		{"voter port 0", []string{"--data-dir", plain, "--voter", "n1=h:0"}, 2, `port "0" is not in 1..65535`},
		{"voter no host", []string{"--data-dir", plain, "--voter", "n1=:8300"}, 2, `has no host`},
		{"unknown flag", []string{"--data-dir", plain, "--peers", "x"}, 2, "flag provided but not defined: -peers"},
		{"not a data dir", []string{"--data-dir", plain}, 1, "not a nexus data dir: " + plain + " has no readable node-id file"},
		{"missing dir", []string{"--data-dir", filepath.Join(plain, "nope")}, 1, "does not exist"},
		{"held by an agent", []string{"--data-dir", held}, 1, "data dir is in use by another nexus agent: " + held + "; stop the agent first (recovery is offline)"},
		{"voters without this node", []string{"--data-dir", held, "--voter", "n2=127.0.0.1:1"}, 1, "in use by another nexus agent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"recover"}, tc.args...), strings.NewReader(""), &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, want %d; stderr %q lacks %q", code, tc.code, stderr.String(), tc.want)
			}
			if stdout.Len() != 0 {
				t.Fatalf("stdout: %q", stdout.String())
			}
		})
	}
	if entries, _ := os.ReadDir(plain); len(entries) != 0 {
		t.Fatalf("recover wrote into %s: %v", plain, entries)
	}
	var stdout bytes.Buffer
	if code := run([]string{"recover", "--help"}, strings.NewReader(""), &stdout, io.Discard); code != 0 || !strings.Contains(stdout.String(), "Usage: nexus recover --data-dir DIR") {
		t.Fatalf("--help: %d %q", code, stdout.String())
	}
}
