package cli

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestKeyringCommands(t *testing.T) {
	var gotBody string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "GET" && r.URL.Path == "/operator/keyring":
			_, _ = w.Write([]byte(`{"primary":"AAA=","keys":["AAA=","BBB="]}`))
		case r.Method == "POST" && strings.Contains(gotBody, `"down"`):
			w.WriteHeader(503)
			_, _ = w.Write([]byte(`{"error":{"code":"keyring_partial","message":"keyring use failed on 1 node(s)"},"op":"use","nodes":{"a":"ok","b":"error"}}`))
		case r.Method == "POST" && r.URL.Path == "/operator/keyring":
			_, _ = w.Write([]byte(`{"op":"install","nodes":{"b":"ok","a":"ok"}}`))
		default:
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()
	cases := []struct {
		args     []string
		code     int
		stdout   string
		body     string
		stderrIn string
	}{
		{[]string{"keyring", "list"}, 0, "AAA= (primary)\nBBB=\n", "", ""},
		{[]string{"keyring", "install", "BBB="}, 0, "a: install ok\nb: install ok\n", `{"key":"BBB=","op":"install"}`, ""},
		{[]string{"keyring", "use", "down"}, 1, "", `{"key":"down","op":"use"}`, "run the command again"},
		{[]string{"keyring", "remove"}, 2, "", "", "missing KEY"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			gotBody = ""
			var stdout, stderr bytes.Buffer
			code := Run(append(tc.args, "--http-addr", srv.URL), strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
			if code != tc.code || stdout.String() != tc.stdout {
				t.Fatalf("exit %d stdout %q stderr %q", code, stdout.String(), stderr.String())
			}
			if tc.body != "" && strings.TrimSpace(gotBody) != tc.body {
				t.Fatalf("body %q, want %q", gotBody, tc.body)
			}
			if !strings.Contains(stderr.String(), tc.stderrIn) {
				t.Fatalf("stderr %q lacks %q", stderr.String(), tc.stderrIn)
			}
		})
	}
}
