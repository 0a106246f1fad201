package cli

import (
	"bytes"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nexus/nexus/internal/tlsutil/tlstest"
)

func TestHTTPSAndCAFile(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	other := tlstest.NewCA(t, "other")
	dir := t.TempDir()
	srvFiles := ca.WriteFiles(t, dir, "srv", "api", "127.0.0.1")
	cliFiles := ca.WriteFiles(t, dir, "cli", "operator")
	foreignFiles := other.WriteFiles(t, dir, "foreign", "intruder")

	newServer := func(mtls bool) *httptest.Server {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`[{"name":"n1","address":"127.0.0.1:8301","status":"alive","raft":"leader","http_addr":"127.0.0.1:8500","gateway_addr":"127.0.0.1:8080"}]`))
		}))
		pair, err := tls.LoadX509KeyPair(srvFiles.Cert, srvFiles.Key)
		if err != nil {
			t.Fatal(err)
		}
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
		if mtls {
			srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
			srv.TLS.ClientCAs = ca.Pool()
		}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv
	}
	plain, mutual := newServer(false), newServer(true)

	cases := []struct {
		name   string
		srv    *httptest.Server
		args   []string
		env    map[string]string
		code   int
		stderr string
	}{
		{"flag", plain, []string{"--ca-file", srvFiles.CA}, nil, 0, ""},
		{"env NEXUS_CACERT", plain, nil, map[string]string{"NEXUS_CACERT": srvFiles.CA}, 0, ""},
		{"no CA: unknown authority", plain, nil, nil, 1, "certificate"},
		{"missing CA file", plain, []string{"--ca-file", dir + "/none.pem"}, nil, 2, "--ca-file"},
		{"client cert", mutual, []string{"--ca-file", srvFiles.CA, "--client-cert", cliFiles.Cert, "--client-key", cliFiles.Key}, nil, 0, ""},
		{"client cert from env", mutual, nil, map[string]string{"NEXUS_CACERT": srvFiles.CA, "NEXUS_CLIENT_CERT": cliFiles.Cert, "NEXUS_CLIENT_KEY": cliFiles.Key}, 0, ""},
		{"no client cert", mutual, []string{"--ca-file", srvFiles.CA}, nil, 1, ""},
		{"foreign client cert", mutual, []string{"--ca-file", srvFiles.CA, "--client-cert", foreignFiles.Cert, "--client-key", foreignFiles.Key}, nil, 1, ""},
		{"cert without key", mutual, []string{"--ca-file", srvFiles.CA, "--client-cert", cliFiles.Cert}, nil, 2, "--client-key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"members", "--http-addr", tc.srv.URL}, tc.args...)
			var stdout, stderr bytes.Buffer
			code := Run(args, strings.NewReader(""), &stdout, &stderr, func(k string) string { return tc.env[k] })
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.code, stderr.String())
			}
			if code == 0 && !strings.Contains(stdout.String(), "n1") {
				t.Fatalf("stdout %q", stdout.String())
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Fatalf("stderr %q lacks %q", stderr.String(), tc.stderr)
			}
		})
	}
}
